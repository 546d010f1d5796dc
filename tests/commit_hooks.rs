//! `ramboot commit` runs lbu's hooks as `lbu commit` does (issue 13, point 1): the
//! executables of `/etc/lbu/pre-package.d` before the files are selected, those of
//! `post-package.d` after the apkovl is on the (still writable) medium; busybox run-parts'
//! choice of names and order; a failing pre hook stops the commit, a failing post hook does
//! not; `--dry-run` and `diff` run them too. The hooks are real shell scripts run by a static
//! busybox, chrooted into a fixture root through the recording double's `ChrootRuns::Execute`
//! (needs root for chroot).
// Tests build fixtures: the system boundary lint is for the library.
#![allow(clippy::disallowed_methods)]

mod support;

use ramboot::commit::hooks::{HookRun, Outcome};
use ramboot::commit::{self, CommitError, Request};
use ramboot::sys::{Call, ChrootRuns, RecordingSys};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use support::tools;

fn write(root: &Path, rel: &str, data: &str, mode: u32) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, data).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

/// This machine's static busybox (package busybox-static, installed by qemu/setup-host.sh).
fn host_busybox() -> Vec<u8> {
    let found = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .filter_map(|p| fs::read(p).ok())
        .find(|b| ramboot::elf::parse(b).is_ok_and(|i| i.interpreter.is_none()));
    match found {
        Some(b) => b,
        None => panic!("no static busybox: run qemu/setup-host.sh (package busybox-static)"),
    }
}

/// One test at a time: a file being written for one test (a hook, busybox) is open in the
/// children another test forks until they exec, and exec'ing it then fails with ETXTBSY.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A system in `d/root` with an apk database, a static busybox as `/bin/sh`, and its boot
/// medium mounted read-only at `/media/vda1` inside it (so hooks see it); the double stands
/// in for `/` at `d` and really runs what is chrooted.
struct System {
    _serial: std::sync::MutexGuard<'static, ()>,
    _dir: tempfile::TempDir,
    root: PathBuf,
    media: PathBuf,
    sys: RecordingSys,
}

impl System {
    fn new() -> Option<System> {
        if !tools::root("chroot (the hooks run chrooted into the fixture root)") {
            return None;
        }
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        write(
            &root,
            "lib/apk/db/installed",
            "P:alpine-baselayout\nV:1-r0\nA:x86_64\n\n",
            0o644,
        );
        write(&root, "etc/hostname", "pi\n", 0o644);
        write(&root, "etc/apk/world", "alpine-base\n", 0o644);
        let bb = root.join("bin/busybox");
        fs::create_dir_all(bb.parent().unwrap()).unwrap();
        fs::write(&bb, host_busybox()).unwrap();
        fs::set_permissions(&bb, fs::Permissions::from_mode(0o755)).unwrap();
        symlink("busybox", root.join("bin/sh")).unwrap();
        let media = root.join("media/vda1");
        fs::create_dir_all(&media).unwrap();
        write(
            d.path(),
            "proc/mounts",
            "/dev/vda1 /root/media/vda1 vfat ro,relatime 0 0\n",
            0o644,
        );
        let sys = RecordingSys::new(d.path()).with_chroot_runs(ChrootRuns::Execute);
        Some(System {
            _serial: serial,
            _dir: d,
            root,
            media,
            sys,
        })
    }

    fn request(&self) -> Request {
        Request {
            root: self.root.clone(),
            media: Some("/root/media/vda1".into()),
            hostname: Some("pi".into()),
            ..Default::default()
        }
    }

    fn hook(&self, dir: &str, name: &str, body: &str) {
        write(
            &self.root,
            &format!("etc/lbu/{dir}/{name}"),
            &format!("#!/bin/sh\n{body}\n"),
            0o755,
        );
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.root.join(rel)).unwrap_or_default()
    }

    fn apkovl(&self) -> PathBuf {
        self.media.join("pi.apkovl.tar.gz")
    }
}

fn archived(apkovl: &Path) -> Vec<String> {
    commit::read_entries(&fs::read(apkovl).unwrap())
        .unwrap()
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

fn hooks_of(runs: &[HookRun]) -> Vec<String> {
    runs.iter().map(|r| r.hook.display().to_string()).collect()
}

/// A pre hook runs before the selection: what it writes under /etc is in the apkovl. A post
/// hook runs after the apkovl is on the medium, while the medium is still writable (lbu's
/// `cmd_package` runs it before `cmd_commit` syncs and remounts): it sees the new apkovl.
#[test]
fn the_pre_hook_feeds_the_selection_and_the_post_hook_sees_the_new_apkovl() {
    let Some(s) = System::new() else { return };
    s.hook("pre-package.d", "10-dump", "echo dumped > /etc/dumped.conf");
    s.hook(
        "post-package.d",
        "10-copy",
        "/bin/busybox cp /media/vda1/pi.apkovl.tar.gz /post-saw.tar.gz",
    );
    let report = commit::commit(&s.sys, &s.request()).unwrap();
    assert!(
        archived(&s.apkovl()).contains(&"etc/dumped.conf".to_string()),
        "{:?}",
        archived(&s.apkovl())
    );
    assert_eq!(
        fs::read(s.root.join("post-saw.tar.gz")).unwrap(),
        fs::read(s.apkovl()).unwrap(),
        "the post hook saw the apkovl just written"
    );
    assert_eq!(
        hooks_of(&report.hooks),
        [
            "/etc/lbu/pre-package.d/10-dump",
            "/etc/lbu/post-package.d/10-copy"
        ]
    );
    assert!(report.hooks.iter().all(|r| r.outcome == Outcome::Done));
    // lbu's `run-parts … >&2`: a hook's stdout is the command's stderr.
    let placed: Vec<_> = s
        .sys
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Run { spawn } => Some(spawn.fds),
            _ => None,
        })
        .collect();
    assert_eq!(placed, [vec![(2, 1)], vec![(2, 1)]]);
    assert_eq!(
        s.sys.trace(),
        [
            "chroot /root /etc/lbu/pre-package.d/10-dump",
            "mount -o remount,sync,relatime /root/media/vda1",
            "chroot /root /etc/lbu/post-package.d/10-copy",
            "mount -o remount,ro,relatime /root/media/vda1",
        ]
    );
}

/// lbu's `cmd_commit` removes the backups beyond `BACKUP_LIMIT` only after `cmd_package`
/// returned, post hooks included: they see the old copies still there.
#[test]
fn post_hooks_run_before_the_rotation() {
    let Some(s) = System::new() else { return };
    write(&s.root, "etc/lbu/lbu.conf", "BACKUP_LIMIT=1\n", 0o644);
    fs::write(s.media.join("pi.20200101000000.tar.gz"), b"oldest").unwrap();
    fs::write(s.apkovl(), b"previous").unwrap();
    s.hook(
        "post-package.d",
        "10-list",
        "/bin/busybox ls /media/vda1 > /post-saw",
    );
    let report = commit::commit(&s.sys, &s.request()).unwrap();
    let backup = report.backup.unwrap();
    assert_eq!(
        s.read("post-saw"),
        format!("pi.20200101000000.tar.gz\n{backup}\npi.apkovl.tar.gz\n")
    );
    assert_eq!(report.removed, ["pi.20200101000000.tar.gz"]);
}

/// busybox run-parts' choice: names without a leading dot made of letters, digits, `_`, `-`
/// and `.` (`10-a.sh` runs), regular files (symlinks followed, inside the root) with an
/// execute bit; byte order; no arguments; umask 022.
#[test]
fn hooks_are_the_files_busybox_run_parts_runs_in_its_order() {
    let Some(s) = System::new() else { return };
    let log = "echo \"${0##*/} $# $(umask)\" >> /ran";
    for name in [
        "20-b", "10-a.sh", "B-upper", "a_lower", ".hidden", "bad~name",
    ] {
        s.hook("pre-package.d", name, log);
    }
    write(
        &s.root,
        "etc/lbu/pre-package.d/30-not-executable",
        &format!("#!/bin/sh\n{log}\n"),
        0o644,
    );
    fs::create_dir_all(s.root.join("etc/lbu/pre-package.d/40-directory")).unwrap();
    // An absolute link resolves inside the root, as it does for the chrooted hook.
    write(
        &s.root,
        "usr/lib/hooks/linked",
        &format!("#!/bin/sh\n{log}\n"),
        0o755,
    );
    symlink(
        "/usr/lib/hooks/linked",
        s.root.join("etc/lbu/pre-package.d/50-link"),
    )
    .unwrap();
    symlink("/nowhere", s.root.join("etc/lbu/pre-package.d/60-dangling")).unwrap();
    let report = commit::commit(&s.sys, &s.request()).unwrap();
    let want = ["10-a.sh", "20-b", "50-link", "B-upper", "a_lower"];
    assert_eq!(
        hooks_of(&report.hooks),
        want.map(|n| format!("/etc/lbu/pre-package.d/{n}"))
    );
    let ran: String = want.iter().map(|n| format!("{n} 0 0022\n")).collect();
    assert_eq!(s.read("ran"), ran);
}

/// lbu: `run-parts pre-package.d || return 1` makes `cmd_commit` restore the old apkovl and
/// die, after run-parts ran every hook; post hooks do not run then. A failing post hook is
/// reported and the commit stands (lbu ignores its status). Each failure names the hook and
/// its status.
#[test]
fn a_failing_pre_hook_stops_the_commit_and_a_failing_post_hook_does_not() {
    let Some(s) = System::new() else { return };
    fs::write(s.apkovl(), b"the old apkovl").unwrap();
    s.hook("pre-package.d", "10-fails", "exit 3");
    s.hook("pre-package.d", "20-runs-anyway", "echo > /etc/second.conf");
    s.hook("post-package.d", "10-post", "echo > /post-ran");
    let mut seen = Vec::new();
    let err =
        commit::commit_with(&s.sys, &s.request(), &mut |r| seen.push(r.to_string())).unwrap_err();
    assert_eq!(
        seen,
        [
            "hook \"/etc/lbu/pre-package.d/10-fails\": exit status 3",
            "hook \"/etc/lbu/pre-package.d/20-runs-anyway\": done"
        ]
    );
    let CommitError::PreHook { failed } = &err else {
        panic!("{err}")
    };
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].outcome, Outcome::Failed(3));
    assert!(err.to_string().contains("nothing was committed"), "{err}");
    assert!(s.root.join("etc/second.conf").exists(), "run-parts goes on");
    assert!(
        !s.root.join("post-ran").exists(),
        "no post hooks after a failed pre hook"
    );
    assert_eq!(fs::read(s.apkovl()).unwrap(), b"the old apkovl");
    assert_eq!(fs::read_dir(&s.media).unwrap().count(), 1);
    assert!(
        !s.sys.trace().iter().any(|l| l.starts_with("mount")),
        "{:?}",
        s.sys.trace()
    );

    fs::remove_file(s.root.join("etc/lbu/pre-package.d/10-fails")).unwrap();
    s.hook("post-package.d", "20-post-fails", "exit 5");
    let mut seen = Vec::new();
    let report =
        commit::commit_with(&s.sys, &s.request(), &mut |r| seen.push(r.to_string())).unwrap();
    assert_eq!(
        seen.last().unwrap(),
        "hook \"/etc/lbu/post-package.d/20-post-fails\": exit status 5"
    );
    assert_eq!(report.hooks.last().unwrap().outcome, Outcome::Failed(5));
    assert!(report.backup.is_some());
    assert!(archived(&s.apkovl()).contains(&"etc/second.conf".to_string()));
}

/// lbu runs the post hooks whatever became of the archive (a hook that restarts what a pre
/// hook stopped must run): here the medium cannot be made writable.
#[test]
fn post_hooks_run_after_a_failed_write() {
    let Some(s) = System::new() else { return };
    s.hook("post-package.d", "10-post", "echo > /post-ran");
    s.sys.fail_on("remount,sync", libc_eio());
    let err = commit::commit(&s.sys, &s.request()).unwrap_err();
    assert!(matches!(err, CommitError::Write { .. }), "{err}");
    assert!(s.root.join("post-ran").exists());
    assert!(!s.apkovl().exists());
}

fn libc_eio() -> i32 {
    rustix::io::Errno::IO.raw_os_error()
}

/// `lbu commit -n` runs both hook directories (only the copy to the medium is skipped), and
/// `lbu status`/`lbu diff` run them through `cmd_package -`: so do `--dry-run` and `diff`.
#[test]
fn dry_run_and_diff_run_the_hooks_as_lbu_does() {
    let Some(s) = System::new() else { return };
    s.hook("pre-package.d", "10-pre", "echo pre >> /etc/pre.log");
    s.hook("post-package.d", "10-post", "echo post >> /post.log");
    let dry = Request {
        dry_run: true,
        ..s.request()
    };
    let report = commit::commit(&s.sys, &dry).unwrap();
    assert_eq!(report.hooks.len(), 2);
    assert!(report
        .selection
        .files
        .iter()
        .any(|f| f.path == "etc/pre.log"));
    assert_eq!(s.read("post.log"), "post\n");
    assert_eq!(
        fs::read_dir(&s.media).unwrap().count(),
        0,
        "a dry run writes nothing"
    );

    let diff = commit::diff_since_last(&s.sys, &s.request(), &mut |_| {}).unwrap();
    assert_eq!(diff.last, None);
    assert_eq!(hooks_of(&diff.hooks).len(), 2);
    assert_eq!(s.read("etc/pre.log"), "pre\npre\n");
    assert_eq!(s.read("post.log"), "post\npost\n");

    commit::commit(&s.sys, &s.request()).unwrap();
    let diff = commit::diff_since_last(&s.sys, &s.request(), &mut |_| {}).unwrap();
    assert_eq!(
        diff.changes
            .iter()
            .map(|c| format!("{} {}", c.letter, c.path))
            .collect::<Vec<_>>(),
        ["U etc/pre.log"],
        "the pre hook ran again before the diff's selection"
    );
}
