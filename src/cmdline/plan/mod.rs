//! Stage two: [`BootOptions`] → [`BootPlan`], the validated decisions the boot consumes.
//!
//! Every value is checked here. A bad value never stops the boot: it becomes a [`Warning`] and
//! the documented default. Where Alpine's script does something the user cannot have meant,
//! we do what was meant; the list is in the [module docs](super).
//!
//! Map: [`types`] holds the plan's types; this file the planner and the options every mode
//! shares; `storage` the root's storage layers (crypt, resume, LVM, ...) and `root=`; `diskless`
//! the diskless mode's sources; [`values`] the parsers of single values (`ip=`, `BOOTIF=`, ...).

mod diskless;
mod storage;
mod types;
mod values;

pub use types::*;
pub use values::{parse_bool, parse_bootif, parse_cryptkey, parse_device, parse_ip};

use std::path::PathBuf;
use std::time::Duration;

use super::lint;
use super::options::{BootOptions, Opt, Setting};

/// Decides the boot from the options. Never fails; problems become warnings.
pub fn plan(options: &BootOptions) -> BootPlan {
    Planner {
        options,
        warnings: Vec::new(),
    }
    .plan()
}

struct Planner<'a> {
    options: &'a BootOptions,
    warnings: Vec<Warning>,
}

/// A URL scheme Alpine fetches with wget (`is_url`).
pub fn is_url(s: &str) -> bool {
    ["http://", "https://", "ftp://"]
        .iter()
        .any(|p| s.starts_with(p))
}

fn comma_list(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

fn push_unique(list: &mut Vec<String>, item: &str) {
    if !item.is_empty() && !list.iter().any(|m| m == item) {
        list.push(item.to_string());
    }
}

impl<'a> Planner<'a> {
    fn warn(&mut self, kind: WarningKind, option: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Warning {
            kind,
            option: option.into(),
            message: message.into(),
        });
    }

    fn get(&self, opt: Opt) -> Option<&'a Setting> {
        self.options.last(opt)
    }

    /// A non-empty value; `Bare` and `Negated` give None (with a warning for `Bare`).
    fn value(&mut self, opt: Opt) -> Option<&'a str> {
        match self.get(opt)? {
            Setting::Value(v) if v.is_empty() => None,
            Setting::Value(v) => Some(v),
            Setting::Bare => {
                self.warn(
                    WarningKind::InvalidValue,
                    opt.name(),
                    format!("`{opt}` needs a value (`{opt}=...`); ignored"),
                );
                None
            }
            Setting::Negated => None,
        }
    }

    /// A boolean option; `default` when absent or unreadable.
    fn flag(&mut self, opt: Opt, default: bool) -> bool {
        match self.get(opt) {
            None => default,
            Some(Setting::Bare) => true,
            Some(Setting::Negated) => false,
            Some(Setting::Value(v)) if v.is_empty() => default,
            Some(Setting::Value(v)) => match parse_bool(v) {
                Some(b) => b,
                None => {
                    self.warn(
                        WarningKind::InvalidValue,
                        opt.name(),
                        format!(
                            "`{opt}={v}` is not yes/no; using the default ({})",
                            if default { "yes" } else { "no" }
                        ),
                    );
                    default
                }
            },
        }
    }

    fn number<T: std::str::FromStr>(&mut self, opt: Opt) -> Option<T> {
        let v = self.value(opt)?;
        match v.parse() {
            Ok(n) => Some(n),
            Err(_) => {
                self.warn(
                    WarningKind::InvalidValue,
                    opt.name(),
                    format!("`{opt}={v}` is not a number; ignored"),
                );
                None
            }
        }
    }

    fn device(&mut self, opt: Opt, text: &str) -> DeviceSpec {
        let (spec, normalized) = parse_device(text);
        if normalized {
            self.warn(
                WarningKind::InvalidValue,
                opt.name(),
                format!("`{text}` is not a path, UUID=, LABEL=, PARTUUID=, PARTLABEL= or ZFS=; using {}", spec),
            );
        }
        spec
    }

    fn plan(mut self) -> BootPlan {
        lint::check_words(self.options, &mut self.warnings);

        let root = self.root_device();
        let fstype = match (self.value(Opt::Rootfstype), &root) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(DeviceSpec::Zfs(_))) => Some("zfs".to_string()),
            _ => None,
        };

        let mut modules = Vec::new();
        if let Some(list) = self.value(Opt::Modules) {
            for m in comma_list(list) {
                push_unique(&mut modules, &m);
            }
        }
        if let Some(t) = &fstype {
            push_unique(&mut modules, t);
        }
        let fixed_modules = FIXED_MODULES
            .iter()
            .filter(|f| !modules.iter().any(|m| m == *f))
            .map(|f| f.to_string())
            .collect();
        let blacklist = self
            .value(Opt::Blacklist)
            .map(comma_list)
            .unwrap_or_default();

        let quiet = self.flag(Opt::Quiet, false);
        let debug = self.flag(Opt::DebugInit, false);
        let fail_policy = self.fail_policy();
        let (init, init_args) = self.init();
        let ramboot_init = self.ramboot_init();

        let mut consoles = Vec::new();
        for c in self.options.consoles() {
            if c.device.is_empty() {
                self.warn(
                    WarningKind::InvalidValue,
                    "console",
                    "`console=` without a device name is ignored",
                );
            } else {
                consoles.push(c.device.clone());
            }
        }
        let switch_root_console = consoles.last().cloned();

        let autodetect_serial = self.autodetect_serial();
        let ip = self.ip();
        let bootif = self.bootif();
        let uevent_buf_size = self.uevent_buf_size();
        let watchdog = self.watchdog();
        let modloop = self.modloop();
        let modloop_verify = self.flag(Opt::ModloopVerify, true);
        let hw_autodetect = self.flag(Opt::Autodetect, true);
        let splash = self.splash();
        let chart = self.flag(Opt::Chart, false);
        if chart {
            self.unsupported(Opt::Chart, "boot charting (bootchartd)");
        }
        // Alpine tests these with `-n`: any value, even a bare word, asks for tiny-cloud.
        let wanted = |s: Option<&Setting>| match s {
            Some(Setting::Bare) => true,
            Some(Setting::Value(v)) => !v.is_empty() && v != "no",
            Some(Setting::Negated) | None => false,
        };
        let tiny_cloud = wanted(self.get(Opt::Tinycloud)) || wanted(self.get(Opt::Ds));
        let refused = |s: Option<&Setting>| match s {
            Some(Setting::Negated) => true,
            Some(Setting::Value(v)) => v == "no",
            _ => false,
        };
        let tiny_cloud_off = refused(self.get(Opt::Tinycloud)) || refused(self.get(Opt::Ds));
        let storage = self.storage();

        let mode = match root {
            Some(device) => Mode::Root(self.root_spec(device, fstype, &modules)),
            None => Mode::Diskless(self.diskless(ramboot_init)),
        };

        // Alpine's `do_networking` (diskless) plus the set-ups that call `configure_ip` in
        // both modes (nbd, wireguard). In root= mode `ip=` alone configures nothing.
        let storage_needs = !storage.nbd.is_empty() || storage.wireguard.is_some();
        let (source_needs, ip_acts) = match &mode {
            Mode::Diskless(d) => (
                matches!(d.apkovl, ApkovlSource::Url(_))
                    || matches!(&d.repos, RepoSource::List(l) if l.iter().any(|r| is_url(r)))
                    || matches!(modloop, ModloopSpec::Url(_)),
                true,
            ),
            Mode::Root(_) => (false, storage_needs),
        };
        let url_needs = source_needs || storage_needs;
        let needs_network = match &ip {
            Some(IpConfig::Off) => {
                if url_needs {
                    self.warn(
                        WarningKind::Ignored,
                        "ip",
                        "ip=off, but a URL, nbd= or wireguard= needs the network: it will not be reachable",
                    );
                }
                false
            }
            Some(_) if !ip_acts => {
                self.warn(
                    WarningKind::Ignored,
                    "ip",
                    "with root=, ip= only configures the network for nbd= or wireguard=",
                );
                false
            }
            Some(_) => true,
            None => url_needs,
        };

        BootPlan {
            mode,
            modules,
            fixed_modules,
            blacklist,
            quiet,
            debug,
            single: self.options.single(),
            fail_policy,
            init,
            init_args,
            kernel_init_args: self.options.after_dashdash.clone(),
            consoles,
            switch_root_console,
            autodetect_serial,
            ip,
            needs_network,
            bootif,
            uevent_buf_size,
            modloop,
            modloop_verify,
            hw_autodetect,
            splash,
            chart,
            tiny_cloud,
            tiny_cloud_off,
            storage,
            ramboot_init,
            watchdog,
            passthrough: self.options.unknown().map(|w| w.text.clone()).collect(),
            warnings: self.warnings,
        }
    }

    fn unsupported(&mut self, opt: Opt, what: &str) {
        self.warn(
            WarningKind::Unsupported,
            opt.name(),
            format!("{what} is not supported by ramboot yet; `{opt}` is ignored"),
        );
    }

    fn root_device(&mut self) -> Option<DeviceSpec> {
        let text = self.value(Opt::Root)?;
        Some(self.device(Opt::Root, text))
    }

    fn fail_policy(&mut self) -> FailPolicy {
        match self.get(Opt::Panic) {
            None | Some(Setting::Negated) => FailPolicy::Rescue,
            Some(Setting::Value(v)) if v.is_empty() || v == "no" => FailPolicy::Rescue,
            Some(Setting::Bare) => FailPolicy::KernelPanic,
            Some(Setting::Value(v)) => {
                if v.parse::<i64>().is_err() {
                    self.warn(
                        WarningKind::InvalidValue,
                        "panic",
                        format!("the kernel reads `panic=N` as seconds before reboot; `{v}` is not a number (the boot still panics on failure)"),
                    );
                }
                FailPolicy::KernelPanic
            }
        }
    }

    fn init(&mut self) -> (PathBuf, Vec<String>) {
        let init = match self.value(Opt::Init) {
            None => PathBuf::from(DEFAULT_INIT),
            Some(p) if p.starts_with('/') => PathBuf::from(p),
            Some(p) => {
                self.warn(
                    WarningKind::InvalidValue,
                    "init",
                    format!("`init={p}` is not an absolute path; using /{p}"),
                );
                PathBuf::from(format!("/{p}"))
            }
        };
        let args = self
            .value(Opt::InitArgs)
            .map(|a| a.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        (init, args)
    }

    fn autodetect_serial(&mut self) -> AutodetectSerial {
        match self.get(Opt::AutodetectSerial) {
            None | Some(Setting::Bare) => AutodetectSerial::Yes,
            Some(Setting::Value(v)) if v.is_empty() => AutodetectSerial::Yes,
            Some(Setting::Negated) => AutodetectSerial::No,
            Some(Setting::Value(v)) => {
                if let Some(res) = v.strip_prefix("setconsole=") {
                    return AutodetectSerial::SetConsole(comma_list(res));
                }
                if v == "setconsole" {
                    return AutodetectSerial::SetConsole(Vec::new());
                }
                match parse_bool(v) {
                    Some(true) => AutodetectSerial::Yes,
                    Some(false) => AutodetectSerial::No,
                    None => {
                        self.warn(
                            WarningKind::InvalidValue,
                            "autodetect_serial",
                            format!("`{v}` is not yes, no or setconsole[=REGEX,...]; using yes"),
                        );
                        AutodetectSerial::Yes
                    }
                }
            }
        }
    }

    fn ip(&mut self) -> Option<IpConfig> {
        let setting = self.get(Opt::Ip)?;
        let text = match setting {
            Setting::Negated => return Some(IpConfig::Off),
            Setting::Value(v) if v.is_empty() => return None,
            Setting::Value(v) => v.as_str(),
            Setting::Bare => {
                self.warn(
                    WarningKind::InvalidValue,
                    "ip",
                    "`ip` without a value; using dhcp",
                );
                return Some(IpConfig::Dhcp { device: None });
            }
        };
        let (config, problems) = parse_ip(text);
        for p in problems {
            self.warn(WarningKind::InvalidValue, "ip", p);
        }
        Some(config)
    }

    fn bootif(&mut self) -> Option<String> {
        let v = self.value(Opt::BootIf)?;
        match parse_bootif(v) {
            Some(mac) => Some(mac),
            None => {
                self.warn(
                    WarningKind::InvalidValue,
                    "BOOTIF",
                    format!("`{v}` is not a MAC address (01-aa-bb-cc-dd-ee-ff); ignored"),
                );
                None
            }
        }
    }

    fn uevent_buf_size(&mut self) -> usize {
        match self.number::<usize>(Opt::UeventBufSize) {
            Some(0) => {
                self.warn(
                    WarningKind::InvalidValue,
                    "uevent_buf_size",
                    "0 bytes cannot hold an event; using 4 MiB",
                );
                DEFAULT_UEVENT_BUF_SIZE
            }
            Some(n) => n,
            None => DEFAULT_UEVENT_BUF_SIZE,
        }
    }

    /// `ramboot_init`: a flag. With `init=` too, ramboot_init wins and a warning says so.
    fn ramboot_init(&mut self) -> bool {
        let on = self.flag(Opt::RambootInit, false);
        if on && self.get(Opt::Init).is_some() {
            self.warn(
                WarningKind::Ignored,
                "init",
                "`init=` is ignored: `ramboot_init` keeps ramboot as PID 1 of the new root",
            );
        }
        on
    }

    /// `ramboot_watchdog`: bare or `yes` the default timeout, `=SECONDS` that one; `0`, `no`
    /// and `noramboot_watchdog` off. A value that is neither still asks for a watchdog.
    fn watchdog(&mut self) -> Option<Duration> {
        let v = match self.get(Opt::RambootWatchdog)? {
            Setting::Negated => return None,
            Setting::Bare => return Some(DEFAULT_WATCHDOG_TIMEOUT),
            Setting::Value(v) => v,
        };
        match (v.parse::<u32>(), parse_bool(v)) {
            (Ok(0), _) | (_, Some(false)) => None,
            (Ok(secs), _) => Some(Duration::from_secs(secs.into())),
            (_, Some(true)) => Some(DEFAULT_WATCHDOG_TIMEOUT),
            _ => {
                self.warn(
                    WarningKind::InvalidValue,
                    "ramboot_watchdog",
                    format!("`ramboot_watchdog={v}` is not a number of seconds; using 60"),
                );
                Some(DEFAULT_WATCHDOG_TIMEOUT)
            }
        }
    }

    fn modloop(&mut self) -> ModloopSpec {
        match self.get(Opt::Modloop) {
            None => ModloopSpec::Auto,
            Some(Setting::Negated) => ModloopSpec::None,
            Some(Setting::Value(v)) if v == "none" => ModloopSpec::None,
            Some(Setting::Value(v)) if is_url(v) => ModloopSpec::Url(v.clone()),
            Some(Setting::Value(v)) if !v.is_empty() => ModloopSpec::Path(v.clone()),
            Some(_) => {
                self.value(Opt::Modloop);
                ModloopSpec::Auto
            }
        }
    }

    fn splash(&mut self) -> Splash {
        let explicit = self.get(Opt::Splash).is_some();
        let splash = match self.get(Opt::Splash) {
            Some(Setting::Value(v)) if v == "init" => Splash::UntilInit,
            Some(_) if self.flag(Opt::Splash, true) => Splash::On,
            Some(_) => Splash::Off,
            None => Splash::On,
        };
        if explicit && splash != Splash::Off {
            self.unsupported(Opt::Splash, "the boot splash (fbsplash)");
        }
        splash
    }
}

/// The options that ask for the network (Alpine's `do_networking` conditions, and `nbd=` /
/// `wireguard=`), as written in `options` (`ip=` whole, as the user wrote it): the answer to
/// "why does this boot configure the network" for `explain` (not a field of the plan: the init
/// does not need the texts). Empty with `ip=off`.
pub fn network_needed_by(options: &BootOptions, plan: &BootPlan) -> Vec<String> {
    let (mode, modloop, storage, ip) = (&plan.mode, &plan.modloop, &plan.storage, plan.ip.as_ref());
    let mut by = Vec::new();
    match ip {
        Some(IpConfig::Off) => return by,
        Some(_) if matches!(mode, Mode::Diskless(_)) => by.push(match options.last(Opt::Ip) {
            Some(Setting::Value(v)) => format!("ip={v}"),
            // `ip` alone, taken as dhcp.
            _ => "ip".into(),
        }),
        _ => {}
    }
    if let Mode::Diskless(d) = mode {
        if let ApkovlSource::Url(u) = &d.apkovl {
            by.push(format!("apkovl={u}"));
        }
        if let RepoSource::List(l) = &d.repos {
            by.extend(
                l.iter()
                    .filter(|r| is_url(r))
                    .map(|r| format!("alpine_repo={r}")),
            );
        }
        if let ModloopSpec::Url(u) = modloop {
            by.push(format!("modloop={u}"));
        }
    }
    if !storage.nbd.is_empty() {
        by.push("nbd=".into());
    }
    if storage.wireguard.is_some() {
        by.push("wireguard=".into());
    }
    by
}
