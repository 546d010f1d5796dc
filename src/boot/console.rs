//! Boot messages: on the console in OpenRC's style (` * Loading boot drivers ... ok`) and in the
//! kernel log with a `ramboot:` prefix, so `dmesg` after boot tells the same story.
//!
//! `quiet` keeps the console to warnings and errors; the kernel log always gets everything.
//! `debug_init` adds debug lines. The logger is the `log` crate's global logger, so the library
//! modules (apk, hw, media) report through it without knowing about consoles.

use std::fs::File;
use std::io::Write;
use std::sync::Mutex;

struct Sinks {
    console: Box<dyn Write + Send>,
    kmsg: Option<File>,
    quiet: bool,
    /// An `ebegin` line waiting for its `eend`.
    open_line: bool,
}

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
        quiet,
        open_line: false,
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

/// Starts mirroring messages to the kernel log.
pub fn attach_kmsg(kmsg: File) {
    if let Some(s) = lock().as_mut() {
        s.kmsg = Some(kmsg);
    }
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

fn kmsg_line(s: &mut Sinks, level: u8, text: &str) {
    if let Some(k) = s.kmsg.as_mut() {
        let _ = k.write_all(kmsg_record(level, text).as_bytes());
    }
}

/// One write is one record; the kernel caps records at ~1 KiB. The cut moves back to the start
/// of a UTF-8 character it would split (`String::truncate` panics there).
fn kmsg_record(level: u8, text: &str) -> String {
    let mut line = format!("<{level}>ramboot: {text}");
    let mut cut = line.len().min(1000);
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    line.truncate(cut);
    line.push('\n');
    line
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
}
