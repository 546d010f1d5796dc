//! Solver, ownership, scripts, attributes, overlay and protection, cache, and the CLI builder.
// Tests drive real tools and processes (QEMU, mkfs, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

mod apk_support;
mod support;
use apk_support::*;
use ramboot::apk::build::PackageBuilder;
use ramboot::apk::stream::ScriptKind;
use ramboot::apk::{install, ScriptPolicy};
use ramboot::boot::{diskless::Wanted, packages, Boot};
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
    assert!(err.contains("conflicts"), "{err}");
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
    let r = f.install(&["app"]);
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
    let r = f.install(&["app"]);
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
    fn write_sysctl(&self, key: &str, value: &str) -> io::Result<()> {
        self.0.write_sysctl(key, value)
    }
    fn privileged(&self) -> bool {
        self.0.privileged()
    }
    fn mount_containing(&self, path: &std::path::Path) -> io::Result<MountPoint> {
        self.0.mount_containing(path)
    }
}

#[test]
fn hard_links_setuid_xattrs_owners_and_mtimes() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.root().join("etc")).unwrap();
    std::fs::write(
        f.root().join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nsvc:x:42:42::/:/sbin/nologin\n",
    )
    .unwrap();
    std::fs::write(f.root().join("etc/group"), "root:x:0:\nsvc:x:43:\n").unwrap();
    let owned = PackageBuilder::file_entry(
        "var/lib/svc/state",
        ramboot::apk::build::Content::Bytes(b"s".to_vec()),
        0o640,
    )
    .owner("svc", 1000, "svc", 1000);
    let xat = PackageBuilder::file_entry(
        "usr/bin/x",
        ramboot::apk::build::Content::Bytes(b"x".to_vec()),
        0o755,
    )
    .xattr("user.test", b"v");
    f.publish(vec![pkg("attrs", "1")
        .file("usr/bin/suid", b"s", 0o4755)
        .hardlink("usr/bin/suid-link", "usr/bin/suid")
        .dir("var", 0o755)
        .dir("var/lib", 0o755)
        .dir("var/lib/svc", 0o700)
        .entry(owned)
        .entry(xat)]);
    let mut req = f.request(&["attrs"]);
    req.initdb = true;
    let r = install(&req, &RecordingSys::new("/")).unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    let a = std::fs::metadata(f.root().join("usr/bin/suid")).unwrap();
    let b = std::fs::metadata(f.root().join("usr/bin/suid-link")).unwrap();
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.mode() & 0o7777, 0o4755);
    assert_eq!(a.mtime(), 1_700_000_000);
    assert_eq!(
        std::fs::metadata(f.root().join("var/lib/svc"))
            .unwrap()
            .mode()
            & 0o7777,
        0o700
    );
    let db = f.read("lib/apk/db/installed");
    assert!(
        db.contains("F:var/lib/svc\nM:0:0:700\nR:state\na:42:43:640\n"),
        "{db}"
    );
    assert!(db.contains("R:suid\na:0:0:4755\n"), "{db}");
    assert!(db.contains("R:x\na:0:0:755:Q1"), "{db}");
}

#[test]
fn overlay_files_win_and_protected_paths_get_apk_new() {
    let f = Fixture::new();
    f.publish(vec![pkg("conf", "1")
        .file("etc/listed.conf", b"pkg", 0o644)
        .file("etc/unlisted.conf", b"pkg", 0o644)
        .file("etc/same.conf", b"same", 0o644)
        .file("usr/bin/listed", b"pkg", 0o755)
        .file("usr/bin/unlisted", b"pkg", 0o755)]);
    let setup = |f: &Fixture| {
        std::fs::create_dir_all(f.root().join("etc")).unwrap();
        std::fs::create_dir_all(f.root().join("usr/bin")).unwrap();
        for p in [
            "etc/listed.conf",
            "etc/unlisted.conf",
            "usr/bin/listed",
            "usr/bin/unlisted",
        ] {
            std::fs::write(f.root().join(p), "user").unwrap();
        }
        std::fs::write(f.root().join("etc/same.conf"), "same").unwrap();
    };
    setup(&f);
    let mut req = f.request(&["conf"]);
    req.overlay_list = Some(vec![
        "etc/".into(),
        "etc/listed.conf".into(),
        "usr/bin/listed".into(),
    ]);
    let r = install(&req, &RecordingSys::new("/")).unwrap();
    assert_eq!(r.errors(), 0);
    assert_eq!(f.read("etc/listed.conf"), "user");
    assert!(!f.root().join("etc/listed.conf.apk-new").exists());
    assert_eq!(f.read("etc/unlisted.conf"), "user");
    assert_eq!(f.read("etc/unlisted.conf.apk-new"), "pkg");
    assert!(!f.root().join("etc/same.conf.apk-new").exists());
    assert_eq!(f.read("usr/bin/listed"), "user");
    assert_eq!(f.read("usr/bin/unlisted"), "pkg");
    // The db records the package's checksum for the kept file.
    assert!(f
        .read("lib/apk/db/installed")
        .contains("R:listed.conf\nZ:Q1"));

    let f = Fixture::new();
    f.publish(vec![pkg("conf", "1").file(
        "etc/unlisted.conf",
        b"pkg",
        0o644,
    )]);
    std::fs::create_dir_all(f.root().join("etc")).unwrap();
    std::fs::write(f.root().join("etc/unlisted.conf"), "user").unwrap();
    let mut req = f.request(&["conf"]);
    req.clean_protected = true;
    install(&req, &RecordingSys::new("/")).unwrap();
    assert_eq!(f.read("etc/unlisted.conf"), "user");
    assert!(!f.root().join("etc/unlisted.conf.apk-new").exists());
}

#[test]
fn cache_names_and_cache_installs() {
    use ramboot::apk::repo::{cache_index_name, cache_package_name};
    assert_eq!(
        cache_index_name("http://dl-cdn.example.invalid/alpine/v3.20/main", "x86_64"),
        "APKINDEX.3492ca4a.tar.gz"
    );
    let mut info = ramboot::apk::pkg::PkgInfo {
        name: "foo".into(),
        version: "1.0-r0".into(),
        ..Default::default()
    };
    info.identity = ramboot::apk::checksum::Checksum::parse("Q1sKBraP0l14fbx+ZBoqeB0pFzpH4=");
    assert_eq!(
        cache_package_name(&info).unwrap(),
        "foo-1.0-r0.b0a06b68.apk"
    );

    // A remote repository listed in the root, served from the cache only.
    let f = Fixture::new();
    let built = f.publish(vec![pkg("cached", "1").file("usr/bin/cached", b"c", 0o755)]);
    let url = "http://dl-cdn.example.invalid/alpine/v3.20/main";
    let cache = f.dir.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let arch = ramboot::apk::build::default_arch();
    std::fs::copy(
        f.repo().join(arch).join("APKINDEX.tar.gz"),
        cache.join(cache_index_name(url, arch)),
    )
    .unwrap();
    std::fs::write(
        cache.join(cache_package_name(&built[0].info).unwrap()),
        &built[0].bytes,
    )
    .unwrap();
    std::fs::create_dir_all(f.root().join("etc/apk")).unwrap();
    std::fs::write(f.root().join("etc/apk/repositories"), format!("{url}\n")).unwrap();
    std::os::unix::fs::symlink(&cache, f.root().join("etc/apk/cache")).unwrap();
    let mut req = f.request(&["cached"]);
    req.repositories.clear();
    let r = install(&req, &RecordingSys::new("/")).unwrap();
    assert_eq!(names(&r), ["cached"], "{:?}", r.repo_warnings);
    assert_eq!(f.read("usr/bin/cached"), "c");
}

#[test]
fn cache_installed_is_read_and_written_like_apk() {
    // apk-tools 2.14: with an active cache, `<cache>/installed` lists the installed packages
    // that no repository has (installed from a file, or virtual with no content); they are
    // installable from the cache, and the list is rewritten after the db.
    use ramboot::apk::build::IndexBuilder;
    use ramboot::apk::repo::cache_package_name;
    let f = Fixture::new();
    f.publish(vec![pkg("inrepo", "1").file(
        "usr/share/inrepo",
        b"r",
        0o644,
    )]);
    let local = pkg("local", "1.0-r0")
        .depends("inrepo")
        .file("usr/share/local", b"l", 0o644)
        .build(Some(key()))
        .unwrap();
    let virt = pkg(".virt", "20240101.000000")
        .depends("local")
        .build(None)
        .unwrap();
    assert_eq!(virt.info.installed_size, 0);
    let cache = f.dir.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(
        cache.join(cache_package_name(&local.info).unwrap()),
        &local.bytes,
    )
    .unwrap();
    let listed = IndexBuilder {
        packages: vec![local.info.clone(), virt.info.clone()],
        ..Default::default()
    }
    .text();
    std::fs::write(cache.join("installed"), &listed).unwrap();
    let mut req = f.request(&[".virt"]);
    req.cache_dir = Some(cache.clone());
    let r = install(&req, &RecordingSys::new("/")).unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert_eq!(names(&r), ["inrepo", "local", ".virt"]);
    assert_eq!(f.read("usr/share/local"), "l");
    // Rewritten: the same two records (sorted like the db), not the repository's package.
    let after = std::fs::read_to_string(cache.join("installed")).unwrap();
    assert_eq!(after, listed);
}

#[test]
fn repositories_d_lists_are_read() {
    // apk-tools 2.14 also reads etc/apk/repositories.d/*.list (other names are ignored).
    let f = Fixture::new();
    f.publish(vec![pkg("fromlist", "1").file("usr/share/l", b"l", 0o644)]);
    let d = f.root().join("etc/apk/repositories.d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("main.list"), format!("{}\n", f.repo().display())).unwrap();
    std::fs::write(d.join("ignored.txt"), "/nonexistent/repo\n").unwrap();
    let mut req = f.request(&["fromlist"]);
    req.repositories.clear();
    let r = install(&req, &RecordingSys::new("/")).unwrap();
    assert_eq!(names(&r), ["fromlist"]);
    assert!(r.repo_warnings.is_empty(), "{:?}", r.repo_warnings);
}

#[test]
fn initdb_skeleton() {
    let f = Fixture::new();
    f.publish(vec![]);
    let sys = RecordingSys::new("/");
    let r = install(&f.request(&[]), &sys).unwrap();
    assert!(r.installed.is_empty());
    assert_eq!(f.read("etc/apk/world"), "\n");
    assert_eq!(f.read("lib/apk/db/installed"), "");
    assert_eq!(f.read("lib/apk/db/triggers"), "");
    assert_eq!(
        std::fs::read(f.root().join("lib/apk/db/scripts.tar"))
            .unwrap()
            .len(),
        1024
    );
    assert_eq!(
        std::fs::metadata(f.root().join("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
    // apk runs with umask 0: its device nodes are 0666 whatever the caller's umask.
    for dev in ["null", "zero", "random", "urandom"] {
        assert_eq!(
            std::fs::metadata(f.root().join("dev").join(dev))
                .unwrap()
                .mode()
                & 0o7777,
            0o666,
            "dev/{dev}"
        );
    }
    assert_eq!(
        std::fs::metadata(f.root().join("lib/apk/db/lock"))
            .unwrap()
            .mode()
            & 0o7777,
        0o600
    );
    assert!(
        sys.trace()
            .iter()
            .any(|t| t.contains("mknod -m 600") && t.contains("dev/console c 5 1")),
        "{:?}",
        sys.trace()
    );
    assert_eq!(
        f.read("etc/apk/arch").trim(),
        ramboot::apk::build::default_arch()
    );
}

#[test]
fn cli_genkey_mkpkg_index_install() {
    use std::ffi::OsString;
    let f = Fixture::new();
    let d = f.dir.path();
    let args = |v: &[&str]| -> Vec<OsString> { v.iter().map(OsString::from).collect() };
    assert_eq!(
        ramboot::cli::apk::main_apk(&args(&[
            "genkey",
            "--out",
            d.join("k").to_str().unwrap(),
            "--name",
            "demo",
            "--bits",
            "1024"
        ])),
        0
    );
    let key = std::fs::read_dir(d.join("k"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "rsa"))
        .unwrap();
    let tree = d.join("tree");
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    std::fs::write(tree.join("bin/busybox"), b"\x7fELF fake").unwrap();
    std::os::unix::fs::symlink("busybox", tree.join("bin/sh")).unwrap();
    std::fs::write(d.join("post"), "#!/bin/sh\n/bin/busybox --install -s\n").unwrap();
    let arch = ramboot::apk::build::default_arch();
    let repo = d.join("clirepo").join(arch);
    std::fs::create_dir_all(&repo).unwrap();
    let apk = repo.join("busybox-1.36.1-r0.apk");
    let post = format!("post-install={}", d.join("post").display());
    assert_eq!(
        ramboot::cli::apk::main_apk(&args(&[
            "mkpkg",
            "--root",
            tree.to_str().unwrap(),
            "--name",
            "busybox",
            "--version",
            "1.36.1-r0",
            "--provides",
            "/bin/sh cmd:sh",
            "--priority",
            "100",
            "--script",
            &post,
            "--key",
            key.to_str().unwrap(),
            "--out",
            apk.to_str().unwrap(),
        ])),
        0
    );
    let index = repo.join("APKINDEX.tar.gz");
    assert_eq!(
        ramboot::cli::apk::main_apk(&args(&[
            "index",
            "--key",
            key.to_str().unwrap(),
            "--out",
            index.to_str().unwrap(),
            apk.to_str().unwrap()
        ])),
        0
    );
    let root = d.join("cliroot");
    let rc = ramboot::cli::apk::main_install(&args(&[
        "--root",
        root.to_str().unwrap(),
        "--initdb",
        "-X",
        d.join("clirepo").to_str().unwrap(),
        "--keys-dir",
        d.join("k").to_str().unwrap(),
        "--no-scripts",
        "--quiet",
        "cmd:sh",
    ]));
    assert_eq!(rc, 0);
    assert_eq!(
        std::fs::read_link(root.join("bin/sh")).unwrap().to_str(),
        Some("busybox")
    );
    assert!(std::fs::read_to_string(root.join("lib/apk/db/installed"))
        .unwrap()
        .contains("p:/bin/sh cmd:sh"));
    assert_eq!(
        std::fs::read_to_string(root.join("etc/apk/world")).unwrap(),
        "cmd:sh\n"
    );
    // Unknown options are usage errors.
    assert_eq!(
        ramboot::cli::apk::main_install(&args(&["--root", "x", "--bogus"])),
        99
    );
}

#[test]
fn files_that_fail_to_land_stay_in_the_db_like_apk() {
    // apk-tools 2.14 (`apk_db_install_archive_entry`) keeps a file it could not write in the
    // db: without `Z:` when its temporary file could not be created, with `Z:` when only the
    // rename into place failed. The directory is recorded even if creating it failed.
    let f = Fixture::new();
    f.publish(vec![
        pkg("alink", "1").symlink("usr/lib64", "lib"),
        pkg("bdir", "1")
            .depends("alink")
            .dir("usr/lib64", 0o755)
            .file("usr/lib64/x", b"x", 0o644),
    ]);
    let r = f.install(&["bdir"]);
    assert_eq!(r.broken.len(), 1, "{:?}", r.broken);
    let db = f.read("lib/apk/db/installed");
    let b = &db[db.find("P:bdir").unwrap()..];
    assert!(b.contains("\nf:f\nF:usr\nF:usr/lib64\nR:x\n\n"), "{db}");

    let f = Fixture::new();
    f.publish(vec![
        pkg("alink", "1")
            .depends("bdir")
            .symlink("usr/lib64", "lib"),
        pkg("bdir", "1")
            .dir("usr/lib64", 0o755)
            .file("usr/lib64/x", b"x", 0o644),
    ]);
    let r = f.install(&["alink"]);
    assert_eq!(r.broken.len(), 1, "{:?}", r.broken);
    let db = f.read("lib/apk/db/installed");
    let a = &db[db.find("P:alink").unwrap()..db.find("P:bdir").unwrap()];
    assert!(a.contains("\nf:f\nF:usr\nR:lib64\na:0:0:777\nZ:Q1"), "{db}");
    assert!(f.root().join("usr/lib64/x").is_file());
    // Unlike apk, no `.apk.*` temporary is left behind.
    let left: Vec<_> = std::fs::read_dir(f.root().join("usr"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".apk."))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_read_only_cache_medium_is_remounted_for_the_write_and_back() {
    // Bug fixed: with an lbu-style card (`etc/apk/cache -> /media/<dev>/cache`, the card mounted
    // read-only) every boot warned "writing …/cache/installed: Read-only file system". Like
    // apk, the medium is remounted read-write for the write, then back with its own flags.
    let f = Fixture::new();
    f.publish(vec![pkg("a", "1").file("a", b"a", 0o644)]);
    let media = f.dir.path().join("media/sda1");
    std::fs::create_dir_all(media.join("cache")).unwrap();
    std::fs::create_dir_all(f.root().join("etc/apk")).unwrap();
    std::os::unix::fs::symlink(media.join("cache"), f.root().join("etc/apk/cache")).unwrap();
    let sys = RecordingSys::new("/");
    use ramboot::sys::{MountFlags, Sys};
    let ro = MountFlags::RDONLY | MountFlags::NOEXEC;
    sys.mount("/dev/sda1", &media, "vfat", ro, "").unwrap();
    let r = install(&f.request(&["a"]), &sys).unwrap();
    assert_eq!(r.errors(), 0);
    let m = media.display();
    let remounts: Vec<String> = sys
        .trace()
        .into_iter()
        .filter(|l| l.contains("remount"))
        .collect();
    assert_eq!(
        remounts,
        [
            format!("mount -o remount,noexec {m}"),
            format!("mount -o remount,ro,noexec {m}")
        ]
    );
    assert!(std::fs::read_to_string(media.join("cache/installed"))
        .unwrap()
        .is_empty());
    // Back to read-only, as the double's mount table shows.
    let now = sys.mount_containing(&media.join("cache")).unwrap();
    assert_eq!((now.target, now.flags), (media.clone(), ro));

    // A medium that refuses to become writable (a locked card): no write, no remount back.
    let f2 = Fixture::new();
    f2.publish(vec![pkg("a", "1").file("a", b"a", 0o644)]);
    std::fs::create_dir_all(f2.root().join("etc/apk")).unwrap();
    std::os::unix::fs::symlink(media.join("cache"), f2.root().join("etc/apk/cache")).unwrap();
    std::fs::remove_file(media.join("cache/installed")).unwrap();
    sys.fail_on("remount,noexec", 13);
    let r = install(&f2.request(&["a"]), &sys).unwrap();
    assert_eq!(r.errors(), 0);
    assert!(!media.join("cache/installed").exists());
    assert_eq!(
        sys.trace().iter().filter(|l| l.contains("remount")).count(),
        3
    );
}
