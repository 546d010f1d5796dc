//! Issue 8 (7): a panic inside PID 1's logger — its lock held — is reported by the panic hook
//! without waiting for that lock, and the logger keeps working afterwards. Its own test binary:
//! the panic hook and the logger are process-wide.

use ramboot::boot::{console, install_panic_hook};
use std::io::Write;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// A console whose write panics, as a broken `Write` implementation would: the panic happens
/// while the logger holds its lock.
struct PanicsOnWrite;

impl Write for PanicsOnWrite {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        panic!("console write failed");
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_panic_inside_the_logger_is_reported_without_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let kmsg_path = dir.path().join("kmsg");
    let kmsg = std::fs::File::create(&kmsg_path).unwrap();
    let after = Captured::default();
    let console_after = after.clone();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        install_panic_hook();
        console::init(Box::new(PanicsOnWrite), false, false);
        console::attach_kmsg(kmsg, 7);
        let caught = std::panic::catch_unwind(|| log::info!("hello"));
        console::set_console(Box::new(console_after));
        log::info!("still logging");
        done.send(caught.is_err()).unwrap();
    });
    // A deadlock shows up as no answer at all. Exit instead of panicking: with the hook
    // deadlocked, this thread's own panic would hang in it too.
    let Ok(panicked) = finished.recv_timeout(Duration::from_secs(120)) else {
        eprintln!("the panic hook deadlocked on the logger lock");
        std::process::exit(1);
    };
    assert!(panicked);
    let kmsg = std::fs::read_to_string(&kmsg_path).unwrap();
    let lines: Vec<&str> = kmsg.lines().collect();
    assert_eq!(lines.len(), 3, "{kmsg}");
    assert_eq!(lines[0], "<7>ramboot: hello");
    assert!(
        lines[1].starts_with(
            "<7>ramboot: ramboot panicked: console write failed at tests/logger_panic.rs:"
        ),
        "{kmsg}"
    );
    assert_eq!(lines[2], "<7>ramboot: still logging");
    assert_eq!(
        String::from_utf8(after.0.lock().unwrap().clone()).unwrap(),
        " * still logging\n"
    );
}
