//! Seed inputs for the fuzz targets (`ramboot::fuzzing`), built from the test fixtures: the
//! command lines of `tests/cmdline.rs` and `kernel-cmdline/`, packages and indexes from the apk
//! builder, apkovls like the overlay tests' (hostile ones included), the fake module tree and the
//! hand-written superblocks of the hw tests. Used by `tests/fuzz_targets.rs` and written to disk
//! for cargo-fuzz by `examples/fuzz_seeds.rs`; regression inputs under
//! `tests/data/fuzz-regressions/<target>/` are added to both.
#![allow(dead_code)]

#[path = "../support/hw.rs"]
mod hw_support;

use ramboot::apk::build::{IndexBuilder, PackageBuilder};
use ramboot::apk::checksum::Checksum;
use ramboot::apk::db::{installed_text, scripts_tar, Db, DirRec, FileRec, InstalledPkg};
use ramboot::apk::sign::SigAlgo;
use ramboot::apk::stream::ScriptKind;
use ramboot::fuzzing::{fuzz_key, GZ_MEMBER_SPLIT, PART_SPLIT, SPARSE_MAGIC};
use std::io::Read;
use std::path::{Path, PathBuf};

/// One seed: target, file name, bytes.
pub type Seed = (&'static str, String, Vec<u8>);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every seed of every target.
pub fn all() -> Vec<Seed> {
    let mut out = Vec::new();
    cmdline(&mut out);
    apkindex(&mut out);
    installed_db(&mut out);
    dep_atoms(&mut out);
    apk_stream(&mut out);
    apkovl(&mut out);
    modules(&mut out);
    superblock(&mut out);
    fstab(&mut out);
    out.extend(regressions());
    out
}

/// The committed regression inputs, `tests/data/fuzz-regressions/<target>/<name>`.
pub fn regressions() -> Vec<Seed> {
    let mut out = Vec::new();
    let base = repo().join("tests/data/fuzz-regressions");
    for (target, _) in ramboot::fuzzing::TARGETS {
        let Ok(dir) = std::fs::read_dir(base.join(target)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let name = format!("regression-{}", f.file_name().unwrap().to_string_lossy());
            out.push((*target, name, std::fs::read(&f).unwrap()));
        }
    }
    out
}

fn push(out: &mut Vec<Seed>, target: &'static str, name: impl Into<String>, bytes: Vec<u8>) {
    out.push((target, name.into(), bytes));
}

fn join_parts(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(&PART_SPLIT)
}

/// The first string literal after each `case(` in the command-line tests.
fn cmdline_test_lines() -> Vec<String> {
    let src = std::fs::read_to_string(repo().join("tests/cmdline.rs")).unwrap();
    let mut lines = Vec::new();
    for chunk in src.split("case(").skip(1) {
        let chunk = chunk.trim_start();
        if let Some(raw) = chunk.strip_prefix("r#\"") {
            if let Some(end) = raw.find("\"#") {
                lines.push(raw[..end].to_string());
            }
        } else if let Some(s) = chunk.strip_prefix('"') {
            let mut text = String::new();
            let mut chars = s.chars();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('n') => text.push('\n'),
                        Some('t') => text.push('\t'),
                        Some(o) => text.push(o),
                        None => break,
                    },
                    c => text.push(c),
                }
            }
            lines.push(text);
        }
    }
    lines
}

fn cmdline(out: &mut Vec<Seed>) {
    for (i, line) in cmdline_test_lines().into_iter().enumerate() {
        push(out, "cmdline", format!("test-{i:03}"), line.into_bytes());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("kernel-cmdline"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    for f in files {
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        push(out, "cmdline", name, std::fs::read(&f).unwrap());
    }
    push(
        out,
        "cmdline",
        "quotes-and-dashdash",
        b"\"apkovl=a b\" opt=\"x y\" console=ttyS0,115200n8 noquiet -- single init_arg".to_vec(),
    );
}

/// Packages covering the index and `.PKGINFO` fields, scripts and every entry kind.
fn packages() -> Vec<PackageBuilder> {
    let mut base = PackageBuilder::new("base", "1.2.3_rc1-r0")
        .depends("so:libc.musl-x86_64.so.1 !conflict lib>=1.0 tool~2.1 /bin/sh")
        .provides("cmd:base=1.2.3_rc1-r0 virtual")
        .install_if("base lib")
        .replaces("old-base")
        .priority(10)
        .triggers("/usr/share/fonts/* /etc/base.d")
        .script(ScriptKind::PreInstall, "#!/bin/sh\necho pre\n")
        .script(ScriptKind::PostInstall, "#!/bin/sh\necho post\n")
        .script(ScriptKind::Trigger, "#!/bin/sh\necho trigger \"$@\"\n")
        .dir("etc", 0o755)
        .dir("var/lib/base", 0o700)
        .file("etc/base.conf", b"key=value\n", 0o644)
        .file("usr/bin/base", b"#!/bin/sh\nexit 0\n", 0o755)
        .file("usr/bin/suid", b"x", 0o4755)
        .symlink("usr/bin/alias", "base")
        .hardlink("usr/bin/base2", "usr/bin/base");
    base.info.url = "https://example.org/base".into();
    base.info.maintainer = "Someone <someone@example.org>".into();
    base.info.commit = Some("0123456789abcdef0123456789abcdef01234567".into());
    let mut old_layout =
        PackageBuilder::new("lib", "1.0-r1").file("usr/lib/libx.so.1", b"ELF", 0o755);
    old_layout.datahash = false;
    let mut sha256 = PackageBuilder::new("tool", "2.1.5-r3").file("usr/bin/tool", b"tool", 0o755);
    sha256.sign_algo = SigAlgo::Sha256;
    let mut with_xattr = PackageBuilder::new("cap", "0.1-r0").entry(
        PackageBuilder::file_entry(
            "usr/bin/ping",
            ramboot::apk::build::Content::Bytes(b"ping".to_vec()),
            0o755,
        )
        .xattr("security.capability", b"\x01\x00\x00\x02\x00\x20\x00\x00"),
    );
    with_xattr.pkginfo_extra = "# extra\nunknown = value\n".into();
    let dev = PackageBuilder::new("devs", "1-r0")
        .entry(PackageBuilder::raw_entry(
            "dev/null",
            ramboot::apk::tar::Kind::CharDevice,
            0o666,
        ))
        .entry(PackageBuilder::raw_entry(
            "run/fifo",
            ramboot::apk::tar::Kind::Fifo,
            0o600,
        ));
    let long = PackageBuilder::new("long", "1-r0").file(
        &format!("usr/share/{}/file", "d".repeat(120)),
        b"long name",
        0o644,
    );
    vec![
        base,
        old_layout,
        sha256,
        with_xattr,
        dev,
        long,
        PackageBuilder::new("empty", "0-r0"),
    ]
}

fn apkindex(out: &mut Vec<Seed>) {
    let mut idx = IndexBuilder::default();
    for p in packages() {
        let built = p.build(None).unwrap();
        let mut pkginfo = built.info.write_pkginfo();
        push(
            out,
            "apkindex",
            format!("pkginfo-{}", built.info.name),
            pkginfo.clone().into_bytes(),
        );
        pkginfo.clear();
        idx.add(&built.info);
    }
    push(out, "apkindex", "index", idx.text().into_bytes());
    push(
        out,
        "apkindex",
        "index-unknown-fields",
        b"C:Q1sKBraP0l14fbx+ZBoqeB0pFzpH4=\nP:foo\nV:1.0-r0\nA:x86_64\nS:100\nI:200\nT:d\nU:\nL:MIT\nk:3\nD:bar so:x\np:cmd:foo=1.0\nZ:new\nr:old\n\nP:dropped\nV:1\n".to_vec(),
    );
}

fn installed_db(out: &mut Vec<Seed>) {
    let file = |name: &str, mode: u32, csum: Option<Checksum>| FileRec {
        name: name.into(),
        uid: 0,
        gid: 0,
        mode,
        xattr_csum: None,
        csum,
    };
    let id = |b: u8| Checksum::Sha1([b; 20]);
    let mut pkgs = Vec::new();
    for (i, p) in packages().into_iter().enumerate() {
        let built = p.build(None).unwrap();
        let mut info = built.info;
        info.identity = Some(id(i as u8 + 1));
        pkgs.push(InstalledPkg {
            info,
            dirs: vec![
                DirRec {
                    path: "usr/bin".into(),
                    uid: 0,
                    gid: 0,
                    mode: 0o755,
                    xattr_csum: None,
                    files: vec![file("tool", 0o755, Some(id(9))), file("suid", 0o4755, None)],
                },
                DirRec {
                    path: "var/lib/x".into(),
                    uid: 42,
                    gid: 43,
                    mode: 0o700,
                    xattr_csum: Some(id(7)),
                    files: vec![FileRec {
                        uid: 42,
                        gid: 43,
                        xattr_csum: Some(id(8)),
                        ..file("state", 0o640, None)
                    }],
                },
            ],
            broken_files: i == 1,
            broken_script: i == 2,
            broken_xattr: false,
            sha256_160: i == 2,
            tag: (i == 3).then(|| "edge".to_string()),
            scripts: p_scripts(i),
        });
    }
    let db = Db {
        packages: pkgs,
        world: Vec::new(),
    };
    let text = installed_text(&db);
    let tar = scripts_tar(&db);
    push(
        out,
        "installed_db",
        "db-and-scripts",
        join_parts(&[text.as_bytes(), &tar]),
    );
    push(out, "installed_db", "db-only", text.into_bytes());
}

fn p_scripts(i: usize) -> Vec<(ScriptKind, Vec<u8>)> {
    match i {
        0 => vec![
            (ScriptKind::PreInstall, b"#!/bin/sh\necho pre\n".to_vec()),
            (ScriptKind::Trigger, b"#!/bin/sh\necho t\n".to_vec()),
        ],
        2 => vec![(ScriptKind::PostUpgrade, b"#!/bin/sh\n".to_vec())],
        _ => Vec::new(),
    }
}

fn dep_atoms(out: &mut Vec<Seed>) {
    let atoms =
        "foo\n!foo\nfoo@edge\nso:libc.musl-x86_64.so.1\nfoo>=1.2.3_rc1-r0\nfoo<2\nfoo~1.2\n\
                 foo=~1.2\nfoo><Q1sKBraP0l14fbx+ZBoqeB0pFzpH4=\ncmd:sh=1.0\n/bin/sh\n\
                 a b>1 !c@t<=2.0_p1\nX1000102030405060708090a0b0c0d0e0f10111213\n";
    push(out, "dep_atoms", "atoms", atoms.as_bytes().to_vec());
    for file in [
        "apk-version-vectors.txt",
        "apk-version-vectors-2.14-random.txt",
    ] {
        let text = std::fs::read_to_string(repo().join("tests/data").join(file)).unwrap();
        let versions: Vec<&str> = text
            .lines()
            .flat_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                [w.first().copied(), w.get(2).copied()]
            })
            .flatten()
            .collect();
        for (i, chunk) in versions.chunks(12).take(24).enumerate() {
            push(
                out,
                "dep_atoms",
                format!("versions-{file}-{i:02}"),
                chunk.join("\n").into_bytes(),
            );
        }
    }
}

/// The gzip members of a stream, uncompressed.
fn members(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let mut d = flate2::bufread::GzDecoder::new(bytes);
        let mut m = Vec::new();
        d.read_to_end(&mut m).unwrap();
        bytes = d.into_inner();
        out.push(m);
    }
    out
}

/// An [`ramboot::fuzzing::apk_stream`] input in the member-split layout.
fn split_layout(stream: &[u8]) -> Vec<u8> {
    let parts = members(stream);
    for m in &parts {
        assert!(!m
            .windows(GZ_MEMBER_SPLIT.len())
            .any(|w| w == GZ_MEMBER_SPLIT));
    }
    let mut out = vec![0u8];
    out.extend(parts.join(GZ_MEMBER_SPLIT));
    out
}

fn apk_stream(out: &mut Vec<Seed>) {
    let key = fuzz_key();
    let mut idx = IndexBuilder {
        description: "fuzz repository".into(),
        ..IndexBuilder::default()
    };
    for mut p in packages() {
        // The target gzips members at level 9, as abuild does: seeds verify unmutated.
        p.level = 9;
        let built = p.build(Some(key)).unwrap();
        idx.add(&built.info);
        let name = built.info.name.clone();
        push(
            out,
            "apk_stream",
            format!("pkg-{name}"),
            split_layout(&built.bytes),
        );
        let mut raw = vec![1u8];
        raw.extend(&built.bytes);
        push(out, "apk_stream", format!("pkg-{name}-raw"), raw);
    }
    let unsigned = PackageBuilder::new("unsigned", "1-r0").file("a", b"a", 0o644);
    let mut untrusted = split_layout(&unsigned.build(None).unwrap().bytes);
    untrusted[0] = 2;
    push(out, "apk_stream", "pkg-unsigned-allowed", untrusted);
    for algo in [SigAlgo::Sha1, SigAlgo::Sha256] {
        let bytes = idx.build(Some(key), algo).unwrap();
        let name = match algo {
            SigAlgo::Sha1 => "index-sha1",
            _ => "index-sha256",
        };
        push(out, "apk_stream", name, split_layout(&bytes));
    }
}

enum Ovl<'a> {
    Dir(&'a str, u32),
    File(&'a str, u32, &'a [u8]),
    Link(&'a str, &'a str),
    Hard(&'a str, &'a str),
    Char(&'a str),
    Fifo(&'a str),
}

/// A tar stream with raw header names (hostile names too), like the overlay tests build.
fn tar_of(entries: &[Ovl<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (path, data, kind, mode): (&str, &[u8], tar::EntryType, u32) = match e {
            Ovl::Dir(p, m) => (p, b"", tar::EntryType::Directory, *m),
            Ovl::File(p, m, d) => (p, d, tar::EntryType::Regular, *m),
            Ovl::Link(p, t) | Ovl::Hard(p, t) => {
                h.set_link_name(t).unwrap();
                let kind = match e {
                    Ovl::Link(..) => tar::EntryType::Symlink,
                    _ => tar::EntryType::Link,
                };
                (p, b"", kind, 0o777)
            }
            Ovl::Char(p) => (p, b"", tar::EntryType::Char, 0o600),
            Ovl::Fifo(p) => (p, b"", tar::EntryType::Fifo, 0o600),
        };
        h.set_entry_type(kind);
        h.set_mode(mode);
        let raw = &mut h.as_old_mut().name;
        raw.fill(0);
        raw[..path.len()].copy_from_slice(path.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn apkovl(out: &mut Vec<Seed>) {
    use Ovl::*;
    let cases: Vec<(&str, Vec<Ovl<'_>>)> = vec![
        (
            "lbu",
            vec![
                Dir("etc/", 0o755),
                File("etc/hostname", 0o644, b"alpine\n"),
                Dir("etc/apk/", 0o755),
                File("etc/apk/world", 0o644, b"alpine-base\nopenssh\n"),
                Dir("etc/runlevels/default/", 0o755),
                Link("etc/runlevels/default/sshd", "/etc/init.d/sshd"),
                Dir("root/", 0o700),
                File("root/.profile", 0o600, b"export PS1\n"),
                File("etc/shadow", 0o640, b"root:*:1::::::\n"),
                Char("dev/console"),
                Fifo("run/initctl"),
            ],
        ),
        ("dotdot", vec![File("../sentinel/owned", 0o644, b"x")]),
        (
            "absolute",
            vec![
                File("/etc/motd", 0o644, b"hi\n"),
                File("./etc/issue", 0o644, b"x"),
            ],
        ),
        (
            "symlink-escape",
            vec![Link("esc", "../sentinel"), File("esc/owned", 0o644, b"x")],
        ),
        (
            "absolute-symlink",
            vec![Link("up", "/"), File("up/etc/x", 0o644, b"x")],
        ),
        (
            "dir-over-symlink",
            vec![Link("d", "../sentinel"), Dir("d/", 0o700)],
        ),
        ("root-symlink", vec![Link("root", "../sentinel")]),
        ("hardlink-escape", vec![Hard("h", "../sentinel/keep")]),
        (
            "hardlink-via-symlink",
            vec![Link("s", "../sentinel"), Hard("h", "s/keep")],
        ),
        ("device-outside-dev", vec![Char("etc/evil")]),
        (
            "replace-and-fail",
            vec![
                File("a", 0o644, b"1"),
                Dir("a/", 0o755),
                File("a/b", 0o644, b"2"),
            ],
        ),
        (
            "locked-dir",
            vec![Dir("l/", 0o000), File("l/f", 0o644, b"x")],
        ),
    ];
    for (name, entries) in cases {
        let mut input = vec![0u8];
        input.extend(tar_of(&entries));
        push(out, "apkovl", name, input);
    }
    let mut raw = vec![1u8];
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar_of(&[File("etc/hostname", 0o644, b"h\n")])).unwrap();
    raw.extend(gz.finish().unwrap());
    push(out, "apkovl", "raw-gzip", raw);
}

fn modules(out: &mut Vec<Seed>) {
    let dir = tempfile::tempdir().unwrap();
    let tree = hw_support::standard_modules(dir.path());
    let read = |name: &str| std::fs::read(tree.dir.join(name)).unwrap_or_default();
    let files: Vec<Vec<u8>> = [
        "modules.dep",
        "modules.alias",
        "modules.softdep",
        "modules.builtin",
        "modules.builtin.modinfo",
    ]
    .iter()
    .map(|n| read(n))
    .collect();
    let conf = b"# c\nblacklist evbug\noptions snd-hda index=1 \\\n  model=x\nalias fs-foo vfat\n\
                 softdep vfat pre: nls_cp437 post: nls_ascii\ninstall x /bin/true\nblacklist loop\n";
    let cmdline = b"quiet blacklist=dummy,evbug-x modprobe.blacklist=y usb-storage.delay_use=0";
    let requests = b"virtio_blk\nfs-vfat\npci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00\n\
                     of:NmmcT(null)Cbrcm,bcm2835-sdhost\next4\n-b loop\nfs-fakebuiltin\nkernel/fs/\n\
                     kernel/fs/fat/*.ko*\nnosuch";
    let mut parts: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
    parts.extend([&conf[..], &cmdline[..], &requests[..]]);
    push(out, "modules", "standard", join_parts(&parts));
    let compressed = b"kernel/a.ko.xz: kernel/b.ko.zst kernel/c.ko.gz\nkernel/b.ko.zst: kernel/c.ko.gz\n\
                       kernel/c.ko.gz:\nkernel/cycle1.ko: kernel/cycle2.ko\nkernel/cycle2.ko: kernel/cycle1.ko\n";
    push(
        out,
        "modules",
        "compressed-and-cycles",
        join_parts(&[
            compressed,
            b"",
            b"softdep a pre: cycle1 post: a\n",
            b"",
            b"",
            b"",
            b"",
            b"a\ncycle2",
        ]),
    );
}

/// A sparse [`ramboot::fuzzing::superblock`] input: non-zero 512-byte blocks, merged.
fn sparse(img: &[u8]) -> Vec<u8> {
    let mut out = SPARSE_MAGIC.to_vec();
    let mut i = 0;
    while i < img.len() {
        let block = &img[i..(i + 512).min(img.len())];
        if block.iter().all(|&b| b == 0) {
            i += 512;
            continue;
        }
        let start = i;
        while i < img.len()
            && i - start < 60 * 1024
            && img[i..(i + 512).min(img.len())].iter().any(|&b| b != 0)
        {
            i += 512;
        }
        let piece = &img[start..i.min(img.len())];
        out.extend((start as u32).to_le_bytes());
        out.extend((piece.len() as u16).to_le_bytes());
        out.extend(piece);
    }
    // Keep the image size: a last zero byte.
    out.extend((img.len() as u32 - 1).to_le_bytes());
    out.extend(1u16.to_le_bytes());
    out.push(0);
    out
}

const UUID: [u8; 16] = [
    0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
];

/// The hand-written images of `tests/hw_probe.rs`.
fn images() -> Vec<(&'static str, Vec<u8>)> {
    let mut v = vec![
        ("fat16", hw_support::fat16_image(0x1234ABCD, Some("ALPINE"))),
        ("fat16-nolabel", hw_support::fat16_image(1, None)),
        ("ext2", hw_support::ext_image(0, 0x2, 0x3, UUID, "root")),
        ("ext4", hw_support::ext_image(4, 0x2c2, 3, UUID, "x")),
        ("squashfs", hw_support::squashfs_image()),
    ];
    let mut fat32 = vec![0u8; 2 << 20];
    fat32[0..3].copy_from_slice(&[0xEB, 0x58, 0x90]);
    fat32[11..13].copy_from_slice(&512u16.to_le_bytes());
    fat32[13] = 1;
    fat32[14..16].copy_from_slice(&32u16.to_le_bytes());
    fat32[16] = 2;
    fat32[21] = 0xF8;
    fat32[32..36].copy_from_slice(&4096u32.to_le_bytes());
    fat32[36..40].copy_from_slice(&8u32.to_le_bytes());
    fat32[44..48].copy_from_slice(&2u32.to_le_bytes());
    fat32[66] = 0x29;
    fat32[67..71].copy_from_slice(&0x0A0B0C0Du32.to_le_bytes());
    fat32[71..82].copy_from_slice(b"RPI-BOOT   ");
    fat32[82..90].copy_from_slice(b"FAT32   ");
    let root = (32 + 2 * 8) * 512;
    fat32[root..root + 11].copy_from_slice(b"DIRLABEL   ");
    fat32[root + 11] = 0x08;
    v.push(("fat32", fat32));
    let mut xfs = vec![0u8; 4096];
    xfs[0..4].copy_from_slice(b"XFSB");
    xfs[4..8].copy_from_slice(&4096u32.to_be_bytes());
    xfs[32..48].copy_from_slice(&UUID);
    xfs[108..113].copy_from_slice(b"data1");
    v.push(("xfs", xfs));
    let mut btrfs = vec![0u8; 65536 + 4096];
    let sb = 65536;
    btrfs[sb + 32..sb + 48].copy_from_slice(&UUID);
    btrfs[sb + 64..sb + 72].copy_from_slice(b"_BHRfS_M");
    btrfs[sb + 299..sb + 303].copy_from_slice(b"pool");
    v.push(("btrfs", btrfs));
    let mut f2fs = vec![0u8; 4096];
    f2fs[1024..1028].copy_from_slice(&0xF2F52010u32.to_le_bytes());
    f2fs[1024 + 108..1024 + 124].copy_from_slice(&UUID);
    for (i, c) in "flash".encode_utf16().enumerate() {
        f2fs[1024 + 124 + 2 * i..1024 + 126 + 2 * i].copy_from_slice(&c.to_le_bytes());
    }
    v.push(("f2fs", f2fs));
    let mut iso = vec![0u8; 32768 + 2048];
    let p = 32768;
    iso[p] = 1;
    iso[p + 1..p + 6].copy_from_slice(b"CD001");
    iso[p + 40..p + 72].copy_from_slice(b"alpine-virt 3.21.0 aarch64      ");
    iso[p + 813..p + 829].copy_from_slice(b"2024120512000000");
    iso[p + 830..p + 846].copy_from_slice(b"0000000000000000");
    v.push(("iso9660", iso));
    let mut exfat = vec![0u8; 1 << 20];
    exfat[0..3].copy_from_slice(&[0xEB, 0x76, 0x90]);
    exfat[3..11].copy_from_slice(b"EXFAT   ");
    exfat[88..92].copy_from_slice(&64u32.to_le_bytes());
    exfat[96..100].copy_from_slice(&4u32.to_le_bytes());
    exfat[100..104].copy_from_slice(&0xCAFE1234u32.to_le_bytes());
    exfat[108] = 9;
    exfat[109] = 3;
    let root = (64 + (4 - 2) * 8) * 512;
    exfat[root] = 0x81;
    exfat[root + 32] = 0x83;
    exfat[root + 33] = 3;
    for (i, c) in "USB".encode_utf16().enumerate() {
        exfat[root + 34 + 2 * i..root + 36 + 2 * i].copy_from_slice(&c.to_le_bytes());
    }
    v.push(("exfat", exfat));
    let mut gpt = vec![0u8; 64 * 1024];
    gpt[510] = 0x55;
    gpt[511] = 0xAA;
    gpt[446 + 4] = 0xEE;
    gpt[512..520].copy_from_slice(b"EFI PART");
    gpt[512 + 72..512 + 80].copy_from_slice(&2u64.to_le_bytes());
    gpt[512 + 80..512 + 84].copy_from_slice(&128u32.to_le_bytes());
    gpt[512 + 84..512 + 88].copy_from_slice(&128u32.to_le_bytes());
    let e2 = 1024 + 128;
    gpt[e2] = 0xAF;
    gpt[e2 + 16..e2 + 32].copy_from_slice(&UUID);
    for (i, c) in "rootfs".encode_utf16().enumerate() {
        gpt[e2 + 56 + 2 * i..e2 + 58 + 2 * i].copy_from_slice(&c.to_le_bytes());
    }
    v.push(("gpt", gpt));
    let mut mbr = vec![0u8; 512];
    mbr[440..444].copy_from_slice(&0xDEADBEEFu32.to_le_bytes());
    mbr[446 + 4] = 0x83;
    mbr[446 + 16 + 4] = 0x0c;
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    v.push(("mbr", mbr));
    v
}

fn superblock(out: &mut Vec<Seed>) {
    for (name, img) in images() {
        push(out, "superblock", format!("{name}-sparse"), sparse(&img));
        if img.len() <= 8192 {
            push(out, "superblock", name, img);
        }
    }
}

fn fstab(out: &mut Vec<Seed>) {
    let fstab = b"# /etc/fstab\ntmpfs / tmpfs rw,size=300M 0 0\n/dev/cdrom\t/media/cdrom\tiso9660\tnoauto,ro 0 0\n\
                  /dev/usbdisk /media/usb vfat noauto 0 0\nUUID=ABCD-1234 /media/sdcard vfat noauto,ro 0 0\n\
                  LABEL=boot /boot ext4\n\nshort line\n";
    let inittab = b"# /etc/inittab\n::sysinit:/sbin/openrc sysinit\n::wait:/sbin/openrc default\n\
                    tty1::respawn:/sbin/getty 38400 tty1\n::ctrlaltdel:/sbin/reboot\n::shutdown:/sbin/openrc shutdown\n";
    push(
        out,
        "fstab",
        "alpine",
        join_parts(&[fstab, inittab, b"tty1 ttyS0 ttyAMA0 xhvc0 ttyS0"]),
    );
    push(
        out,
        "fstab",
        "no-newline",
        join_parts(&[b"none /", b"tty2::respawn:x", b"tty2 tty3"]),
    );
}

/// Writes every seed under `dir/<target>/<name>`; returns how many.
pub fn write_all(dir: &Path) -> usize {
    let seeds = all();
    for (target, name, bytes) in &seeds {
        let d = dir.join(target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), bytes).unwrap();
    }
    seeds.len()
}
