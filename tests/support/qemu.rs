//! Drives QEMU aarch64 for the boot scenarios: builds the images once per test binary (through
//! the scripts in `qemu/`), boots under TCG with a hard timeout, and matches markers on the serial
//! console. QEMU's exit code means nothing (it exits 0 on power-off and on a kernel panic), so
//! every assertion is about what the console printed.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn out_dir() -> PathBuf {
    let d = repo().join("target/qemu-test");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs a script under `qemu/` with the test's host binary; panics with its output on failure.
pub fn script(name: &str, args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(repo().join("qemu").join(name))
        .args(args)
        .env("RAMBOOT_HOST", env!("CARGO_BIN_EXE_ramboot"))
        .env("RAMBOOT_OUT", out_dir())
        .output()
        .expect("bash runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "qemu/{name} {args:?} failed:\n{text}");
    text
}

/// Paths of the fetched kernel (fetching it on first use).
pub struct Kernel {
    pub image: PathBuf,
    pub modules: PathBuf,
    pub release: String,
    pub busybox: PathBuf,
    pub dtb_rpi3: PathBuf,
}

pub fn kernel() -> &'static Kernel {
    static K: OnceLock<Kernel> = OnceLock::new();
    K.get_or_init(|| {
        let cache = PathBuf::from(
            script("fetch-kernel.sh", &[])
                .trim()
                .lines()
                .last()
                .unwrap(),
        );
        let release = std::fs::read_to_string(cache.join("kernel/kver"))
            .unwrap()
            .trim()
            .to_string();
        let dtb = std::fs::read_dir(cache.join("kernel/usr/lib"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("broadcom/bcm2837-rpi-3-b.dtb"))
            .find(|p| p.exists())
            .unwrap_or_default();
        Kernel {
            image: cache.join("kernel/Image"),
            modules: cache.join("kernel/lib/modules").join(&release),
            release,
            busybox: cache.join("busybox/bin/busybox"),
            dtb_rpi3: dtb,
        }
    })
}

/// A running QEMU with its console captured.
pub struct Qemu {
    child: Child,
    stdin: Option<ChildStdin>,
    console: Arc<(Mutex<Console>, Condvar)>,
    pub name: String,
}

/// What QEMU printed so far, and how many of its output streams are still open (both close
/// when it exits, so waiting for `open == 0` replaces any sleep after an exit).
#[derive(Default)]
struct Console {
    /// Bytes as they came (a prompt has no newline, so reads are not line-based).
    raw: Vec<u8>,
    open: usize,
}

impl Console {
    /// Where `marker` ends in the output after byte `from`.
    fn find(&self, from: usize, marker: &str) -> Option<usize> {
        let m = marker.as_bytes();
        self.raw
            .get(from..)?
            .windows(m.len())
            .position(|w| w == m)
            .map(|i| from + i + m.len())
    }
}

impl Qemu {
    /// Boots `-M virt` with the given initramfs, command line and extra QEMU arguments.
    pub fn virt(name: &str, initrd: &Path, append: &str, extra: &[String]) -> Qemu {
        Self::virt_in(&[], name, initrd, append, extra)
    }

    /// [`Qemu::virt`] run through `wrapper` (a command that ends by exec'ing its arguments).
    pub fn virt_in(
        wrapper: &[String],
        name: &str,
        initrd: &Path,
        append: &str,
        extra: &[String],
    ) -> Qemu {
        let k = kernel();
        let mut args: Vec<String> = [
            "-M",
            "virt",
            "-cpu",
            "cortex-a57",
            "-m",
            "512",
            "-smp",
            "1",
            "-nographic",
            "-no-reboot",
            "-nic",
            "none",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(["-kernel".into(), k.image.display().to_string()]);
        args.extend(["-initrd".into(), initrd.display().to_string()]);
        args.extend(["-append".into(), append.to_string()]);
        args.extend(extra.iter().cloned());
        Self::spawn_in(wrapper, name, &args)
    }

    pub fn spawn(name: &str, args: &[String]) -> Qemu {
        Self::spawn_in(&[], name, args)
    }

    fn spawn_in(wrapper: &[String], name: &str, args: &[String]) -> Qemu {
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg("timeout");
                c
            }
            None => Command::new("timeout"),
        };
        let mut child = command
            .arg("300")
            .arg("qemu-system-aarch64")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("qemu-system-aarch64 runs (qemu/setup-host.sh installs it)");
        let console = Arc::new((
            Mutex::new(Console {
                raw: Vec::new(),
                open: 2,
            }),
            Condvar::new(),
        ));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let console = console.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let (m, cv) = &*console;
                            m.lock().unwrap().raw.extend_from_slice(&buf[..n]);
                            cv.notify_all();
                        }
                    }
                }
                let (m, cv) = &*console;
                m.lock().unwrap().open -= 1;
                cv.notify_all();
            });
        }
        let stdin = child.stdin.take();
        Qemu {
            child,
            stdin,
            console,
            name: name.into(),
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.console.0.lock().unwrap().raw).into_owned()
    }

    /// Waits (up to `timeout`) until QEMU's output streams are closed: everything it printed
    /// has been read.
    fn drain(&self, timeout: Duration) {
        let (m, cv) = &*self.console;
        let guard = m.lock().unwrap();
        let _ = cv.wait_timeout_while(guard, timeout, |c| c.open > 0);
    }

    fn save_log(&self) -> PathBuf {
        let p = out_dir().join(format!("{}.log", self.name));
        let _ = std::fs::write(&p, self.text());
        p
    }

    /// Waits until the console shows `marker`; panics with the console text after `timeout`.
    pub fn expect(&mut self, marker: &str, timeout: Duration) {
        self.expect_after(0, marker, timeout);
    }

    /// Waits until the console shows `marker` after byte `from`; returns where it ends.
    pub fn expect_after(&mut self, from: usize, marker: &str, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.console;
        let mut console = m.lock().unwrap();
        loop {
            if let Some(end) = console.find(from, marker) {
                return end;
            }
            let now = Instant::now();
            // Streams closed: QEMU exited (or is about to).
            let exited = console.open == 0 || matches!(self.child.try_wait(), Ok(Some(_)));
            if now >= deadline || exited {
                drop(console);
                self.drain(Duration::from_secs(5));
                if let Some(end) = self.console.0.lock().unwrap().find(from, marker) {
                    return end;
                }
                let full = self.text();
                let log = self.save_log();
                panic!(
                    "[{}] marker {marker:?} not seen ({}); console ({}):\n{}",
                    self.name,
                    if exited { "QEMU exited" } else { "timeout" },
                    log.display(),
                    full
                );
            }
            // The stream readers notify on every line and at EOF; the timeout only bounds the
            // check of the deadline.
            console = cv.wait_timeout(console, deadline - now).unwrap().0;
        }
    }

    /// Cuts the power: SIGKILL to QEMU itself (the child of `timeout`), so nothing the guest
    /// had not yet written reaches the disk image; waits until it is gone.
    pub fn power_cut(&mut self) -> String {
        self.kill_qemu();
        let _ = self.child.wait();
        self.drain(Duration::from_secs(5));
        self.save_log();
        self.text()
    }

    /// SIGKILL to QEMU, the child of `timeout` (killing `timeout` alone leaves QEMU running).
    fn kill_qemu(&mut self) {
        let id = self.child.id();
        let children =
            std::fs::read_to_string(format!("/proc/{id}/task/{id}/children")).unwrap_or_default();
        for pid in children.split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }

    /// Types into the serial console.
    pub fn send(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Expects the rescue shell, proves it works by typing into it, and powers off from it.
    pub fn use_rescue_shell_and_power_off(mut self, timeout: Duration) -> String {
        let banner = self.expect_after(0, "Launching initramfs emergency recovery shell", timeout);
        // Type only once the shell reads the tty: its prompt (PS1 set by the rescue path).
        self.expect_after(banner, "ramboot# ", timeout);
        self.send("echo RESCUE-$((6*7)); /bin/busybox poweroff -f\n");
        self.expect("RESCUE-42", timeout);
        self.wait_exit(timeout)
    }

    /// Waits for QEMU to exit (power-off or panic with -no-reboot); returns the console text.
    pub fn wait_exit(mut self, timeout: Duration) -> String {
        // QEMU's streams close when it exits: wait for that, not on a poll.
        self.drain(timeout);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                self.save_log();
                return self.text();
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let log = self.save_log();
                panic!(
                    "[{}] QEMU did not exit in time; console in {}:\n{}",
                    self.name,
                    log.display(),
                    self.text()
                );
            }
            // Output closed but the process not yet reaped: wait for it.
            let _ = self.child.wait();
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        // QEMU first: a test that panics must not leave it running (holding its disk image).
        self.kill_qemu();
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.save_log();
    }
}

/// A virtio-blk disk for `Qemu::virt`.
pub fn virtio_disk(image: &Path, id: &str) -> Vec<String> {
    vec![
        "-drive".into(),
        format!("if=none,id={id},file={},format=raw", image.display()),
        "-device".into(),
        format!("virtio-blk-pci,drive={id}"),
    ]
}

/// QEMU arguments for a monitor on the Unix socket `path`, for [`monitor`].
pub fn monitor_socket(path: &Path) -> Vec<String> {
    let _ = std::fs::remove_file(path);
    vec![
        "-monitor".into(),
        format!("unix:{},server,nowait", path.display()),
    ]
}

/// Runs one command on the QEMU monitor at `path` (see [`monitor_socket`]) and returns its
/// answer: the text between the command and the next `(qemu) ` prompt.
pub fn monitor(path: &Path, command: &str) -> String {
    use std::os::unix::net::UnixStream;
    let mut s = UnixStream::connect(path).expect("the QEMU monitor socket accepts");
    // A bound on a hung monitor, not a wait: each read returns as soon as QEMU writes.
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let until_prompt = |s: &mut UnixStream| {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&got).ends_with("(qemu) ") {
            let n = s.read(&mut buf).expect("the QEMU monitor answers");
            assert!(
                n > 0,
                "the QEMU monitor closed: {}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).into_owned()
    };
    until_prompt(&mut s);
    s.write_all(format!("{command}\n").as_bytes()).unwrap();
    let answer = until_prompt(&mut s);
    answer.trim_end_matches("(qemu) ").to_string()
}

/// A number after `key` in `text` (`"end_ms":123.4`): timings in the guest's JSON and lines.
#[allow(dead_code)]
pub fn number_after(text: &str, key: &str) -> f64 {
    let at = text
        .find(key)
        .unwrap_or_else(|| panic!("{key} not in {text}"))
        + key.len();
    let digits: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    digits.parse().unwrap()
}

/// [`virtio_disk`] `d0` written to a snapshot: the image stays as built.
#[allow(dead_code)]
pub fn virtio_snapshot(image: &Path) -> Vec<String> {
    let mut args = virtio_disk(image, "d0");
    args[1].push_str(",snapshot=on");
    args
}

/// Runs `ramboot sdimage` (the test's build) with `args`; panics with its output on failure.
#[allow(dead_code)]
pub fn sdimage(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_ramboot"))
        .arg("sdimage")
        .args(args)
        .output()
        .expect("ramboot runs");
    assert!(
        out.status.success(),
        "ramboot sdimage {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ramboot sdimage --target none` of a `qemu/make-media.sh` stage (its signed repository, modloop,
/// cache and release file) into `image`, with `extra` arguments (the apkovl).
#[allow(dead_code)]
pub fn stage_card(stage: &Path, image: &Path, extra: &[&str]) {
    let s = |p: PathBuf| p.display().to_string();
    let mut args: Vec<String> = [
        "-o",
        &s(image.to_path_buf()),
        "--target",
        "none",
        "--flavor",
        "virt",
        "--repo",
        &s(stage.join("apks")),
        "--modloop",
        &s(stage.join("boot/modloop-virt")),
        "--cache",
        &s(stage.join("cache")),
        "--file",
        &format!("{}:.alpine-release", s(stage.join(".alpine-release"))),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(extra.iter().map(|a| a.to_string()));
    sdimage(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

/// The first partition's (start, length) in bytes, from the MBR of `disk`.
fn first_partition(disk: &[u8]) -> (usize, usize) {
    let e = &disk[446..462];
    let lba = u32::from_le_bytes(e[8..12].try_into().unwrap()) as usize;
    let n = u32::from_le_bytes(e[12..16].try_into().unwrap()) as usize;
    (lba * 512, n * 512)
}

/// Reads `path` from the FAT partition of `disk` (its first MBR partition), lets `edit` change
/// it, and writes it back: what the tests did with mtools, in user space through fatfs.
#[allow(dead_code)]
pub fn edit_fat_file(disk: &Path, path: &str, edit: impl FnOnce(&mut Vec<u8>)) {
    use std::io::{Cursor, Seek, SeekFrom};
    let mut bytes = std::fs::read(disk).unwrap();
    let (start, len) = first_partition(&bytes);
    let mut part = Cursor::new(bytes[start..start + len].to_vec());
    {
        let fs = fatfs::FileSystem::new(&mut part, fatfs::FsOptions::new()).unwrap();
        let root = fs.root_dir();
        let mut data = Vec::new();
        if let Ok(mut f) = root.open_file(path) {
            f.read_to_end(&mut data).unwrap();
        }
        edit(&mut data);
        let mut f = root.create_file(path).unwrap();
        f.truncate().unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.write_all(&data).unwrap();
        f.flush().unwrap();
        drop(f);
        drop(root);
        fs.unmount().unwrap();
    }
    bytes[start..start + len].copy_from_slice(part.get_ref());
    std::fs::write(disk, bytes).unwrap();
}

/// `path` read from the FAT partition of `disk` (its first MBR partition), None when it is not
/// there: what the tests did with mcopy, in user space through fatfs.
#[allow(dead_code)]
pub fn read_fat_file(disk: &Path, path: &str) -> Option<Vec<u8>> {
    let bytes = std::fs::read(disk).unwrap();
    let (start, len) = first_partition(&bytes);
    let mut part = std::io::Cursor::new(bytes[start..start + len].to_vec());
    let fs = fatfs::FileSystem::new(&mut part, fatfs::FsOptions::new()).unwrap();
    let mut f = fs.root_dir().open_file(path).ok()?;
    let mut data = Vec::new();
    f.read_to_end(&mut data).unwrap();
    Some(data)
}

/// The names in the top directory of the FAT partition of `disk` (mdir, through fatfs).
#[allow(dead_code)]
pub fn fat_names(disk: &Path) -> Vec<String> {
    let bytes = std::fs::read(disk).unwrap();
    let (start, len) = first_partition(&bytes);
    let mut part = std::io::Cursor::new(bytes[start..start + len].to_vec());
    let fs = fatfs::FileSystem::new(&mut part, fatfs::FsOptions::new()).unwrap();
    let names = fs
        .root_dir()
        .iter()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "." && n != "..")
        .collect();
    names
}
