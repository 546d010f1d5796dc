//! The modloop: the squashfs with every module and firmware file of the kernel.
//!
//! Alpine mounts it late, from the OpenRC `modloop` service, so the initramfs only has the few
//! modules it ships. Mounting it in the initramfs instead lets coldplug use the full module set
//! (no second `hwdrivers` pass) and lets the new root see it as Alpine's service would have left it.
//!
//! Verification is strict where Alpine is lax: a signature that does not verify, or a missing
//! signature while keys exist, refuses the image unless `modloop_verify=no`. Signatures are
//! `openssl dgst -sha1 -sign` output (RSA PKCS#1 v1.5 over SHA-1 of the whole image), stored as
//! `/var/cache/misc/<image basename>.SIGN.RSA.<key name>` with the key at `/etc/apk/keys/<key name>`.
//! The image is hashed streaming, never read into memory whole.

use super::modules::{ModuleLoader, Request};
use crate::sys::{MountFlags, Sys};
use sha1::{Digest, Sha1};
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Where the modloop is mounted (as Alpine's service does).
pub const MODLOOP_DIR: &str = "/.modloop";
const KEYS_DIR: &str = "/etc/apk/keys";
const SIG_DIR: &str = "/var/cache/misc";

/// Errors of the modloop component.
#[derive(Debug, thiserror::Error)]
pub enum ModloopError {
    /// `modloop=URL` could not be downloaded.
    #[error("cannot fetch the modloop: {0}")]
    Fetch(#[source] crate::net::http::FetchError),
    /// The image or a key or signature file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// Keys exist but none has a signature for this image.
    #[error(
        "modloop {} has no signature for any trusted key ({}); refusing it (modloop_verify=no overrides)",
        image.display(),
        keys.join(", ")
    )]
    Unsigned { image: PathBuf, keys: Vec<String> },
    /// Signatures exist but none verifies (or their keys do not parse).
    #[error(
        "modloop {} signature does not verify with {}; refusing it (modloop_verify=no overrides)",
        image.display(),
        tried.join(", ")
    )]
    BadSignature { image: PathBuf, tried: Vec<String> },
    /// `LOOP_CONFIGURE` failed.
    #[error("cannot attach {} to a loop device: {source}", image.display())]
    Attach { image: PathBuf, source: io::Error },
    /// Mounting the loop device failed.
    #[error("cannot mount {} on {MODLOOP_DIR}: {source}", device.display())]
    Mount { device: PathBuf, source: io::Error },
    /// The image has no `modules/<release>`: it belongs to another kernel.
    #[error("modloop {} has no modules/{release}", image.display())]
    NoModules { image: PathBuf, release: String },
    /// Making a link or moving the mount failed.
    #[error("cannot set up {}: {source}", path.display())]
    Arrange { path: PathBuf, source: io::Error },
    /// No candidate was usable; each one's error, in order (the first is the source).
    #[error("no usable modloop{}", .0.0.iter().map(|e| format!("; {e}")).collect::<String>())]
    NoneUsable(#[source] Candidates),
}

/// The errors of every modloop candidate, in the order they were tried. Its source is the
/// first candidate's error (the preferred image); all of them are in `.0`.
#[derive(Debug)]
pub struct Candidates(pub Vec<ModloopError>);

impl fmt::Display for Candidates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Candidates {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.first().map(|e| e as _)
    }
}

/// How an image passed verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verification {
    /// The signature made with this key verified.
    Verified { key: String },
    /// There are no keys: nothing to verify against (a warning, not an error).
    NoKeys,
    /// `modloop_verify=no`.
    Skipped,
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Verified { key } => write!(f, "signature verified with {key}"),
            Self::NoKeys => f.write_str("not verified: no keys to verify it with"),
            Self::Skipped => f.write_str("not verified: modloop_verify=no"),
        }
    }
}

/// SHA-1 of a file, read in chunks.
pub fn sha1_file(path: &Path) -> io::Result<[u8; 20]> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha1::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// Checks `image` (guest path) against the keys and signatures in the initramfs.
pub fn verify(
    sys: &dyn Sys,
    image: &Path,
    modloop_verify: bool,
) -> Result<Verification, ModloopError> {
    if !modloop_verify {
        return Ok(Verification::Skipped);
    }
    let mut keys: Vec<String> = std::fs::read_dir(sys.path(Path::new(KEYS_DIR)))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    crate::sys::sort::sort(&mut keys);
    if keys.is_empty() {
        log::warn!(
            "no keys in {KEYS_DIR}: modloop {} is not verified",
            image.display()
        );
        return Ok(Verification::NoKeys);
    }
    let base = image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut digest: Option<[u8; 20]> = None;
    let mut tried = Vec::new();
    for key in &keys {
        let sig_path = PathBuf::from(SIG_DIR).join(format!("{base}.SIGN.RSA.{key}"));
        let Ok(sig) = std::fs::read(sys.path(&sig_path)) else {
            continue;
        };
        tried.push(key.clone());
        let key_path = PathBuf::from(KEYS_DIR).join(key);
        let pem =
            std::fs::read_to_string(sys.path(&key_path)).map_err(|source| ModloopError::Read {
                path: key_path.clone(),
                source,
            })?;
        let Some(public) = crate::apk::sign::parse_public_key(pem.trim()) else {
            log::warn!("cannot parse key {}", key_path.display());
            continue;
        };
        let hash = match digest {
            Some(d) => d,
            None => {
                let d = sha1_file(&sys.path(image)).map_err(|source| ModloopError::Read {
                    path: image.to_path_buf(),
                    source,
                })?;
                digest = Some(d);
                d
            }
        };
        if crate::apk::sign::verify(&public, crate::apk::sign::SigAlgo::Sha1, &hash, &sig) {
            return Ok(Verification::Verified { key: key.clone() });
        }
    }
    if tried.is_empty() {
        Err(ModloopError::Unsigned {
            image: image.to_path_buf(),
            keys,
        })
    } else {
        Err(ModloopError::BadSignature {
            image: image.to_path_buf(),
            tried,
        })
    }
}

/// A mounted modloop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModloopMount {
    pub image: PathBuf,
    pub device: PathBuf,
    pub verification: Verification,
}

/// Verifies `image`, attaches it read-only, mounts it at `/.modloop` and checks it has
/// `modules/<release>`. Loads `loop` and `squashfs` first when a loader is given.
pub fn mount(
    sys: &dyn Sys,
    loader: Option<&ModuleLoader<'_>>,
    image: &Path,
    release: &str,
    modloop_verify: bool,
) -> Result<ModloopMount, ModloopError> {
    let verification = verify(sys, image, modloop_verify)?;
    if let Some(l) = loader {
        let wanted: Vec<&str> = ["loop", "fs-squashfs"]
            .into_iter()
            .filter(|n| !l.db().resolve(n, false).modules.is_empty())
            .collect();
        l.load(&Request::names(wanted));
    }
    let device = sys
        .loop_attach(image, true)
        .map_err(|source| ModloopError::Attach {
            image: image.to_path_buf(),
            source,
        })?;
    let target = Path::new(MODLOOP_DIR);
    std::fs::create_dir_all(sys.path(target)).map_err(|source| ModloopError::Arrange {
        path: target.to_path_buf(),
        source,
    })?;
    sys.mount(
        &device.to_string_lossy(),
        target,
        "squashfs",
        MountFlags::RDONLY,
        "",
    )
    .map_err(|source| ModloopError::Mount {
        device: device.clone(),
        source,
    })?;
    // Mounted: the loop device now detaches when /.modloop is unmounted, so the shutdown can
    // unmount the boot media holding its image. Without it the media only goes read-only.
    if let Err(e) = sys.loop_autoclear(&device) {
        log::warn!(
            "cannot set autoclear on {}: {e}; the boot media stays busy at shutdown",
            device.display()
        );
    }
    if !sys.path(&target.join("modules").join(release)).is_dir() {
        let _ = sys.umount(target, false);
        return Err(ModloopError::NoModules {
            image: image.to_path_buf(),
            release: release.to_string(),
        });
    }
    Ok(ModloopMount {
        image: image.to_path_buf(),
        device,
        verification,
    })
}

/// Tries candidates in order (see [`crate::media::find_modloop`]) and keeps the first that verifies
/// and has this kernel's modules.
pub fn mount_first(
    sys: &dyn Sys,
    loader: Option<&ModuleLoader<'_>>,
    candidates: &[PathBuf],
    release: &str,
    modloop_verify: bool,
) -> Result<ModloopMount, ModloopError> {
    let mut errors = Vec::new();
    for c in candidates {
        match mount(sys, loader, c, release, modloop_verify) {
            Ok(m) => return Ok(m),
            Err(e) => {
                log::warn!("{e}");
                errors.push(e);
            }
        }
    }
    Err(ModloopError::NoneUsable(Candidates(errors)))
}

fn arrange_err(path: &Path) -> impl FnOnce(io::Error) -> ModloopError + '_ {
    move |source| ModloopError::Arrange {
        path: path.to_path_buf(),
        source,
    }
}

/// Removes a symlink, file or (with `recursive`) directory tree at `host`, if there is one.
fn remove_any(host: &Path, recursive: bool) -> io::Result<()> {
    match std::fs::symlink_metadata(host) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() && recursive => std::fs::remove_dir_all(host),
        Ok(m) if m.is_dir() => std::fs::remove_dir(host),
        Ok(_) => std::fs::remove_file(host),
    }
}

/// True for a missing path or an empty directory.
fn absent_or_empty(host: &Path) -> bool {
    match std::fs::symlink_metadata(host) {
        Err(_) => true,
        Ok(m) if m.is_dir() => std::fs::read_dir(host)
            .map(|mut r| r.next().is_none())
            .unwrap_or(false),
        Ok(_) => false,
    }
}

/// Points the initramfs's `/lib/modules/<release>` at the modloop (the initramfs's own copy is
/// kept as `<release>.initramfs`) and, when the initramfs has no firmware of its own,
/// `/lib/firmware` at the modloop's. Links are relative so they also resolve in a test tree.
/// Afterwards call [`ModuleLoader::reload`].
pub fn link_into_initramfs(sys: &dyn Sys, release: &str) -> Result<(), ModloopError> {
    let modules = PathBuf::from("/lib/modules").join(release);
    let host = sys.path(&modules);
    match std::fs::symlink_metadata(&host) {
        Ok(m) if m.is_dir() => {
            let keep =
                sys.path(&PathBuf::from("/lib/modules").join(format!("{release}.initramfs")));
            remove_any(&keep, true).map_err(arrange_err(&modules))?;
            std::fs::rename(&host, &keep).map_err(arrange_err(&modules))?;
        }
        Ok(_) => std::fs::remove_file(&host).map_err(arrange_err(&modules))?,
        Err(_) => std::fs::create_dir_all(sys.path(Path::new("/lib/modules")))
            .map_err(arrange_err(&modules))?,
    }
    std::os::unix::fs::symlink(Path::new("../../.modloop/modules").join(release), &host)
        .map_err(arrange_err(&modules))?;
    let firmware = Path::new("/lib/firmware");
    let fw_host = sys.path(firmware);
    if sys.path(Path::new("/.modloop/modules/firmware")).is_dir() && absent_or_empty(&fw_host) {
        remove_any(&fw_host, false).map_err(arrange_err(firmware))?;
        std::os::unix::fs::symlink("../.modloop/modules/firmware", &fw_host)
            .map_err(arrange_err(firmware))?;
    }
    Ok(())
}

/// Leaves the new root the way Alpine's `modloop` service would: the mount moved to
/// `<sysroot>/.modloop`, `/lib/modules` → `/.modloop/modules`, and `/lib/firmware` →
/// `/lib/modules/firmware` when the modloop has firmware and the root's `/lib/firmware` is
/// missing or empty.
pub fn arrange_new_root(sys: &dyn Sys, sysroot: &Path) -> Result<(), ModloopError> {
    let target = sysroot.join(MODLOOP_DIR.trim_start_matches('/'));
    std::fs::create_dir_all(sys.path(&target)).map_err(arrange_err(&target))?;
    sys.move_mount(Path::new(MODLOOP_DIR), &target)
        .map_err(arrange_err(&target))?;
    let lib = sysroot.join("lib");
    std::fs::create_dir_all(sys.path(&lib)).map_err(arrange_err(&lib))?;
    let modules = lib.join("modules");
    // Alpine: `rm -rf /lib/modules; ln -sf /.modloop/modules /lib/`.
    remove_any(&sys.path(&modules), true).map_err(arrange_err(&modules))?;
    std::os::unix::fs::symlink("/.modloop/modules", sys.path(&modules))
        .map_err(arrange_err(&modules))?;
    let firmware = lib.join("firmware");
    if sys.path(&target.join("modules/firmware")).is_dir() && absent_or_empty(&sys.path(&firmware))
    {
        remove_any(&sys.path(&firmware), false).map_err(arrange_err(&firmware))?;
        std::os::unix::fs::symlink("/lib/modules/firmware", sys.path(&firmware))
            .map_err(arrange_err(&firmware))?;
    }
    Ok(())
}
