//! `ramboot sdimage` as a user runs it (issue 14): the card's layout per target read back from
//! the image, fsck.fat on its FAT, reproducible bytes, the GPT and ext4 variants, and refusals
//! that name the missing piece.
// Tests drive real tools and processes (fsck.fat, e2fsprogs, the built binary): the system
// boundary lint is for the library.
#![allow(clippy::disallowed_methods)]

mod support;

use ramboot::apk::sign::{verify, Keyring, SigAlgo, SigningKey};
use std::collections::BTreeMap;
use std::fs;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::tools::{have, output, run};

fn sdimage(args: &[&str], epoch: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ramboot"));
    c.arg("sdimage").args(args);
    match epoch {
        Some(e) => c.env("SOURCE_DATE_EPOCH", e),
        None => c.env_remove("SOURCE_DATE_EPOCH"),
    };
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(args: &[&str]) {
    let o = sdimage(args, Some("1700000000"));
    assert!(o.status.success(), "{}", text(&o));
}

fn refused(args: &[&str]) -> String {
    let o = sdimage(args, None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    text(&o)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// (start, length) in bytes of the MBR's partitions that are used.
fn mbr_partitions(img: &[u8]) -> Vec<(u64, u64, u8)> {
    (0..4)
        .map(|i| &img[446 + 16 * i..462 + 16 * i])
        .filter(|e| e[4] != 0)
        .map(|e| {
            let lba = u32::from_le_bytes(e[8..12].try_into().unwrap()) as u64;
            let n = u32::from_le_bytes(e[12..16].try_into().unwrap()) as u64;
            (lba * 512, n * 512, e[4])
        })
        .collect()
}

/// Every file of the FAT partition at `offset`: path → bytes (directories as `path/`).
fn fat_files(img: &[u8], offset: u64, len: u64) -> BTreeMap<String, Vec<u8>> {
    let part = img[offset as usize..(offset + len) as usize].to_vec();
    let fs = fatfs::FileSystem::new(Cursor::new(part), fatfs::FsOptions::new()).unwrap();
    let mut out = BTreeMap::new();
    fn walk<T: fatfs::ReadWriteSeek>(
        dir: fatfs::Dir<'_, T>,
        prefix: &str,
        out: &mut BTreeMap<String, Vec<u8>>,
    ) {
        for e in dir.iter() {
            let e = e.unwrap();
            let name = e.file_name();
            if name == "." || name == ".." {
                continue;
            }
            let path = format!("{prefix}{name}");
            if e.is_dir() {
                out.insert(format!("{path}/"), Vec::new());
                walk(e.to_dir(), &format!("{path}/"), out);
            } else {
                let mut data = Vec::new();
                e.to_file().read_to_end(&mut data).unwrap();
                out.insert(path, data);
            }
        }
    }
    walk(fs.root_dir(), "", &mut out);
    out
}

/// The files of the image's first (FAT) partition.
fn card_files(img: &Path) -> BTreeMap<String, Vec<u8>> {
    let bytes = fs::read(img).unwrap();
    let (start, len, _) = mbr_partitions(&bytes)[0];
    fat_files(&bytes, start, len)
}

/// fsck.fat -n on the partition at `start` (copied out: fsck.fat 4.2 takes no offset).
fn fsck_fat(img: &Path, start: u64, len: u64, work: &Path) {
    let bytes = fs::read(img).unwrap();
    let part = work.join("fat.part");
    fs::write(&part, &bytes[start as usize..(start + len) as usize]).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg("PATH=$PATH:/sbin:/usr/sbin fsck.fat -n \"$0\"")
        .arg(&part)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fsck.fat -n: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(said.lines().count(), 2, "fsck.fat found something:\n{said}");
}

/// The members of a tar.gz as path → bytes.
fn tar_gz(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut out = BTreeMap::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(path, data);
    }
    out
}

/// The files of an initramfs (concatenated gzip'd newc archives).
fn initramfs_files(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut raw = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut raw)
        .unwrap();
    let mut out = BTreeMap::new();
    let mut at = 0;
    let field = |b: &[u8], i: usize| {
        usize::from_str_radix(std::str::from_utf8(&b[6 + 8 * i..14 + 8 * i]).unwrap(), 16).unwrap()
    };
    while at + 110 <= raw.len() {
        let h = &raw[at..at + 110];
        if &h[..6] != b"070701" {
            at += 1; // padding between archives
            continue;
        }
        let (size, namesize) = (field(h, 6), field(h, 11));
        let name = String::from_utf8_lossy(&raw[at + 110..at + 110 + namesize - 1]).into_owned();
        let data_at = (at + 110 + namesize).div_ceil(4) * 4;
        out.insert(name, raw[data_at..data_at + size].to_vec());
        at = (data_at + size).div_ceil(4) * 4;
    }
    out
}

/// A signing key, a package signed with it, an overlay tree and a cache directory.
struct Inputs {
    dir: tempfile::TempDir,
    key: PathBuf,
    apk: PathBuf,
    overlay: PathBuf,
    cache: PathBuf,
}

fn inputs() -> Inputs {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ramboot = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_ramboot"))
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
    };
    ramboot(&[
        "apk",
        "genkey",
        "--out",
        s(&d.join("keys")),
        "--name",
        "card",
    ]);
    let key = fs::read_dir(d.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "rsa"))
        .unwrap();
    fs::create_dir_all(d.join("pkg/usr/share/hello")).unwrap();
    fs::write(d.join("pkg/usr/share/hello/greeting"), "hello\n").unwrap();
    let apk = d.join("hello-1.0-r0.apk");
    ramboot(&[
        "apk",
        "mkpkg",
        "--root",
        s(&d.join("pkg")),
        "--name",
        "hello",
        "--version",
        "1.0-r0",
        "--arch",
        "aarch64",
        "--builddate",
        "1700000000",
        "--key",
        s(&key),
        "--out",
        s(&apk),
    ]);
    let overlay = d.join("overlay");
    fs::create_dir_all(overlay.join("etc/network")).unwrap();
    fs::write(overlay.join("etc/network/interfaces"), "auto lo\n").unwrap();
    std::os::unix::fs::symlink("/media/mmcblk0p1/cache", overlay.join("etc/cache-link")).unwrap();
    let cache = d.join("cache");
    fs::create_dir_all(&cache).unwrap();
    fs::write(cache.join("installed"), "").unwrap();
    Inputs {
        dir,
        key,
        apk,
        overlay,
        cache,
    }
}

/// Issue 14 (1, 2): packages indexed and signed with the key, an apkovl written from a tree, a
/// world and a hostname, the cache; an MBR with one bootable FAT32 partition that fsck accepts.
#[test]
fn a_card_holds_the_signed_repository_the_written_apkovl_and_the_cache() {
    if !have("fsck.fat") {
        return;
    }
    let i = inputs();
    let img = i.dir.path().join("card.img");
    ok(&[
        "-o",
        s(&img),
        "--target",
        "none",
        "--apk",
        s(&i.apk),
        "--key",
        s(&i.key),
        "--overlay",
        s(&i.overlay),
        "--world",
        "hello,alpine-base",
        "--hostname",
        "box",
        "--cache",
        s(&i.cache),
    ]);
    let bytes = fs::read(&img).unwrap();
    let parts = mbr_partitions(&bytes);
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].0, 1 << 20, "the partition starts at 1 MiB");
    assert_eq!(parts[0].2, 0x0c, "FAT32 (LBA)");
    assert_eq!(bytes[446], 0x80, "bootable");
    fsck_fat(&img, parts[0].0, parts[0].1, i.dir.path());

    let files = card_files(&img);
    assert!(files.contains_key("apks/.boot_repository"), "{files:?}");
    assert!(files.contains_key("apks/aarch64/hello-1.0-r0.apk"));
    assert!(files.contains_key("cache/installed"));
    let key = SigningKey::load(&i.key, None).unwrap();
    let mut keys = Keyring::default();
    keys.add(&key.key_name, key.public());
    let index = ramboot::apk::stream::read_index(
        Cursor::new(&files["apks/aarch64/APKINDEX.tar.gz"]),
        "index",
        &keys,
        false,
    )
    .expect("the index is signed with the given key");
    assert!(index.text.contains("P:hello"), "{}", index.text);

    let ovl = tar_gz(&files["box.apkovl.tar.gz"]);
    assert_eq!(ovl["etc/apk/world"], b"hello\nalpine-base\n");
    assert_eq!(ovl["etc/hostname"], b"box\n");
    assert_eq!(ovl["etc/network/interfaces"], b"auto lo\n");
    assert!(ovl.contains_key("etc/cache-link"), "{:?}", ovl.keys());
}

/// A small file standing in for a kernel or an initramfs.
fn blob(path: &Path, what: &str) -> PathBuf {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, format!("{what}\n").repeat(100)).unwrap();
    path.to_path_buf()
}

/// A modules tree for --modloop-dir.
fn modules_tree(dir: &Path) -> PathBuf {
    let m = dir.join("modloop/modules/6.1.0-rpi/kernel/fs");
    fs::create_dir_all(&m).unwrap();
    fs::write(m.join("squashfs.ko"), vec![7u8; 5000]).unwrap();
    fs::write(
        dir.join("modloop/modules/6.1.0-rpi/modules.dep"),
        "kernel/fs/squashfs.ko:\n",
    )
    .unwrap();
    dir.join("modloop")
}

/// Issue 14 (1): `--target rpi` lays the card out as Alpine's Pi image: firmware, device trees,
/// config.txt, cmdline.txt at the root, overlays/, boot/ with kernel, initramfs and modloop. The
/// modloop is squashed by ramboot's own writer and signed: the key and the signature are
/// appended to the given initramfs.
#[test]
fn an_rpi_card_is_laid_out_as_alpines_pi_image() {
    if !have("fsck.fat") {
        return;
    }
    let i = inputs();
    let d = i.dir.path();
    let kernel = blob(&d.join("Image"), "kernel");
    let initrd = d.join("initrd");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, b"070701 stand-in").unwrap();
    fs::write(&initrd, gz.finish().unwrap()).unwrap();
    blob(&d.join("dtbs/broadcom/bcm2710-rpi-3-b.dtb"), "dtb");
    blob(&d.join("dtbs/broadcom/bcm2711-rpi-4-b.dtb"), "dtb4");
    blob(&d.join("dtbs/broadcom/README"), "not a dtb");
    blob(&d.join("overlays/disable-bt.dtbo"), "overlay");
    blob(&d.join("firmware/bootcode.bin"), "boot");
    blob(&d.join("firmware/start.elf"), "start");
    blob(&d.join("firmware/fixup.dat"), "fixup");
    let img = d.join("rpi.img");
    ok(&[
        "-o",
        s(&img),
        "--target",
        "rpi",
        "--apk",
        s(&i.apk),
        "--key",
        s(&i.key),
        "--kernel",
        s(&kernel),
        "--initramfs",
        s(&initrd),
        "--dtbs",
        s(&d.join("dtbs")),
        "--overlays",
        s(&d.join("overlays")),
        "--firmware",
        s(&d.join("firmware")),
        "--modloop-dir",
        s(&modules_tree(d)),
        "--world",
        "hello",
    ]);
    let bytes = fs::read(&img).unwrap();
    let (start, len, _) = mbr_partitions(&bytes)[0];
    fsck_fat(&img, start, len, d);
    let files = card_files(&img);
    for f in [
        "bootcode.bin",
        "start.elf",
        "fixup.dat",
        "bcm2710-rpi-3-b.dtb",
        "bcm2711-rpi-4-b.dtb",
        "overlays/disable-bt.dtbo",
        "boot/vmlinuz-rpi",
        "boot/initramfs-rpi",
        "boot/modloop-rpi",
        "config.txt",
        "cmdline.txt",
        "localhost.apkovl.tar.gz",
    ] {
        assert!(files.contains_key(f), "{f} missing: {:?}", files.keys());
    }
    assert!(!files.contains_key("README"), "only device trees are taken");
    let config = String::from_utf8_lossy(&files["config.txt"]);
    for line in [
        "arm_64bit=1",
        "kernel=boot/vmlinuz-rpi",
        "initramfs boot/initramfs-rpi",
        "include usercfg.txt",
    ] {
        assert!(config.lines().any(|l| l == line), "{line}:\n{config}");
    }
    assert_eq!(
        files["cmdline.txt"],
        b"modules=loop,squashfs,sd-mod,usb-storage quiet console=tty1\n"
    );
    assert_eq!(files["boot/vmlinuz-rpi"], fs::read(&kernel).unwrap());
    let modloop = &files["boot/modloop-rpi"];
    assert_eq!(&modloop[..4], b"hsqs", "a squashfs image");

    // The given initramfs comes first, unchanged; the appended archive adds the key and the
    // modloop's signature, which verifies with that key.
    let initramfs = &files["boot/initramfs-rpi"];
    let given = fs::read(&initrd).unwrap();
    assert_eq!(&initramfs[..given.len()], &given[..]);
    let added = initramfs_files(&initramfs[given.len()..]);
    let key = SigningKey::load(&i.key, None).unwrap();
    let pem = &added[&format!("etc/apk/keys/{}", key.key_name)];
    assert_eq!(String::from_utf8_lossy(pem), key.public_pem());
    let sig = &added[&format!("var/cache/misc/modloop-rpi.SIGN.RSA.{}", key.key_name)];
    use sha1::Digest;
    let digest = sha1::Sha1::digest(modloop);
    assert!(verify(&key.public(), SigAlgo::Sha1, &digest, sig));
}

/// Issue 14 (1): `--target virt` writes boot/ and extlinux/extlinux.conf; without --initramfs
/// the initramfs is built as `ramboot mkinitfs` does, with the key inside.
#[test]
fn a_virt_card_has_its_boot_files_and_builds_its_initramfs() {
    let i = inputs();
    let d = i.dir.path();
    let kernel = blob(&d.join("Image"), "kernel");
    let init = d.join("ramboot-init");
    fs::write(
        &init,
        ramboot::elf::minimal(ramboot::elf::EM_AARCH64, true, 3, None),
    )
    .unwrap();
    let img = d.join("virt.img");
    ok(&[
        "-o",
        s(&img),
        "--target",
        "virt",
        "--apk",
        s(&i.apk),
        "--key",
        s(&i.key),
        "--kernel",
        s(&kernel),
        "--init",
        s(&init),
        "--cmdline",
        "console=ttyAMA0 quiet",
    ]);
    let files = card_files(&img);
    let conf = String::from_utf8_lossy(&files["extlinux/extlinux.conf"]).into_owned();
    for line in [
        "  LINUX /boot/vmlinuz-virt",
        "  INITRD /boot/initramfs-virt",
        "  APPEND console=ttyAMA0 quiet",
    ] {
        assert!(conf.lines().any(|l| l == line), "{line}:\n{conf}");
    }
    let initramfs = initramfs_files(&files["boot/initramfs-virt"]);
    assert_eq!(initramfs["init"], fs::read(&init).unwrap());
    let key = SigningKey::load(&i.key, None).unwrap();
    assert!(initramfs.contains_key(&format!("etc/apk/keys/{}", key.key_name)));
}

/// Issue 14 (2): the same inputs give the same bytes, GPT and ext4 data partition included,
/// whatever the inputs' own times; SOURCE_DATE_EPOCH and the content change them.
#[test]
fn the_same_inputs_give_the_same_bytes() {
    if !have("mkfs.ext4") || !have("debugfs") {
        return;
    }
    let build = |epoch: &str, greeting: &str| {
        let i = inputs();
        let d = i.dir.path();
        fs::create_dir_all(d.join("data/srv")).unwrap();
        fs::write(d.join("data/srv/greeting"), greeting).unwrap();
        let img = d.join("card.img");
        let o = sdimage(
            &[
                "-o",
                s(&img),
                "--target",
                "none",
                "--overlay",
                s(&i.overlay),
                "--hostname",
                "same",
                "--gpt",
                "--data-size",
                "8M",
                "--data-dir",
                s(&d.join("data")),
                "--file",
                &format!("{}:notes/greeting", s(&d.join("data/srv/greeting"))),
            ],
            Some(epoch),
        );
        assert!(o.status.success(), "{}", text(&o));
        fs::read(&img).unwrap()
    };
    let a = build("1700000000", "hello");
    let b = build("1700000000", "hello");
    assert!(a == b, "two builds of the same inputs differ");
    assert!(
        a != build("1700000001", "hello"),
        "the epoch sets the times"
    );
    // The FAT's volume id (boot sector offset 67, the partition at 1 MiB) follows the content.
    let volume_id = |img: &[u8]| img[(1 << 20) + 67..(1 << 20) + 71].to_vec();
    assert_ne!(volume_id(&a), volume_id(&build("1700000000", "hullo")));
}

/// Issue 14 (2): `--gpt` writes a GPT (protective MBR, FAT as basic data, ext4 as Linux
/// filesystem) and the ext4 partition holds the data tree.
#[test]
fn gpt_and_an_ext4_data_partition() {
    if !have("sfdisk") || !have("e2fsck") || !have("debugfs") || !have("fsck.fat") {
        return;
    }
    let i = inputs();
    let d = i.dir.path();
    fs::create_dir_all(d.join("data/srv")).unwrap();
    fs::write(d.join("data/srv/greeting"), "persist\n").unwrap();
    let img = d.join("gpt.img");
    ok(&[
        "-o",
        s(&img),
        "--target",
        "none",
        "--apk",
        s(&i.apk),
        "--key",
        s(&i.key),
        "--gpt",
        "--data-size",
        "16M",
        "--data-dir",
        s(&d.join("data")),
    ]);
    let dump = output("sfdisk", &["--dump", s(&img)]);
    assert!(dump.contains("label: gpt"), "{dump}");
    let lines: Vec<&str> = dump.lines().filter(|l| l.contains("start=")).collect();
    assert_eq!(lines.len(), 2, "{dump}");
    assert!(lines[0].contains("start=        2048"), "{dump}");
    assert!(
        lines[0].contains("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"),
        "{dump}"
    );
    assert!(
        lines[1].contains("0FC63DAF-8483-4772-8E79-3D69D8477DE4"),
        "{dump}"
    );
    let num = |l: &str, key: &str| -> u64 {
        let at = l.find(key).unwrap() + key.len();
        l[at..]
            .trim_start()
            .split(',')
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (fat_start, fat_len) = (num(lines[0], "start="), num(lines[0], "size="));
    fsck_fat(&img, fat_start * 512, fat_len * 512, d);
    let (start, len) = (num(lines[1], "start="), num(lines[1], "size="));
    let bytes = fs::read(&img).unwrap();
    let part = d.join("ext4.part");
    fs::write(
        &part,
        &bytes[(start * 512) as usize..((start + len) * 512) as usize],
    )
    .unwrap();
    run("e2fsck", &["-fn", s(&part)]);
    let cat = output("debugfs", &["-R", "cat /srv/greeting", s(&part)]);
    assert_eq!(cat, "persist\n");
}

/// Issue 14 (2): without --size the image follows the content plus the headroom.
#[test]
fn the_size_follows_the_content_and_the_headroom() {
    let d = tempfile::tempdir().unwrap();
    let big = d.path().join("big");
    fs::File::create(&big).unwrap().set_len(100 << 20).unwrap();
    let size = |headroom: &str| {
        let img = d.path().join(format!("h{headroom}.img"));
        ok(&[
            "-o",
            s(&img),
            "--target",
            "none",
            "--file",
            &format!("{}:big", s(&big)),
            "--headroom",
            headroom,
        ]);
        fs::metadata(&img).unwrap().len()
    };
    let (tight, roomy) = (size("0"), size("50"));
    assert!(tight > 100 << 20 && tight < 106 << 20, "{tight}");
    assert!(roomy > 150 << 20 && roomy < 160 << 20, "{roomy}");
}

/// Issue 14 (5): a boot target without a kernel names the option and where it would go.
#[test]
fn a_missing_kernel_is_named() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("x.img");
    let said = refused(&["-o", s(&img), "--target", "rpi"]);
    assert!(
        said.contains(
            "no kernel for --target rpi: give --kernel FILE (it becomes boot/vmlinuz-rpi)"
        ),
        "{said}"
    );
    assert!(!img.exists());
}

/// Issue 14 (5): a repository without an index, or with an unsigned one, is refused by name.
#[test]
fn a_repository_without_a_signed_index_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path().join("apks");
    fs::create_dir_all(repo.join("aarch64")).unwrap();
    let img = d.path().join("x.img");
    let said = refused(&["-o", s(&img), "--target", "none", "--repo", s(&repo)]);
    assert!(said.contains("no index"), "{said}");
    assert!(said.contains("aarch64/APKINDEX.tar.gz"), "{said}");
    // An index without a signature member.
    let mut t = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    h.set_cksum();
    t.append_data(&mut h, "APKINDEX", &b"P:x\n"[..]).unwrap();
    fs::write(
        repo.join("aarch64/APKINDEX.tar.gz"),
        t.into_inner().unwrap().finish().unwrap(),
    )
    .unwrap();
    let said = refused(&["-o", s(&img), "--target", "none", "--repo", s(&repo)]);
    assert!(
        said.contains("is not signed (no .SIGN.RSA entry)"),
        "{said}"
    );
    // Packages to index need the key that signs the index.
    let i = inputs();
    let said = refused(&["-o", s(&img), "--target", "none", "--apk", s(&i.apk)]);
    assert!(
        said.contains("indexing the --apk packages needs --key FILE"),
        "{said}"
    );
}

/// Issue 14 (5): an apkovl larger than the boot partition of the given size is named, and so is
/// content that does not fit.
#[test]
fn an_apkovl_larger_than_the_partition_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let ovl = d.path().join("big.apkovl.tar.gz");
    fs::File::create(&ovl).unwrap().set_len(80 << 20).unwrap();
    let img = d.path().join("x.img");
    let said = refused(&[
        "-o",
        s(&img),
        "--target",
        "none",
        "--apkovl",
        s(&ovl),
        "--size",
        "64M",
    ]);
    assert!(
        said.contains(
            "the apkovl big.apkovl.tar.gz (83886080 bytes) is larger than the boot partition"
        ),
        "{said}"
    );
    let said = refused(&[
        "-o",
        s(&img),
        "--target",
        "none",
        "--file",
        &format!("{}:a", s(&ovl)),
        "--file",
        &format!("{}:b", s(&ovl)),
        "--size",
        "128M",
    ]);
    assert!(said.contains("does not fit the boot partition"), "{said}");
    assert!(
        said.contains("largest: a 83886080 bytes, b 83886080 bytes"),
        "{said}"
    );
    let said = refused(&["-o", s(&img), "--target", "none", "--size", "8M"]);
    assert!(
        said.contains("--size 8388608 leaves no room for a boot partition"),
        "{said}"
    );
}

/// Issue 14 (3, wired here): `--profile` puts the profile's apkovl on the card and adds its
/// kernel command-line words to cmdline.txt; every example profile makes a card.
#[test]
fn a_profile_gives_the_cards_apkovl_and_command_line_words() {
    let d = tempfile::tempdir().unwrap();
    let kernel = blob(&d.path().join("Image"), "kernel");
    let initrd = blob(&d.path().join("initrd"), "initrd");
    let examples = support::qemu::repo().join("examples/profiles");
    let mut seen = 0;
    for e in fs::read_dir(&examples).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        seen += 1;
        let img = d.path().join("profile.img");
        ok(&[
            "-o",
            s(&img),
            "--target",
            "rpi",
            "--kernel",
            s(&kernel),
            "--initramfs",
            s(&initrd),
            "--profile",
            s(&path),
        ]);
        let files = card_files(&img);
        let profile = ramboot::profile::Profile::load(&path).unwrap();
        assert_eq!(
            files.get(&profile.apkovl_name()),
            Some(&profile.apkovl(1_700_000_000)),
            "{}: the profile's apkovl",
            path.display()
        );
        let cmdline = String::from_utf8_lossy(&files["cmdline.txt"]).into_owned();
        assert!(
            cmdline.starts_with("modules=loop,squashfs,sd-mod,usb-storage quiet console=tty1"),
            "{cmdline}"
        );
        for word in profile.cmdline_additions() {
            assert!(
                cmdline.split_whitespace().any(|w| w == word),
                "{}: {word} not in {cmdline}",
                path.display()
            );
        }
        if profile.services().ramboot.is_empty() {
            continue;
        }
        assert!(
            cmdline.split_whitespace().any(|w| w == "ramboot_init"),
            "service mode: {cmdline}"
        );
    }
    assert!(seen >= 4, "the examples are there");
    let o = sdimage(
        &[
            "-o",
            "x.img",
            "--target",
            "none",
            "--profile",
            "p.toml",
            "--world",
            "a",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("--profile and --apkovl/--overlay/--world/--hostname exclude each other"),
        "{}",
        text(&o)
    );
}
