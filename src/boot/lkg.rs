//! Last-known-good apkovl: a configuration that no longer boots must not lock the machine out.
//!
//! Each boot that applies an apkovl from a medium counts an attempt in a small text file beside
//! it ([`STATE_NAME`]) before handing off; a boot that reached its goal clears it (`ramboot ok`,
//! or service mode once every service is ready). When the apkovl about to be used already has
//! `tries` unconfirmed attempts, the boot takes the newest backup of the rotation
//! (`<host>.<YYYYmmddHHMMSS>.tar.gz`, what `lbu commit` and `ramboot commit` leave) instead and
//! says why. The file names the apkovl with its SHA-1, so a new commit starts a fresh count.
//!
//! Writes to the medium are atomic (temporary name, fsync, rename, fsync of the directory) and
//! the medium is made writable only for them, through [`Sys::remount`].

use crate::sys::{MountFlags, Sys};
use sha1::Digest;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The state file, at the top of the medium beside the apkovl.
pub const STATE_NAME: &str = "ramboot-attempts";

/// What the state file says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// The apkovl being tried (file name on the medium).
    pub apkovl: String,
    /// Its SHA-1, lowercase hex.
    pub sha1: String,
    /// Boots of it not confirmed good.
    pub attempts: u32,
    /// The apkovl the last boot applied: `apkovl`, or a backup when it fell back.
    pub booted: String,
}

impl State {
    pub fn parse(text: &str) -> Option<State> {
        let mut s = State::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once(' ') else {
                continue;
            };
            match k {
                "apkovl" => s.apkovl = v.to_string(),
                "sha1" => s.sha1 = v.to_string(),
                "attempts" => s.attempts = v.parse().ok()?,
                "booted" => s.booted = v.to_string(),
                _ => {}
            }
        }
        (!s.apkovl.is_empty()).then_some(s)
    }

    pub fn text(&self) -> String {
        format!(
            "# ramboot: boots of this apkovl not yet confirmed good (`ramboot ok`)\n\
             apkovl {}\nsha1 {}\nattempts {}\nbooted {}\n",
            self.apkovl, self.sha1, self.attempts, self.booted
        )
    }

    /// The last boot used a backup because `apkovl` kept failing.
    pub fn fell_back(&self) -> bool {
        self.booted != self.apkovl
    }

    /// Reads the state file of the medium directory `dir` (a host path).
    pub fn read(dir: &Path) -> Option<State> {
        State::parse(&fs::read_to_string(dir.join(STATE_NAME)).ok()?)
    }
}

/// SHA-1 of a file, lowercase hex.
pub fn file_sha1(path: &Path) -> io::Result<String> {
    let mut h = sha1::Sha1::new();
    h.update(fs::read(path)?);
    Ok(crate::apk::checksum::hex(&h.finalize()))
}

/// Whether `name` is a backup of `<host>.apkovl.tar.gz…` as lbu names them:
/// `<host>.<at least 5 digits>.tar.gz[.<cipher>]` (lbu's `<host>.[0-9][0-9][0-9][0-9]*[0-9].tar.gz*`).
pub fn is_backup_of(name: &str, host: &str) -> bool {
    let Some(rest) = name.strip_prefix(host).and_then(|r| r.strip_prefix('.')) else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits >= 5 && rest[digits..].starts_with(".tar.gz")
}

/// The host part of an apkovl name (`pi` of `pi.apkovl.tar.gz`).
pub fn host_of(apkovl_name: &str) -> Option<&str> {
    apkovl_name
        .find(".apkovl.tar.gz")
        .map(|i| &apkovl_name[..i])
}

/// The backups of `apkovl_name` in the host directory `dir`, oldest first (the timestamp in
/// the name orders them, as lbu's `ls` does).
pub fn backups(dir: &Path, apkovl_name: &str) -> Vec<String> {
    let Some(host) = host_of(apkovl_name) else {
        return Vec::new();
    };
    let mut out: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| is_backup_of(n, host))
                .collect()
        })
        .unwrap_or_default();
    crate::sys::sort::sort(&mut out);
    out
}

/// What the boot does with the apkovl it found.
#[derive(Debug, PartialEq, Eq)]
pub struct Choice {
    /// The apkovl to apply (the one found, or a backup).
    pub apply: PathBuf,
    /// Why it is a backup: the line for the console, the kernel log and the timeline.
    pub fell_back: Option<String>,
    /// The state to record before handing off.
    pub record: State,
}

/// Decides which apkovl to apply when `apkovl` (a guest path) was found and a boot may fail
/// `tries` times unconfirmed. `None` when the file cannot be read (the apkovl stage reports it).
pub fn choose(sys: &dyn Sys, apkovl: &Path, tries: u32) -> Option<Choice> {
    let host = sys.path(apkovl);
    let dir = host.parent()?;
    let name = host.file_name()?.to_str()?.to_string();
    let sha1 = file_sha1(&host).ok()?;
    let prior = State::read(dir).filter(|s| s.apkovl == name && s.sha1 == sha1);
    let attempts = prior.as_ref().map_or(0, |s| s.attempts);
    let mut record = State {
        apkovl: name.clone(),
        sha1,
        attempts,
        booted: name.clone(),
    };
    if attempts >= tries {
        let why = format!(
            "apkovl {name} booted {attempts} time(s) without being confirmed good (`ramboot ok`)"
        );
        match backups(dir, &name).pop() {
            Some(b) => {
                record.booted = b.clone();
                return Some(Choice {
                    apply: apkovl.with_file_name(&b),
                    fell_back: Some(format!("{why}: using the previous one, {b}")),
                    record,
                });
            }
            None => log::warn!("{why}, and there is no previous apkovl to fall back to"),
        }
    }
    record.attempts = attempts + 1;
    Some(Choice {
        apply: apkovl.to_path_buf(),
        fell_back: None,
        record,
    })
}

/// Writes `data` as `dir/name` (guest path `dir`) atomically: a temporary name, fsync, rename,
/// fsync of the directory; the mount holding it writable only meanwhile.
pub fn write_on_media(sys: &dyn Sys, dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
    with_writable(sys, dir, || {
        let host = sys.path(dir);
        let tmp = host.join(format!(".{name}.tmp"));
        let written = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
            fs::rename(&tmp, host.join(name))?;
            fs::File::open(&host)?.sync_all()
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    })
}

/// Removes `dir/name` (guest path `dir`), the mount writable only meanwhile.
pub fn remove_on_media(sys: &dyn Sys, dir: &Path, name: &str) -> io::Result<()> {
    with_writable(sys, dir, || {
        let host = sys.path(dir);
        fs::remove_file(host.join(name))?;
        fs::File::open(&host)?.sync_all()
    })
}

/// Serialises the writers of a medium (`ramboot commit`, `ramboot ok`, service mode's
/// confirmation): one's read-only remount must not land in the middle of another's write.
pub const MEDIUM_LOCK: &str = "/run/ramboot/medium.lock";

/// Takes [`MEDIUM_LOCK`] (waiting for the writer holding it); released when the file is closed
/// in every process that has it. `None` without `/run` (a host, a test): no one to wait for.
pub fn lock_medium(sys: &dyn Sys) -> Option<fs::File> {
    let path = sys.path(Path::new(MEDIUM_LOCK));
    if let Some(parent) = path.parent() {
        let _ = fs::create_dir_all(parent);
    }
    let f = fs::File::create(&path).ok()?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).ok()?;
    Some(f)
}

/// Runs `write` with the mount holding `dir` read-write and `sync`, as it was afterwards
/// (whatever `write` did), holding [`MEDIUM_LOCK`] meanwhile.
pub fn with_writable<T>(
    sys: &dyn Sys,
    dir: &Path,
    write: impl FnOnce() -> io::Result<T>,
) -> io::Result<T> {
    let _lock = lock_medium(sys);
    // `sync` for the write: FAT has no journal, and without it a rename's new directory entry
    // may reach the card before or after the FAT entries it depends on (a power cut then left
    // the name on freed clusters: found by the QEMU power-cut campaign). Not `dirsync`: a
    // remount cannot change it (it is not in the kernel's MS_RMT_MASK).
    let changed = sys.mount_containing(dir).ok().filter(|m| {
        m.flags.contains(MountFlags::RDONLY) || !m.flags.contains(MountFlags::SYNCHRONOUS)
    });
    if let Some(m) = &changed {
        let flags = (m.flags - MountFlags::RDONLY) | MountFlags::SYNCHRONOUS;
        sys.remount(&m.target, flags, "").map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot make {} writable: {e}", m.target.display()),
            )
        })?;
    }
    let result = write();
    if let Some(m) = &changed {
        if let Err(e) = sys.remount(&m.target, m.flags, "") {
            log::warn!("cannot remount {} as it was: {e}", m.target.display());
        }
    }
    result
}

/// Records the boot's attempt beside the apkovl (guest path `apkovl`).
pub fn record(sys: &dyn Sys, apkovl: &Path, state: &State) {
    let Some(dir) = apkovl.parent() else { return };
    if let Err(e) = write_on_media(sys, dir, STATE_NAME, state.text().as_bytes()) {
        log::warn!(
            "last-known-good: cannot record this boot's attempt in {}: {e}",
            dir.join(STATE_NAME).display()
        );
    }
}

/// `ramboot ok`: every medium mounted (from `/proc/mounts`) with a state file is told the
/// boot went well. Returns the lines to show (none when no medium has a record).
pub fn confirm(sys: &dyn Sys) -> Vec<String> {
    let mounts = fs::read_to_string(sys.path(Path::new("/proc/mounts"))).unwrap_or_default();
    let mut lines = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    for l in mounts.lines() {
        let Some(field) = l.split(' ').nth(1) else {
            continue;
        };
        let dir = crate::sys::unescape_mount_path(field);
        if seen.contains(&dir) {
            continue;
        }
        seen.push(dir.clone());
        let Some(state) = State::read(&sys.path(&dir)) else {
            continue;
        };
        lines.push(confirm_one(sys, &dir, &state));
    }
    lines
}

fn confirm_one(sys: &dyn Sys, dir: &Path, state: &State) -> String {
    let shown = dir.join(&state.booted);
    if state.fell_back() {
        return format!(
            "this boot used the previous apkovl {}: {} stays marked as failing until the next commit",
            shown.display(),
            state.apkovl
        );
    }
    match remove_on_media(sys, dir, STATE_NAME) {
        Ok(()) => format!("boot confirmed good: {}", shown.display()),
        Err(e) => format!("cannot clear {}: {e}", dir.join(STATE_NAME).display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::RecordingSys;

    /// A medium at /media/vda1 (read-only) with an apkovl and, when given, backups of it.
    fn medium(backups: &[&str]) -> (tempfile::TempDir, RecordingSys, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let media = d.path().join("media/vda1");
        fs::create_dir_all(&media).unwrap();
        fs::create_dir_all(d.path().join("proc")).unwrap();
        fs::write(
            d.path().join("proc/mounts"),
            "/dev/vda1 /media/vda1 vfat ro 0 0\n",
        )
        .unwrap();
        fs::write(media.join("pi.apkovl.tar.gz"), b"new").unwrap();
        for b in backups {
            fs::write(media.join(b), b"old").unwrap();
        }
        let sys = RecordingSys::new(d.path());
        (d, sys, PathBuf::from("/media/vda1/pi.apkovl.tar.gz"))
    }

    fn boot(sys: &RecordingSys, apkovl: &Path, tries: u32) -> Choice {
        let c = choose(sys, apkovl, tries).unwrap();
        record(sys, apkovl, &c.record);
        c
    }

    /// Issue 13 (3): each boot counts an attempt on the medium (made writable only for it);
    /// after `tries` unconfirmed boots the newest backup is applied and the reason given; the
    /// fall-back is stable until a commit changes the apkovl, which starts a new count.
    #[test]
    fn unconfirmed_boots_fall_back_to_the_newest_backup() {
        let (d, sys, apkovl) = medium(&["pi.20240101000000.tar.gz", "pi.20250101000000.tar.gz"]);
        let media = d.path().join("media/vda1");
        for n in 1..=2 {
            let c = boot(&sys, &apkovl, 2);
            assert_eq!(c.apply, apkovl);
            assert_eq!(c.fell_back, None);
            assert_eq!(State::read(&media).unwrap().attempts, n);
        }
        assert_eq!(
            sys.trace()[..2],
            [
                "mount -o remount,sync /media/vda1",
                "mount -o remount,ro /media/vda1"
            ]
        );
        for _ in 0..2 {
            let c = boot(&sys, &apkovl, 2);
            assert_eq!(
                c.apply,
                Path::new("/media/vda1/pi.20250101000000.tar.gz"),
                "the newest backup"
            );
            let why = c.fell_back.unwrap();
            assert!(why.contains("pi.apkovl.tar.gz booted 2 time(s)"), "{why}");
            assert!(why.contains("pi.20250101000000.tar.gz"), "{why}");
            let s = State::read(&media).unwrap();
            assert!(s.fell_back());
            assert_eq!(s.attempts, 2);
        }
        // `ramboot ok` on a fall-back boot keeps the failing apkovl marked.
        let lines = confirm(&sys);
        assert!(lines[0].contains("stays marked as failing"), "{lines:?}");
        assert!(media.join(STATE_NAME).exists());
        // A new commit: a new count.
        fs::write(media.join("pi.apkovl.tar.gz"), b"newer").unwrap();
        let c = boot(&sys, &apkovl, 2);
        assert_eq!((c.apply.as_path(), c.fell_back), (apkovl.as_path(), None));
        assert_eq!(State::read(&media).unwrap().attempts, 1);
        assert!(!media.read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")));
    }

    /// `ramboot ok` after a normal boot clears the record; without a backup the boot keeps the
    /// apkovl it found and says there is nothing to fall back to.
    #[test]
    fn a_confirmed_boot_clears_the_count_and_no_backup_means_no_fall_back() {
        let (d, sys, apkovl) = medium(&[]);
        let media = d.path().join("media/vda1");
        boot(&sys, &apkovl, 1);
        let lines = confirm(&sys);
        assert!(lines[0].starts_with("boot confirmed good"), "{lines:?}");
        assert!(!media.join(STATE_NAME).exists());
        assert!(confirm(&sys).is_empty());
        boot(&sys, &apkovl, 1);
        let c = boot(&sys, &apkovl, 1);
        assert_eq!((c.apply.as_path(), c.fell_back), (apkovl.as_path(), None));
        assert_eq!(State::read(&media).unwrap().attempts, 2);
    }

    #[test]
    fn backup_names_are_lbus() {
        assert!(is_backup_of("pi.20250101000000.tar.gz", "pi"));
        assert!(is_backup_of("pi.20250101000000.tar.gz.aes-256-cbc", "pi"));
        assert!(!is_backup_of("pi.apkovl.tar.gz", "pi"));
        assert!(!is_backup_of("pi.1234.tar.gz", "pi"));
        assert!(!is_backup_of("pi2.20250101000000.tar.gz", "pi"));
        assert!(!is_backup_of("pi.failed.tar.gz", "pi"));
    }
}
