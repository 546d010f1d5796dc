//! `ramboot sdimage`: an Alpine-layout boot card as one disk image, built in user space.
//!
//! Why: an Alpine card is a FAT partition holding a boot repository (`apks/` with its
//! `.boot_repository` marker and signed index), an apkovl, the kernel, initramfs and modloop
//! under `boot/` and, for a Raspberry Pi, the firmware's files at its root. Assembling one by
//! hand needs root (a loop mount) or mtools and sfdisk. Here the partition table (mbrman, gpt)
//! and the FAT32 filesystem (fatfs) are written into the file directly; only the optional ext4
//! data partition uses a tool (`mkfs.ext4 -d`, through [`Sys`]).
//!
//! Reproducible: the same inputs give the same bytes. Every timestamp is `SOURCE_DATE_EPOCH`
//! (else FAT's first day, 1980-01-01), entries are written in sorted order, and the ids a
//! formatter draws at random (MBR disk signature, FAT volume id, GPT GUIDs, the ext4 UUID) come
//! from a SHA-256 of the content. Host tool only: the init never links this module.

pub mod apkovl;
pub mod fat;

use crate::apk::sign::{Keyring, SigAlgo, SigningKey};
use crate::sys::{Spawn, Sys};
use fat::{Part, PartKind, ALIGN, MIB};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The FAT partition's files: path (relative, `/`-separated) → what to write. Sorted, so every
/// build writes them in the same order.
pub type Content = BTreeMap<String, Src>;

pub enum Src {
    /// A host file and its length.
    File(PathBuf, u64),
    Bytes(Vec<u8>),
    Dir,
}

impl Src {
    pub fn len(&self) -> u64 {
        match self {
            Src::File(_, n) => *n,
            Src::Bytes(b) => b.len() as u64,
            Src::Dir => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the card boots on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A Raspberry Pi: firmware files and `config.txt`/`cmdline.txt` at the root, as Alpine's
    /// Pi image lays them out.
    Rpi,
    /// QEMU's `virt` machine (or any U-Boot board): `boot/` and `extlinux/extlinux.conf`.
    Virt,
    /// No boot files: a medium holding a repository, an apkovl, a modloop (a USB stick beside
    /// a boot device, or the tests' media).
    None,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Rpi => "rpi",
            Target::Virt => "virt",
            Target::None => "none",
        }
    }

    /// The command line written when none is given: Alpine's own for its Pi images; a serial
    /// console on QEMU.
    fn default_cmdline(self) -> &'static str {
        match self {
            Target::Rpi => "modules=loop,squashfs,sd-mod,usb-storage quiet console=tty1",
            _ => "modules=loop,squashfs,virtio_blk console=ttyAMA0",
        }
    }

    /// Initramfs features when the image builds it (see `ramboot mkinitfs --help`).
    fn default_features(self) -> &'static str {
        match self {
            Target::Rpi => "base,mmc,rpi,usb,vfat",
            _ => "base,virtio,vfat",
        }
    }
}

/// The package repository on the card.
pub enum Repository {
    /// An Alpine `apks/` directory: `<arch>/APKINDEX.tar.gz` (signed) and the packages.
    Dir(PathBuf),
    /// Package files, indexed and signed here with [`Spec::key`].
    Packages(Vec<PathBuf>),
}

/// The apkovl on the card.
pub enum Apkovl {
    /// Apkovl files taken as they are (their names must end in `.apkovl.tar.gz`).
    Files(Vec<PathBuf>),
    /// One written here: a directory tree, a world list and a hostname (each optional).
    Write(apkovl::OverlaySpec),
    /// A provisioning profile (TOML, [`crate::profile`]): its apkovl, and its kernel
    /// command-line words added to the card's command line.
    Profile(PathBuf),
}

/// How the initramfs is had.
pub enum Initramfs {
    /// Given: taken as is (the modloop signature and key appended as a second archive).
    File(PathBuf),
    /// Built with `mkinitfs`'s code: the init binary, the kernel modules to pick from, a rescue
    /// busybox, feature lists (default by target) and extra modules.
    Build {
        init: Option<PathBuf>,
        kernel_modules: Option<PathBuf>,
        busybox: Option<PathBuf>,
        features: Vec<String>,
        modules: Vec<String>,
    },
}

pub enum Modloop {
    /// A squashfs image as is.
    File(PathBuf),
    /// A `modules/<release>` tree (or the directory holding `modules/`), squashed here with
    /// ramboot's own squashfs writer (src/rootcache/squashfs.rs; no mksquashfs needed).
    Dir(PathBuf),
}

/// Everything `ramboot sdimage` puts on a card.
pub struct Spec {
    pub output: PathBuf,
    pub target: Target,
    pub arch: String,
    /// Names the kernel, initramfs and modloop files (`boot/vmlinuz-<flavor>`); default: the
    /// target's name.
    pub flavor: Option<String>,
    pub repository: Option<Repository>,
    /// Private key: signs the index of [`Repository::Packages`] and the modloop; its public half
    /// goes into the initramfs as a trusted apk key.
    pub key: Option<PathBuf>,
    pub apkovl: Option<Apkovl>,
    pub kernel: Option<PathBuf>,
    /// Device trees: every `*.dtb` under this directory (rpi: at the root; virt: `boot/dtbs/`).
    pub dtbs: Option<PathBuf>,
    /// Device-tree overlays (rpi: `overlays/`).
    pub overlays: Option<PathBuf>,
    /// Firmware files copied to the root (rpi: `bootcode.bin`, `start*.elf`, `fixup*.dat`).
    pub firmware: Option<PathBuf>,
    pub initramfs: Option<Initramfs>,
    /// Also write the card's initramfs here (for a boot that takes it from outside the card:
    /// QEMU's -initrd, a netboot server).
    pub initramfs_out: Option<PathBuf>,
    pub modloop: Option<Modloop>,
    /// lbu's package cache (`cache/`).
    pub cache: Option<PathBuf>,
    /// Extra files: host source, path on the card.
    pub files: Vec<(PathBuf, String)>,
    pub cmdline: Option<String>,
    /// The whole image's size; default: from the content plus [`Spec::headroom`] percent.
    pub size: Option<u64>,
    pub headroom: u64,
    pub gpt: bool,
    /// An ext4 data partition after the boot partition: its size and an optional tree for it.
    pub data: Option<(u64, Option<PathBuf>)>,
    pub label: String,
    /// Every timestamp (`SOURCE_DATE_EPOCH`, else 0).
    pub epoch: u64,
}

/// Why a card could not be built; each names the missing or faulty piece.
#[derive(Debug, thiserror::Error)]
pub enum SdError {
    #[error("no kernel for --target {target}: give --kernel FILE (it becomes {dest})")]
    NoKernel { target: &'static str, dest: String },
    #[error("--target none has no boot files: {what} is only for --target rpi or virt")]
    BootFileWithoutTarget { what: &'static str },
    #[error("repository {}: no index {} (an Alpine apks/ directory has <arch>/APKINDEX.tar.gz, signed)", dir.display(), index.display())]
    NoIndex { dir: PathBuf, index: PathBuf },
    #[error("repository {}: the index {} is not signed (no .SIGN.RSA entry); sign it (ramboot apk index --key) or give the packages with --apk and --key", dir.display(), index.display())]
    UnsignedIndex { dir: PathBuf, index: PathBuf },
    #[error("repository {}: {why}", dir.display())]
    BadIndex { dir: PathBuf, why: String },
    #[error("{what} needs --key FILE (the private key that signs it)")]
    NoKey { what: &'static str },
    #[error("{}: an apkovl's name must end in .apkovl.tar.gz (or .apkovl.tar.gz.CIPHER when encrypted)", path.display())]
    ApkovlName { path: PathBuf },
    #[error("the apkovl {name} ({size} bytes) is larger than the boot partition ({partition} bytes, {free} free for files); give a larger --size or leave --size out")]
    ApkovlTooLarge {
        name: String,
        size: u64,
        partition: u64,
        free: u64,
    },
    #[error("the content ({needed} bytes with {clusters}-byte clusters; largest: {largest}) does not fit the boot partition ({partition} bytes); give a larger --size or leave --size out")]
    ContentTooLarge {
        needed: u64,
        clusters: u64,
        largest: String,
        partition: u64,
    },
    #[error("--size {size} leaves no room for a boot partition of at least {min} bytes")]
    SizeTooSmall { size: u64, min: u64 },
    #[error("a modloop on --target none needs --flavor NAME (the card holds boot/modloop-NAME)")]
    NoFlavor,
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("FAT filesystem: {0}")]
    Fat(String),
    #[error("partition table: {0}")]
    Table(String),
    #[error("{0}")]
    Apk(#[from] crate::apk::ApkError),
    #[error("{0}")]
    Profile(#[from] crate::profile::ProfileError),
    #[error("initramfs: {0}")]
    Initramfs(String),
    #[error("modloop: {0}")]
    Modloop(String),
    #[error("the data partition needs mkfs.ext4 and debugfs (e2fsprogs), found in none of PATH, /sbin, /usr/sbin")]
    NoMkfsExt4,
    #[error("writing the ext4 data partition: {0}")]
    MkfsExt4(String),
}

impl SdError {
    fn read(path: &Path, source: io::Error) -> SdError {
        SdError::Read {
            path: path.into(),
            source,
        }
    }
    fn fat(e: io::Error) -> SdError {
        SdError::Fat(e.to_string())
    }
    fn table_io(e: io::Error) -> SdError {
        SdError::Table(e.to_string())
    }
    /// A write into the FAT that failed: out of space names the partition, else the path.
    fn from_write(e: io::Error, path: &str, partition: u64) -> SdError {
        if matches!(
            e.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::WriteZero | io::ErrorKind::UnexpectedEof
        ) || e.to_string().contains("No space")
        {
            SdError::ContentTooLarge {
                needed: 0,
                clusters: fat::cluster_size(partition),
                largest: path.to_string(),
                partition,
            }
        } else {
            SdError::Fat(format!("{path}: {e}"))
        }
    }
}

/// What was written.
pub struct Report {
    pub size: u64,
    pub boot_partition: u64,
    pub files: usize,
    pub content: u64,
    /// How the modloop was made, for the summary line.
    pub modloop: Option<&'static str>,
    /// The profile's warnings (what a package must supply), one line each.
    pub warnings: Vec<String>,
}

/// What the gathering learnt besides the content.
struct Gathered {
    content: Content,
    modloop: Option<&'static str>,
    warnings: Vec<String>,
}

fn add_dirs(content: &mut Content, path: &str) {
    let mut at = 0;
    while let Some(i) = path[at..].find('/') {
        content
            .entry(path[..at + i].to_string())
            .or_insert(Src::Dir);
        at += i + 1;
    }
}

fn add_file(content: &mut Content, dest: &str, src: &Path) -> Result<(), SdError> {
    let len = std::fs::metadata(src)
        .map_err(|e| SdError::read(src, e))?
        .len();
    add_dirs(content, dest);
    content.insert(dest.into(), Src::File(src.into(), len));
    Ok(())
}

fn add_bytes(content: &mut Content, dest: &str, bytes: Vec<u8>) {
    add_dirs(content, dest);
    content.insert(dest.into(), Src::Bytes(bytes));
}

/// Every regular file under `dir` (sorted, recursive), as paths relative to it.
fn files_under(dir: &Path) -> Result<Vec<(PathBuf, String)>, SdError> {
    let mut out = Vec::new();
    walk(dir, "", &mut out)?;
    Ok(out)
}

fn walk(dir: &Path, rel: &str, out: &mut Vec<(PathBuf, String)>) -> Result<(), SdError> {
    let mut names: Vec<OsString> = std::fs::read_dir(dir)
        .map_err(|e| SdError::read(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    crate::sys::sort::sort(&mut names);
    for name in names {
        let path = dir.join(&name);
        let name = name.to_string_lossy();
        let rel_name = if rel.is_empty() {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        };
        let meta = std::fs::metadata(&path).map_err(|e| SdError::read(&path, e))?;
        if meta.is_dir() {
            out.push((path.clone(), format!("{rel_name}/")));
            walk(&path, &rel_name, out)?;
        } else if meta.is_file() {
            out.push((path, rel_name));
        }
    }
    Ok(())
}

/// Copies the tree `dir` under `dest` (`""` = the root), directories included.
fn add_tree(content: &mut Content, dir: &Path, dest: &str) -> Result<(), SdError> {
    let prefix = if dest.is_empty() {
        String::new()
    } else {
        format!("{dest}/")
    };
    if !dest.is_empty() {
        add_dirs(content, &prefix);
        content.entry(dest.into()).or_insert(Src::Dir);
    }
    for (path, rel) in files_under(dir)? {
        match rel.strip_suffix('/') {
            Some(d) => {
                content.entry(format!("{prefix}{d}")).or_insert(Src::Dir);
            }
            None => add_file(content, &format!("{prefix}{rel}"), &path)?,
        }
    }
    Ok(())
}

/// Whether a gzip'd tar stream's first member holds a `.SIGN.` entry (apk's signature member).
fn index_is_signed(index: &Path) -> Result<bool, String> {
    let f = File::open(index).map_err(|e| e.to_string())?;
    let gz = crate::apk::gz::GzMembers::new(io::BufReader::new(f)).map_err(|e| e.to_string())?;
    let mut tar = crate::apk::tar::TarReader::new(gz);
    match tar.next_event().map_err(|e| e.to_string())? {
        crate::apk::tar::Event::Entry(e) => Ok(e.name.starts_with(".SIGN.")),
        crate::apk::tar::Event::MemberEnd => Ok(false),
    }
}

/// The repository's files under `apks/`.
fn add_repository(
    content: &mut Content,
    repo: &Repository,
    arch: &str,
    key: Option<&SigningKey>,
    epoch: u64,
) -> Result<(), SdError> {
    match repo {
        Repository::Dir(dir) => {
            // Alpine's media root holds apks/; accept either.
            let dir = if dir.join("apks").is_dir() && !dir.join(arch).is_dir() {
                dir.join("apks")
            } else {
                dir.clone()
            };
            let index = dir.join(arch).join("APKINDEX.tar.gz");
            if !index.is_file() {
                return Err(SdError::NoIndex { dir, index });
            }
            let signed = index_is_signed(&index).map_err(|why| SdError::BadIndex {
                dir: dir.clone(),
                why: format!("{}: {why}", index.display()),
            })?;
            if !signed {
                return Err(SdError::UnsignedIndex { dir, index });
            }
            if let Some(k) = key {
                // Signed by the card's key: check it now rather than at boot.
                let mut keys = Keyring::default();
                keys.add(&k.key_name, k.public());
                let f = File::open(&index).map_err(|e| SdError::read(&index, e))?;
                crate::apk::stream::read_index(f, &index.display().to_string(), &keys, false)
                    .map_err(|e| SdError::BadIndex {
                        dir: dir.clone(),
                        why: e.to_string(),
                    })?;
            }
            add_tree(content, &dir, "apks")?;
        }
        Repository::Packages(files) => {
            let key = key.ok_or(SdError::NoKey {
                what: "indexing the --apk packages",
            })?;
            let mut idx = crate::apk::build::IndexBuilder {
                description: "ramboot sdimage".into(),
                mtime: epoch,
                ..Default::default()
            };
            for p in files {
                idx.add(&crate::apk::build::index_record(p)?);
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                add_file(content, &format!("apks/{arch}/{name}"), p)?;
            }
            let bytes = idx.build(Some(key), SigAlgo::Sha1)?;
            add_bytes(content, &format!("apks/{arch}/APKINDEX.tar.gz"), bytes);
        }
    }
    add_bytes(content, "apks/.boot_repository", Vec::new());
    Ok(())
}

/// Every `*.dtb` under `dir`, by file name (sorted; the first of a name wins).
fn dtbs(dir: &Path) -> Result<BTreeMap<String, PathBuf>, SdError> {
    let mut out = BTreeMap::new();
    for (path, rel) in files_under(dir)? {
        let name = rel.rsplit('/').next().unwrap_or(&rel).to_string();
        if name.ends_with(".dtb") {
            out.entry(name).or_insert(path);
        }
    }
    Ok(out)
}

/// The squashfs of a modules tree, from ramboot's own writer.
fn squash(dir: &Path, epoch: u64) -> Result<Vec<u8>, SdError> {
    use rustix::fs::{Mode, OFlags};
    let err = |e: io::Error| SdError::Modloop(format!("{}: {e}", dir.display()));
    let fd = rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
        .map_err(|e| err(e.into()))?;
    let tree = crate::rootcache::squashfs::scan_tree(rustix::fd::AsFd::as_fd(&fd), &|_| false)
        .map_err(err)?;
    let mut out = io::Cursor::new(Vec::new());
    crate::rootcache::squashfs::write(tree, rustix::fd::AsFd::as_fd(&fd), &mut out, epoch as u32)
        .map_err(err)?;
    Ok(out.into_inner())
}

/// apk's modloop signature: RSA over the image's SHA-1, named
/// `<image name>.SIGN.RSA.<key name>` in the initramfs's /var/cache/misc.
fn sign_modloop(key: &SigningKey, image: &[u8]) -> Result<Vec<u8>, SdError> {
    use sha1::Digest as _;
    let digest = sha1::Sha1::digest(image);
    Ok(key.sign(SigAlgo::Sha1, &digest)?)
}

/// Files that go into the initramfs besides what `mkinitfs` puts there: the public key and the
/// modloop signature.
type Extras = Vec<(String, Vec<u8>)>;

fn build_initramfs(
    how: &Initramfs,
    target: Target,
    extras: &Extras,
    epoch: u64,
) -> Result<Vec<u8>, SdError> {
    use crate::initramfs::{self as ifs, Compression};
    let ierr = |e: String| SdError::Initramfs(e);
    match how {
        Initramfs::File(path) => {
            let mut bytes = std::fs::read(path).map_err(|e| SdError::read(path, e))?;
            if !extras.is_empty() {
                // The kernel unpacks concatenated archives in order: the key and the signature
                // are added without rebuilding the given image.
                let mut a = ifs::cpio::Archive::new();
                for (dest, data) in extras {
                    a.file(dest, 0o644, data.clone())
                        .map_err(|e| ierr(e.to_string()))?;
                }
                let (more, _) = ifs::encode(&a, Compression::Gzip, epoch as u32)
                    .map_err(|e| ierr(e.to_string()))?;
                bytes.extend_from_slice(&more);
            }
            Ok(bytes)
        }
        Initramfs::Build {
            init,
            kernel_modules,
            busybox,
            features,
            modules,
        } => {
            let init = match init {
                Some(p) => p.clone(),
                None => {
                    let me = std::env::current_exe().map_err(|e| ierr(e.to_string()))?;
                    let beside = me.with_file_name("ramboot-init");
                    if beside.is_file() {
                        beside
                    } else {
                        me
                    }
                }
            };
            let module_set = match kernel_modules {
                None => None,
                Some(dir) => {
                    let mut wanted = modules.clone();
                    let features: Vec<String> = if features.is_empty() {
                        target
                            .default_features()
                            .split(',')
                            .map(String::from)
                            .collect()
                    } else {
                        features.clone()
                    };
                    for f in &features {
                        wanted.extend(
                            ifs::features::entries(f, &ifs::features::Source::BuiltIn)
                                .map_err(|e| ierr(e.to_string()))?,
                        );
                    }
                    let release = dir
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let files = crate::hw::modules::closure(
                        dir,
                        &wanted.iter().map(String::as_str).collect::<Vec<_>>(),
                    )
                    .map_err(|e| ierr(format!("{}: {e}", dir.display())))?;
                    Some(ifs::ModuleSet {
                        dir: dir.clone(),
                        kernel_release: release,
                        files,
                    })
                }
            };
            let spec = ifs::Spec {
                init,
                modules: module_set,
                busybox: busybox.clone(),
                apk_keys: Vec::new(),
                files: Vec::new(),
                compression: Compression::Gzip,
                mtime: epoch as u32,
            };
            let (mut archive, _) = ifs::build(&spec).map_err(|e| ierr(e.to_string()))?;
            for (dest, data) in extras {
                archive
                    .file(dest, 0o644, data.clone())
                    .map_err(|e| ierr(e.to_string()))?;
            }
            let (bytes, _) = ifs::encode(&archive, Compression::Gzip, epoch as u32)
                .map_err(|e| ierr(e.to_string()))?;
            Ok(bytes)
        }
    }
}

/// Gathers everything the FAT partition holds.
fn gather(spec: &Spec) -> Result<Gathered, SdError> {
    let mut content = Content::new();
    let mut warnings = Vec::new();
    let mut cmdline_words: Vec<String> = Vec::new();
    let key = match &spec.key {
        Some(p) => Some(SigningKey::load(p, None)?),
        None => None,
    };
    let flavor = spec
        .flavor
        .clone()
        .unwrap_or_else(|| spec.target.name().to_string());
    if let Some(repo) = &spec.repository {
        add_repository(&mut content, repo, &spec.arch, key.as_ref(), spec.epoch)?;
    }
    match &spec.apkovl {
        None => {}
        Some(Apkovl::Files(files)) => {
            for f in files {
                let name = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if !is_apkovl_name(&name) {
                    return Err(SdError::ApkovlName { path: f.clone() });
                }
                add_file(&mut content, &name, f)?;
            }
        }
        Some(Apkovl::Write(o)) => {
            let (name, bytes) = apkovl::write(o, spec.epoch)?;
            add_bytes(&mut content, &name, bytes);
        }
        Some(Apkovl::Profile(path)) => {
            let profile = crate::profile::Profile::load(path)?;
            add_bytes(
                &mut content,
                &profile.apkovl_name(),
                profile.apkovl(spec.epoch),
            );
            cmdline_words.extend(profile.cmdline_additions().iter().cloned());
            warnings.extend(profile.warnings().iter().cloned());
        }
    }
    let mut modloop_how = None;
    let mut extras: Extras = Vec::new();
    if let Some(k) = &key {
        extras.push((
            format!("etc/apk/keys/{}", k.key_name),
            k.public_pem().into(),
        ));
    }
    if let Some(m) = &spec.modloop {
        if spec.target == Target::None && spec.flavor.is_none() {
            return Err(SdError::NoFlavor);
        }
        let image_name = format!("modloop-{flavor}");
        let bytes = match m {
            Modloop::File(p) => {
                modloop_how = Some("given image");
                std::fs::read(p).map_err(|e| SdError::read(p, e))?
            }
            Modloop::Dir(d) => {
                modloop_how = Some("squashfs by ramboot's own writer");
                squash(d, spec.epoch)?
            }
        };
        if let Some(k) = &key {
            extras.push((
                format!("var/cache/misc/{image_name}.SIGN.RSA.{}", k.key_name),
                sign_modloop(k, &bytes)?,
            ));
        }
        add_bytes(&mut content, &format!("boot/{image_name}"), bytes);
    }
    if let Some(c) = &spec.cache {
        add_tree(&mut content, c, "cache")?;
    }
    add_boot_files(&mut content, spec, &flavor, &extras, &cmdline_words)?;
    for (src, dest) in &spec.files {
        add_file(&mut content, dest.trim_start_matches('/'), src)?;
    }
    Ok(Gathered {
        content,
        modloop: modloop_how,
        warnings,
    })
}

/// The kernel, initramfs, device trees, firmware and boot configuration of the target.
fn add_boot_files(
    content: &mut Content,
    spec: &Spec,
    flavor: &str,
    extras: &Extras,
    more_words: &[String],
) -> Result<(), SdError> {
    let target = spec.target;
    if target == Target::None {
        for (given, what) in [
            (spec.kernel.is_some(), "--kernel"),
            (spec.dtbs.is_some(), "--dtbs"),
            (spec.firmware.is_some(), "--firmware"),
            (spec.overlays.is_some(), "--overlays"),
            (spec.initramfs.is_some(), "--initramfs"),
            (spec.initramfs_out.is_some(), "--initramfs-out"),
        ] {
            if given {
                return Err(SdError::BootFileWithoutTarget { what });
            }
        }
        return Ok(());
    }
    let kernel_dest = format!("boot/vmlinuz-{flavor}");
    let kernel = spec.kernel.as_ref().ok_or_else(|| SdError::NoKernel {
        target: target.name(),
        dest: kernel_dest.clone(),
    })?;
    add_file(content, &kernel_dest, kernel)?;
    let initramfs_dest = format!("boot/initramfs-{flavor}");
    let default = Initramfs::Build {
        init: None,
        kernel_modules: None,
        busybox: None,
        features: Vec::new(),
        modules: Vec::new(),
    };
    let how = spec.initramfs.as_ref().unwrap_or(&default);
    let initramfs = build_initramfs(how, target, extras, spec.epoch)?;
    if let Some(out) = &spec.initramfs_out {
        std::fs::write(out, &initramfs).map_err(|e| SdError::Write {
            path: out.clone(),
            source: e,
        })?;
    }
    add_bytes(content, &initramfs_dest, initramfs);
    let mut cmdline = spec
        .cmdline
        .clone()
        .unwrap_or_else(|| target.default_cmdline().to_string());
    for word in more_words {
        if !cmdline.split_whitespace().any(|w| w == word) {
            cmdline.push(' ');
            cmdline.push_str(word);
        }
    }
    match target {
        Target::Rpi => {
            if let Some(d) = &spec.firmware {
                add_tree(content, d, "")?;
            }
            if let Some(d) = &spec.dtbs {
                for (name, path) in dtbs(d)? {
                    add_file(content, &name, &path)?;
                }
            }
            if let Some(d) = &spec.overlays {
                add_tree(content, d, "overlays")?;
            }
            let arm64 = if spec.arch == "aarch64" {
                "arm_64bit=1\n"
            } else {
                ""
            };
            let config = format!(
                "# Written by ramboot sdimage. The Pi firmware reads this file; put local\n\
                 # settings into usercfg.txt, included last.\n\
                 [all]\n{arm64}kernel={kernel_dest}\ninitramfs {initramfs_dest}\n\
                 include usercfg.txt\n"
            );
            add_bytes(content, "config.txt", config.into_bytes());
            add_bytes(content, "cmdline.txt", format!("{cmdline}\n").into_bytes());
        }
        Target::Virt => {
            let mut fdt = String::new();
            if let Some(d) = &spec.dtbs {
                for (name, path) in dtbs(d)? {
                    add_file(content, &format!("boot/dtbs-{flavor}/{name}"), &path)?;
                }
                fdt = format!("  FDTDIR /boot/dtbs-{flavor}\n");
            }
            // U-Boot's distro boot (and QEMU's -M virt with U-Boot) read extlinux.conf.
            let conf = format!(
                "# Written by ramboot sdimage.\nDEFAULT ramboot\nLABEL ramboot\n  \
                 LINUX /{kernel_dest}\n  INITRD /{initramfs_dest}\n{fdt}  APPEND {cmdline}\n"
            );
            add_bytes(content, "extlinux/extlinux.conf", conf.into_bytes());
        }
        Target::None => {}
    }
    Ok(())
}

/// SHA-256 over every path, length and content: the seed of the image's ids.
fn content_hash(content: &Content) -> Result<[u8; 32], SdError> {
    let mut h = Sha256::new();
    for (path, src) in content {
        h.update(path.as_bytes());
        h.update([0]);
        h.update(src.len().to_le_bytes());
        match src {
            Src::Dir => h.update([1]),
            Src::Bytes(b) => h.update(b),
            Src::File(p, _) => {
                let mut f = File::open(p).map_err(|e| SdError::read(p, e))?;
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = io::Read::read(&mut f, &mut buf).map_err(|e| SdError::read(p, e))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
            }
        }
    }
    Ok(h.finalize().into())
}

/// The boot partition's size: the content with its headroom, at least [`fat::MIN_FAT`], in
/// whole MiB.
fn fat_size_for(content: &Content, headroom: u64) -> u64 {
    // The cluster size depends on the size: estimate with 4 KiB clusters (the larger).
    let used = fat::allocated(content, 4096);
    let with_room = used + used * headroom / 100 + 2 * MIB;
    // The two FATs: 4 bytes per 512-byte cluster, twice, at most.
    let tables = with_room / 512 * 8;
    (with_room + tables).max(fat::MIN_FAT).div_ceil(MIB) * MIB
}

/// Refuses content that cannot fit a boot partition of `partition` bytes, naming the piece.
fn check_fit(content: &Content, partition: u64) -> Result<(), SdError> {
    let cluster = fat::cluster_size(partition);
    // Reserved sectors, two FATs, the root directory.
    let clusters = partition / cluster;
    let free = partition.saturating_sub(32 * 512 + 2 * clusters * 4 + cluster);
    for (path, src) in content {
        if is_apkovl_name(path) && src.len() > free {
            return Err(SdError::ApkovlTooLarge {
                name: path.clone(),
                size: src.len(),
                partition,
                free,
            });
        }
    }
    let needed = fat::allocated(content, cluster);
    if needed > free {
        let mut by_size: Vec<(&String, u64)> = content.iter().map(|(p, s)| (p, s.len())).collect();
        crate::sys::sort::sort_by(&mut by_size, |a, b| b.1.cmp(&a.1));
        let largest = by_size
            .iter()
            .take(3)
            .map(|(p, n)| format!("{p} {n} bytes"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(SdError::ContentTooLarge {
            needed,
            clusters: cluster,
            largest,
            partition,
        });
    }
    Ok(())
}

/// `tool` (an e2fsprogs program) found on PATH or in the sbin directories.
fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/sbin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Runs `spawn`; its exit status must be 0.
fn run_tool(sys: &dyn Sys, spawn: &Spawn) -> Result<(), SdError> {
    let name = spawn.program.display().to_string();
    match sys.run(spawn) {
        Ok(0) => Ok(()),
        Ok(code) => Err(SdError::MkfsExt4(format!("{name}: exit status {code}"))),
        Err(e) => Err(SdError::MkfsExt4(format!("{name}: {e}"))),
    }
}

/// debugfs commands setting every time of every inode under `tree` (and the root and
/// lost+found) to `epoch`: mke2fs 1.47.0 copies the source files' times, ctime and atime
/// included, which no one can set.
fn ext4_time_commands(tree: Option<&Path>, epoch: u64) -> Result<String, SdError> {
    let mut paths = vec!["/".to_string(), "/lost+found".to_string()];
    if let Some(t) = tree {
        let mut all = Vec::new();
        walk_all(t, "", &mut all)?;
        paths.extend(all.into_iter().map(|p| format!("/{p}")));
    }
    let mut cmds = String::new();
    for p in paths {
        for field in ["atime", "ctime", "mtime", "crtime"] {
            cmds.push_str(&format!("sif \"{p}\" {field} @{epoch}\n"));
        }
    }
    Ok(cmds)
}

/// Every entry under `dir` (symlinks not followed), as relative paths.
fn walk_all(dir: &Path, rel: &str, out: &mut Vec<String>) -> Result<(), SdError> {
    for e in std::fs::read_dir(dir).map_err(|e| SdError::read(dir, e))? {
        let e = e.map_err(|e| SdError::read(dir, e))?;
        let name = format!("{rel}{}", e.file_name().to_string_lossy());
        out.push(name.clone());
        if e.file_type()
            .map_err(|er| SdError::read(&e.path(), er))?
            .is_dir()
        {
            walk_all(&e.path(), &format!("{name}/"), out)?;
        }
    }
    Ok(())
}

/// Writes the ext4 data partition: `mkfs.ext4 -d` into a file beside the image, every inode
/// time set to `epoch` with debugfs, then copied to its offset. Its UUID and directory hash
/// seed come from `seed`: reproducible too.
fn write_ext4(
    sys: &dyn Sys,
    image: &mut File,
    output: &Path,
    part: &Part,
    tree: Option<&Path>,
    seed: [u8; 32],
    epoch: u64,
) -> Result<(), SdError> {
    let mkfs = find_tool("mkfs.ext4").ok_or(SdError::NoMkfsExt4)?;
    let debugfs = find_tool("debugfs").ok_or(SdError::NoMkfsExt4)?;
    let mut b = [0u8; 16];
    b.copy_from_slice(&seed[16..]);
    let uuid = uuid::Builder::from_random_bytes(b).into_uuid().to_string();
    let fs_file = output.with_extension("ext4.tmp");
    let cmds_file = output.with_extension("debugfs.tmp");
    let mut args: Vec<OsString> = vec![
        "-q".into(),
        "-F".into(),
        "-t".into(),
        "ext4".into(),
        "-L".into(),
        "data".into(),
        "-U".into(),
        uuid.clone().into(),
        "-E".into(),
        format!("hash_seed={uuid},root_owner=0:0").into(),
    ];
    if let Some(t) = tree {
        args.push("-d".into());
        args.push(t.into());
    }
    args.push(fs_file.clone().into());
    args.push(format!("{}k", part.len / 1024).into());
    let epoch_text = epoch.to_string();
    let env: Vec<(OsString, OsString)> = vec![
        ("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        ("E2FSPROGS_FAKE_TIME".into(), epoch_text.clone().into()),
        ("SOURCE_DATE_EPOCH".into(), epoch_text.into()),
    ];
    let result = (|| {
        // Made here: mkfs.ext4 says "Creating regular file" when it makes it.
        File::create(&fs_file)
            .and_then(|f| f.set_len(part.len))
            .map_err(|e| SdError::Write {
                path: fs_file.clone(),
                source: e,
            })?;
        run_tool(
            sys,
            &Spawn {
                program: mkfs,
                args,
                env: env.clone(),
                ..Default::default()
            },
        )?;
        std::fs::write(&cmds_file, ext4_time_commands(tree, epoch)?).map_err(|e| {
            SdError::Write {
                path: cmds_file.clone(),
                source: e,
            }
        })?;
        // debugfs echoes each command and its banner: quiet through a shell redirect.
        run_tool(
            sys,
            &Spawn {
                program: "/bin/sh".into(),
                args: vec![
                    "-c".into(),
                    "exec \"$0\" -w -f \"$1\" \"$2\" >/dev/null 2>&1".into(),
                    debugfs.into(),
                    cmds_file.clone().into(),
                    fs_file.clone().into(),
                ],
                env: env.clone(),
                ..Default::default()
            },
        )?;
        let bytes = std::fs::read(&fs_file).map_err(|e| SdError::read(&fs_file, e))?;
        fat::write_sparse(image, part.start, &bytes).map_err(|e| SdError::Write {
            path: output.into(),
            source: e,
        })
    })();
    let _ = std::fs::remove_file(&fs_file);
    let _ = std::fs::remove_file(&cmds_file);
    result
}

/// Builds the card described by `spec` into `spec.output`.
pub fn build(sys: &dyn Sys, spec: &Spec) -> Result<Report, SdError> {
    let Gathered {
        content,
        modloop,
        warnings,
    } = gather(spec)?;
    let seed = content_hash(&content)?;
    let tail = if spec.gpt { MIB } else { 0 };
    let data_len = spec
        .data
        .as_ref()
        .map_or(0, |(n, _)| n.div_ceil(ALIGN) * ALIGN);
    let fat_len = match spec.size {
        Some(size) => {
            let avail = size.saturating_sub(ALIGN + data_len + tail) / ALIGN * ALIGN;
            if avail < fat::MIN_FAT {
                return Err(SdError::SizeTooSmall {
                    size,
                    min: fat::MIN_FAT + ALIGN + data_len + tail,
                });
            }
            avail
        }
        None => fat_size_for(&content, spec.headroom),
    };
    check_fit(&content, fat_len)?;
    let total = spec.size.unwrap_or(ALIGN + fat_len + data_len + tail);
    let mut parts = vec![Part {
        start: ALIGN,
        len: fat_len,
        kind: PartKind::Fat32,
    }];
    if data_len > 0 {
        parts.push(Part {
            start: ALIGN + fat_len,
            len: data_len,
            kind: PartKind::Linux,
        });
    }
    let volume_id = u32::from_le_bytes([seed[0], seed[1], seed[2], seed[3]]);
    let fs = fat::build(&content, fat_len, &spec.label, volume_id, spec.epoch)?;

    let werr = |e: io::Error| SdError::Write {
        path: spec.output.clone(),
        source: e,
    };
    let tmp = spec.output.with_extension("tmp");
    let mut out = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(werr)?;
    out.set_len(total).map_err(werr)?;
    if spec.gpt {
        fat::write_gpt(&mut out, &parts, seed)?;
    } else {
        fat::write_mbr(&mut out, &parts, [seed[4], seed[5], seed[6], seed[7]])?;
    }
    fat::write_sparse(&mut out, ALIGN, &fs).map_err(werr)?;
    if let (Some(p), Some((_, tree))) = (parts.get(1), &spec.data) {
        write_ext4(
            sys,
            &mut out,
            &spec.output,
            p,
            tree.as_deref(),
            seed,
            spec.epoch,
        )?;
    }
    out.flush().map_err(werr)?;
    drop(out);
    std::fs::rename(&tmp, &spec.output).map_err(werr)?;
    Ok(Report {
        size: total,
        boot_partition: fat_len,
        files: content.values().filter(|s| !matches!(s, Src::Dir)).count(),
        content: content.values().map(Src::len).sum(),
        modloop,
        warnings,
    })
}

/// `NAME.apkovl.tar.gz`, or an encrypted one: `NAME.apkovl.tar.gz.CIPHER` as `lbu commit -e`
/// names it (the boot asks for its key).
fn is_apkovl_name(name: &str) -> bool {
    name.ends_with(".apkovl.tar.gz")
        || name
            .rsplit_once(".apkovl.tar.gz.")
            .is_some_and(|(_, cipher)| !cipher.is_empty() && !cipher.contains('.'))
}
