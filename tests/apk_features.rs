//! Solver, ownership and package scripts (the host's `/dev`, `/proc`, `/sys` bound for them).
// Tests drive real tools and processes (QEMU, mkfs, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

mod apk_support;
mod support;
use apk_support::*;
use ramboot::apk::stream::ScriptKind;
use ramboot::apk::{install, ScriptPolicy};
use ramboot::boot::{packages, packages::Wanted, Boot};
use ramboot::sys::{
    Call, ChrootRuns, ModuleImage, MountFlags, MountPoint, NodeKind, RealSys, RebootKind,
    RecordingSys, Spawn, Sys, UeventSource,
};
use std::ffi::OsString;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

#[test]
fn diamond_and_versions() {
    let f = Fixture::new();
    f.publish(vec![
        pkg("top", "1").depends("left right"),
        pkg("left", "1").depends("base>=2"),
        pkg("right", "1").depends("base"),
        pkg("base", "1.0"),
        pkg("base", "2.0"),
        pkg("base", "3.0_rc1"),
    ]);
    let r = f.install(&["top"]);
    assert_eq!(names(&r), ["base", "left", "right", "top"]);
    assert_eq!(r.installed[0].1, "3.0_rc1");
    let f2 = Fixture::new();
    f2.publish(vec![
        pkg("vera", "1.0"),
        pkg("vera", "2.0"),
        pkg("vera", "3.0_rc1"),
    ]);
    assert_eq!(f2.install(&["vera<2"]).installed[0].1, "1.0");
    let f3 = Fixture::new();
    f3.publish(vec![pkg("vera", "1.0"), pkg("vera", "2.0")]);
    assert_eq!(f3.install(&["vera~1"]).installed[0].1, "1.0");
}

#[test]
fn late_constraint_restarts_the_choice() {
    let f = Fixture::new();
    f.publish(vec![
        pkg("a", "1").depends("lib"),
        pkg("b", "1").depends("lib<2"),
        pkg("lib", "1.5"),
        pkg("lib", "2.0"),
    ]);
    let r = f.install(&["a", "b"]);
    assert!(
        r.installed.contains(&("lib".into(), "1.5".into())),
        "{:?}",
        r.installed
    );
}

#[test]
fn providers_priority_and_virtuals() {
    let f = Fixture::new();
    f.publish(vec![
        pkg("user", "1").depends("so:libx.so.1"),
        pkg("libx-a", "1").provides("so:libx.so.1=1.0"),
        pkg("libx-b", "1").provides("so:libx.so.1=1.0").priority(10),
        pkg("needsh", "1").depends("/bin/sh"),
        pkg("busybox-binsh", "1")
            .provides("/bin/sh cmd:sh")
            .priority(100),
        pkg("needvirt", "1").depends("virt"),
        pkg("v1", "1").provides("virt"),
        pkg("v2", "1").provides("virt"),
    ]);
    let r = f.install(&["user", "needsh"]);
    assert!(
        names(&r).contains(&"libx-b".to_string()) && !names(&r).contains(&"libx-a".to_string()),
        "{:?}",
        r.installed
    );
    assert!(names(&r).contains(&"busybox-binsh".to_string()));
    // Two virtual providers without priority: apk asks to choose.
    let f2 = Fixture::new();
    f2.publish(vec![
        pkg("needvirt", "1").depends("virt"),
        pkg("v1", "1").provides("virt"),
        pkg("v2", "1").provides("virt"),
    ]);
    let err = install(&f2.request(&["needvirt"]), &RecordingSys::new("/"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("virt (virtual)"), "{err}");
    // Any number of virtual providers may be installed together.
    let r = f2.install(&["v1", "v2"]);
    assert_eq!(names(&r), ["v1", "v2"]);
}

#[test]
fn virtual_provider_required_by_name_is_selectable() {
    // apk-tools 2.14 `is_provider_auto_selectable`: a provider without priority is chosen for a
    // virtual name once its own name is required, even when that requirement comes later (by
    // world order, or through another package).
    let f = Fixture::new();
    f.publish(vec![
        pkg("app", "1").depends("cmd:tool"),
        pkg("tool", "1").provides("cmd:tool"),
        pkg("other", "1").provides("cmd:tool"),
    ]);
    let r = f.install(&["app", "tool"]);
    assert_eq!(names(&r), ["tool", "app"]);
    let r = Fixture::new();
    r.publish(vec![
        pkg("b", "1").depends("cmd:t2 zz"),
        pkg("t2", "1").provides("cmd:t2"),
        pkg("zz", "1").depends("t2"),
    ]);
    let rep = r.install(&["b"]);
    assert_eq!(names(&rep), ["t2", "zz", "b"]);
    // Still an error when nothing asks for a provider by name.
    let f = Fixture::new();
    f.publish(vec![
        pkg("app", "1").depends("cmd:tool"),
        pkg("tool", "1").provides("cmd:tool"),
    ]);
    let err = install(&f.request(&["app"]), &RecordingSys::new("/"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cmd:tool (virtual)"), "{err}");
}

#[test]
fn same_versioned_provide_conflicts() {
    let f = Fixture::new();
    f.publish(vec![
        pkg("provA", "1.0").provides("so:libx.so.1=1.0"),
        pkg("provB", "2.0").provides("so:libx.so.1=1.0"),
    ]);
    let err = install(&f.request(&["provA", "provB"]), &RecordingSys::new("/"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("provB-2.0") || err.contains("provA-1.0"),
        "{err}"
    );
}

#[test]
fn conflicts_drop_both_under_diskless_boot() {
    let f = Fixture::new();
    f.publish(vec![
        pkg("conf1", "1").depends("!conf2"),
        pkg("conf2", "1"),
        pkg("other", "1"),
    ]);
    let err = install(&f.request(&["conf1", "conf2"]), &RecordingSys::new("/"))
        .unwrap_err()
        .to_string();
    // apk's account: conf2 breaks conf1's `!conf2`.
    assert!(
        err.contains("conf2-1:\n    breaks: conf1-1[!conf2]"),
        "{err}"
    );
    let mut req = f.request(&["conf1", "conf2", "other"]);
    req.diskless_boot = true;
    let r = install(&req, &RecordingSys::new("/")).unwrap();
    assert_eq!(names(&r), ["other"]);
    assert_eq!(r.skipped_world.len(), 2);
    assert_eq!(r.exit_code(), 0);
    assert_eq!(f.read("etc/apk/world"), "conf1\nconf2\nother\n");
}

#[test]
fn install_if_follows_its_trigger() {
    let f = Fixture::new();
    f.publish(vec![
        pkg("docs", "1"),
        pkg("man", "1"),
        pkg("foo", "1"),
        pkg("foo-doc", "1").install_if("foo docs"),
        pkg("bar-doc", "1").install_if("bar docs"),
    ]);
    let r = f.install(&["foo", "docs", "man"]);
    assert_eq!(names(&r), ["docs", "foo", "foo-doc", "man"]);
    assert_eq!(f.read("etc/apk/world"), "docs\nfoo\nman\n");
}

#[test]
fn replaces_moves_file_ownership() {
    let f = Fixture::new();
    f.publish(vec![
        pkg("old", "1").file("usr/bin/tool", b"old", 0o755),
        pkg("new", "1")
            .depends("old")
            .replaces("old")
            .file("usr/bin/tool", b"new", 0o755),
        pkg("clash", "1")
            .depends("old")
            .file("usr/bin/tool", b"clash", 0o755),
    ]);
    let r = f.install(&["new"]);
    assert_eq!(r.errors(), 0, "{:?}", r.broken);
    assert_eq!(f.read("usr/bin/tool"), "new");
    let db = f.read("lib/apk/db/installed");
    let old_rec = db.split("\n\n").find(|r| r.contains("P:old\n")).unwrap();
    assert!(!old_rec.contains("R:tool"), "{old_rec}");
    let new_rec = db.split("\n\n").find(|r| r.contains("P:new\n")).unwrap();
    assert!(new_rec.contains("R:tool"));
    // Without replaces: an error, the file stays the old owner's.
    let r = f.install(&["clash"]);
    assert_eq!(r.broken.len(), 1, "{r:?}");
    assert!(
        r.broken[0]
            .1
            .contains("trying to overwrite usr/bin/tool owned by new-1"),
        "{:?}",
        r.broken
    );
    assert_eq!(f.read("usr/bin/tool"), "new");
}

#[test]
fn upgrade_replaces_files_and_removes_obsolete_ones() {
    let f = Fixture::new();
    f.publish(vec![pkg("app", "1.0")
        .file("usr/bin/app", b"v1", 0o755)
        .file("usr/share/app/old", b"o", 0o644)]);
    f.install(&["app"]);
    let f2_repo = f.dir.path().join("repo");
    std::fs::remove_dir_all(&f2_repo).unwrap();
    f.publish(vec![pkg("app", "2.0").file("usr/bin/app", b"v2", 0o755)]);
    let r = f.upgrade(&["app"]);
    assert_eq!(r.installed, [("app".to_string(), "2.0".to_string())]);
    assert_eq!(f.read("usr/bin/app"), "v2");
    assert!(!f.root().join("usr/share/app/old").exists());
    let db = f.read("lib/apk/db/installed");
    assert_eq!(db.matches("P:app\n").count(), 1);
    assert!(db.contains("V:2.0"));
}

#[test]
fn upgrade_keeps_changed_protected_files_and_drops_unused_dirs() {
    // apk-tools 2.14 `apk_db_purge_pkg`: an obsolete file in a protected directory is removed
    // only if unchanged; directories no package uses any more are removed when empty.
    let f = Fixture::new();
    f.publish(vec![pkg("app", "1.0")
        .file("usr/bin/app", b"v1", 0o755)
        .file("etc/app/changed.conf", b"c", 0o644)
        .file("etc/app/same.conf", b"s", 0o644)
        .file("usr/share/app/old", b"o", 0o644)
        .dir("var/lib/app", 0o750)
        .dir("var/spool/app", 0o755)]);
    f.install(&["app"]);
    std::fs::write(f.root().join("etc/app/changed.conf"), "mine").unwrap();
    std::fs::write(f.root().join("var/spool/app/userfile"), "u").unwrap();
    std::fs::remove_dir_all(f.repo()).unwrap();
    f.publish(vec![pkg("app", "2.0").file("usr/bin/app", b"v2", 0o755)]);
    let r = f.upgrade(&["app"]);
    assert_eq!(r.installed, [("app".to_string(), "2.0".to_string())]);
    assert_eq!(f.read("etc/app/changed.conf"), "mine");
    assert!(!f.root().join("etc/app/same.conf").exists());
    for gone in ["usr/share/app", "usr/share", "var/lib/app", "var/lib"] {
        assert!(!f.root().join(gone).exists(), "{gone}");
    }
    for kept in ["usr/bin", "var/spool/app/userfile", "var/cache", "etc/app"] {
        assert!(f.root().join(kept).exists(), "{kept}");
    }
    let db = f.read("lib/apk/db/installed");
    assert!(!db.contains("F:etc/app") && !db.contains("F:var"), "{db}");
}

#[test]
fn scripts_run_chrooted_in_order_with_apk_contract() {
    let f = Fixture::new();
    f.publish(vec![
        pkg("base", "1")
            .script(ScriptKind::PostInstall, "#!/bin/sh\necho base\n")
            .dir("usr/share/x", 0o755),
        pkg("app", "2.0-r1")
            .depends("base")
            .script(ScriptKind::PreInstall, "#!/bin/sh\nexit 0\n")
            .script(ScriptKind::PostInstall, "#!/bin/sh\nexit 1\n")
            .script(ScriptKind::Trigger, "#!/bin/sh\n")
            .triggers("/usr/share/*")
            .file("usr/bin/app", b"x", 0o755),
    ]);
    let sys = RecordingSys::new("/");
    sys.push_run_result(0);
    sys.push_run_result(0);
    sys.push_run_result(1);
    let mut req = f.request(&["app"]);
    req.scripts = ScriptPolicy::Always;
    let r = install(&req, &sys).unwrap();
    let runs: Vec<_> = sys
        .calls()
        .into_iter()
        .filter_map(|c| {
            if let Call::Run { spawn } = c {
                Some(spawn)
            } else {
                None
            }
        })
        .collect();
    let progs: Vec<String> = runs
        .iter()
        .map(|s| s.program.display().to_string())
        .collect();
    assert_eq!(
        progs,
        [
            "lib/apk/exec/base-1.post-install",
            "lib/apk/exec/app-2.0-r1.pre-install",
            "lib/apk/exec/app-2.0-r1.post-install",
            "lib/apk/exec/app-2.0-r1.trigger"
        ]
    );
    assert_eq!(runs[1].chroot.as_deref(), Some(f.root().as_path()));
    assert_eq!(runs[1].args, ["2.0-r1"]);
    assert_eq!(runs[1].umask, Some(0o022));
    assert_eq!(
        runs[1].env,
        [("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into())]
    );
    assert_eq!(runs[3].args, ["/usr/share/x"]);
    assert_eq!(r.broken.len(), 1);
    assert!(r.broken[0]
        .1
        .contains("post-install script exited with error 1"));
    assert!(
        f.root().join("usr/bin/app").exists(),
        "install goes on after a failed script"
    );
    let db = f.read("lib/apk/db/installed");
    assert!(db.contains("\nf:s\n"), "{db}"); // apk-tools 2.14 writes no `S` here
    assert!(f.read("lib/apk/db/triggers").contains(" /usr/share/*"));
    let tar = std::fs::read(f.root().join("lib/apk/db/scripts.tar")).unwrap();
    assert!(String::from_utf8_lossy(&tar).contains("app-2.0-r1.Q1"));
    assert!(!f
        .root()
        .join("lib/apk/exec/app-2.0-r1.post-install")
        .exists());
}

/// Without the privilege to chroot (asked of the system boundary, whoever runs the tests), a
/// script is skipped with a warning, or counts as an error when it must run.
#[test]
fn unprivileged_scripts_are_skipped_or_fail_as_asked() {
    let unprivileged = || RecordingSys::new("/").with_privileged(false);
    let f = Fixture::new();
    f.publish(vec![pkg("s", "1")
        .script(ScriptKind::PostInstall, "#!/bin/sh\n")
        .file("f", b"f", 0o644)]);
    let mut req = f.request(&["s"]);
    req.scripts = ScriptPolicy::Auto;
    let r = install(&req, &unprivileged()).unwrap();
    assert_eq!(r.errors(), 0);
    assert!(r.warnings.iter().any(|w| w.contains("not run")));
    assert_eq!(
        r.scripts_not_run,
        ["s-1: post-install script not run (needs root to chroot)"]
    );
    let f = Fixture::new();
    f.publish(vec![pkg("s", "1")
        .script(ScriptKind::PostInstall, "#!/bin/sh\n")
        .file("f", b"f", 0o644)]);
    let mut req = f.request(&["s"]);
    req.scripts = ScriptPolicy::FailUnprivileged;
    assert_eq!(install(&req, &unprivileged()).unwrap().errors(), 1);
}

/// The boot's privileged script path for real: `/sys /proc /dev` bound into the new root, the
/// script run chrooted there (seeing them), and every bind gone afterwards. Runs as root (CI
/// fails otherwise) in a temp dir standing in for `/`; the binds are the real `/sys /proc /dev`.
#[test]
fn privileged_scripts_run_chrooted_with_sys_proc_dev_bound() {
    if !support::tools::root("binding /sys /proc /dev and chroot") {
        return;
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .filter(|b| ramboot::elf::parse(b).is_ok_and(|i| i.interpreter.is_none()));
    let Some(busybox) = busybox else {
        support::tools::missing("no static busybox (package busybox-static)");
        return;
    };
    let modes_before = host_modes();
    let sandbox = Sandbox::new();
    let root = sandbox.path().to_path_buf();
    // The stand-in initramfs: a repository on a "mounted" medium, the new root with its keys.
    let f = Fixture::new();
    f.publish(vec![pkg("busybox", "1.36.1-r0")
        .file("bin/busybox", &busybox, 0o755)
        .script(
            ScriptKind::PostInstall,
            "#!/bin/busybox sh\nexec > /script-saw\necho \"args=$*\"\necho \"cwd=$(pwd)\"\n\
             echo \"umask=$(umask)\"\n[ -e /outside-marker ] || echo chroot=yes\n\
             [ -r /proc/self/mountinfo ] && echo proc=yes\n[ -c /dev/null ] && echo dev=yes\n\
             [ -d /sys/kernel ] && echo sys=yes\nexit 0\n",
        )]);
    copy_dir(&f.repo(), &root.join("media/vda1/apks"));
    copy_dir(&f.keys(), &root.join("sysroot/etc/apk/keys"));
    std::fs::write(root.join("outside-marker"), b"").unwrap();
    let sys = BindingSys(RecordingSys::new(&root).with_chroot_runs(ChrootRuns::Execute));
    let plan = ramboot::cmdline::plan(&ramboot::cmdline::parse("console=ttyS0"));
    let ramboot::cmdline::Mode::Diskless(diskless) = plan.mode.clone() else {
        panic!("no root= means diskless");
    };
    let mut boot = Boot::new(&sys, plan, std::time::Duration::ZERO);
    ramboot::boot::apkovl::init_db(&sys, std::path::Path::new("/sysroot")).unwrap();
    let wanted = Wanted {
        packages: vec!["busybox".into()],
        implicit: vec![],
    };
    let done = packages::install(
        &mut boot,
        &["/media/vda1/apks".into()],
        &wanted,
        &[],
        &diskless,
    )
    .unwrap();
    assert_eq!(done.degradation(), None, "{:?}", sys.0.trace());
    assert_eq!(
        std::fs::read_to_string(root.join("sysroot/script-saw")).unwrap(),
        "args=1.36.1-r0\ncwd=/\numask=0022\nchroot=yes\nproc=yes\ndev=yes\nsys=yes\n"
    );
    let trace = sys.0.trace();
    for want in [
        "mount --bind /sys /sysroot/sys",
        "mount --bind /proc /sysroot/proc",
        "mount --bind /dev /sysroot/dev",
        "chroot /sysroot lib/apk/exec/busybox-1.36.1-r0.post-install 1.36.1-r0",
        "umount /sysroot/dev",
        "umount /sysroot/proc",
        "umount /sysroot/sys",
    ] {
        assert!(trace.iter().any(|c| c == want), "{want} in {trace:?}");
    }
    assert_eq!(
        mounts_under(&root),
        Vec::<String>::new(),
        "binds left behind"
    );
    assert_eq!(host_modes(), modes_before, "a host path changed mode");
}

/// Modes of host paths a bind or a chroot could reach by mistake.
fn host_modes() -> Vec<(&'static str, u32)> {
    ["/", "/dev", "/dev/null", "/proc", "/sys", "/tmp"]
        .into_iter()
        .map(|p| (p, std::fs::metadata(p).unwrap().mode()))
        .collect()
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Mount points at or under `dir`, from `/proc/self/mountinfo`.
fn mounts_under(dir: &std::path::Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| m.replace("\\040", " "))
        .filter(|m| m == &dir || m.starts_with(&format!("{dir}/")))
        .collect()
}

/// A temp dir that is deleted only when nothing is mounted under it: a bind of the host's
/// `/dev` left there must never be emptied by the cleanup. Binds are detached on the way out,
/// also when the test panics.
struct Sandbox(Option<tempfile::TempDir>);

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let canonical = dir.path().canonicalize().unwrap();
        assert_eq!(canonical, dir.path(), "the temp dir path has no symlinks");
        Sandbox(Some(dir))
    }
    fn path(&self) -> &std::path::Path {
        self.0.as_ref().unwrap().path()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let dir = self.0.take().unwrap();
        for m in mounts_under(dir.path()).iter().rev() {
            let _ = RealSys.umount(std::path::Path::new(m), true);
        }
        let left = mounts_under(dir.path());
        if !left.is_empty() {
            eprintln!("still mounted, {} kept: {left:?}", dir.path().display());
            std::mem::forget(dir);
        }
    }
}

/// The recording double over the sandbox, except that binds and unmounts are real: the sources
/// are the host's own `/sys /proc /dev`, the targets are inside the sandbox.
struct BindingSys(RecordingSys);

impl Sys for BindingSys {
    fn path(&self, guest: &std::path::Path) -> PathBuf {
        self.0.path(guest)
    }
    fn mount(
        &self,
        s: &str,
        t: &std::path::Path,
        f: &str,
        fl: MountFlags,
        d: &str,
    ) -> io::Result<()> {
        self.0.mount(s, t, f, fl, d)
    }
    fn remount(&self, t: &std::path::Path, f: MountFlags, d: &str) -> io::Result<()> {
        self.0.remount(t, f, d)
    }
    fn bind_mount(&self, source: &std::path::Path, target: &std::path::Path) -> io::Result<()> {
        self.0.bind_mount(source, target)?;
        RealSys.bind_mount(source, &self.0.path(target))
    }
    fn move_mount(&self, s: &std::path::Path, t: &std::path::Path) -> io::Result<()> {
        self.0.move_mount(s, t)
    }
    fn umount(&self, target: &std::path::Path, detach: bool) -> io::Result<()> {
        self.0.umount(target, detach)?;
        RealSys.umount(&self.0.path(target), detach)
    }
    fn mknod(&self, p: &std::path::Path, k: NodeKind, m: u32, ma: u32, mi: u32) -> io::Result<()> {
        // Only ever into the sandbox's own files: refuse anything under a bound directory.
        assert!(
            mounts_under(self.0.root()).is_empty(),
            "mknod {} while binds are up",
            p.display()
        );
        self.0.mknod(p, k, m, ma, mi)
    }
    fn load_module(&self, i: ModuleImage<'_>, p: &str) -> io::Result<()> {
        self.0.load_module(i, p)
    }
    fn loop_attach(&self, f: &std::path::Path, ro: bool) -> io::Result<PathBuf> {
        self.0.loop_attach(f, ro)
    }
    fn loop_autoclear(&self, d: &std::path::Path) -> io::Result<()> {
        self.0.loop_autoclear(d)
    }
    fn background(&self, n: &str, t: &mut (dyn FnMut() -> i32 + Send)) -> io::Result<()> {
        self.0.background(n, t)
    }
    fn set_read_only_at(&self, d: rustix::fd::BorrowedFd<'_>, ro: bool) -> io::Result<()> {
        self.0.set_read_only_at(d, ro)
    }
    fn uevents(&self, b: usize) -> io::Result<Box<dyn UeventSource>> {
        self.0.uevents(b)
    }
    fn chdir(&self, p: &std::path::Path) -> io::Result<()> {
        self.0.chdir(p)
    }
    fn chroot(&self, p: &std::path::Path) -> io::Result<()> {
        self.0.chroot(p)
    }
    fn free_initramfs(&self, k: &std::path::Path) -> io::Result<()> {
        self.0.free_initramfs(k)
    }
    fn attach_console(&self, d: &std::path::Path) -> io::Result<()> {
        self.0.attach_console(d)
    }
    fn exec(&self, p: &std::path::Path, a: &[OsString], e: &[(OsString, OsString)]) -> io::Error {
        self.0.exec(p, a, e)
    }
    fn run(&self, spawn: &Spawn) -> io::Result<i32> {
        self.0.run(spawn)
    }
    fn spawn(&self, s: &Spawn) -> io::Result<u32> {
        self.0.spawn(s)
    }
    fn reap(&self) -> io::Result<ramboot::sys::Reaped> {
        self.0.reap()
    }
    fn kill(&self, pid: u32, signal: ramboot::sys::Signal) -> io::Result<()> {
        self.0.kill(pid, signal)
    }
    fn kill_all(&self, signal: ramboot::sys::Signal) -> io::Result<()> {
        self.0.kill_all(signal)
    }
    fn set_child_subreaper(&self) -> io::Result<()> {
        self.0.set_child_subreaper()
    }
    fn set_ctrl_alt_del(&self, hard: bool) -> io::Result<()> {
        self.0.set_ctrl_alt_del(hard)
    }
    fn signals(
        &self,
        s: &[ramboot::sys::Signal],
    ) -> io::Result<Box<dyn ramboot::sys::SignalSource>> {
        self.0.signals(s)
    }
    fn reset_signals(&self) -> io::Result<()> {
        self.0.reset_signals()
    }
    fn listen_unix(&self, p: &std::path::Path) -> io::Result<rustix::fd::OwnedFd> {
        self.0.listen_unix(p)
    }
    fn swapoff(&self, p: &std::path::Path) -> io::Result<()> {
        self.0.swapoff(p)
    }
    fn reboot(&self, k: RebootKind) -> io::Error {
        self.0.reboot(k)
    }
    fn sync(&self) {
        self.0.sync()
    }
    fn idle_forever(&self) {
        self.0.idle_forever()
    }
    fn now(&self) -> std::time::Duration {
        self.0.now()
    }
    fn kernel_release(&self) -> String {
        self.0.kernel_release()
    }
    fn machine(&self) -> String {
        self.0.machine()
    }
    fn sleep(&self, duration: std::time::Duration) {
        self.0.sleep(duration)
    }
    fn read_secret(
        &self,
        prompt: &str,
        timeout: std::time::Duration,
    ) -> io::Result<Option<Vec<u8>>> {
        self.0.read_secret(prompt, timeout)
    }
    fn write_sysctl(&self, key: &str, value: &str) -> io::Result<()> {
        self.0.write_sysctl(key, value)
    }
    fn privileged(&self) -> bool {
        self.0.privileged()
    }
    fn mount_containing(&self, path: &std::path::Path) -> io::Result<MountPoint> {
        self.0.mount_containing(path)
    }
    fn block_signals(&self, s: &[ramboot::sys::Signal]) -> io::Result<()> {
        self.0.block_signals(s)
    }
    fn open_watchdog(
        &self,
        device: &std::path::Path,
        timeout: std::time::Duration,
    ) -> io::Result<Box<dyn ramboot::sys::Watchdog>> {
        self.0.open_watchdog(device, timeout)
    }
    fn self_image(&self) -> io::Result<rustix::fd::OwnedFd> {
        self.0.self_image()
    }
    fn exec_image(
        &self,
        image: rustix::fd::BorrowedFd<'_>,
        argv: &[std::ffi::OsString],
        env: &[(std::ffi::OsString, std::ffi::OsString)],
    ) -> io::Error {
        self.0.exec_image(image, argv, env)
    }
    fn set_hostname(&self, name: &str) -> io::Result<()> {
        self.0.set_hostname(name)
    }
    fn link_up(&self, interface: &str) -> io::Result<()> {
        self.0.link_up(interface)
    }
    fn link_down(&self, interface: &str) -> io::Result<()> {
        self.0.link_down(interface)
    }
    fn rename_link(&self, i: &str, n: u32, to: &str) -> io::Result<()> {
        self.0.rename_link(i, n, to)
    }
    fn link_watch(&self) -> io::Result<Box<dyn ramboot::sys::LinkWatch>> {
        self.0.link_watch()
    }
    fn add_address(&self, i: &str, n: u32, a: std::net::Ipv4Addr, p: u8) -> io::Result<()> {
        self.0.add_address(i, n, a, p)
    }
    fn add_default_route(&self, i: &str, n: u32, g: std::net::Ipv4Addr) -> io::Result<()> {
        self.0.add_default_route(i, n, g)
    }
    fn dhcp_socket(&self, i: &str) -> io::Result<Box<dyn ramboot::sys::DhcpSocket>> {
        self.0.dhcp_socket(i)
    }
    fn tcp_connect(
        &self,
        h: &str,
        p: u16,
        t: std::time::Duration,
    ) -> io::Result<Box<dyn ramboot::sys::Connection>> {
        self.0.tcp_connect(h, p, t)
    }

    fn ipv6_events(&self) -> io::Result<Box<dyn ramboot::sys::Ipv6Events>> {
        self.0.ipv6_events()
    }
    fn swapon(&self, device: &std::path::Path) -> io::Result<()> {
        self.0.swapon(device)
    }
    fn add_entropy(&self, seed: &[u8], credit_bits: u32) -> io::Result<()> {
        self.0.add_entropy(seed, credit_bits)
    }
    fn wall_clock(&self) -> std::time::Duration {
        self.0.wall_clock()
    }
    fn set_wall_clock(&self, since_epoch: std::time::Duration) -> io::Result<()> {
        self.0.set_wall_clock(since_epoch)
    }
}
