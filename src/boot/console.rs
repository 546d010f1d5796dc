//! Boot messages: on the console in OpenRC's style (` * Loading boot drivers ... ok`) and in the
//! kernel log with a `ramboot:` prefix, so `dmesg` after boot tells the same story.
//!
//! `quiet` keeps the console to warnings and errors; the kernel log always gets everything.
//! `debug_init` adds debug lines. The logger is the `log` crate's global logger, so the library
//! modules (apk, hw, media) report through it without knowing about consoles.
//!
//! Each line reaches the console once: the kernel echoes a `/dev/kmsg` record to the console when
//! its level is below `console_loglevel` (7 by default, 4 with `quiet`), so the kernel-log copy
//! of a line is written at a level the console does not show (see [`kmsg_level`]).
//!
//! The logger must never wait on itself: nothing under its lock logs, and the panic hook goes
//! through [`report_panic`], which falls back to raw writes when the lock is taken.

use std::fs::File;
use std::io::Write;
use std::os::fd::{BorrowedFd, IntoRawFd};
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::sync::Mutex;

/// The kernel caps a `/dev/kmsg` record at about 1 KiB; longer lines are cut (on a character
/// boundary) to this many bytes.
const KMSG_MAX: usize = 1000;

/// `console_loglevel` when `/proc/sys/kernel/printk` cannot be read: the kernel's default.
pub const DEFAULT_CONSOLE_LOGLEVEL: u8 = 7;

struct Sinks {
    console: Box<dyn Write + Send>,
    kmsg: Option<File>,
    /// The kernel's `console_loglevel`: kernel-log copies are written at this level or above.
    console_loglevel: u8,
    quiet: bool,
    /// An `ebegin` line waiting for its `eend`.
    open_line: bool,
    /// Lines said before the kernel log was attached (the mode line of PID 1, the first
    /// stage's), written to it on attach: nothing said is missing from the kernel log.
    pending: Vec<(u8, String)>,
}

/// At most this many lines wait for the kernel log.
const PENDING_LINES: usize = 64;

/// The global boot logger.
pub struct BootLogger {
    sinks: Mutex<Option<Sinks>>,
}

static LOGGER: BootLogger = BootLogger {
    sinks: Mutex::new(None),
};

/// Installs the logger writing to `console` (and `/dev/kmsg` once [`attach_kmsg`] is called).
pub fn init(console: Box<dyn Write + Send>, quiet: bool, debug: bool) {
    *lock() = Some(Sinks {
        console,
        kmsg: None,
        console_loglevel: DEFAULT_CONSOLE_LOGLEVEL,
        quiet,
        open_line: false,
        pending: Vec::new(),
    });
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(if debug {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    });
}

/// Changes verbosity once the command line is known.
pub fn configure(quiet: bool, debug: bool) {
    if let Some(s) = lock().as_mut() {
        s.quiet = quiet;
    }
    log::set_max_level(if debug {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    });
}

/// Starts mirroring messages to the kernel log. `console_loglevel` is the first field of
/// `/proc/sys/kernel/printk`: records below it are echoed to the console by the kernel.
pub fn attach_kmsg(kmsg: File, console_loglevel: u8) {
    // A second descriptor for the panic path, which must not take the lock. It stays open for
    // the life of the process (a boot attaches once), so the raw number never goes stale.
    if let Ok(spare) = kmsg.try_clone() {
        emergency()
            .kmsg
            .store(spare.into_raw_fd(), Ordering::Relaxed);
    }
    emergency()
        .console_loglevel
        .store(console_loglevel, Ordering::Relaxed);
    if let Some(s) = lock().as_mut() {
        s.kmsg = Some(kmsg);
        s.console_loglevel = console_loglevel;
        for (level, text) in std::mem::take(&mut s.pending) {
            kmsg_line(s, level, &text);
        }
    }
}

/// The kernel's `console_loglevel` from the text of `/proc/sys/kernel/printk`.
pub fn parse_console_loglevel(printk: &str) -> Option<u8> {
    printk.split_whitespace().next()?.parse().ok()
}

/// Replaces the console stream (after `/dev/console` is opened, or after switch_root).
pub fn set_console(console: Box<dyn Write + Send>) {
    if let Some(s) = lock().as_mut() {
        s.console = console;
        s.open_line = false;
    }
}

#[cfg(not(test))]
fn lock() -> std::sync::MutexGuard<'static, Option<Sinks>> {
    LOGGER.sinks.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(not(test))]
fn try_lock() -> Option<std::sync::MutexGuard<'static, Option<Sinks>>> {
    try_guard(&LOGGER.sinks)
}

/// The lock unless someone holds it (this thread included): never waits.
fn try_guard<T>(m: &Mutex<T>) -> Option<std::sync::MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

// Unit tests run in parallel threads: each test thread gets its own console, so one test's
// lines never land in another's capture.
#[cfg(test)]
thread_local! {
    static TEST_SINKS: &'static Mutex<Option<Sinks>> = Box::leak(Box::new(Mutex::new(None)));
}

#[cfg(test)]
fn lock() -> std::sync::MutexGuard<'static, Option<Sinks>> {
    let _ = &LOGGER.sinks;
    TEST_SINKS
        .with(|m| *m)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
fn try_lock() -> Option<std::sync::MutexGuard<'static, Option<Sinks>>> {
    try_guard(TEST_SINKS.with(|m| *m))
}

/// What [`report_panic`] needs without the lock: a kernel-log descriptor of its own (-1: none)
/// and the console log level.
struct Emergency {
    kmsg: AtomicI32,
    console_loglevel: AtomicU8,
}

#[cfg(not(test))]
fn emergency() -> &'static Emergency {
    static EMERGENCY: Emergency = Emergency {
        kmsg: AtomicI32::new(-1),
        console_loglevel: AtomicU8::new(DEFAULT_CONSOLE_LOGLEVEL),
    };
    &EMERGENCY
}

#[cfg(test)]
thread_local! {
    static TEST_EMERGENCY: &'static Emergency = Box::leak(Box::new(Emergency {
        kmsg: AtomicI32::new(-1),
        console_loglevel: AtomicU8::new(DEFAULT_CONSOLE_LOGLEVEL),
    }));
}

#[cfg(test)]
fn emergency() -> &'static Emergency {
    TEST_EMERGENCY.with(|e| *e)
}

/// The level a kernel-log copy is written at: the line's own level, raised to the lowest level
/// the console does not show (`console_loglevel`), so the kernel never echoes a line the logger
/// prints itself. Capped at 7 (debug): with `loglevel=8` or more every level is echoed.
pub fn kmsg_level(level: u8, console_loglevel: u8) -> u8 {
    level.max(console_loglevel).min(7)
}

/// One `/dev/kmsg` record: `<level>ramboot: text`, cut on a character boundary to fit.
fn kmsg_record(level: u8, text: &str) -> String {
    let text = text.strip_prefix("ramboot: ").unwrap_or(text);
    let mut line = format!("<{level}>ramboot: {text}");
    truncate_on_char_boundary(&mut line, KMSG_MAX);
    line.push('\n');
    line
}

/// `String::truncate` that backs off to the previous character boundary instead of panicking.
fn truncate_on_char_boundary(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

fn kmsg_line(s: &mut Sinks, level: u8, text: &str) {
    let Some(k) = s.kmsg.as_mut() else {
        if s.pending.len() < PENDING_LINES {
            s.pending.push((level, text.to_string()));
        }
        return;
    };
    // One write is one record.
    let _ = k.write_all(kmsg_record(kmsg_level(level, s.console_loglevel), text).as_bytes());
}

/// Reports a panic from the panic hook. It never waits for the logger lock: when the lock is
/// taken (the panic happened inside the logger, or another thread holds it), the line goes
/// straight to the console (standard output) and the kernel log with one raw write each.
pub fn report_panic(text: &str) {
    if let Some(mut g) = try_lock() {
        if let Some(s) = g.as_mut() {
            kmsg_line(s, 3, text);
            if s.open_line {
                let _ = writeln!(s.console);
                s.open_line = false;
            }
            let _ = writeln!(s.console, " * ERROR: {text}");
            let _ = s.console.flush();
            return;
        }
    }
    // Raw writes: std's stdout is itself behind a lock that the panicking code may hold.
    let _ = rustix::io::write(
        rustix::stdio::stdout(),
        format!(" * ERROR: {text}\n").as_bytes(),
    );
    let e = emergency();
    let fd = e.kmsg.load(Ordering::Relaxed);
    if fd >= 0 {
        let level = kmsg_level(3, e.console_loglevel.load(Ordering::Relaxed));
        // SAFETY: `fd` was duplicated by `attach_kmsg` for this path and is never closed.
        let kmsg = unsafe { BorrowedFd::borrow_raw(fd) };
        let _ = rustix::io::write(kmsg, kmsg_record(level, text).as_bytes());
    }
}

/// ` * Loading boot drivers ...` (completed by [`eend`]).
pub fn ebegin(what: &str) {
    let mut g = lock();
    let Some(s) = g.as_mut() else { return };
    kmsg_line(s, 6, &format!("{what} ..."));
    if !s.quiet {
        if s.open_line {
            let _ = writeln!(s.console);
        }
        let _ = write!(s.console, " * {what} ...");
        let _ = s.console.flush();
        s.open_line = true;
    }
}

/// Completes the line [`ebegin`] started: ` ok` or ` failed: reason`.
pub fn eend(result: Result<(), &str>) {
    let mut g = lock();
    let Some(s) = g.as_mut() else { return };
    match result {
        Ok(()) => {
            if s.open_line {
                let _ = writeln!(s.console, " ok");
            }
        }
        Err(why) => {
            kmsg_line(s, 3, &format!("failed: {why}"));
            if s.open_line {
                let _ = writeln!(s.console, " failed: {why}");
            } else {
                let _ = writeln!(s.console, " * failed: {why}");
            }
        }
    }
    let _ = s.console.flush();
    s.open_line = false;
}

/// A line for the console even under `quiet` (the handoff summary, the rescue banner).
pub fn announce(text: &str) {
    let mut g = lock();
    let Some(s) = g.as_mut() else { return };
    kmsg_line(s, 5, text);
    if s.open_line {
        let _ = writeln!(s.console);
        s.open_line = false;
    }
    let _ = writeln!(s.console, "{text}");
    let _ = s.console.flush();
}

impl log::Log for BootLogger {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        meta.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let text = record.args().to_string();
        let mut g = lock();
        let Some(s) = g.as_mut() else { return };
        let (level, prefix, always) = match record.level() {
            log::Level::Error => (3, " * ERROR: ", true),
            log::Level::Warn => (4, " * WARNING: ", true),
            log::Level::Info => (6, " * ", false),
            log::Level::Debug | log::Level::Trace => (7, "   debug: ", false),
        };
        kmsg_line(s, level, &text);
        if always || !s.quiet {
            if s.open_line {
                let _ = writeln!(s.console);
                s.open_line = false;
            }
            let _ = writeln!(s.console, "{prefix}{text}");
            let _ = s.console.flush();
        }
    }

    fn flush(&self) {
        if let Some(s) = lock().as_mut() {
            let _ = s.console.flush();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;

    /// A console that tests can read back.
    #[derive(Clone, Default)]
    pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

    impl Captured {
        /// What was written so far.
        pub fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A long message with a multi-byte character across the 1000-byte cut used to panic PID 1.
    #[test]
    fn kmsg_records_are_cut_between_characters() {
        let text = format!("{}é tail", "x".repeat(1000 - "<4>ramboot: ".len() - 1));
        let line = kmsg_record(4, &text);
        assert_eq!(line.len(), 1000);
        assert!(line.ends_with("x\n"));
    }

    #[test]
    fn openrc_style_lines_and_quiet() {
        let out = Captured::default();
        init(Box::new(out.clone()), false, false);
        ebegin("Loading boot drivers");
        eend(Ok(()));
        ebegin("Mounting root");
        log::warn!("slow disk");
        eend(Err("no such device"));
        configure(true, false);
        ebegin("hidden");
        eend(Ok(()));
        log::info!("hidden too");
        log::error!("shown");
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            " * Loading boot drivers ... ok\n * Mounting root ...\n * WARNING: slow disk\n * failed: no such device\n * ERROR: shown\n"
        );
    }

    fn kmsg_file(dir: &std::path::Path) -> (std::path::PathBuf, File) {
        let path = dir.join("kmsg");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        (path, f)
    }

    /// Issue 8 (7): cutting a long line at a byte that is not a character boundary used to panic
    /// inside the logger, with its lock held.
    #[test]
    fn a_long_non_ascii_line_is_cut_on_a_character_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let out = Captured::default();
        init(Box::new(out.clone()), false, false);
        let (path, f) = kmsg_file(dir.path());
        attach_kmsg(f, 7);
        let long = "é".repeat(1500);
        log::warn!("{long}");
        log::info!("still logging");
        let kmsg = String::from_utf8(std::fs::read(&path).unwrap()).unwrap();
        let first = kmsg.lines().next().unwrap();
        assert!(first.starts_with("<7>ramboot: éé"), "{first}");
        assert!(first.len() <= KMSG_MAX, "{}", first.len());
        assert!(kmsg.ends_with("<7>ramboot: still logging\n"), "{kmsg}");
        let console = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(console.contains(&long), "the console gets the whole line");
    }

    /// Lines said before the kernel log is attached (PID 1's mode line comes before /dev is
    /// mounted) reach it on attach, in order, at the console-hiding level.
    #[test]
    fn lines_before_the_kernel_log_is_attached_reach_it_on_attach() {
        let dir = tempfile::tempdir().unwrap();
        init(Box::new(Captured::default()), false, false);
        log::info!("ramboot: initramfs boot: / is the kernel's rootfs");
        log::warn!("early");
        let (path, f) = kmsg_file(dir.path());
        attach_kmsg(f, 7);
        log::info!("after");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "<7>ramboot: initramfs boot: / is the kernel's rootfs\n<7>ramboot: early\n<7>ramboot: after\n"
        );
    }

    /// Issue 8 (9): the kernel-log copy is written at a level the console does not show, so the
    /// console has each line once (the logger's own), with and without `quiet`.
    #[test]
    fn kmsg_copies_stay_below_the_console_log_level() {
        assert_eq!(kmsg_level(3, 7), 7, "default loglevel: nothing is echoed");
        assert_eq!(kmsg_level(6, 7), 7);
        assert_eq!(kmsg_level(3, 4), 4, "quiet: errors become warnings");
        assert_eq!(kmsg_level(6, 4), 6, "quiet: info keeps its level");
        assert_eq!(kmsg_level(3, 10), 7, "loglevel=10 echoes everything");
        assert_eq!(parse_console_loglevel("4\t4\t1\t7\n"), Some(4));
        assert_eq!(parse_console_loglevel(""), None);
        let dir = tempfile::tempdir().unwrap();
        init(Box::new(Captured::default()), true, false);
        let (path, f) = kmsg_file(dir.path());
        attach_kmsg(f, 4);
        log::error!("bad");
        log::info!("fine");
        announce("ramboot: kernel 1.00s → /init");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "<4>ramboot: bad\n<6>ramboot: fine\n<5>ramboot: kernel 1.00s → /init\n"
        );
    }

    /// Issue 8 (7): the panic hook's report never waits for the logger lock (here held by the
    /// reporting thread itself, as when the panic happens inside the logger).
    #[test]
    fn a_panic_report_does_not_wait_for_the_logger_lock() {
        let dir = tempfile::tempdir().unwrap();
        let out = Captured::default();
        init(Box::new(out.clone()), false, false);
        let (path, f) = kmsg_file(dir.path());
        attach_kmsg(f, 7);
        let held = lock();
        report_panic("boom");
        drop(held);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "<7>ramboot: boom\n"
        );
        // With the lock free, the report goes through the sinks.
        report_panic("boom again");
        let console = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(console, " * ERROR: boom again\n");
    }
}
