//! Solver benchmark: the time `solver::solve` takes for a 100-package world over a repository
//! the size of Alpine's `main` (issue 15: solving must stay negligible at boot).
//!
//!     cargo run --release --example solve_bench [-- RUNS [REPO_PACKAGES [nodocs]]]
//!
//! The repository is synthetic and deterministic (same seed, same packages): REPO_PACKAGES
//! packages (default 5,000), a third of them libraries providing `so:` names, some with two
//! versions, virtual `cmd:` providers, `-doc` packages with `install_if`, every application
//! linked against one libc. World is 99
//! application names and `docs`; with `nodocs`, 100 application names. `docs` is what apk
//! makes expensive: its reverse `install_if` edges reach every `-doc` package of the index. Only the solve is timed (the index is already parsed); the median and
//! the fastest of RUNS runs (default 50) are printed, with the size of the solution. On a
//! loaded machine the fastest run is the better figure. It also prints what copying every
//! record would cost, as `install` did before the candidates borrowed them.

use ramboot::apk::dep::Dep;
use ramboot::apk::pkg::PkgInfo;
use ramboot::apk::solver::{solve, Candidate, Options};
use ramboot::xorshift::Xorshift;
use std::borrow::Cow;
use std::time::{Duration, Instant};

fn candidate(
    name: String,
    version: &str,
    depends: Vec<Dep>,
    provides: Vec<Dep>,
) -> Candidate<'static> {
    Candidate {
        info: Cow::Owned(PkgInfo {
            // The text fields an index record has, as long as typical ones.
            arch: "aarch64".into(),
            description: format!("{name}: a synthetic package of the solver benchmark"),
            url: format!("https://example.org/projects/{name}"),
            license: "MIT".into(),
            origin: name.clone(),
            maintainer: "Natanael Example <maintainer@example.org>".into(),
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            name,
            version: version.into(),
            installed_size: 1,
            depends,
            provides,
            ..Default::default()
        }),
        repos: 2,
        available: true,
        installed: false,
        tag: 0,
    }
}

fn repository(total: usize, docs: bool) -> (Vec<Candidate<'static>>, Vec<Dep>) {
    let mut rng = Xorshift(0x5eed_1500);
    let libs = total / 3;
    let mut pkgs = Vec::with_capacity(total + total / 10);
    for i in 0..libs {
        let count = if i > 0 { rng.below(3) } else { 0 };
        let deps = (0..count)
            .map(|_| Dep::any(&format!("so:libl{}.so.1", rng.below(i))))
            .collect();
        let provides = vec![Dep::parse(&format!("so:libl{i}.so.1=1.{i}")).unwrap()];
        if i % 7 == 0 {
            pkgs.push(candidate(
                format!("libl{i}"),
                "1.0-r0",
                Vec::new(),
                provides.clone(),
            ));
        }
        pkgs.push(candidate(format!("libl{i}"), "1.1-r0", deps, provides));
    }
    for i in 0..total - libs {
        let mut deps: Vec<Dep> = (0..1 + rng.below(5))
            .map(|_| Dep::any(&format!("so:libl{}.so.1", rng.below(libs))))
            .collect();
        // Nearly everything links against libc: one name with thousands of reverse edges.
        deps.push(Dep::any("so:libc.musl.so.1"));
        if i % 11 == 0 && i > 0 {
            deps.push(Dep::any(&format!("cmd:app{}", rng.below(i))));
        }
        let provides = vec![Dep::parse(&format!("cmd:app{i}=2.{i}")).unwrap()];
        pkgs.push(candidate(format!("app{i}"), "2.0-r1", deps, provides));
        if i % 5 == 0 {
            let mut doc = candidate(format!("app{i}-doc"), "2.0-r1", Vec::new(), Vec::new());
            doc.info.to_mut().install_if = Dep::parse_list(&format!("app{i}=2.0-r1 docs")).unwrap();
            pkgs.push(doc);
        }
    }
    pkgs.push(candidate("docs".into(), "1", Vec::new(), Vec::new()));
    let libc = vec![Dep::parse("so:libc.musl.so.1=1").unwrap()];
    pkgs.push(candidate("musl".into(), "1.2.5-r0", Vec::new(), libc));
    let apps = if docs { 99 } else { 100 };
    let mut world: Vec<Dep> = (0..apps)
        .map(|k| Dep::any(&format!("app{}", k * (total - libs) / apps)))
        .collect();
    if docs {
        world.push(Dep::any("docs"));
    }
    (pkgs, world)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(50);
    let total: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5000);
    let docs = args.get(3).map_or(true, |a| a != "nodocs");
    let (pkgs, world) = repository(total, docs);
    let opts = Options::default();
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    let mut chosen = 0;
    let mut digest = 0u64;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let s = solve(&pkgs, &world, &opts).expect("the synthetic world solves");
        times.push(t.elapsed());
        chosen = s.order.len();
        // FNV-1a over the install order: the same answer prints the same digest.
        digest = s.order.iter().fold(0xcbf2_9ce4_8422_2325, |h, &c| {
            (h ^ c as u64).wrapping_mul(0x100_0000_01b3)
        });
    }
    times.sort();
    // What `install` did before the solver borrowed the records: a copy of each.
    let mut copies: Vec<Duration> = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let copied: Vec<PkgInfo> = pkgs.iter().map(|c| c.info.as_ref().clone()).collect();
        copies.push(t.elapsed());
        drop(copied);
    }
    copies.sort();
    println!(
        "solve: {} world atoms{}, {} candidates, {chosen} packages chosen (order {digest:016x}): median {:.2} ms, fastest {:.2} ms ({} runs)",
        world.len(),
        if docs { " (docs)" } else { "" },
        pkgs.len(),
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times.len()
    );
    println!(
        "copy: every record cloned (not done any more): median {:.2} ms",
        copies[copies.len() / 2].as_secs_f64() * 1e3
    );
}
