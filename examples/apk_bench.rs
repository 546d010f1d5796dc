//! Install benchmark: a deterministic synthetic repository (200 packages, ~18,000 files,
//! ~150 MB installed) installed into a tmpfs directory with scripts off.
//!
//!     cargo run --release --example apk_bench [-- RUNS [JOBS]]
//!     APK_BENCH_APK=/path/to/apk cargo run --release --example apk_bench [-- RUNS [JOBS]]
//!
//! The repository is generated once under `target/apk-bench/` (same seed, same bytes). Each
//! timed install runs in a child process so that its peak RSS (VmHWM) and CPU time are measured
//! alone. With `APK_BENCH_APK` naming an apk-tools binary you provide (nothing is fetched or
//! built here), every run also installs the same packages with `apk add`, interleaved, and the
//! medians of both and their ratios are printed: a comparison made in one run, so that both see
//! the same machine load. `taskset -c 0 cargo run ...` measures on one core (children inherit
//! the affinity; the installer's default worker count follows it).
// Tests drive real tools and processes (QEMU, mkfs, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

use ramboot::apk::build::{default_arch, Content, IndexBuilder, PackageBuilder};
use ramboot::apk::sign::{SigAlgo, SigningKey};
use ramboot::apk::{install, InstallRequest, ScriptPolicy};
use ramboot::sys::RealSys;
use ramboot::xorshift::Xorshift;
use std::path::{Path, PathBuf};
use std::time::Instant;

const GENERATOR_VERSION: &str = "3";
const KEY_NAME: &str = "bench-00000000.rsa.pub";

const WORDS: &[&str] = &[
    "alpine",
    "linux",
    "package",
    "install",
    "root",
    "kernel",
    "module",
    "boot",
    "diskless",
    "overlay",
    "signature",
    "index",
    "version",
    "depend",
    "provide",
    "library",
    "command",
    "shell",
    "busybox",
    "musl",
    "config",
    "service",
    "network",
    "file",
    "directory",
    "symlink",
    "checksum",
    "archive",
    "compress",
    "stream",
    "memory",
    "tmpfs",
    "cache",
    "repository",
    "trigger",
];

fn text(rng: &mut Xorshift, size: usize) -> Vec<u8> {
    let mut s = Vec::with_capacity(size + 16);
    while s.len() < size {
        s.extend_from_slice(WORDS[(rng.next_u64() % WORDS.len() as u64) as usize].as_bytes());
        s.push(if rng.next_u64() % 12 == 0 {
            b'\n'
        } else {
            b' '
        });
    }
    s.truncate(size);
    s
}

fn bench_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/apk-bench")
}

fn generate(dir: &Path) -> SigningKey {
    let stamp = dir.join("stamp");
    let key_path = dir.join("bench.rsa");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(GENERATOR_VERSION) {
        return SigningKey::load(&key_path, Some(KEY_NAME)).unwrap();
    }
    eprintln!(
        "generating the synthetic repository in {} ...",
        dir.display()
    );
    let _ = std::fs::remove_dir_all(dir);
    let repo = dir.join("repo").join(default_arch());
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    let key = SigningKey::generate(KEY_NAME, 2048).unwrap();
    std::fs::write(&key_path, key.private_pem()).unwrap();
    std::fs::write(dir.join("keys").join(KEY_NAME), key.public_pem()).unwrap();
    let mut rng = Xorshift(0x5eed_1234_abcd_0001);
    let mut idx = IndexBuilder {
        description: "bench".into(),
        mtime: 1_700_000_000,
        ..Default::default()
    };
    let n = 200;
    for i in 0..n {
        let name = format!("pkg{i:03}");
        let mut b = PackageBuilder::new(&name, &format!("1.{}.{}-r{}", i % 7, i % 13, i % 3));
        if i % 3 == 0 {
            b.info
                .provides
                .push(ramboot::apk::dep::Dep::parse(&format!("so:lib{name}.so.1=1.0")).unwrap());
        }
        if i % 4 == 0 {
            b.info
                .provides
                .push(ramboot::apk::dep::Dep::parse(&format!("cmd:{name}-tool=1.0")).unwrap());
        }
        // A random DAG: dependencies only on earlier packages, through their provides.
        if i > 0 {
            for _ in 0..rng.range(0, 3) {
                let j = rng.range(0, i - 1);
                let atom = if j % 3 == 0 && rng.next_u64() % 2 == 0 {
                    format!("so:libpkg{j:03}.so.1")
                } else if j % 4 == 0 && rng.next_u64() % 2 == 0 {
                    format!("cmd:pkg{j:03}-tool")
                } else {
                    format!("pkg{j:03}")
                };
                let d = ramboot::apk::dep::Dep::parse(&atom).unwrap();
                if !b.info.depends.contains(&d) {
                    b.info.depends.push(d);
                }
            }
        }
        if i < 180 {
            for f in 0..100 {
                let size = rng.range(256, 8192) as usize;
                let path = format!("usr/share/{name}/d{}/file{f:03}.txt", f / 20);
                b = b.file(&path, &text(&mut rng, size), 0o644);
            }
            b = b
                .symlink(&format!("usr/share/{name}/latest"), "d0/file000.txt")
                .symlink(&format!("usr/share/{name}/d1/first"), "file020.txt");
        } else if i < 194 {
            let size = rng.range(2 << 20, 3 << 20) as usize;
            b = b.file(
                &format!("usr/lib/{name}/data.bin"),
                &text(&mut rng, size),
                0o644,
            );
        } else {
            let size = rng.range(6 << 20, 8 << 20) as usize;
            let data: Vec<u8> = (0..size.div_ceil(8))
                .flat_map(|_| rng.next_u64().to_le_bytes())
                .take(size)
                .collect();
            b = b.entry(PackageBuilder::file_entry(
                &format!("usr/lib/{name}/blob.bin"),
                Content::Bytes(data),
                0o644,
            ));
        }
        b.level = 6;
        let built = b.build(Some(&key)).unwrap();
        std::fs::write(repo.join(built.file_name()), &built.bytes).unwrap();
        idx.add(&built.info);
    }
    std::fs::write(
        repo.join("APKINDEX.tar.gz"),
        idx.build(Some(&key), SigAlgo::Sha1).unwrap(),
    )
    .unwrap();
    std::fs::write(&stamp, GENERATOR_VERSION).unwrap();
    key
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmHWM:")
                .map(|v| v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

/// One timed install (child process) into `root`, which the parent removes. Prints
/// `seconds bytes files hwm_kib`.
fn run_once(dir: &Path, jobs: usize, root: &Path) {
    let world: Vec<String> = (0..200).map(|i| format!("pkg{i:03}")).collect();
    let req = InstallRequest {
        root: root.to_path_buf(),
        repositories: vec![dir.join("repo")],
        keys_dirs: vec![dir.join("keys")],
        world_add: world,
        initdb: true,
        scripts: ScriptPolicy::Never,
        jobs,
        ..Default::default()
    };
    let t = Instant::now();
    let r = install(&req, &RealSys).unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(r.installed.len(), 200, "failed: {:?}", r.failed);
    assert_eq!(r.errors(), 0, "{:?} {:?}", r.failed, r.broken);
    println!("{secs} {} {} {}", r.bytes, r.files, vm_hwm_kib());
}

/// User and system CPU seconds of the children reaped so far.
fn children_cpu() -> (f64, f64) {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the rusage it points to; the buffer is valid and of that type.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, ru.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    // SAFETY: zeroed, then filled by the successful call.
    let ru = unsafe { ru.assume_init() };
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime), secs(ru.ru_stime))
}

/// Wall, user and system seconds of one child process.
#[derive(Clone, Copy)]
struct Sample {
    wall: f64,
    user: f64,
    sys: f64,
}

/// Runs `cmd` to its end, measured; panics with its stderr when it fails.
fn timed(cmd: &mut std::process::Command) -> (Sample, String) {
    let (u0, s0) = children_cpu();
    let t = Instant::now();
    let out = cmd.output().unwrap();
    let wall = t.elapsed().as_secs_f64();
    let (u1, s1) = children_cpu();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sample = Sample {
        wall,
        user: u1 - u0,
        sys: s1 - s0,
    };
    (
        sample,
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Medians of wall, user and system time.
fn medians(samples: &[Sample]) -> Sample {
    Sample {
        wall: median(samples.iter().map(|s| s.wall).collect()),
        user: median(samples.iter().map(|s| s.user).collect()),
        sys: median(samples.iter().map(|s| s.sys).collect()),
    }
}

/// `apk add` of the same packages into a fresh root with apk-tools at `apk`.
fn apk_tools_once(apk: &Path, dir: &Path, root: &Path) -> Sample {
    std::fs::create_dir_all(root).unwrap();
    let repo = dir.join("repo");
    let keys = dir.join("keys");
    let (sample, _) = timed(
        std::process::Command::new(apk)
            .arg("add")
            .arg("--root")
            .arg(root)
            .args(["--initdb", "--no-cache", "--no-scripts", "--quiet", "-X"])
            .arg(&repo)
            .arg("--keys-dir")
            .arg(&keys)
            .args((0..200).map(|i| format!("pkg{i:03}"))),
    );
    let _ = std::fs::remove_dir_all(root);
    sample
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = bench_dir();
    if args.get(1).map(String::as_str) == Some("--run-once") {
        let jobs = args.get(2).and_then(|j| j.parse().ok()).unwrap_or(0);
        run_once(&dir, jobs, Path::new(&args[3]));
        return;
    }
    let runs: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(5);
    let jobs: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(0);
    let apk = std::env::var_os("APK_BENCH_APK").map(PathBuf::from);
    generate(&dir);
    let target_base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let root = target_base.join(format!("ramboot-apk-bench-{}", std::process::id()));
    let apk_root = target_base.join(format!("ramboot-apk-bench-apk-{}", std::process::id()));
    let exe = std::env::current_exe().unwrap();
    let (mut ours, mut theirs, mut install_secs) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let _ = std::fs::remove_dir_all(&root);
        let (sample, line) = timed(
            std::process::Command::new(&exe)
                .arg("--run-once")
                .arg(jobs.to_string())
                .arg(&root),
        );
        let _ = std::fs::remove_dir_all(&root);
        let f: Vec<f64> = line.split(' ').map(|x| x.parse().unwrap()).collect();
        let (secs, bytes, files, hwm) = (f[0], f[1], f[2], f[3]);
        println!(
            "run {}: {:.3} s, {:.1} MB/s, {:.0} files/s, {} files, {:.1} MB, peak RSS {:.1} MiB, user {:.3} s, sys {:.3} s",
            run + 1,
            secs,
            bytes / secs / 1e6,
            files / secs,
            files,
            bytes / 1e6,
            hwm / 1024.0,
            sample.user,
            sample.sys
        );
        ours.push(sample);
        install_secs.push(secs);
        if let Some(apk) = &apk {
            let s = apk_tools_once(apk, &dir, &apk_root);
            println!(
                "run {}: apk-tools {:.3} s, user {:.3} s, sys {:.3} s",
                run + 1,
                s.wall,
                s.user,
                s.sys
            );
            theirs.push(s);
        }
    }
    let m = medians(&ours);
    println!(
        "median wall time: {:.3} s over {runs} runs (process: wall {:.3} s, user {:.3} s, sys {:.3} s)",
        median(install_secs),
        m.wall,
        m.user,
        m.sys
    );
    if !theirs.is_empty() {
        let a = medians(&theirs);
        println!(
            "apk-tools median: wall {:.3} s, user {:.3} s, sys {:.3} s; ratio ramboot/apk: wall {:.2}, user {:.2}",
            a.wall,
            a.user,
            a.sys,
            m.wall / a.wall,
            m.user / a.user
        );
    }
}
