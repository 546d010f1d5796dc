//! The solver against small hand-made repositories: one test per behaviour apk has and
//! ramboot must match (issue 15).

use super::*;

struct P(Candidate<'static>);

fn p(name: &str, version: &str) -> P {
    P(Candidate {
        info: Cow::Owned(PkgInfo {
            name: name.into(),
            version: version.into(),
            installed_size: 1,
            ..Default::default()
        }),
        repos: 2,
        available: true,
        installed: false,
        tag: 0,
    })
}

impl P {
    fn dep(mut self, atoms: &str) -> P {
        self.0.info.to_mut().depends = Dep::parse_list(atoms).unwrap();
        self
    }
    fn provides(mut self, atoms: &str) -> P {
        self.0.info.to_mut().provides = Dep::parse_list(atoms).unwrap();
        self
    }
    fn install_if(mut self, atoms: &str) -> P {
        self.0.info.to_mut().install_if = Dep::parse_list(atoms).unwrap();
        self
    }
    fn priority(mut self, k: u32) -> P {
        self.0.info.to_mut().provider_priority = k;
        self
    }
    fn installed(mut self) -> P {
        self.0.installed = true;
        self
    }
}

fn repo(pkgs: Vec<P>) -> Vec<Candidate<'static>> {
    pkgs.into_iter().map(|p| p.0).collect()
}

fn world(atoms: &str) -> Vec<Dep> {
    Dep::parse_list(atoms).unwrap()
}

/// `apk add ATOMS` on a root whose world was `old`: the packages to install, as `name-version`.
fn add_on(
    pkgs: &[Candidate<'_>],
    old: &str,
    atoms: &str,
    upgrade: bool,
) -> Result<Vec<String>, String> {
    let mut w = world(old);
    w.extend(world(atoms));
    let opts = Options {
        upgrade,
        command_line: world(atoms).into_iter().map(|d| d.name).collect(),
        ..Default::default()
    };
    match solve(pkgs, &w, &opts) {
        Ok(s) => {
            assert!(s.removals.is_empty(), "unexpected removals");
            Ok(s.order
                .iter()
                .filter(|&&c| !pkgs[c].installed)
                .map(|&c| pkgs[c].info.nv())
                .collect())
        }
        Err(ApkError::Unsatisfiable { problems, .. }) => Err(problems.join("\n")),
        Err(e) => panic!("{e}"),
    }
}

fn add(pkgs: &[Candidate<'_>], atoms: &str) -> Result<Vec<String>, String> {
    add_on(pkgs, "", atoms, false)
}

#[test]
fn older_version_when_the_newest_ones_dependencies_clash() {
    // tool-5 wants core>=3, but glue (which every tool needs) wants core<3.
    let pkgs = repo(vec![
        p("tool", "4").dep("glue"),
        p("tool", "5").dep("glue core>=3"),
        p("glue", "1").dep("core<3"),
        p("core", "2.1"),
        p("core", "3.0"),
    ]);
    assert_eq!(
        add(&pkgs, "tool").unwrap(),
        ["core-2.1", "glue-1", "tool-4"]
    );
    // Alone, glue is happy with the newest core it allows.
    assert_eq!(add(&pkgs, "glue").unwrap(), ["core-2.1", "glue-1"]);
}

#[test]
fn versioned_virtual_provider_that_fits_the_other_constraints() {
    // pc:libx is provided by two libx-dev versions; the one with the higher provided version
    // needs a libx that daemon refuses.
    let pkgs = repo(vec![
        p("daemon", "1").dep("libx>500"),
        p("libx-dev", "9001")
            .dep("libx=9001")
            .provides("pc:libx=1.1"),
        p("libx-dev", "200").dep("libx=200").provides("pc:libx=1.2"),
        p("libx", "9001"),
        p("libx", "200"),
    ]);
    assert_eq!(
        add(&pkgs, "daemon pc:libx").unwrap(),
        ["libx-9001", "daemon-1", "libx-dev-9001"]
    );
}

fn mail_repo() -> Vec<Candidate<'static>> {
    repo(vec![
        p("postfix", "3").provides("mta").priority(10),
        p("msmtp", "1").provides("mta").priority(1),
        p("msmtp", "0.9"),
    ])
}

#[test]
fn world_naming_a_provider_installs_only_that_one() {
    let pkgs = mail_repo();
    assert_eq!(add(&pkgs, "mta msmtp").unwrap(), ["msmtp-1"]);
    assert_eq!(add(&pkgs, "msmtp mta").unwrap(), ["msmtp-1"]);
    // Named alone, the virtual goes to the highest priority.
    assert_eq!(add(&pkgs, "mta").unwrap(), ["postfix-3"]);
}

#[test]
fn provider_priority_only_breaks_ties_of_the_provided_version() {
    let pkgs = repo(vec![
        p("busybox-sh", "1").provides("sh=1").priority(100),
        p("bash", "5").provides("sh=2"),
    ]);
    assert_eq!(add(&pkgs, "sh").unwrap(), ["bash-5"]);
    let pkgs = repo(vec![
        p("busybox-sh", "1").provides("sh=2").priority(100),
        p("bash", "5").provides("sh=2"),
    ]);
    assert_eq!(add(&pkgs, "sh").unwrap(), ["busybox-sh-1"]);
}

#[test]
fn install_if_dependency_decides_the_provider_of_a_virtual() {
    let pkgs = repo(vec![
        p("desktop", "1").dep("auth"),
        p("openrc", "1"),
        p("desktop-openrc", "1")
            .install_if("desktop=1 openrc")
            .dep("auth-logind"),
        p("auth", "1"),
        p("auth-logind", "1").provides("auth=1"),
    ]);
    assert_eq!(
        add(&pkgs, "desktop openrc").unwrap(),
        ["auth-logind-1", "desktop-1", "openrc-1", "desktop-openrc-1"]
    );
}

#[test]
fn a_package_providing_two_versions_of_a_name_is_refused() {
    let pkgs = repo(vec![p("twofaced", "1").provides("face=1 face=2")]);
    assert_eq!(
        add(&pkgs, "twofaced").unwrap_err(),
        "twofaced-1:\n    conflicts: twofaced-1[face=1] twofaced-1[face=2]\n    satisfies: world[twofaced]"
    );
}

#[test]
fn a_package_providing_its_own_name_is_refused() {
    let pkgs = repo(vec![p("narcissus", "2").provides("narcissus")]);
    assert_eq!(
        add(&pkgs, "narcissus").unwrap_err(),
        "narcissus-2:\n    conflicts: narcissus-2[narcissus]\n    satisfies: world[narcissus]"
    );
}

#[test]
fn a_virtual_with_no_named_or_preferred_provider_is_refused() {
    let pkgs = repo(vec![
        p("viewer-a", "1").provides("viewer"),
        p("viewer-b", "1").provides("viewer"),
        p("gallery", "1").dep("viewer"),
    ]);
    let note = "note: please select one of the 'provided by' packages explicitly";
    assert_eq!(
        add(&pkgs, "viewer").unwrap_err(),
        format!(
            "viewer (virtual):\n    {note}\n    provided by: viewer-a viewer-b\n    required by: world[viewer]"
        )
    );
    assert_eq!(
        add(&pkgs, "gallery").unwrap_err(),
        format!(
            "viewer (virtual):\n    {note}\n    provided by: viewer-a viewer-b\n    required by: gallery-1[viewer]"
        )
    );
    // Naming one settles it.
    assert_eq!(
        add(&pkgs, "gallery viewer-b").unwrap(),
        ["viewer-b-1", "gallery-1"]
    );
}

#[test]
fn two_versions_pulled_in_name_both_requirers() {
    let pkgs = repo(vec![
        p("libz", "1").provides("so:libz.so.1=1"),
        p("libz", "2").provides("so:libz.so.2=2"),
        p("old-app", "1").dep("so:libz.so.1"),
        p("new-app", "1").dep("so:libz.so.2"),
    ]);
    let err = add(&pkgs, "old-app new-app").unwrap_err();
    assert!(
        err.contains("libz-1:\n    conflicts: libz-2\n    satisfies: old-app-1[so:libz.so.1]"),
        "{err}"
    );
    assert!(
        err.contains("libz-2:\n    conflicts: libz-1\n    satisfies: new-app-1[so:libz.so.2]"),
        "{err}"
    );
}

#[test]
fn missing_name_says_who_wants_it() {
    let pkgs = repo(vec![p("a", "1").dep("ghost")]);
    assert_eq!(
        add(&pkgs, "a").unwrap_err(),
        "ghost (no such package):\n    required by: a-1[ghost]"
    );
}

fn upgradable() -> Vec<Candidate<'static>> {
    repo(vec![
        p("lib", "1").installed(),
        p("lib", "2"),
        p("app", "1").dep("lib").installed(),
        p("app", "2").dep("lib"),
        p("tool", "1").dep("lib"),
    ])
}

#[test]
fn installed_versions_that_fit_are_kept() {
    let pkgs = upgradable();
    assert_eq!(add_on(&pkgs, "app", "tool", false).unwrap(), ["tool-1"]);
    assert_eq!(
        add_on(&pkgs, "app", "app", false).unwrap(),
        Vec::<String>::new()
    );
    // A constraint the installed version does not meet moves it.
    assert_eq!(
        add_on(&pkgs, "app", "tool lib>1", false).unwrap(),
        ["lib-2", "tool-1"]
    );
}

#[test]
fn upgrade_moves_the_named_packages_and_their_dependencies() {
    let pkgs = upgradable();
    assert_eq!(
        add_on(&pkgs, "app", "tool", true).unwrap(),
        ["lib-2", "tool-1"]
    );
    assert_eq!(
        add_on(&pkgs, "app", "app", true).unwrap(),
        ["lib-2", "app-2"]
    );
}

#[test]
fn a_solution_that_drops_an_installed_package_reports_it() {
    let pkgs = repo(vec![
        p("mailplus", "1").provides("mail").priority(2).installed(),
        p("mymail", "1").provides("mail").priority(1),
    ]);
    let w = world("mail mymail");
    let s = solve(&pkgs, &w, &Options::default()).unwrap();
    assert_eq!(s.removals, [0]);
    // An installed package nothing wants any more goes too.
    let s = solve(&pkgs, &world("mymail"), &Options::default()).unwrap();
    assert_eq!(s.removals, [0]);
}

#[test]
fn broken_world_drops_only_the_failing_atom() {
    let pkgs = repo(vec![p("a", "1").dep("ghost"), p("b", "1")]);
    let opts = Options {
        force_broken_world: true,
        ..Default::default()
    };
    let s = solve(&pkgs, &world("a b"), &opts).unwrap();
    assert_eq!(s.order, [1]);
    assert_eq!(s.broken_world.len(), 1);
    assert_eq!(s.broken_world[0].0.name, "a");
    assert!(
        s.broken_world[0].1.contains("ghost (no such package)"),
        "{}",
        s.broken_world[0].1
    );
}

#[test]
fn latest_takes_the_newest_and_moves_what_depends_on_it() {
    let pkgs = repo(vec![
        p("plugin", "1").dep("host=1").installed(),
        p("plugin", "2").dep("host=2"),
        p("host", "1").installed(),
        p("host", "2"),
    ]);
    let opts = Options {
        latest: true,
        command_line: vec!["host".into()],
        ..Default::default()
    };
    let s = solve(&pkgs, &world("plugin host"), &opts).unwrap();
    let names: Vec<String> = s.order.iter().map(|&c| pkgs[c].info.nv()).collect();
    assert_eq!(names, ["host-2", "plugin-2"]);
    // Without it, the installed pair stays.
    assert_eq!(
        add_on(&pkgs, "plugin", "host", false).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn graph_holds_only_what_world_reaches() {
    // A boot's index has tens of thousands of packages; the solver builds nodes for those
    // world reaches: dependencies through provided names, and install_if packages triggering
    // on a reached name. Their other trigger names get an index, nothing unrelated does.
    let pkgs = repo(vec![
        p("a", "1").dep("so:libb.so.1"),
        p("b", "1").provides("so:libb.so.1=1"),
        p("a-doc", "1").install_if("a=1 docs"),
        p("x", "1").dep("y"),
        p("y", "1"),
    ]);
    let g = graph::Graph::build(&pkgs, ["a"].into_iter());
    let reached: Vec<usize> = g.pkgs.iter().map(|node| node.cand).collect();
    assert_eq!(reached, [0, 1, 2]);
    assert!(g.name("docs").is_some());
    assert!(g.name("x").is_none() && g.name("y").is_none());
    assert_eq!(add(&pkgs, "a").unwrap(), ["b-1", "a-1"]);
}
