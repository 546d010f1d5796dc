//! Shared fixtures for the hw and media tests: fake module trees, a fake sysfs, and filesystem
//! images written byte by byte (so the core tests never depend on mkfs tools).

use ramboot::sys::{RecordingSys, Uevent, UeventRecv};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const RELEASE: &str = "6.1.0-ramboot-test";

/// A `/lib/modules/<release>` tree with fake `.ko` files whose content is `MODULE <name>` padded.
pub struct FakeModules {
    pub dir: PathBuf,
    dep: Vec<String>,
    alias: Vec<String>,
    softdep: Vec<String>,
    builtin: Vec<String>,
    modinfo: Vec<u8>,
}

/// The bytes of a fake module: distinct per name, 4 KiB so sizes are recognisable.
pub fn module_bytes(name: &str) -> Vec<u8> {
    let mut v = format!("MODULE {name}\n").into_bytes();
    v.resize(4096, b'.');
    v
}

impl FakeModules {
    pub fn new(root: &Path) -> Self {
        let dir = root.join("lib/modules").join(RELEASE);
        std::fs::create_dir_all(&dir).unwrap();
        FakeModules {
            dir,
            dep: vec![],
            alias: vec![],
            softdep: vec![],
            builtin: vec![],
            modinfo: vec![],
        }
    }

    /// Adds a module at `path` (relative, e.g. `kernel/fs/fat/vfat.ko.gz`) needing `deps` (paths).
    pub fn module(&mut self, path: &str, deps: &[&str]) -> &mut Self {
        let name = path.rsplit('/').next().unwrap();
        let name = &name[..name.find(".ko").unwrap()];
        let plain = module_bytes(&name.replace('-', "_"));
        let data = if path.ends_with(".gz") {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&plain).unwrap();
            e.finish().unwrap()
        } else if path.ends_with(".xz") {
            let mut out = Vec::new();
            lzma_rs::xz_compress(&mut &plain[..], &mut out).unwrap();
            out
        } else if path.ends_with(".zst") {
            ruzstd::encoding::compress_to_vec(
                &plain[..],
                ruzstd::encoding::CompressionLevel::Fastest,
            )
        } else {
            plain
        };
        let full = self.dir.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, data).unwrap();
        self.dep.push(format!("{path}: {}", deps.join(" ")));
        self
    }

    pub fn alias(&mut self, pattern: &str, module: &str) -> &mut Self {
        self.alias.push(format!("alias {pattern} {module}"));
        self
    }

    pub fn softdep(&mut self, line: &str) -> &mut Self {
        self.softdep.push(format!("softdep {line}"));
        self
    }

    pub fn builtin(&mut self, path: &str, aliases: &[&str]) -> &mut Self {
        self.builtin.push(path.to_string());
        let name = path.rsplit('/').next().unwrap();
        let name = &name[..name.find(".ko").unwrap()];
        for a in aliases {
            self.modinfo
                .extend_from_slice(format!("{name}.alias={a}\0").as_bytes());
        }
        self
    }

    pub fn write(&self) {
        let lines = |v: &Vec<String>| v.iter().map(|l| format!("{l}\n")).collect::<String>();
        std::fs::write(self.dir.join("modules.dep"), lines(&self.dep)).unwrap();
        std::fs::write(
            self.dir.join("modules.alias"),
            format!(
                "# Aliases extracted from modules themselves.\n{}",
                lines(&self.alias)
            ),
        )
        .unwrap();
        std::fs::write(
            self.dir.join("modules.softdep"),
            format!("# Soft dependencies.\n{}", lines(&self.softdep)),
        )
        .unwrap();
        std::fs::write(self.dir.join("modules.builtin"), lines(&self.builtin)).unwrap();
        std::fs::write(self.dir.join("modules.builtin.modinfo"), &self.modinfo).unwrap();
    }
}

/// A module tree like a small virtio/RPi kernel: virtio_pci → virtio_blk, vfat (+ fat, nls),
/// ext4 (+ jbd2, mbcache, crc16, softdep crc32c), usb_storage, squashfs, loop.
pub fn standard_modules(root: &Path) -> FakeModules {
    let mut m = FakeModules::new(root);
    m.module("kernel/drivers/virtio/virtio_pci.ko", &[])
        .module("kernel/drivers/block/virtio_blk.ko", &[])
        .module("kernel/fs/fat/fat.ko", &[])
        .module("kernel/fs/fat/vfat.ko", &["kernel/fs/fat/fat.ko"])
        .module("kernel/fs/nls/nls_cp437.ko", &[])
        .module("kernel/fs/nls/nls_ascii.ko", &[])
        .module("kernel/lib/crc16.ko", &[])
        .module("kernel/fs/mbcache.ko", &[])
        .module("kernel/fs/jbd2/jbd2.ko", &[])
        .module("kernel/crypto/crc32c_generic.ko", &[])
        .module(
            "kernel/fs/ext4/ext4.ko",
            &[
                "kernel/lib/crc16.ko",
                "kernel/fs/mbcache.ko",
                "kernel/fs/jbd2/jbd2.ko",
            ],
        )
        .module("kernel/drivers/usb/storage/usb-storage.ko", &[])
        .module("kernel/fs/squashfs/squashfs.ko", &[])
        .module("kernel/drivers/block/loop.ko", &[])
        .module("kernel/drivers/mmc/host/bcm2835.ko", &[])
        .alias("pci:v00001AF4d*sv*sd*bc*sc*i*", "virtio_pci")
        .alias("virtio:d00000002v*", "virtio_blk")
        .alias("fs-vfat", "vfat")
        .alias("fs-ext4", "ext4")
        .alias("fs-squashfs", "squashfs")
        .alias("crypto-crc32c", "crc32c_generic")
        .alias("usb:v*p*d*dc*dsc*dp*ic08isc06ip50in*", "usb_storage")
        .alias("of:N*T*Cbrcm,bcm2835-sdhost", "bcm2835")
        .alias("of:N*T*Cbrcm,bcm2835-sdhostC*", "bcm2835")
        .alias("devname:loop-control", "loop")
        .softdep("ext4 pre: crypto-crc32c")
        .builtin("kernel/drivers/mmc/core/mmc_block.ko", &["fs-fakebuiltin"]);
    m.write();
    m
}

/// Makes a fake sysfs block device (`/sys/class/block/<name>` with `dev`, `size`, ...), laid out
/// like the real one: a symlink into `/sys/devices/.../block/<disk>[/<part>]`.
pub fn sys_block(
    root: &Path,
    name: &str,
    major: u32,
    minor: u32,
    part: Option<(u32, &str)>,
    sectors: u64,
    removable: bool,
) {
    let base = root.join("sys/devices/platform/fake/block");
    let dir = match part {
        Some((_, disk)) => base.join(disk).join(name),
        None => base.join(name),
    };
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dev"), format!("{major}:{minor}\n")).unwrap();
    std::fs::write(dir.join("size"), format!("{sectors}\n")).unwrap();
    std::fs::write(dir.join("ro"), "0\n").unwrap();
    if let Some((n, _)) = part {
        std::fs::write(dir.join("partition"), format!("{n}\n")).unwrap();
    } else {
        std::fs::write(dir.join("removable"), if removable { "1\n" } else { "0\n" }).unwrap();
    }
    let class = root.join("sys/class/block");
    std::fs::create_dir_all(&class).unwrap();
    let link = class.join(name);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&dir, link).unwrap();
}

/// A `modalias` file for a fake device under `/sys/devices`.
pub fn sys_modalias(root: &Path, devpath: &str, alias: &str) {
    let dir = root.join("sys/devices").join(devpath);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("modalias"), format!("{alias}\n")).unwrap();
}

/// Writes `/dev/<name>` holding `bytes`.
pub fn dev_file(root: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(root.join("dev")).unwrap();
    std::fs::write(root.join("dev").join(name), bytes).unwrap();
}

/// A FAT16 volume (1 MiB) written byte by byte: boot sector label `BOOTLBL`, root-directory
/// label `label` (when given), serial `serial`.
pub fn fat16_image(serial: u32, label: Option<&str>) -> Vec<u8> {
    let mut img = vec![0u8; 1 << 20];
    img[0..3].copy_from_slice(&[0xEB, 0x3C, 0x90]);
    img[3..11].copy_from_slice(b"mkfs.fat");
    img[11..13].copy_from_slice(&512u16.to_le_bytes()); // bytes per sector
    img[13] = 4; // sectors per cluster
    img[14..16].copy_from_slice(&4u16.to_le_bytes()); // reserved
    img[16] = 2; // FATs
    img[17..19].copy_from_slice(&512u16.to_le_bytes()); // root entries
    img[19..21].copy_from_slice(&2048u16.to_le_bytes()); // total sectors
    img[21] = 0xF8;
    img[22..24].copy_from_slice(&2u16.to_le_bytes()); // sectors per FAT
    img[38] = 0x29;
    img[39..43].copy_from_slice(&serial.to_le_bytes());
    img[43..54].copy_from_slice(b"BOOTLBL    ");
    img[54..62].copy_from_slice(b"FAT16   ");
    img[510] = 0x55;
    img[511] = 0xAA;
    if let Some(l) = label {
        let root = (4 + 2 * 2) * 512;
        // A deleted entry and a long-name entry first: both must be skipped.
        img[root] = 0xE5;
        img[root + 11] = 0x08;
        img[root + 32] = 0x41;
        img[root + 32 + 11] = 0x0F;
        let e = root + 64;
        let mut name = [b' '; 11];
        name[..l.len()].copy_from_slice(l.as_bytes());
        img[e..e + 11].copy_from_slice(&name);
        img[e + 11] = 0x08;
    }
    img
}

/// An ext2/3/4 superblock at 1024 with the given feature words.
pub fn ext_image(
    compat: u32,
    incompat: u32,
    ro_compat: u32,
    uuid: [u8; 16],
    label: &str,
) -> Vec<u8> {
    let mut img = vec![0u8; 64 * 1024];
    let sb = 1024;
    img[sb + 56..sb + 58].copy_from_slice(&0xEF53u16.to_le_bytes());
    img[sb + 92..sb + 96].copy_from_slice(&compat.to_le_bytes());
    img[sb + 96..sb + 100].copy_from_slice(&incompat.to_le_bytes());
    img[sb + 100..sb + 104].copy_from_slice(&ro_compat.to_le_bytes());
    img[sb + 104..sb + 120].copy_from_slice(&uuid);
    img[sb + 120..sb + 120 + label.len()].copy_from_slice(label.as_bytes());
    img
}

/// A squashfs 4.0 superblock (enough for probing, not for mounting).
pub fn squashfs_image() -> Vec<u8> {
    let mut img = vec![0u8; 4096];
    img[0..4].copy_from_slice(b"hsqs");
    img[28..30].copy_from_slice(&4u16.to_le_bytes());
    img
}

/// The Raspberry Pi 3's USB NIC: smsc95xx added to `modules` (then written), `eth0` in sysfs
/// once it loads, and the uevent of the hub's late enumeration, `delay` after the previous one.
pub fn late_usb_nic(modules: &mut FakeModules, sys: &RecordingSys, delay: Duration) {
    modules
        .module("kernel/drivers/net/usb/smsc95xx.ko", &[])
        .alias("usb:v0424pEC00d*", "smsc95xx")
        .write();
    sys.on_module_load("smsc95xx", |root| {
        let d = root.join("sys/class/net/eth0");
        std::fs::create_dir_all(d.join("device")).unwrap();
        std::fs::write(d.join("ifindex"), "2\n").unwrap();
        std::fs::write(d.join("address"), "b8:27:eb:00:00:01\n").unwrap();
        std::fs::write(d.join("operstate"), "up\n").unwrap();
    });
    let devpath = "/devices/platform/soc/3f980000.usb/usb1/1-1/1-1.1/1-1.1:1.0";
    let vars = [
        ("ACTION", "add"),
        ("DEVPATH", devpath),
        ("SUBSYSTEM", "usb"),
        (
            "MODALIAS",
            "usb:v0424pEC00d0200dcFFdsc00dpFFicFFisc00ip02in00",
        ),
    ];
    sys.push_uevent_after(
        delay,
        UeventRecv::Event(Uevent {
            action: "add".into(),
            devpath: devpath.into(),
            vars: vars.map(|(k, v)| (k.into(), v.into())).to_vec(),
        }),
    );
}
