//! The system set-up OpenRC's boot runlevel would otherwise do, minimal and fast: hostname,
//! loopback, sysctl, `/etc/modules`, fstab mounts and swap, cgroup2, the random seed, the
//! clock. Each step that fails says so in one warning line and the next one runs: a typo in
//! `/etc/sysctl.conf` must not keep the services from starting.
//!
//! Skipped as a whole, with one line, when the inittab runs `openrc`: its services do the same
//! and doing it twice would mount twice. Gettys need no step: without an inittab the
//! supervisor's default table (busybox's) gives the console and tty2..4 a shell, and the boot
//! adds a getty line for a serial console to the root's inittab as Alpine's initramfs does.

use crate::hw::modules::{ModuleLoader, Request};
use crate::hw::probe::{probe, Probe};
use crate::sys::{parse_mount_options, unescape_mount_path, MountFlags, Sys};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

/// Where sysctl.d files are read from, lowest precedence first (a name in a later directory
/// replaces the same name in an earlier one).
const SYSCTL_DIRS: [&str; 3] = ["/usr/lib/sysctl.d", "/run/sysctl.d", "/etc/sysctl.d"];
/// Seeds loaded into the kernel's pool: (file, credited). busybox seedrng's pair, then the
/// OpenRC urandom service's file.
const SEEDS: [(&str, bool); 3] = [
    ("/var/lib/seedrng/seed.credit", true),
    ("/var/lib/seedrng/seed.no-credit", false),
    ("/var/lib/misc/random-seed", false),
];
/// Files whose modification time bounds the clock from below when there is no RTC (OpenRC's
/// swclock keeps the first one up to date at shutdown, ramboot's shutdown the second).
const CLOCK_FILES: [&str; 3] = [
    "/lib/rc/cache/shutdowntime",
    SHUTDOWN_TIME,
    "/etc/apk/world",
];
/// Touched at shutdown when ramboot did the set-up: the clock of the next boot starts there.
const SHUTDOWN_TIME: &str = "/var/lib/ramboot/shutdowntime";
/// Where the seed for the next boot goes, as busybox seedrng keeps it.
const SEED_DIR: &str = "/var/lib/seedrng";

/// One step: `Err` carries the one-line reason.
type Step = fn(&dyn Sys) -> Result<(), String>;

/// Runs every step (or says why none runs), logging each line it returns: the skip note, or
/// one warning per failed step. `inittab` is the table the supervisor will read.
pub fn run(sys: &dyn Sys, inittab: &Path) -> Vec<String> {
    if inittab_runs_openrc(sys, inittab) {
        let line = format!(
            "system set-up skipped: {} runs openrc, which does it",
            inittab.display()
        );
        log::info!("{line}");
        return vec![line];
    }
    let mut lines = Vec::new();
    let steps: [(&str, Step); 8] = [
        ("hostname", hostname),
        ("loopback", loopback),
        ("sysctl", sysctl),
        ("modules", modules),
        ("fstab", fstab),
        ("cgroup2", cgroup2),
        ("random seed", random_seed),
        ("clock", clock),
    ];
    for (name, step) in steps {
        if let Err(why) = step(sys) {
            let line = format!("system set-up, {name}: {why}");
            log::warn!("{line}");
            lines.push(line);
        }
    }
    lines
}

fn read(sys: &dyn Sys, path: &str) -> Option<String> {
    std::fs::read_to_string(sys.path(Path::new(path))).ok()
}

/// Whether any entry of the table starts `openrc`.
pub fn inittab_runs_openrc(sys: &dyn Sys, inittab: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(sys.path(inittab)) else {
        return false;
    };
    let (table, _) = crate::supervise::inittab::Inittab::parse(&text);
    table.entries.iter().any(|e| {
        e.process
            .split_whitespace()
            .next()
            .and_then(|p| Path::new(p).file_name())
            .is_some_and(|n| n == "openrc")
    })
}

fn hostname(sys: &dyn Sys) -> Result<(), String> {
    let Some(text) = read(sys, "/etc/hostname") else {
        return Ok(());
    };
    let name = text.lines().next().unwrap_or("").trim();
    if name.is_empty() {
        return Ok(());
    }
    sys.set_hostname(name)
        .map_err(|e| format!("cannot set the hostname to {name}: {e}"))
}

fn loopback(sys: &dyn Sys) -> Result<(), String> {
    sys.link_up("lo")
        .map_err(|e| format!("cannot bring lo up: {e}"))
}

/// The sysctl files in the order they apply: every `*.conf` of `/usr/lib/sysctl.d`,
/// `/run/sysctl.d` and `/etc/sysctl.d` by file name (a name in a later directory hides the
/// earlier ones), then `/etc/sysctl.conf`.
pub fn sysctl_files(sys: &dyn Sys) -> Vec<PathBuf> {
    let mut by_name: std::collections::BTreeMap<String, PathBuf> = Default::default();
    for dir in SYSCTL_DIRS {
        let Ok(entries) = std::fs::read_dir(sys.path(Path::new(dir))) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".conf") {
                by_name.insert(name.clone(), Path::new(dir).join(name));
            }
        }
    }
    let mut files: Vec<PathBuf> = by_name.into_values().collect();
    files.push(PathBuf::from("/etc/sysctl.conf"));
    files
}

/// `key = value` lines (`#` and `;` comments; a leading `-` ignores a failure), applied in
/// order so a later file overrides an earlier one.
fn sysctl(sys: &dyn Sys) -> Result<(), String> {
    let mut failed = Vec::new();
    for file in sysctl_files(sys) {
        let Ok(text) = std::fs::read_to_string(sys.path(&file)) else {
            continue;
        };
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with(['#', ';']) {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                failed.push(format!("{}: not key = value: {line}", file.display()));
                continue;
            };
            let (key, quiet) = match key.trim().strip_prefix('-') {
                Some(k) => (k, true),
                None => (key.trim(), false),
            };
            let path = match key.contains('/') {
                true => key.to_string(),
                false => key.replace('.', "/"),
            };
            if let Err(e) = sys.write_sysctl(&path, value.trim()) {
                if !quiet {
                    failed.push(format!("{key}: {e}"));
                }
            }
        }
    }
    match failed.is_empty() {
        true => Ok(()),
        false => Err(failed.join("; ")),
    }
}

/// `/etc/modules`: one module (and its parameters) per line, through the native loader.
fn modules(sys: &dyn Sys) -> Result<(), String> {
    let Some(text) = read(sys, "/etc/modules") else {
        return Ok(());
    };
    let mut request = Request::default();
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        let Some(name) = words.next().filter(|w| !w.starts_with('#')) else {
            continue;
        };
        request.names.push(name.to_string());
        let params: Vec<String> = words.map(str::to_string).collect();
        if !params.is_empty() {
            request.params.insert(name.to_string(), params);
        }
    }
    if request.names.is_empty() {
        return Ok(());
    }
    let loader = ModuleLoader::open(sys).map_err(|e| e.to_string())?;
    let report = loader.load(&request);
    let mut problems: Vec<String> = report
        .failed
        .iter()
        .map(|(m, why)| format!("{m}: {why}"))
        .collect();
    problems.extend(report.not_found.iter().map(|m| format!("{m}: not found")));
    match problems.is_empty() {
        true => Ok(()),
        false => Err(format!("/etc/modules: {}", problems.join("; "))),
    }
}

/// One fstab line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FstabEntry {
    pub spec: String,
    pub target: PathBuf,
    pub fstype: String,
    pub options: String,
}

/// The entries of an fstab text, comments and short lines skipped.
pub fn parse_fstab(text: &str) -> Vec<FstabEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some(FstabEntry {
                spec: f.next()?.to_string(),
                target: unescape_mount_path(f.next()?),
                fstype: f.next()?.to_string(),
                options: f.next().unwrap_or("defaults").to_string(),
            })
        })
        .collect()
}

/// `mount -a` and `swapon -a`: every entry but `noauto` ones, the root, and targets already
/// mounted (the boot mounted them, or an earlier line did).
fn fstab(sys: &dyn Sys) -> Result<(), String> {
    let Some(text) = read(sys, "/etc/fstab") else {
        return Ok(());
    };
    let mut failed = Vec::new();
    for e in parse_fstab(&text) {
        let options: Vec<&str> = e.options.split(',').collect();
        if options.contains(&"noauto") || e.target == Path::new("/") {
            continue;
        }
        let result = if e.fstype == "swap" {
            resolve_spec(sys, &e.spec).and_then(|dev| {
                sys.swapon(&dev)
                    .map_err(|err| format!("swapon {}: {err}", dev.display()))
            })
        } else if mounted_targets(sys).contains(&e.target) {
            continue;
        } else {
            mount_entry(sys, &e)
        };
        if let Err(why) = result {
            failed.push(why);
        }
    }
    match failed.is_empty() {
        true => Ok(()),
        false => Err(failed.join("; ")),
    }
}

fn mount_entry(sys: &dyn Sys, e: &FstabEntry) -> Result<(), String> {
    let source = match e.spec.split_once('=') {
        Some(_) => resolve_spec(sys, &e.spec)?.display().to_string(),
        None => e.spec.clone(),
    };
    let (flags, data) = parse_mount_options(&e.options);
    sys.mount(&source, &e.target, &e.fstype, flags, &data)
        .map_err(|err| format!("mount {} on {}: {err}", e.spec, e.target.display()))
}

/// Mount points in `/proc/mounts`.
fn mounted_targets(sys: &dyn Sys) -> Vec<PathBuf> {
    read(sys, "/proc/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(unescape_mount_path))
        .collect()
}

/// A device path, or `UUID=`/`LABEL=` found by probing the block devices in `/sys/class/block`.
fn resolve_spec(sys: &dyn Sys, spec: &str) -> Result<PathBuf, String> {
    let wanted = |p: &Probe| match spec.split_once('=') {
        Some(("UUID", u)) => p.uuid.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(u)),
        Some(("LABEL", l)) => p.label.as_deref() == Some(l),
        _ => false,
    };
    if !spec.contains('=') {
        return Ok(PathBuf::from(spec));
    }
    let blocks = std::fs::read_dir(sys.path(Path::new("/sys/class/block")))
        .map_err(|e| format!("{spec}: cannot list block devices: {e}"))?;
    for b in blocks.flatten() {
        let dev = Path::new("/dev").join(b.file_name());
        let Ok(file) = std::fs::File::open(sys.path(&dev)) else {
            continue;
        };
        if probe(&file).is_some_and(|p| wanted(&p)) {
            return Ok(dev);
        }
    }
    Err(format!("{spec}: no such device"))
}

/// cgroup v2 at `/sys/fs/cgroup` (what container runtimes expect), unless something is there.
fn cgroup2(sys: &dyn Sys) -> Result<(), String> {
    let target = Path::new("/sys/fs/cgroup");
    if mounted_targets(sys).iter().any(|t| t == target) {
        return Ok(());
    }
    if !sys.path(target).is_dir() {
        return Err("/sys/fs/cgroup is missing (no sysfs, or a kernel without cgroups)".into());
    }
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    sys.mount("cgroup2", target, "cgroup2", flags, "nsdelegate")
        .map_err(|e| format!("mount cgroup2 on /sys/fs/cgroup: {e}"))
}

/// Seeds from the last boot into the pool, each removed once used (a seed is never used twice;
/// a new one is saved at shutdown: [`save_state`], or OpenRC's seedrng service).
fn random_seed(sys: &dyn Sys) -> Result<(), String> {
    let mut failed = Vec::new();
    for (file, credit) in SEEDS {
        let path = sys.path(Path::new(file));
        let Ok(seed) = std::fs::read(&path) else {
            continue;
        };
        if seed.is_empty() {
            continue;
        }
        let bits = if credit { seed.len() as u32 * 8 } else { 0 };
        match sys.add_entropy(&seed, bits) {
            Ok(()) => {
                let _ = std::fs::remove_file(&path);
            }
            Err(e) => failed.push(format!("{file}: {e}")),
        }
    }
    match failed.is_empty() {
        true => Ok(()),
        false => Err(failed.join("; ")),
    }
}

/// With an RTC the kernel set the clock at boot (`hctosys`). Without one, swclock: the clock
/// is moved forward to the newest of [`CLOCK_FILES`]' times when it is behind it.
fn clock(sys: &dyn Sys) -> Result<(), String> {
    if sys.path(Path::new("/dev/rtc0")).exists() || sys.path(Path::new("/dev/rtc")).exists() {
        return Ok(());
    }
    let newest = CLOCK_FILES
        .iter()
        .filter_map(|f| std::fs::metadata(sys.path(Path::new(f))).ok())
        .filter_map(|m| m.modified().ok())
        .filter_map(|t| t.duration_since(UNIX_EPOCH).ok())
        .max();
    let Some(at) = newest else {
        return Ok(());
    };
    if sys.wall_clock() >= at {
        return Ok(());
    }
    let at = Duration::from_secs(at.as_secs());
    sys.set_wall_clock(at)
        .map_err(|e| format!("cannot set the clock forward to {} s: {e}", at.as_secs()))
}

/// What the shutdown keeps for the next boot when ramboot did the set-up (OpenRC's shutdown
/// does it otherwise): a fresh random seed and the shutdown time for swclock. Returns one line
/// per failure; a read-only root keeps nothing and says nothing.
pub fn save_state(sys: &dyn Sys) -> Vec<String> {
    let mut lines = Vec::new();
    let results = [
        ("random seed", save_seed(sys)),
        ("shutdown time", stamp_shutdown_time(sys)),
    ];
    for (what, result) in results {
        match result {
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::ROFS.raw_os_error()) => {}
            Err(e) => lines.push(format!("cannot save the {what} for the next boot: {e}")),
            Ok(()) => {}
        }
    }
    lines
}

/// A new seed of the pool's size (32 to 512 bytes, as seedrng sizes it), credited at the next
/// boot only when the pool was initialised when it was drawn. Written whole or not at all.
fn save_seed(sys: &dyn Sys) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let bits = read(sys, "/proc/sys/kernel/random/poolsize")
        .and_then(|t| t.trim().parse::<usize>().ok())
        .unwrap_or(2048);
    let mut seed = vec![0; (bits / 8).clamp(32, 512)];
    let credit = fill_random(sys, &mut seed)?;
    let dir = sys.path(Path::new(SEED_DIR));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    let name = if credit {
        "seed.credit"
    } else {
        "seed.no-credit"
    };
    let tmp = dir.join(format!(".{name}.new"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&seed)?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))
}

/// Random bytes without blocking; true when the kernel's pool was initialised (seedrng's test
/// for a creditable seed), else they come from `/dev/urandom`, uncredited.
fn fill_random(sys: &dyn Sys, buf: &mut [u8]) -> std::io::Result<bool> {
    use rustix::rand::{getrandom, GetRandomFlags};
    if getrandom(&mut *buf, GetRandomFlags::NONBLOCK).is_ok_and(|n| n == buf.len()) {
        return Ok(true);
    }
    use std::io::Read;
    std::fs::File::open(sys.path(Path::new("/dev/urandom")))?.read_exact(buf)?;
    Ok(false)
}

fn stamp_shutdown_time(sys: &dyn Sys) -> std::io::Result<()> {
    let path = sys.path(Path::new(SHUTDOWN_TIME));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::File::create(&path)?.set_modified(std::time::SystemTime::now())
}
