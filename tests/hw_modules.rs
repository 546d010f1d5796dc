//! Module loading with modprobe semantics, against fake module trees and the recording double.
// Tests drive real tools and processes (QEMU, mkfs, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

mod support;

use ramboot::hw::modules::{FailReason, ModuleDb, ModuleLoader, Request};
use ramboot::hw::{closure, modprobe_main};
use ramboot::sys::{Call, RecordingSys, Sys};
use std::path::{Path, PathBuf};
use support::hw::*;

fn setup() -> (tempfile::TempDir, RecordingSys) {
    let dir = tempfile::tempdir().unwrap();
    let sys = RecordingSys::new(dir.path()).with_kernel_release(RELEASE);
    (dir, sys)
}

/// The module names in the order the double saw them loaded.
fn loaded_order(sys: &RecordingSys) -> Vec<String> {
    sys.calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::LoadModule { image, .. } => Some(image),
            _ => None,
        })
        .map(|image| {
            let base = image.rsplit('/').next().unwrap().to_string();
            base[..base.find(".ko").unwrap_or(base.len())].to_string()
        })
        .collect()
}

fn pos(order: &[String], name: &str) -> usize {
    order
        .iter()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("{name} not loaded: {order:?}"))
}

#[test]
fn dependencies_and_softdeps_load_first() {
    let (dir, sys) = setup();
    standard_modules(dir.path());
    let loader = ModuleLoader::open(&sys).unwrap();
    let r = loader.load(&Request::names(["ext4", "vfat"]));
    assert!(r.ok(), "{r:?}");
    assert_eq!(
        r.loaded,
        [
            "crc16",
            "crc32c_generic",
            "ext4",
            "fat",
            "jbd2",
            "mbcache",
            "vfat"
        ]
    );
    let order = loaded_order(&sys);
    assert_eq!(order.len(), 7);
    for dep in ["crc16", "mbcache", "jbd2", "crc32c_generic"] {
        assert!(pos(&order, dep) < pos(&order, "ext4"), "{order:?}");
    }
    assert!(pos(&order, "fat") < pos(&order, "vfat"));
    // A second request is a no-op: the loader remembers.
    let r2 = loader.load(&Request::names(["ext4"]));
    assert_eq!(r2.already, ["ext4"]);
    assert_eq!(loaded_order(&sys).len(), 7);
    // Files are handed to the kernel by guest path.
    assert!(sys.trace().contains(&format!(
        "insmod /lib/modules/{RELEASE}/kernel/fs/ext4/ext4.ko"
    )));
}

#[test]
fn parallel_loading_respects_each_modules_own_dependencies() {
    let (dir, sys) = setup();
    let mut m = FakeModules::new(dir.path());
    // 12 independent chains a_i → b_i → c_i.
    let mut names = Vec::new();
    for i in 0..12 {
        let (a, b, c) = (
            format!("kernel/a{i}.ko"),
            format!("kernel/b{i}.ko"),
            format!("kernel/c{i}.ko"),
        );
        m.module(&c, &[]).module(&b, &[&c]).module(&a, &[&b, &c]);
        names.push(format!("a{i}"));
    }
    m.write();
    for _ in 0..5 {
        let loader = ModuleLoader::open(&sys).unwrap().with_max_threads(4);
        let before = loaded_order(&sys).len();
        let r = loader.load(&Request::names(names.clone()));
        assert_eq!(r.loaded.len(), 36);
        let order = loaded_order(&sys)[before..].to_vec();
        for i in 0..12 {
            assert!(pos(&order, &format!("c{i}")) < pos(&order, &format!("b{i}")));
            assert!(pos(&order, &format!("b{i}")) < pos(&order, &format!("a{i}")));
        }
    }
}

#[test]
fn aliases_globs_and_normalisation() {
    let (dir, sys) = setup();
    standard_modules(dir.path());
    let db = ModuleDb::open(&sys, RELEASE).unwrap();
    assert_eq!(
        db.resolve(
            "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00",
            false
        )
        .modules,
        ["virtio_pci"]
    );
    assert_eq!(
        db.resolve("virtio:d00000002v00001AF4", false).modules,
        ["virtio_blk"]
    );
    assert_eq!(db.resolve("usb-storage", false).modules, ["usb_storage"]);
    assert_eq!(db.resolve("usb_storage", false).modules, ["usb_storage"]);
    assert_eq!(db.resolve("fs-vfat", false).modules, ["vfat"]);
    assert_eq!(
        db.resolve("of:NmmcT(null)Cbrcm,bcm2835-sdhost", false)
            .modules,
        ["bcm2835"]
    );
    assert_eq!(
        db.resolve("usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00", false)
            .modules,
        ["usb_storage"]
    );
    assert!(db
        .resolve("pci:v00008086d00001237sv0000sd0000bc06sc00i00", false)
        .modules
        .is_empty());
    // Built-in modules and their aliases resolve, and loading them is a no-op.
    assert_eq!(db.resolve("mmc_block", false).modules, ["mmc_block"]);
    assert_eq!(db.resolve("fs-fakebuiltin", false).modules, ["mmc_block"]);
    let loader = ModuleLoader::new(&sys, db);
    let r = loader.load(&Request::names(["mmc-block", "fs-fakebuiltin"]));
    assert_eq!(r.already, ["mmc_block"]);
    assert!(r.ok());
    assert!(loaded_order(&sys).is_empty());
}

#[test]
fn blacklist_options_config_aliases_and_cmdline() {
    let (dir, sys) = setup();
    standard_modules(dir.path());
    let conf = dir.path().join("etc/modprobe.d");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("boot-opt-blacklist.conf"),
        "blacklist usb-storage\noptions loop max_loop=8\nalias my-disk virtio_blk\nsoftdep vfat pre: nls_cp437 post: nls_ascii\n",
    )
    .unwrap();
    std::fs::write(conf.join("ignored.txt"), "blacklist vfat\n").unwrap();
    std::fs::create_dir_all(dir.path().join("proc")).unwrap();
    std::fs::write(
        dir.path().join("proc/cmdline"),
        "console=ttyAMA0 loop.max_part=4 blacklist=bcm2835 modules=loop\n",
    )
    .unwrap();
    let loader = ModuleLoader::open(&sys).unwrap().with_max_threads(1);

    // Blacklist hides aliases...
    let r = loader.load(&Request::names([
        "usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00",
        "of:NmmcT(null)Cbrcm,bcm2835-sdhost",
    ]));
    assert_eq!(r.blacklisted, ["bcm2835", "usb_storage"]);
    assert!(r.loaded.is_empty());
    // ...but not a name, unless -b.
    let r = loader.load(&Request {
        names: vec!["bcm2835".into()],
        blacklist_all: true,
        ..Default::default()
    });
    assert_eq!(r.blacklisted, ["bcm2835"]);
    assert!(r.loaded.is_empty());
    let r = loader.load(&Request::names(["usb-storage"]));
    assert_eq!(r.loaded, ["usb_storage"]);

    // Options from modprobe.d and the command line, plus the request's own.
    let mut req = Request::names(["loop"]);
    req.params.insert("loop".into(), vec!["hw=1".into()]);
    loader.load(&req);
    assert!(
        sys.trace()
            .iter()
            .any(|l| l.ends_with("loop.ko max_loop=8 max_part=4 hw=1")),
        "{:?}",
        sys.trace()
    );

    // Config aliases and softdeps.
    let r = loader.load(&Request::names(["my-disk", "vfat"]));
    assert_eq!(
        r.loaded,
        ["fat", "nls_ascii", "nls_cp437", "vfat", "virtio_blk"]
    );
    let order = loaded_order(&sys);
    assert!(pos(&order, "nls_cp437") < pos(&order, "vfat"));
    assert!(pos(&order, "vfat") < pos(&order, "nls_ascii"));
}

#[test]
fn already_loaded_eexist_and_failures() {
    let (dir, sys) = setup();
    standard_modules(dir.path());
    std::fs::create_dir_all(dir.path().join("proc")).unwrap();
    std::fs::write(
        dir.path().join("proc/modules"),
        "fat 86016 1 vfat, Live 0xffff\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("sys/module/nls_cp437")).unwrap();
    sys.fail_on("mbcache.ko", 17); // EEXIST: success
    sys.fail_on("jbd2.ko", 8); // ENOEXEC
    let loader = ModuleLoader::open(&sys).unwrap();
    let r = loader.load(&Request::names([
        "vfat",
        "nls_cp437",
        "ext4",
        "squashfs",
        "no-such-module",
    ]));
    assert!(r.already.contains(&"fat".to_string()));
    assert!(r.already.contains(&"nls_cp437".to_string()));
    assert!(r.already.contains(&"mbcache".to_string()));
    assert!(r.loaded.contains(&"vfat".to_string()) && r.loaded.contains(&"squashfs".to_string()));
    assert_eq!(r.not_found, ["no-such-module"]);
    let failed: Vec<(&str, String)> = r
        .failed
        .iter()
        .map(|(m, why)| (m.as_str(), why.to_string()))
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(matches!(&r.failed[0], (m, FailReason::Dependency(d)) if m == "ext4" && d == "jbd2"));
    assert!(matches!(&r.failed[1], (m, FailReason::Kernel { errno: 8, .. }) if m == "jbd2"));
    assert!(
        !loaded_order(&sys).contains(&"ext4".to_string()),
        "ext4 must not be tried after jbd2 failed"
    );
    assert!(!loaded_order(&sys).contains(&"fat".to_string()));
}

#[test]
fn compressed_modules_in_kernel_or_userspace() {
    let (dir, sys) = setup();
    let mut m = FakeModules::new(dir.path());
    m.module("kernel/a.ko.gz", &[])
        .module("kernel/b.ko.xz", &[])
        .module("kernel/c.ko.zst", &[])
        .module("kernel/d.ko", &[]);
    m.write();
    // No /sys/module/compression: gzip and xz decompressed here and handed over as bytes;
    // zstd refused with the reason.
    let loader = ModuleLoader::open(&sys).unwrap().with_max_threads(1);
    let r = loader.load(&Request::names(["a", "b", "c", "d"]));
    assert_eq!(r.loaded, ["a", "b", "d"], "{r:?}");
    let refusal = format!("{r:?}");
    assert!(
        refusal.contains("zstd-compressed, and the kernel does not decompress zstd"),
        "{refusal}"
    );
    let t = sys.trace();
    assert_eq!(
        t.iter().filter(|l| *l == "insmod <4096 bytes>").count(),
        2,
        "{t:?}"
    );

    // The kernel decompresses zstd itself: the .ko.zst goes in as a file.
    let (dir3, sys3) = setup();
    let mut m = FakeModules::new(dir3.path());
    m.module("kernel/c.ko.zst", &[]);
    m.write();
    std::fs::create_dir_all(dir3.path().join("sys/module")).unwrap();
    std::fs::write(dir3.path().join("sys/module/compression"), "zstd\n").unwrap();
    let loader = ModuleLoader::open(&sys3).unwrap().with_max_threads(1);
    assert!(loader.load(&Request::names(["c"])).ok());
    assert!(sys3
        .trace()
        .contains(&format!("insmod /lib/modules/{RELEASE}/kernel/c.ko.zst")));
    assert!(t.contains(&format!("insmod /lib/modules/{RELEASE}/kernel/d.ko")));

    // The kernel decompresses xz itself: the file goes in as is; gzip still decompressed here.
    let (dir2, sys2) = setup();
    let mut m = FakeModules::new(dir2.path());
    m.module("kernel/a.ko.gz", &[])
        .module("kernel/b.ko.xz", &[]);
    m.write();
    std::fs::create_dir_all(dir2.path().join("sys/module")).unwrap();
    std::fs::write(dir2.path().join("sys/module/compression"), "xz\n").unwrap();
    let loader = ModuleLoader::open(&sys2).unwrap().with_max_threads(1);
    assert!(loader.load(&Request::names(["a", "b"])).ok());
    let t = sys2.trace();
    assert!(
        t.contains(&format!("insmod /lib/modules/{RELEASE}/kernel/b.ko.xz")),
        "{t:?}"
    );
    assert!(t.contains(&"insmod <4096 bytes>".to_string()));

    // The kernel claims xz but refuses (EOPNOTSUPP): fall back to userspace.
    let (dir3, sys3) = setup();
    let mut m = FakeModules::new(dir3.path());
    m.module("kernel/b.ko.xz", &[]);
    m.write();
    std::fs::create_dir_all(dir3.path().join("sys/module")).unwrap();
    std::fs::write(dir3.path().join("sys/module/compression"), "xz\n").unwrap();
    sys3.fail_on("b.ko.xz", 95);
    let loader = ModuleLoader::open(&sys3).unwrap();
    assert_eq!(loader.load(&Request::names(["b"])).loaded, ["b"]);
    assert_eq!(sys3.trace().last().unwrap(), "insmod <4096 bytes>");

    // A corrupt compressed file is a failure naming the module, not a panic.
    std::fs::write(
        dir.path()
            .join("lib/modules")
            .join(RELEASE)
            .join("kernel/a.ko.gz"),
        b"\x1f\x8bgarbage",
    )
    .unwrap();
    let loader = ModuleLoader::open(&sys).unwrap();
    let r = ModuleLoader::new(&sys, ModuleDb::open(&sys, RELEASE).unwrap())
        .load(&Request::names(["a"]));
    drop(loader);
    assert!(
        matches!(&r.failed[..], [(m, FailReason::Read(why))] if m == "a" && why.contains("a.ko.gz")),
        "{r:?}"
    );
}

#[test]
fn softdep_cycles_do_not_hang() {
    let (dir, sys) = setup();
    let mut m = FakeModules::new(dir.path());
    m.module("kernel/x.ko", &[])
        .module("kernel/y.ko", &[])
        .softdep("x pre: y")
        .softdep("y pre: x");
    m.write();
    let loader = ModuleLoader::open(&sys).unwrap().with_max_threads(3);
    let r = loader.load(&Request::names(["x"]));
    assert_eq!(r.loaded, ["x", "y"]);
}

#[test]
fn missing_index_is_an_error_not_a_panic() {
    let (_dir, sys) = setup();
    let e = ModuleLoader::open(&sys).err().unwrap();
    assert!(e.to_string().contains("modules.dep"), "{e}");
}

#[test]
fn modprobe_personality() {
    let (dir, sys) = setup();
    standard_modules(dir.path());
    let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    assert_eq!(modprobe_main(&args("modprobe -q -- fs-vfat"), &sys), 0);
    assert_eq!(loaded_order(&sys), ["fat", "vfat"]);
    assert_eq!(modprobe_main(&args("modprobe -a loop squashfs"), &sys), 0);
    assert_eq!(modprobe_main(&args("modprobe -qb nonexistent"), &sys), 1);
    assert_eq!(
        modprobe_main(&args("modprobe virtio_blk foo=1 bar=2"), &sys),
        0
    );
    assert!(sys
        .trace()
        .last()
        .unwrap()
        .ends_with("virtio_blk.ko foo=1 bar=2"));
    assert_eq!(modprobe_main(&args("modprobe -r loop"), &sys), 1);
    assert_eq!(modprobe_main(&args("modprobe"), &sys), 1);
    // Another kernel release that has no modules.
    assert_eq!(modprobe_main(&args("modprobe -q -S 9.9.9 loop"), &sys), 1);
}

#[test]
fn mkinitfs_closure() {
    let dir = tempfile::tempdir().unwrap();
    let m = standard_modules(dir.path());
    let paths = closure(
        &m.dir,
        &[
            "# comment",
            "ext4",
            "kernel/drivers/virtio/*",
            "kernel/fs/fat/",
            "fs-squashfs",
            "mmc_block",
            "",
        ],
    )
    .unwrap();
    let want: Vec<PathBuf> = [
        "kernel/crypto/crc32c_generic.ko",
        "kernel/drivers/virtio/virtio_pci.ko",
        "kernel/fs/ext4/ext4.ko",
        "kernel/fs/fat/fat.ko",
        "kernel/fs/fat/vfat.ko",
        "kernel/fs/jbd2/jbd2.ko",
        "kernel/fs/mbcache.ko",
        "kernel/fs/squashfs/squashfs.ko",
        "kernel/lib/crc16.ko",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    assert_eq!(paths, want);
    let c = ramboot::hw::modules::closure_detailed(&m.dir, &["nope", "kernel/nothing/*"]).unwrap();
    assert_eq!(c.missing, ["nope", "kernel/nothing/*"]);
    assert!(closure(Path::new("/nonexistent"), &["x"]).is_err());
}

#[test]
fn feature_files_resolve_against_a_module_tree() {
    // Every line of the shipped feature lists must parse; the standard tree covers a few names.
    let dir = tempfile::tempdir().unwrap();
    let m = standard_modules(dir.path());
    let features = Path::new(env!("CARGO_MANIFEST_DIR")).join("initramfs/features");
    let mut n = 0;
    for e in std::fs::read_dir(&features).unwrap() {
        let path = e.unwrap().path();
        if path.extension().map_or(true, |x| x != "modules") {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        closure(&m.dir, &lines).unwrap();
        n += 1;
    }
    assert!(n >= 8);
    let vfat = std::fs::read_to_string(features.join("vfat.modules")).unwrap();
    let lines: Vec<&str> = vfat.lines().collect();
    let c = closure(&m.dir, &lines).unwrap();
    assert!(
        c.contains(&PathBuf::from("kernel/fs/fat/vfat.ko"))
            && c.contains(&PathBuf::from("kernel/fs/nls/nls_cp437.ko"))
    );
}

/// A request waits for a module that a background thread (the boot drivers, at nice 19) is
/// loading: that thread is raised to normal priority for the load, and lowered again after it.
/// On the benchmark card's single core, the cached root's loop device waited 250 ms for the
/// `loop` module, which the boot drivers had started first and then got no CPU to finish; the
/// kernel lists such a module in /proc/modules (`Loading`) before its init is over. The double
/// holds the background load until the raise is recorded: before, it never came.
#[test]
fn a_background_load_someone_waits_for_is_raised_to_normal_priority() {
    let (dir, sys) = setup();
    let mut m = FakeModules::new(dir.path());
    m.module("kernel/loop.ko", &[]);
    m.write();
    sys.hold_module_until("loop.ko", "renice a background thread to 0");
    let loader = ModuleLoader::open(&sys).unwrap().with_max_threads(1);
    std::thread::scope(|s| {
        let background = s.spawn(|| {
            sys.background_priority().unwrap();
            loader.load(&Request::names(["loop"]))
        });
        let mut spins = 0u64;
        while !loaded_order(&sys).contains(&"loop".to_string()) {
            spins += 1;
            assert!(spins < 1 << 32, "the background load never started");
            std::thread::yield_now();
        }
        // What the kernel shows while the module's init runs.
        std::fs::create_dir_all(dir.path().join("proc")).unwrap();
        std::fs::write(
            dir.path().join("proc/modules"),
            "loop 45056 0 - Loading 0x0000000000000000\n",
        )
        .unwrap();
        let waiter = loader.load(&Request::names(["loop"]));
        assert_eq!(waiter.already, vec!["loop".to_string()]);
        assert_eq!(background.join().unwrap().loaded, vec!["loop".to_string()]);
    });
    assert_eq!(sys.held_loads_that_gave_up(), Vec::<String>::new());
    let trace = sys.trace();
    let raised = trace
        .iter()
        .filter(|l| *l == "renice a background thread to 0")
        .count();
    assert_eq!(raised, 1, "{trace:#?}");
    assert_eq!(loaded_order(&sys), vec!["loop".to_string()]);
}

/// Two requests on two threads want the same module: it is loaded once. The first request's
/// load of `shared` is held until the second has planned (it loads `other` first, which the
/// double waits for), so the second planned `shared` while it was not yet in the kernel. Before,
/// the second request loaded it again (the kernel would verify it a second time and say EEXIST).
#[test]
fn a_module_another_request_is_loading_is_waited_for_not_loaded_twice() {
    let (dir, sys) = setup();
    let mut m = FakeModules::new(dir.path());
    m.module("kernel/shared.ko", &[])
        .module("kernel/other.ko", &[])
        .module("kernel/dependent.ko", &["kernel/shared.ko"]);
    m.write();
    sys.hold_module_until("shared.ko", "other.ko");
    let loader = ModuleLoader::open(&sys).unwrap().with_max_threads(1);
    std::thread::scope(|s| {
        let first = s.spawn(|| loader.load(&Request::names(["shared"])));
        // The second request starts once the first one's load of `shared` is under way.
        let mut spins = 0u64;
        while !loaded_order(&sys).contains(&"shared".to_string()) {
            spins += 1;
            assert!(spins < 1 << 32, "the first load never started");
            std::thread::yield_now();
        }
        let second = loader.load(&Request::names(["other", "dependent"]));
        assert!(first.join().unwrap().loaded.contains(&"shared".to_string()));
        assert_eq!(
            second.loaded,
            vec!["dependent".to_string(), "other".to_string()]
        );
        assert_eq!(second.already, vec!["shared".to_string()]);
    });
    assert_eq!(sys.held_loads_that_gave_up(), Vec::<String>::new());
    let order = loaded_order(&sys);
    assert_eq!(
        order.iter().filter(|n| *n == "shared").count(),
        1,
        "{order:?}"
    );
    assert!(
        pos(&order, "shared") < pos(&order, "dependent"),
        "{order:?}"
    );
}

/// The quick scan that decides whether the modloop's index is worth reading: a pattern of the
/// device's bus, one with a glob for a bus, `-` written for `_`; nothing for other buses.
#[test]
fn the_alias_scan_finds_a_pattern_for_a_modalias_or_says_there_is_none() {
    let dir = tempfile::tempdir().unwrap();
    let aliases = "alias usb:v1234p*d*dc*dsc*dp*ic*isc*ip*in* usb_thing\n\
                   alias pci:v00001AF4d00001042sv*sd*bc*sc*i* virtio_blk\n\
                   alias of:N*T*Cgpio-keys* gpio_keys\n\
                   alias *:acme-gadget acme\n";
    std::fs::write(dir.path().join("modules.alias"), aliases).unwrap();
    let has = |m: &str| ModuleDb::has_alias_for(dir.path(), &[m.to_string()]);
    assert!(has("pci:v00001AF4d00001042sv00001AF4sd00001100bc01sc00i00"));
    assert!(has("of:NkeysT(null)Cgpio_keys"));
    assert!(has("platform:acme-gadget"));
    assert!(!has(
        "pci:v00001B36d00000008sv00001AF4sd00001100bc06sc00i00"
    ));
    assert!(!has("of:NflashT(null)Ccfi-flash"));
    assert!(!ModuleDb::has_alias_for(dir.path(), &[]));
    assert!(!ModuleDb::has_alias_for(
        &dir.path().join("none"),
        &["platform:x".into()]
    ));
}
