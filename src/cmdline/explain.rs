//! Human (and machine) readable account of a plan: what each word means for this boot.

use std::fmt::Write;

use super::options::{BootOptions, Setting, WordKind};
use super::plan::*;
use crate::json::Json;

/// Lines of `key  value`, aligned.
struct Lines(String);

impl Lines {
    fn line(&mut self, key: &str, value: String) {
        let _ = writeln!(self.0, "  {key:<12}{value}");
    }
}

/// The plan as text: the decisions, then each word with its meaning, then the warnings.
pub fn explain(options: &BootOptions, plan: &BootPlan) -> String {
    let mut l = Lines(String::new());
    match &plan.mode {
        Mode::Diskless(d) => diskless_lines(&mut l, d),
        Mode::Root(r) => root_lines(&mut l, r),
    }
    plan_lines(&mut l, options, plan);
    let mut text = format!("Boot plan\n{}", l.0);
    text.push_str("\nWords\n");
    if options.words.is_empty() && options.after_dashdash.is_empty() {
        text.push_str("  (none)\n");
    }
    for (i, word) in options.words.iter().enumerate() {
        let mut meaning = word_meaning(options, i);
        if let WordKind::Unknown { name, .. } = &word.kind {
            if let Some(w) = plan.warnings.iter().find(|w| &w.option == name) {
                meaning = format!("{meaning}; {}", w.message);
            }
        }
        if word.text.chars().count() > 28 {
            let _ = writeln!(text, "  {}\n  {:<28} {meaning}", word.text, "");
        } else {
            let _ = writeln!(text, "  {:<28} {meaning}", word.text);
        }
    }
    for a in &options.after_dashdash {
        let _ = writeln!(
            text,
            "  {a:<28} after `--`: an argument for PID 1, not an option"
        );
    }
    if !plan.warnings.is_empty() {
        text.push_str("\nWarnings\n");
        for w in &plan.warnings {
            let _ = writeln!(text, "  warning[{}] {w}", w.kind.as_str());
        }
    }
    text
}

fn diskless_lines(l: &mut Lines, d: &Diskless) {
    l.line(
        "mode",
        format!("diskless: the root is a tmpfs in RAM ({})", d.tmpfs_flags),
    );
    l.line("apkovl", apkovl_text(&d.apkovl));
    l.line(
        "apkovl key",
        match &d.apkovl_key {
            Some(k) => format!("an encrypted apkovl's passphrase is the first line of {} (the console asks when it is missing or wrong)", k.display()),
            None => "an encrypted apkovl's passphrase is asked on the console (3 tries, then the boot goes on without it)".into(),
        },
    );
    l.line("repos", repos_text(&d.repos));
    let mut pkgs = d.pkgs.clone();
    pkgs.push("<apkovl world>".into());
    pkgs.push("alpine-base".into());
    l.line("packages", pkgs.join(" "));
    l.line(
        "usbdelay",
        match d.usbdelay {
            Some(t) => format!(
                "{} s quiet period once a boot repository is found",
                t.as_secs_f64()
            ),
            None => "default: 0.25 s quiet period once a boot repository is found".into(),
        },
    );
    l.line(
        "apk",
        if d.keep_apk_new {
            "keep .apk-new files (no --clean-protected, no overlay list)".into()
        } else {
            "--clean-protected, apkovl files win over package files".into()
        },
    );
    l.line(
        "root cache",
        if d.root_cache {
            format!("the installed root is kept on the boot media as {} and mounted instead of installing when packages, indexes and ramboot are unchanged (ramboot_cache=no turns it off)", crate::rootcache::IMAGE_NAME)
        } else {
            "off (ramboot_cache=no): packages are installed on every boot".into()
        },
    );
    l.line(
        "last-known-good",
        match d.lkg_tries {
            0 => "off: the apkovl found is always used (ramboot_lkg=N turns it on)".into(),
            n => format!("each boot counts an attempt beside the apkovl; after {n} boot(s) not confirmed good (`ramboot ok`, automatic in service mode once every service is ready) the previous apkovl of the rotation is used"),
        },
    );
    if d.bootstrap_usr_merged {
        l.line(
            "usr merge",
            "/bin, /sbin, /lib link into /usr before install".into(),
        );
    }
    if let Some(k) = &d.ssh_key {
        let what = if is_url(k) {
            format!(
                "fetched from {} when the network is up, else by the system's firstboot",
                url_text(k)
            )
        } else {
            format!("key {k}")
        };
        l.line(
            "ssh key",
            format!("{what} (openssh added when default services apply)"),
        );
    }
}

fn root_lines(l: &mut Lines, r: &RootSpec) {
    let fstype = r.fstype.as_deref().unwrap_or("autodetected type");
    l.line(
        "mode",
        format!("root: mount {} ({fstype}) with {}", r.device, r.flags),
    );
    if let Some(t) = &r.overlay_tmpfs {
        l.line(
            "overlay",
            format!("read-only root under a tmpfs overlay ({t})"),
        );
    }
    l.line(
        "/usr",
        match &r.usr {
            UsrMount::Flags(f) => format!("if the root's fstab has /usr: mount with {f}"),
            UsrMount::Disabled => "never mounted separately (usrflags=disable)".into(),
        },
    );
    if r.btrfs_scan {
        l.line("btrfs", "scan for btrfs devices before mounting".into());
    }
    if r.zfs_force {
        l.line("zfs", "import the pool with -f".into());
    }
}

/// What every mode shares: modules, network, consoles, handoff, failure policy, output.
fn plan_lines(l: &mut Lines, options: &BootOptions, plan: &BootPlan) {
    l.line("modules", modules_text(plan));
    if !plan.blacklist.is_empty() {
        l.line("blacklist", plan.blacklist.join(" "));
    }
    l.line("network", network_text(options, plan));
    l.line("modloop", modloop_text(plan));
    l.line(
        "consoles",
        match &plan.switch_root_console {
            Some(c) => format!("{} (switch_root -c /dev/{c})", plan.consoles.join(" ")),
            None => "kernel default".into(),
        },
    );
    l.line(
        "serial",
        match &plan.autodetect_serial {
            AutodetectSerial::Yes => "gettys on detected serial ports when there is no apkovl".into(),
            AutodetectSerial::No => "no detection".into(),
            AutodetectSerial::SetConsole(re) if re.is_empty() => {
                "detect, and make the first working serial port the console".into()
            }
            AutodetectSerial::SetConsole(re) => format!(
                "detect; first working serial port becomes the console if the DMI modalias matches {}",
                re.join(" or ")
            ),
        },
    );
    let mut handoff = plan.init.display().to_string();
    for a in &plan.init_args {
        handoff.push(' ');
        handoff.push_str(a);
    }
    if plan.ramboot_init {
        handoff = format!(
            "service mode (ramboot_init): ramboot stays PID 1, re-executed from a sealed memfd, and runs /etc/inittab and /etc/ramboot/services (not {handoff})"
        );
    }
    l.line("handoff", handoff);
    if plan.single {
        l.line(
            "single",
            "a shell before the root is set up; the boot continues when it exits".into(),
        );
    }
    l.line(
        "on failure",
        match plan.fail_policy {
            FailPolicy::Rescue => "rescue shell, then continue".into(),
            FailPolicy::KernelPanic => "PID 1 exits: kernel panic".into(),
        },
    );
    let mut output = vec![if plan.quiet { "quiet" } else { "verbose" }];
    if plan.debug {
        output.push("debug trace");
    }
    l.line("output", output.join(", "));
    if !plan.hw_autodetect {
        l.line(
            "hwdrivers",
            "no driver autodetection after switch_root (noautodetect)".into(),
        );
    }
    if let Some(t) = plan.watchdog {
        l.line(
            "watchdog",
            format!(
                "service mode: PID 1 feeds /dev/watchdog ({} s timeout, every {} s) and stops it just before reboot",
                t.as_secs(),
                (t / 3).as_secs_f64()
            ),
        );
    }
    if matches!(plan.mode, Mode::Diskless(_)) {
        l.line("tiny-cloud", tiny_cloud_text(plan));
    }
    for s in storage_texts(&plan.storage) {
        l.line("unsupported", s);
    }
}

/// What word `i` means, in one line.
fn word_meaning(options: &BootOptions, i: usize) -> String {
    let word = &options.words[i];
    match &word.kind {
        WordKind::Single => "single-user: a shell before the root is set up".into(),
        WordKind::Console(c) => {
            let later = options.words[i + 1..]
                .iter()
                .any(|w| matches!(w.kind, WordKind::Console(_)));
            let role = if later {
                "gets a getty"
            } else {
                "gets a getty and is init's console"
            };
            match &c.options {
                Some(o) => format!("console {} ({o}): {role}", c.device),
                None => format!("console {}: {role}", c.device),
            }
        }
        WordKind::Known { opt, setting } => {
            let overridden = options.words[i + 1..]
                .iter()
                .any(|w| matches!(&w.kind, WordKind::Known { opt: o, .. } if o == opt));
            let mut s = match setting {
                Setting::Negated => format!("off: {}", opt.help()),
                _ => opt.help().to_string(),
            };
            if overridden {
                s.push_str(" [overridden later]");
            }
            s
        }
        WordKind::Unknown { .. } => "not an Alpine option: left for the kernel and init".into(),
    }
}

fn apkovl_text(a: &ApkovlSource) -> String {
    match a {
        ApkovlSource::Auto => "auto: first *.apkovl.tar.gz* at the top of a boot medium".into(),
        ApkovlSource::None => "none: boot without saved configuration".into(),
        ApkovlSource::Url(u) => format!("download {}", url_text(u)),
        ApkovlSource::Device {
            device,
            fstype,
            path,
        } => format!(
            "mount {} ({}) and read {path}",
            device,
            fstype.as_deref().unwrap_or("autodetected type")
        ),
        ApkovlSource::Path(p) => format!("file {}", p.display()),
    }
}

fn repos_text(r: &RepoSource) -> String {
    match r {
        RepoSource::Auto => "auto: directories marked .boot_repository on boot media".into(),
        RepoSource::None => "none from media; only the apkovl's /etc/apk/repositories".into(),
        RepoSource::List(l) => {
            let shown: Vec<String> = l
                .iter()
                .map(|r| if is_url(r) { url_text(r) } else { r.clone() })
                .collect();
            shown.join(" ")
        }
    }
}

/// A boot URL and, when it has placeholders, what each becomes: they are known only on the
/// machine at boot, so the plan names their sources.
fn url_text(url: &str) -> String {
    use crate::net::template::PLACEHOLDERS;
    const SOURCES: [&str; 4] = [
        "the MAC of the interface the network comes up on",
        "DMI product_uuid",
        "the device tree's serial-number",
        "the host name (DHCP or ip=)",
    ];
    let found: Vec<String> = PLACEHOLDERS
        .iter()
        .zip(SOURCES)
        .filter(|(p, _)| url.contains(**p))
        .map(|(p, src)| format!("{p} = {src}"))
        .collect();
    let mut t = url.to_string();
    if !found.is_empty() {
        let _ = write!(t, " (replaced at boot: {})", found.join(", "));
    }
    if url.starts_with("https://") {
        t.push_str(" [HTTPS: the TLS init (ramboot mkinitfs --tls) checks its certificate against the initramfs CA bundle]");
    }
    t
}

fn modules_text(plan: &BootPlan) -> String {
    let mut s = if plan.modules.is_empty() {
        "none requested".to_string()
    } else {
        plan.modules.join(" ")
    };
    if !plan.fixed_modules.is_empty() {
        let _ = write!(s, " (always, quietly: {})", plan.fixed_modules.join(" "));
    }
    s
}

fn network_text(options: &BootOptions, plan: &BootPlan) -> String {
    let iface = |d: &Option<String>| match (d, &plan.bootif) {
        (Some(d), _) => d.clone(),
        (None, Some(mac)) => format!("the interface with MAC {mac}"),
        (None, None) => "the first interface with a link".into(),
    };
    let how = match (&plan.ip, plan.needs_network) {
        (Some(IpConfig::Off), _) => return "off (ip=off)".into(),
        (_, false) => return "not needed".into(),
        (None, true) => format!("DHCP (the default) on {}", iface(&None)),
        (Some(IpConfig::Dhcp { device }), true) => format!("DHCP on {}", iface(device)),
        (Some(IpConfig::Static(s)), true) => {
            let mut t = format!("static {} on {}", s.client, iface(&s.device));
            if let Some(m) = s.netmask {
                let _ = write!(t, " netmask {m}");
            }
            if let Some(g) = s.gateway {
                let _ = write!(t, " gateway {g}");
            }
            if !s.dns.is_empty() {
                let dns: Vec<String> = s.dns.iter().map(|d| d.to_string()).collect();
                let _ = write!(t, " dns {}", dns.join(" "));
            }
            t
        }
    };
    let ipv6 = match &plan.ip {
        Some(IpConfig::Static(_)) => "IPv6 SLAAC by the kernel alongside (not waited for)".into(),
        _ => format!(
            "IPv6 SLAAC by the kernel at the same time as DHCPv4: up with the first that gives \
             what the boot needs (SLAAC: address, default route, RA DNS when a URL names a \
             host), a DHCPv4 lease within {}s after SLAAC still taken and used",
            crate::net::dual::GRACE.as_secs()
        ),
    };
    format!(
        "{how}; needed by {}; {ipv6}; a failure is a warning and the boot goes on with local sources",
        super::plan::network_needed_by(options, plan).join(" ")
    )
}

/// How IPv6 comes, for the JSON form: `slaac` beside a static address (not waited for),
/// `slaac-alongside` when it runs at the same time as DHCPv4 and may bring the network up.
fn ipv6_json(plan: &BootPlan) -> &'static str {
    match &plan.ip {
        Some(IpConfig::Off) => "off",
        _ if !plan.needs_network => "off",
        Some(IpConfig::Static(_)) => "slaac",
        _ => "slaac-alongside",
    }
}

/// When the diskless boot adds tiny-cloud (src/boot/diskless/tinycloud.rs).
fn tiny_cloud_text(plan: &BootPlan) -> String {
    let when = if plan.tiny_cloud_off {
        return "off (notinycloud/nods): never added, whatever the machine says".into();
    } else if plan.tiny_cloud {
        "wanted (tinycloud=/ds=)"
    } else {
        "added when a filesystem is labelled cidata/CIDATA or the DMI product_serial starts with ds="
    };
    format!(
        "{when}: packages {}, services tiny-cloud-boot (boot), tiny-cloud-early, -main, -final (default); with the default services only, never when the new root has /etc/tiny-cloud.disabled",
        crate::boot::packages::TINY_CLOUD.join(" ")
    )
}

fn modloop_text(plan: &BootPlan) -> String {
    let verify = if plan.modloop_verify {
        "signature checked"
    } else {
        "signature NOT checked"
    };
    match &plan.modloop {
        ModloopSpec::Auto => format!("auto: boot/modloop-* on boot media, {verify}"),
        ModloopSpec::None => "none".into(),
        ModloopSpec::Url(u) => format!("download {}, {verify}", url_text(u)),
        ModloopSpec::Path(p) => format!("{p} on boot media, {verify}"),
    }
}

fn storage_texts(s: &Storage) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(c) = &s.crypt {
        out.push(format!("encrypted device {}", c.device));
    }
    if let Some(r) = &s.resume {
        out.push(format!("resume from {}", r.device));
    }
    if !s.nbd.is_empty() {
        out.push(format!("network block devices {}", s.nbd.join(" ")));
    }
    if s.aoe.is_some() {
        out.push("ATA over Ethernet".into());
    }
    if let Some(w) = &s.wireguard {
        out.push(format!("WireGuard interface {}", w.interface));
    }
    if s.memdisk {
        out.push("memdisk".into());
    }
    if !s.zfcp.is_empty() || !s.dasd.is_empty() || s.s390x_net.is_some() {
        out.push("s390x device set-up".into());
    }
    out
}

/// The plan as JSON (pretty-printed), with the words and warnings.
pub fn explain_json(options: &BootOptions, plan: &BootPlan) -> String {
    let words = options
        .words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let (kind, name) = match &w.kind {
                WordKind::Single => ("single", None),
                WordKind::Console(_) => ("console", Some("console".to_string())),
                WordKind::Known { opt, setting } => (
                    match setting {
                        Setting::Value(_) => "option",
                        Setting::Bare => "flag",
                        Setting::Negated => "negated",
                    },
                    Some(opt.name().to_string()),
                ),
                WordKind::Unknown { name, .. } => ("unknown", Some(name.clone())),
            };
            Json::obj([
                ("text", Json::str(&w.text)),
                ("kind", Json::str(kind)),
                ("name", Json::opt_str(name)),
                ("meaning", Json::str(word_meaning(options, i))),
            ])
        })
        .collect();
    let warnings = plan
        .warnings
        .iter()
        .map(|w| {
            Json::obj([
                ("kind", Json::str(w.kind.as_str())),
                ("option", Json::str(&w.option)),
                ("message", Json::str(&w.message)),
            ])
        })
        .collect();
    Json::obj([
        ("plan", plan_json(options, plan)),
        ("words", Json::Arr(words)),
        ("after_dashdash", Json::strs(&options.after_dashdash)),
        ("warnings", Json::Arr(warnings)),
    ])
    .render(true)
}

fn device_json(d: &DeviceSpec) -> Json {
    let (kind, value) = match d {
        DeviceSpec::Path(p) => ("path", p.display().to_string()),
        DeviceSpec::Uuid(s) => ("uuid", s.clone()),
        DeviceSpec::Label(s) => ("label", s.clone()),
        DeviceSpec::PartUuid(s) => ("partuuid", s.clone()),
        DeviceSpec::PartLabel(s) => ("partlabel", s.clone()),
        DeviceSpec::Zfs(s) => ("zfs", s.clone()),
    };
    Json::obj([("kind", Json::str(kind)), ("value", Json::str(value))])
}

fn tagged(kind: &str, mut rest: Vec<(&str, Json)>) -> Json {
    rest.insert(0, ("kind", Json::str(kind)));
    Json::obj(rest)
}

fn plan_json(options: &BootOptions, plan: &BootPlan) -> Json {
    let mode = match &plan.mode {
        Mode::Diskless(d) => tagged(
            "diskless",
            vec![
                (
                    "apkovl",
                    match &d.apkovl {
                        ApkovlSource::Auto => tagged("auto", vec![]),
                        ApkovlSource::None => tagged("none", vec![]),
                        ApkovlSource::Url(u) => tagged("url", vec![("url", Json::str(u))]),
                        ApkovlSource::Device {
                            device,
                            fstype,
                            path,
                        } => tagged(
                            "device",
                            vec![
                                ("device", device_json(device)),
                                ("fstype", Json::opt_str(fstype.clone())),
                                ("path", Json::str(path)),
                            ],
                        ),
                        ApkovlSource::Path(p) => {
                            tagged("path", vec![("path", Json::str(p.display().to_string()))])
                        }
                    },
                ),
                (
                    "repos",
                    match &d.repos {
                        RepoSource::Auto => tagged("auto", vec![]),
                        RepoSource::None => tagged("none", vec![]),
                        RepoSource::List(l) => tagged("list", vec![("repos", Json::strs(l))]),
                    },
                ),
                ("pkgs", Json::strs(&d.pkgs)),
                (
                    "usbdelay_ms",
                    d.usbdelay
                        .map_or(Json::Null, |t| Json::Num(t.as_millis() as f64)),
                ),
                ("tmpfs_flags", Json::str(&d.tmpfs_flags)),
                ("ssh_key", Json::opt_str(d.ssh_key.clone())),
                (
                    "apkovl_key",
                    Json::opt_str(d.apkovl_key.as_ref().map(|k| k.display().to_string())),
                ),
                ("keep_apk_new", Json::Bool(d.keep_apk_new)),
                ("bootstrap_usr_merged", Json::Bool(d.bootstrap_usr_merged)),
                ("root_cache", Json::Bool(d.root_cache)),
                ("lkg_tries", Json::Num(f64::from(d.lkg_tries))),
            ],
        ),
        Mode::Root(r) => tagged(
            "root",
            vec![
                ("device", device_json(&r.device)),
                ("fstype", Json::opt_str(r.fstype.clone())),
                ("flags", Json::str(&r.flags)),
                ("overlay_tmpfs", Json::opt_str(r.overlay_tmpfs.clone())),
                (
                    "usr_flags",
                    match &r.usr {
                        UsrMount::Flags(f) => Json::str(f),
                        UsrMount::Disabled => Json::Null,
                    },
                ),
                ("btrfs_scan", Json::Bool(r.btrfs_scan)),
                ("zfs_force", Json::Bool(r.zfs_force)),
            ],
        ),
    };
    let ip = match &plan.ip {
        None => Json::Null,
        Some(IpConfig::Off) => tagged("off", vec![]),
        Some(IpConfig::Dhcp { device }) => {
            tagged("dhcp", vec![("device", Json::opt_str(device.clone()))])
        }
        Some(IpConfig::Static(s)) => {
            let addr = |a: Option<std::net::Ipv4Addr>| Json::opt_str(a.map(|a| a.to_string()));
            tagged(
                "static",
                vec![
                    ("client", Json::str(s.client.to_string())),
                    ("server", Json::opt_str(s.server.clone())),
                    ("gateway", addr(s.gateway)),
                    ("netmask", addr(s.netmask)),
                    ("hostname", Json::opt_str(s.hostname.clone())),
                    ("device", Json::opt_str(s.device.clone())),
                    ("dns", Json::strs(s.dns.iter().map(|d| d.to_string()))),
                    ("ntp", Json::opt_str(s.ntp.clone())),
                ],
            )
        }
    };
    let modloop = match &plan.modloop {
        ModloopSpec::Auto => tagged("auto", vec![]),
        ModloopSpec::None => tagged("none", vec![]),
        ModloopSpec::Url(u) => tagged("url", vec![("url", Json::str(u))]),
        ModloopSpec::Path(p) => tagged("path", vec![("path", Json::str(p))]),
    };
    let serial = match &plan.autodetect_serial {
        AutodetectSerial::Yes => tagged("yes", vec![]),
        AutodetectSerial::No => tagged("no", vec![]),
        AutodetectSerial::SetConsole(re) => {
            tagged("setconsole", vec![("dmi_regexes", Json::strs(re))])
        }
    };
    Json::obj([
        ("mode", mode),
        ("modules", Json::strs(&plan.modules)),
        ("fixed_modules", Json::strs(&plan.fixed_modules)),
        ("blacklist", Json::strs(&plan.blacklist)),
        ("quiet", Json::Bool(plan.quiet)),
        ("debug", Json::Bool(plan.debug)),
        ("single", Json::Bool(plan.single)),
        (
            "fail_policy",
            Json::str(match plan.fail_policy {
                FailPolicy::Rescue => "rescue",
                FailPolicy::KernelPanic => "kernel-panic",
            }),
        ),
        ("init", Json::str(plan.init.display().to_string())),
        ("init_args", Json::strs(&plan.init_args)),
        ("ramboot_init", Json::Bool(plan.ramboot_init)),
        ("kernel_init_args", Json::strs(&plan.kernel_init_args)),
        ("consoles", Json::strs(&plan.consoles)),
        (
            "switch_root_console",
            Json::opt_str(plan.switch_root_console.clone()),
        ),
        ("autodetect_serial", serial),
        ("ip", ip),
        ("needs_network", Json::Bool(plan.needs_network)),
        ("ipv6", Json::str(ipv6_json(plan))),
        (
            "network_needed_by",
            Json::strs(super::plan::network_needed_by(options, plan)),
        ),
        ("bootif", Json::opt_str(plan.bootif.clone())),
        ("uevent_buf_size", Json::Num(plan.uevent_buf_size as f64)),
        ("modloop", modloop),
        ("modloop_verify", Json::Bool(plan.modloop_verify)),
        ("hw_autodetect", Json::Bool(plan.hw_autodetect)),
        (
            "splash",
            Json::str(match plan.splash {
                Splash::On => "on",
                Splash::Off => "off",
                Splash::UntilInit => "until-init",
            }),
        ),
        ("chart", Json::Bool(plan.chart)),
        ("tiny_cloud", Json::Bool(plan.tiny_cloud)),
        ("tiny_cloud_off", Json::Bool(plan.tiny_cloud_off)),
        (
            "watchdog_timeout",
            plan.watchdog
                .map_or(Json::Null, |t| Json::Num(t.as_secs() as f64)),
        ),
        ("unsupported", Json::strs(storage_texts(&plan.storage))),
        ("passthrough", Json::strs(&plan.passthrough)),
    ])
}
