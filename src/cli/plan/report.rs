//! The report of `ramboot plan`: every decision of the finished run, for people or as JSON.

use crate::boot::diskless::NetworkOutcome;
use crate::boot::{self, timeline::Outcome, BootEnd, Finished};
use crate::cmdline::{ApkovlSource, Diskless, Mode, RepoSource};
use crate::hw::discover::SeenDevice;
use crate::json::Json;
use crate::sys::{Call, RecordingSys};
use std::path::PathBuf;

/// One boot medium as discovery saw it.
#[derive(Debug, Default)]
pub struct MediaEntry {
    pub device: String,
    pub fstype: Option<String>,
    pub label: Option<String>,
    pub uuid: Option<String>,
    pub mountpoint: Option<String>,
    pub repositories: Vec<String>,
    pub apkovls: Vec<String>,
    pub modloops: Vec<String>,
    /// Why it was not used, or what it was used for.
    pub verdict: String,
}

/// Every decision of one run, rendered as text or JSON.
#[derive(Debug, Default)]
pub struct Report {
    pub cmdline: String,
    pub setup: Vec<String>,
    pub mode: String,
    pub modules: Vec<String>,
    pub fixed_modules: Vec<String>,
    pub blacklist: Vec<String>,
    pub cmdline_warnings: Vec<String>,
    pub media: Vec<MediaEntry>,
    pub discovery: String,
    pub apkovl: Option<String>,
    pub apkovl_why: String,
    pub apkovl_ignored: Vec<String>,
    pub overlay_files: usize,
    pub default_services: Option<bool>,
    pub modloop: Option<String>,
    /// The network stage: what was configured, or why not (None: not needed).
    pub network: Option<String>,
    pub repositories: Vec<String>,
    pub world: Vec<String>,
    pub installed: Vec<String>,
    pub skipped: Vec<String>,
    pub notes: Vec<String>,
    pub stages: Vec<(String, String)>,
    pub handoff: String,
    pub calls: Vec<String>,
    pub end: String,
    pub handed_off: bool,
    /// What the dry run could not check (made by package scripts that did not run).
    pub unverified: Vec<String>,
    pub log: Vec<String>,
}

fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Ok => "ok".into(),
        Outcome::Degraded(w) => format!("degraded: {w}"),
        Outcome::Failed(w) => format!("failed: {w}"),
    }
}

/// Builds the report from a finished run and its trace.
pub fn report(f: &Finished, sys: &RecordingSys, cmdline: String) -> Report {
    let plan = &f.plan;
    let mut r = Report {
        cmdline,
        mode: mode_text(&plan.mode),
        modules: plan.modules.clone(),
        fixed_modules: plan.fixed_modules.clone(),
        blacklist: plan.blacklist.clone(),
        cmdline_warnings: plan.warnings.iter().map(|w| w.to_string()).collect(),
        calls: sys.trace(),
        ..Default::default()
    };
    discovery(&mut r, f);
    if let Mode::Diskless(dl) = &plan.mode {
        diskless(&mut r, f, dl, sys);
    }
    outcome(&mut r, f);
    r
}

fn mode_text(mode: &Mode) -> String {
    match mode {
        Mode::Diskless(_) => "diskless (no root=): tmpfs root from boot media".into(),
        Mode::Root(s) => format!(
            "root={} ({}, options {}{})",
            s.device,
            s.fstype.as_deref().unwrap_or("type probed"),
            s.flags,
            if s.overlay_tmpfs.is_some() {
                ", tmpfs overlay"
            } else {
                ""
            }
        ),
    }
}

/// The devices discovery saw, each with what became of it.
fn discovery(r: &mut Report, f: &Finished) {
    let Some(d) = &f.record.discovery else {
        return;
    };
    r.discovery = format!(
        "{} after {:.2}s{}",
        d.ending,
        d.finished.saturating_sub(d.started).as_secs_f64(),
        match d.ready_at {
            Some(at) => format!(" (goal met at {:.2}s)", at.as_secs_f64()),
            None => " (goal not met)".into(),
        }
    );
    r.media = d.devices.iter().map(|s| media_entry(f, s)).collect();
    if let Some(c) = &d.apkovl {
        r.apkovl_ignored = c
            .others
            .iter()
            .map(|o| o.path.display().to_string())
            .collect();
    }
}

/// One device discovery scanned: what it holds and why it was kept or not.
fn media_entry(f: &Finished, s: &SeenDevice) -> MediaEntry {
    let probe = s.info.probe.as_ref();
    let mut e = MediaEntry {
        device: s.info.dev.name.clone(),
        fstype: probe
            .map(|p| p.fstype.to_string())
            .or_else(|| s.mounted.as_ref().map(|m| m.fstype.to_string())),
        label: probe.and_then(|p| p.label.clone()),
        uuid: probe.and_then(|p| p.uuid.clone()),
        mountpoint: s
            .mounted
            .as_ref()
            .map(|m| m.mountpoint.display().to_string()),
        ..Default::default()
    };
    if let (Some(o), Some(m)) = (&s.offer, &s.mounted) {
        let full = |p: &PathBuf| m.mountpoint.join(p).display().to_string();
        e.repositories = o.boot_repositories.iter().map(full).collect();
        e.apkovls = o.apkovls.iter().map(full).collect();
        e.modloops = o.modloops.iter().map(full).collect();
    }
    e.verdict = match (&s.error, &s.offer, &s.mounted) {
        (Some(err), _, _) => format!("skipped: {err}"),
        (None, Some(_), Some(m)) if m.already => "kept (was already mounted)".into(),
        (None, Some(_), Some(_)) => "kept".into(),
        (None, Some(_), None) => {
            "unmounted: no boot repository, apkovl, modloop or cache at its top level".into()
        }
        (None, None, _) if probe.is_none() => "no filesystem recognised".into(),
        (None, None, _) => match &f.plan.mode {
            Mode::Root(_)
                if f.record
                    .discovery
                    .as_ref()
                    .and_then(|d| d.root.as_ref())
                    .is_some_and(|x| x.dev.name == s.info.dev.name) =>
            {
                "the root device".into()
            }
            _ => "not needed".into(),
        },
    };
    e
}

/// The diskless branch: the apkovl and why, the repositories, the packages asked for.
/// The network stage's outcome; `sys`'s record says which name the interface had before
/// `/etc/mactab` renamed it.
fn network_text(n: &NetworkOutcome, sys: &RecordingSys) -> String {
    match n {
        NetworkOutcome::Off => "off (ip=off): what needs it is not reachable".into(),
        NetworkOutcome::Up(c) => {
            let old = sys.calls().into_iter().find_map(|call| match call {
                Call::RenameLink { interface, to } if to == c.interface => Some(interface),
                _ => None,
            });
            let renamed = match old {
                Some(old) => format!(" (renamed from {old} by {})", crate::net::mactab::PATH),
                None => String::new(),
            };
            format!(
                "up by {}: {}; interface: {}{renamed}",
                c.by(),
                c.summary(),
                c.why
            )
        }
        NetworkOutcome::Failed(why) => {
            format!("not configured: {why}; the boot went on with the local sources")
        }
    }
}

fn diskless(r: &mut Report, f: &Finished, dl: &Diskless, sys: &RecordingSys) {
    let stage = |name: &str| f.timeline.stages.iter().rev().find(|s| s.name == name);
    let chosen = f.record.discovery.as_ref().and_then(|d| d.apkovl.as_ref());
    match &f.record.decisions {
        Some(dec) => {
            r.apkovl = dec.apkovl.as_ref().map(|p| p.display().to_string());
            r.overlay_files = dec.overlay_files.len();
            r.default_services = Some(dec.default_services);
            r.modloop = dec.modloop.clone();
            r.network = dec.network.as_ref().map(|n| network_text(n, sys));
            r.repositories = dec.repositories.clone();
            r.world = dec.packages.clone();
            r.notes = dec.notes.clone();
        }
        None => r
            .notes
            .push("the diskless branch did not finish (see the end)".into()),
    }
    r.apkovl_why = match (&dl.apkovl, &r.apkovl) {
        (ApkovlSource::Auto, Some(_)) => chosen
            .map(|c| format!("found on the boot media: {}", c.reason))
            .unwrap_or_default(),
        (ApkovlSource::Auto, None) => match chosen {
            Some(c) => format!(
                "{} was found but not applied: {}",
                c.chosen.path.display(),
                stage("apkovl")
                    .map(|s| outcome_text(&s.outcome))
                    .unwrap_or_default()
            ),
            None => format!(
                "no file matching {} at the top level of any mounted boot medium",
                crate::media::APKOVL_PATTERN
            ),
        },
        (ApkovlSource::None, _) => "disabled by the command line (noapkovl / apkovl=none)".into(),
        // What the download did, with the URL after substitution (the boot's note).
        (ApkovlSource::Url(u), _) => f
            .record
            .decisions
            .as_ref()
            .and_then(|d| d.notes.iter().find(|n| n.starts_with("apkovl: ")))
            .map_or_else(
                || format!("apkovl={u}: not fetched"),
                |n| n[8..].to_string(),
            ),
        (ApkovlSource::Path(p), None) => {
            format!("apkovl={}: not a file (or not a valid apkovl)", p.display())
        }
        (ApkovlSource::Device { device, .. }, None) => {
            format!("apkovl={device}:...: not mounted or not a file")
        }
        (_, Some(_)) => "named by apkovl= on the command line".into(),
    };
    if dl.repos == RepoSource::None {
        r.notes
            .push("noalpine_repo: only the apkovl's repositories are used".into());
    }
}

/// What was installed or skipped, the stages, the handoff and the end.
fn outcome(r: &mut Report, f: &Finished) {
    let plan = &f.plan;
    r.installed = f
        .record
        .installed
        .iter()
        .map(|(n, v)| format!("{n}-{v}"))
        .collect();
    // A repository that was not used comes first: it often explains a skipped package.
    r.skipped = f
        .record
        .unused_repositories
        .iter()
        .map(|w| format!("repository not used: {w}"))
        .chain(
            f.record
                .package_problems
                .iter()
                .map(|(n, w)| format!("{n}: {w}")),
        )
        .collect();
    for s in &f.timeline.stages {
        r.stages.push((s.name.clone(), outcome_text(&s.outcome)));
        if s.outcome != Outcome::Ok {
            r.skipped
                .push(format!("stage {}: {}", s.name, outcome_text(&s.outcome)));
        }
    }
    if let Some(usr) = &f.record.usr {
        r.notes.push(format!("/usr: {usr}"));
    }
    r.notes.extend(f.record.scripts_not_run.iter().cloned());
    r.unverified = f.record.unverified.clone();
    let mut handoff = String::from("switch_root");
    if let Some(c) = &plan.switch_root_console {
        handoff.push_str(&format!(" -c /dev/{c}"));
    }
    handoff.push_str(&format!(" {} {}", boot::SYSROOT, plan.init.display()));
    for a in &plan.init_args {
        handoff.push(' ');
        handoff.push_str(a);
    }
    r.handoff = handoff;
    r.handed_off = matches!(f.end, BootEnd::HandedOff);
    r.end = match &f.end {
        BootEnd::HandedOff if r.unverified.is_empty() => {
            format!("handed off: exec {} in the new root", plan.init.display())
        }
        BootEnd::HandedOff => format!(
            "handed off: exec {} in the new root (not verified: {})",
            plan.init.display(),
            r.unverified.join("; ")
        ),
        BootEnd::GaveUp { reason } => {
            format!("stopped: {reason} (the real boot would open the rescue shell here)")
        }
        BootEnd::KernelPanic { reason } => format!("kernel panic (panic= is set): {reason}"),
        BootEnd::Idle { reason } => format!("idle (no rescue shell): {reason}"),
    };
}

fn list(out: &mut String, title: &str, items: &[String]) {
    if items.is_empty() {
        out.push_str(&format!("{title}: none\n"));
    } else {
        out.push_str(&format!("{title}:\n"));
        for i in items {
            out.push_str(&format!("  {i}\n"));
        }
    }
}

impl Report {
    /// The decisions, the recorded calls and the end, for people.
    pub fn text(&self) -> String {
        let mut o = String::new();
        o.push_str("\n== decisions ==\n");
        o.push_str(&format!("command line: {}\n", self.cmdline));
        for s in &self.setup {
            o.push_str(&format!("setup: {s}\n"));
        }
        o.push_str(&format!("mode: {}\n", self.mode));
        o.push_str(&format!(
            "modules: {} (then, quietly: {})\n",
            if self.modules.is_empty() {
                "-".into()
            } else {
                self.modules.join(" ")
            },
            self.fixed_modules.join(" ")
        ));
        if !self.blacklist.is_empty() {
            o.push_str(&format!("blacklist: {}\n", self.blacklist.join(" ")));
        }
        for w in &self.cmdline_warnings {
            o.push_str(&format!("command line warning: {w}\n"));
        }
        o.push_str(&format!("devices ({}):\n", self.discovery));
        for m in &self.media {
            o.push_str(&format!(
                "  {} [{}{}{}]{}: {}\n",
                m.device,
                m.fstype.as_deref().unwrap_or("?"),
                m.label
                    .as_ref()
                    .map(|l| format!(" LABEL={l}"))
                    .unwrap_or_default(),
                m.uuid
                    .as_ref()
                    .map(|u| format!(" UUID={u}"))
                    .unwrap_or_default(),
                m.mountpoint
                    .as_ref()
                    .map(|p| format!(" at {p}"))
                    .unwrap_or_default(),
                m.verdict
            ));
            for (what, v) in [
                ("repository", &m.repositories),
                ("apkovl", &m.apkovls),
                ("modloop", &m.modloops),
            ] {
                for x in v {
                    o.push_str(&format!("    {what} {x}\n"));
                }
            }
        }
        o.push_str(&format!(
            "apkovl: {} ({})\n",
            self.apkovl.as_deref().unwrap_or("none"),
            self.apkovl_why
        ));
        if self.apkovl.is_some() {
            o.push_str(&format!(
                "  {} entries unpacked into /sysroot\n",
                self.overlay_files
            ));
        }
        for i in &self.apkovl_ignored {
            o.push_str(&format!("  ignored: {i}\n"));
        }
        if let Some(d) = self.default_services {
            o.push_str(&format!(
                "default services: {}\n",
                if d {
                    "added (no apkovl, or it has etc/.default_boot_services)"
                } else {
                    "not added (the apkovl decides)"
                }
            ));
        }
        if let Some(m) = &self.modloop {
            o.push_str(&format!("modloop: {m}\n"));
        }
        if let Some(n) = &self.network {
            o.push_str(&format!("network: {n}\n"));
        }
        list(&mut o, "repositories", &self.repositories);
        o.push_str(&format!("packages asked for: {}\n", self.world.join(" ")));
        list(&mut o, "installed, in order", &self.installed);
        list(&mut o, "skipped or degraded", &self.skipped);
        list(&mut o, "notes", &self.notes);
        if !self.unverified.is_empty() {
            list(&mut o, "not verified", &self.unverified);
        }
        o.push_str(&format!("handoff: {}\n", self.handoff));
        o.push_str("\n== recorded calls ==\n");
        for c in &self.calls {
            o.push_str(&format!("{c}\n"));
        }
        o.push_str(&format!("\n== end ==\n{}\n", self.end));
        o
    }

    pub fn json(&self) -> String {
        let media = self.media.iter().map(|m| {
            Json::obj([
                ("device", Json::str(&m.device)),
                ("fstype", Json::opt_str(m.fstype.as_deref())),
                ("label", Json::opt_str(m.label.as_deref())),
                ("uuid", Json::opt_str(m.uuid.as_deref())),
                ("mountpoint", Json::opt_str(m.mountpoint.as_deref())),
                ("repositories", Json::strs(&m.repositories)),
                ("apkovls", Json::strs(&m.apkovls)),
                ("modloops", Json::strs(&m.modloops)),
                ("verdict", Json::str(&m.verdict)),
            ])
        });
        let stages = self
            .stages
            .iter()
            .map(|(n, o)| Json::obj([("name", Json::str(n)), ("outcome", Json::str(o))]));
        Json::obj([
            ("cmdline", Json::str(&self.cmdline)),
            ("setup", Json::strs(&self.setup)),
            ("mode", Json::str(&self.mode)),
            ("modules", Json::strs(&self.modules)),
            ("fixed_modules", Json::strs(&self.fixed_modules)),
            ("blacklist", Json::strs(&self.blacklist)),
            ("cmdline_warnings", Json::strs(&self.cmdline_warnings)),
            ("discovery", Json::str(&self.discovery)),
            ("devices", Json::Arr(media.collect())),
            ("apkovl", Json::opt_str(self.apkovl.as_deref())),
            ("apkovl_why", Json::str(&self.apkovl_why)),
            ("apkovl_ignored", Json::strs(&self.apkovl_ignored)),
            ("overlay_files", Json::Num(self.overlay_files as f64)),
            (
                "default_services",
                self.default_services.map_or(Json::Null, Json::Bool),
            ),
            ("modloop", Json::opt_str(self.modloop.as_deref())),
            ("network", Json::opt_str(self.network.as_deref())),
            ("repositories", Json::strs(&self.repositories)),
            ("packages", Json::strs(&self.world)),
            ("installed", Json::strs(&self.installed)),
            ("skipped", Json::strs(&self.skipped)),
            ("notes", Json::strs(&self.notes)),
            ("stages", Json::Arr(stages.collect())),
            ("handoff", Json::str(&self.handoff)),
            ("calls", Json::strs(&self.calls)),
            ("log", Json::strs(&self.log)),
            ("handed_off", Json::Bool(self.handed_off)),
            ("unverified", Json::strs(&self.unverified)),
            ("end", Json::str(&self.end)),
        ])
        .render(false)
    }
}
