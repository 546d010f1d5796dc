//! Stage two: [`BootOptions`] → [`BootPlan`], the validated decisions the boot consumes.
//!
//! Every value is checked here. A bad value never stops the boot: it becomes a [`Warning`] and
//! the documented default. Where Alpine's script does something the user cannot have meant,
//! we do what was meant; the list is in the [module docs](super).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use super::lint;
use super::options::{BootOptions, Opt, Setting};

/// The modules Alpine always asks for, after `modules=` and `rootfstype=`.
pub const FIXED_MODULES: [&str; 3] = ["loop", "squashfs", "simpledrm"];
/// nlplug-findfs's default netlink buffer.
pub const DEFAULT_UEVENT_BUF_SIZE: usize = 4 << 20;
/// The program started after switch_root unless `init=` says otherwise.
pub const DEFAULT_INIT: &str = "/sbin/init";
/// The key file a bare `cryptkey` means.
pub const DEFAULT_CRYPT_KEYFILE: &str = "/crypto_keyfile.bin";
/// The WireGuard configuration used when `wireguard=` names none.
pub const DEFAULT_WIREGUARD_CONF: &str = "/etc/wireguard/initrd.conf";

/// Everything the boot needs to know from the command line.
#[derive(Clone, Debug, PartialEq)]
pub struct BootPlan {
    /// Diskless (no `root=`) or an installed root.
    pub mode: Mode,
    /// Modules asked for: `modules=` then `rootfstype=` (or `zfs`), without duplicates.
    /// A missing one deserves a warning.
    pub modules: Vec<String>,
    /// [`FIXED_MODULES`] not already in `modules`: Alpine loads them quietly, missing or not.
    pub fixed_modules: Vec<String>,
    /// `blacklist=`: never load these in the initramfs.
    pub blacklist: Vec<String>,
    pub quiet: bool,
    /// `debug_init`.
    pub debug: bool,
    /// `s`, `single` or `1`: a shell before the root is set up.
    pub single: bool,
    pub fail_policy: FailPolicy,
    /// `init=`, default `/sbin/init`.
    pub init: PathBuf,
    /// `init_args=`, split on whitespace.
    pub init_args: Vec<String>,
    /// Words after a lone `--`: the kernel's arguments for PID 1. Alpine drops them; so do we.
    pub kernel_init_args: Vec<String>,
    /// Every `console=` device name, in command-line order (Alpine prepends: reversed order).
    pub consoles: Vec<String>,
    /// The last `console=` device: `switch_root -c /dev/<it>`.
    pub switch_root_console: Option<String>,
    pub autodetect_serial: AutodetectSerial,
    /// `ip=` as written (None: not given).
    pub ip: Option<IpConfig>,
    /// The network comes up in the initramfs. Diskless: `ip=` asks for it, or an apkovl,
    /// repository or modloop URL needs it. Both modes: `nbd=` or `wireguard=` need it. With
    /// `ip` None that means DHCP, Alpine's default. `ip=off` always wins.
    pub needs_network: bool,
    /// `BOOTIF=` as a MAC address `aa:bb:cc:dd:ee:ff`: the interface to configure.
    pub bootif: Option<String>,
    /// nlplug's `-U`: netlink receive buffer in bytes.
    pub uevent_buf_size: usize,
    pub modloop: ModloopSpec,
    /// `modloop_verify=no` accepts a modloop whose signature does not verify.
    pub modloop_verify: bool,
    /// `noautodetect` turns this off: hwdrivers does not load drivers for every device.
    pub hw_autodetect: bool,
    pub splash: Splash,
    /// `chart`: bootchartd.
    pub chart: bool,
    /// `tinycloud=` or `ds=` ask for tiny-cloud (the boot may also detect it).
    pub tiny_cloud: bool,
    /// Storage and platform set-up ramboot records but does not do yet.
    pub storage: Storage,
    /// Words that are not options, for the kernel or init.
    pub passthrough: Vec<String>,
    pub warnings: Vec<Warning>,
}

/// Which kind of boot.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// No `root=`: a tmpfs root filled from packages and an apkovl.
    Diskless(Diskless),
    /// `root=`: mount an installed system.
    Root(RootSpec),
}

/// Decisions only a diskless boot uses.
#[derive(Clone, Debug, PartialEq)]
pub struct Diskless {
    pub apkovl: ApkovlSource,
    pub repos: RepoSource,
    /// `pkgs=`: extra packages, first in the `apk add` list.
    pub pkgs: Vec<String>,
    /// `usbdelay=`: quiet period after a boot repository was found (None: nlplug's 250 ms).
    pub usbdelay: Option<Duration>,
    /// Options of the root tmpfs: `mode=0755`, then `size=` from `root_size`, then `rootflags`.
    pub tmpfs_flags: String,
    /// `ssh_key=`: literal key or URL.
    pub ssh_key: Option<String>,
    pub keep_apk_new: bool,
    pub bootstrap_usr_merged: bool,
}

/// The root of a `root=` boot.
#[derive(Clone, Debug, PartialEq)]
pub struct RootSpec {
    pub device: DeviceSpec,
    /// `rootfstype=` (`zfs` for `ZFS=`); None: autodetect.
    pub fstype: Option<String>,
    /// Mount options of the root: `rootflags` or `ro`; with an overlay `<rootflags,>ro`.
    pub flags: String,
    /// `overlaytmpfs=yes`: options of the tmpfs upper layer, `mode=0755,<overlaytmpfsflags,>rw`.
    pub overlay_tmpfs: Option<String>,
    pub usr: UsrMount,
    /// `btrfs` was named in `modules=` or `rootfstype=`: scan for btrfs devices first.
    pub btrfs_scan: bool,
    /// `zfs_force`: import the pool with `-f` (Alpine documents this but never parses it).
    pub zfs_force: bool,
}

/// A block device as `root=`, `cryptroot=` and friends name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    Path(PathBuf),
    Uuid(String),
    Label(String),
    PartUuid(String),
    PartLabel(String),
    /// `ZFS=pool/dataset`.
    Zfs(String),
}

/// The separate `/usr` of a `root=` boot, if its fstab has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UsrMount {
    /// Mount with these options (`usrflags=`, default `ro`).
    Flags(String),
    /// `usrflags=disable`.
    Disabled,
}

/// What happens when a boot stage fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailPolicy {
    /// Start a rescue shell; the boot continues when it exits.
    Rescue,
    /// `panic=`: PID 1 exits so the kernel panics (and reboots after `panic=N` seconds).
    /// `nopanic` and `panic=no` mean Rescue here; Alpine panics for any value.
    KernelPanic,
}

/// Where the apkovl comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApkovlSource {
    /// No `apkovl=`: the first `*.apkovl.tar.gz*` found at the top of boot media.
    Auto,
    /// `noapkovl`, `apkovl=no` or `apkovl=none`: boot without one, even if media has one.
    None,
    /// `http://`, `https://` or `ftp://`; `{MAC}` and `{UUID}` are substituted at boot.
    Url(String),
    /// `DEVICE:PATH` or `DEVICE:FSTYPE:PATH`: mount DEVICE on `/media/<name>` and take PATH there.
    Device {
        device: DeviceSpec,
        fstype: Option<String>,
        path: String,
    },
    /// A path in the initramfs, e.g. `/media/mmcblk0p1/host.apkovl.tar.gz`.
    Path(PathBuf),
}

/// Where packages come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepoSource {
    /// Directories marked `.boot_repository` on boot media.
    Auto,
    /// `noalpine_repo`: none from the command line or media, only what the apkovl lists.
    None,
    /// `alpine_repo=a,b`.
    List(Vec<String>),
}

/// Where the kernel module image comes from (used after switch_root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModloopSpec {
    /// Search boot media for `boot/modloop-*`.
    Auto,
    /// `modloop=none` (or `nomodloop`).
    None,
    Url(String),
    /// A path relative to a boot media mount.
    Path(String),
}

/// `autodetect_serial=`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AutodetectSerial {
    /// Default: gettys on serial ports found when there is no apkovl.
    Yes,
    No,
    /// `setconsole[=RE,...]`: also make the first working serial port the console, if one of
    /// the regexes matches the DMI modalias (always, with no regex).
    SetConsole(Vec<String>),
}

/// `splash=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Splash {
    /// Default: show a splash image if boot media has one.
    On,
    Off,
    /// `splash=init`: close it just before switch_root.
    UntilInit,
}

/// `ip=`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpConfig {
    /// `off`, `none` or `noip`: do not configure.
    Off,
    /// DHCP, on `device` or the first interface with a link.
    Dhcp {
        device: Option<String>,
    },
    Static(StaticIp),
}

/// `ip=client:server:gw:netmask:hostname:device:autoconf:dns0:dns1:ntp` with a client address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticIp {
    pub client: Ipv4Addr,
    /// Ignored by Alpine, kept for explain.
    pub server: Option<String>,
    pub gateway: Option<Ipv4Addr>,
    /// None: the class default, as the kernel does.
    pub netmask: Option<Ipv4Addr>,
    /// Ignored by Alpine, kept for explain.
    pub hostname: Option<String>,
    pub device: Option<String>,
    pub dns: Vec<Ipv4Addr>,
    /// Ignored by Alpine, kept for explain.
    pub ntp: Option<String>,
}

/// Storage and platform options ramboot records but does not act on yet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Storage {
    pub crypt: Option<Crypt>,
    pub resume: Option<Resume>,
    /// `nbd=` entries, `host:port[...]`.
    pub nbd: Vec<String>,
    pub aoe: Option<Aoe>,
    pub wireguard: Option<Wireguard>,
    pub memdisk: bool,
    pub zfcp: Vec<String>,
    pub dasd: Vec<String>,
    pub s390x_net: Option<String>,
}

/// `cryptroot=` and its companions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crypt {
    pub device: DeviceSpec,
    /// `cryptdm=`: without it Alpine only checks the key.
    pub dm_name: Option<String>,
    pub header: Option<String>,
    pub key: Option<CryptKey>,
    pub offset: Option<u64>,
    pub discards: bool,
}

/// `cryptkey`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CryptKey {
    File {
        path: String,
        offset: Option<u64>,
        size: Option<u64>,
    },
    /// `EXEC=command`: the key is the command's output.
    Exec(String),
}

/// `resume=` / `resume_offset=`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resume {
    pub device: DeviceSpec,
    pub offset: Option<u64>,
}

/// `aoe`, `aoe_iflist=`, `aoe_mtu=`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Aoe {
    /// `shelf.slot` targets; empty: all (bare `aoe`).
    pub targets: Vec<String>,
    pub interfaces: Vec<String>,
    pub mtu: Option<u32>,
}

/// `wireguard=IF;addr,addr[;config]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wireguard {
    pub interface: String,
    pub addresses: Vec<String>,
    pub config: String,
}

/// Something about the command line worth telling the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub kind: WarningKind,
    /// The option (or word) concerned.
    pub option: String,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WarningKind {
    /// Probably a typo of a known option.
    Misspelled,
    Deprecated,
    /// The value could not be used; the default applies.
    InvalidValue,
    /// Valid, but has no effect in this boot mode or form.
    Ignored,
    /// Given more than once; the last wins.
    Duplicate,
    /// ramboot does not do this yet.
    Unsupported,
}

impl WarningKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WarningKind::Misspelled => "misspelled",
            WarningKind::Deprecated => "deprecated",
            WarningKind::InvalidValue => "invalid-value",
            WarningKind::Ignored => "ignored",
            WarningKind::Duplicate => "duplicate",
            WarningKind::Unsupported => "unsupported",
        }
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.option, self.message)
    }
}

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
        let storage = self.storage();

        let mode = match root {
            Some(device) => Mode::Root(self.root_spec(device, fstype, &modules)),
            None => Mode::Diskless(self.diskless()),
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
            storage,
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

    fn storage(&mut self) -> Storage {
        let mut s = Storage::default();
        if let Some(dev) = self.value(Opt::Cryptroot) {
            let device = self.device(Opt::Cryptroot, dev);
            let key = match self.get(Opt::Cryptkey) {
                Some(Setting::Bare) => Some(CryptKey::File {
                    path: DEFAULT_CRYPT_KEYFILE.to_string(),
                    offset: None,
                    size: None,
                }),
                Some(Setting::Value(v)) if !v.is_empty() => Some(parse_cryptkey(v)),
                _ => None,
            };
            s.crypt = Some(Crypt {
                device,
                dm_name: self.value(Opt::Cryptdm).map(str::to_string),
                header: self.value(Opt::Cryptheader).map(str::to_string),
                key,
                offset: self.number(Opt::Cryptoffset),
                discards: self.flag(Opt::Cryptdiscards, false),
            });
            self.unsupported(Opt::Cryptroot, "unlocking an encrypted device");
        } else {
            for opt in [
                Opt::Cryptdm,
                Opt::Cryptheader,
                Opt::Cryptkey,
                Opt::Cryptoffset,
                Opt::Cryptdiscards,
            ] {
                if self.get(opt).is_some() {
                    self.warn(
                        WarningKind::Ignored,
                        opt.name(),
                        "only used with cryptroot=",
                    );
                }
            }
        }
        if let Some(dev) = self.value(Opt::Resume) {
            let device = self.device(Opt::Resume, dev);
            s.resume = Some(Resume {
                device,
                offset: self.number(Opt::ResumeOffset),
            });
            self.unsupported(Opt::Resume, "resuming from hibernation");
        }
        if let Some(v) = self.value(Opt::Nbd) {
            s.nbd = comma_list(v);
            self.unsupported(Opt::Nbd, "network block devices");
        }
        let aoe = match self.get(Opt::Aoe) {
            Some(Setting::Bare) => Some(Vec::new()),
            Some(Setting::Value(v)) if v == "yes" => Some(Vec::new()),
            Some(Setting::Value(v)) if !v.is_empty() => Some(comma_list(v)),
            _ => None,
        };
        if let Some(targets) = aoe {
            s.aoe = Some(Aoe {
                targets,
                interfaces: self
                    .value(Opt::AoeIflist)
                    .map(comma_list)
                    .unwrap_or_default(),
                mtu: self.number(Opt::AoeMtu),
            });
            self.unsupported(Opt::Aoe, "ATA over Ethernet");
        }
        if let Some(v) = self.value(Opt::Wireguard) {
            let mut parts = v.split(';');
            let interface = parts.next().unwrap_or_default().to_string();
            let addresses = parts.next().map(comma_list).unwrap_or_default();
            let config = parts
                .next()
                .filter(|c| !c.is_empty())
                .unwrap_or(DEFAULT_WIREGUARD_CONF)
                .to_string();
            s.wireguard = Some(Wireguard {
                interface,
                addresses,
                config,
            });
            self.unsupported(Opt::Wireguard, "WireGuard in the initramfs");
        }
        s.memdisk = self.flag(Opt::Memdisk, false);
        if s.memdisk {
            self.unsupported(Opt::Memdisk, "syslinux memdisk");
        }
        for (opt, list) in [(Opt::Zfcp, &mut s.zfcp), (Opt::Dasd, &mut s.dasd)] {
            if let Some(v) = self.value(opt) {
                *list = comma_list(v);
                self.unsupported(opt, "s390x device set-up");
            }
        }
        if let Some(v) = self.value(Opt::S390xNet) {
            s.s390x_net = Some(v.to_string());
            self.unsupported(Opt::S390xNet, "s390x device set-up");
        }
        s
    }

    fn root_spec(
        &mut self,
        device: DeviceSpec,
        fstype: Option<String>,
        modules: &[String],
    ) -> RootSpec {
        for opt in [
            Opt::Apkovl,
            Opt::AlpineRepo,
            Opt::Pkgs,
            Opt::Usbdelay,
            Opt::RootSize,
            Opt::KeepApkNew,
            Opt::BootstrapUsrMerged,
        ] {
            if self.get(opt).is_some() {
                self.warn(
                    WarningKind::Ignored,
                    opt.name(),
                    "only used in diskless mode (without root=)",
                );
            }
        }
        if matches!(device, DeviceSpec::Zfs(_)) {
            self.warn(
                WarningKind::Unsupported,
                "root",
                "a ZFS root (zpool import) is not supported by ramboot yet",
            );
        }
        let rootflags = self.value(Opt::Rootflags);
        let overlay = self.flag(Opt::Overlaytmpfs, false);
        let overlay_flags = self.value(Opt::Overlaytmpfsflags);
        let (flags, overlay_tmpfs) = if overlay {
            let flags = match rootflags {
                Some(f) => format!("{f},ro"),
                None => "ro".to_string(),
            };
            let tmpfs = match overlay_flags {
                Some(f) => format!("mode=0755,{f},rw"),
                None => "mode=0755,rw".to_string(),
            };
            (flags, Some(tmpfs))
        } else {
            if overlay_flags.is_some() {
                self.warn(
                    WarningKind::Ignored,
                    "overlaytmpfsflags",
                    "only used with overlaytmpfs=yes",
                );
            }
            (rootflags.unwrap_or("ro").to_string(), None)
        };
        let usr = match self.get(Opt::Usrflags) {
            Some(Setting::Value(v)) if v == "disable" => UsrMount::Disabled,
            Some(Setting::Negated) => UsrMount::Disabled,
            _ => UsrMount::Flags(self.value(Opt::Usrflags).unwrap_or("ro").to_string()),
        };
        let btrfs_scan = modules.iter().any(|m| m == "btrfs");
        RootSpec {
            device,
            fstype,
            flags,
            overlay_tmpfs,
            usr,
            btrfs_scan,
            zfs_force: self.flag(Opt::ZfsForce, false),
        }
    }

    fn diskless(&mut self) -> Diskless {
        for opt in [
            Opt::Overlaytmpfs,
            Opt::Overlaytmpfsflags,
            Opt::Usrflags,
            Opt::ZfsForce,
        ] {
            if self.get(opt).is_some() {
                self.warn(WarningKind::Ignored, opt.name(), "only used with root=");
            }
        }
        let mut tmpfs_flags = String::from("mode=0755");
        if let Some(size) = self.value(Opt::RootSize) {
            self.warn(
                WarningKind::Deprecated,
                "root_size",
                format!("deprecated; use rootflags=size={size}"),
            );
            tmpfs_flags.push_str(",size=");
            tmpfs_flags.push_str(size);
        }
        if let Some(flags) = self.value(Opt::Rootflags) {
            tmpfs_flags.push(',');
            tmpfs_flags.push_str(flags);
        }
        let pkgs = self
            .value(Opt::Pkgs)
            .map(|p| {
                p.split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let usbdelay = self.usbdelay();
        let ssh_key = self.value(Opt::SshKey).map(str::to_string);
        Diskless {
            apkovl: self.apkovl(),
            repos: self.repos(),
            pkgs,
            usbdelay,
            tmpfs_flags,
            ssh_key,
            keep_apk_new: self.flag(Opt::KeepApkNew, false),
            bootstrap_usr_merged: self.flag(Opt::BootstrapUsrMerged, false),
        }
    }

    fn usbdelay(&mut self) -> Option<Duration> {
        let v = self.value(Opt::Usbdelay)?;
        match v.parse::<f64>() {
            Ok(s) if s.is_finite() && (0.0..=3600.0).contains(&s) => {
                Some(Duration::from_secs_f64(s))
            }
            _ => {
                self.warn(
                    WarningKind::InvalidValue,
                    "usbdelay",
                    format!("`{v}` is not a number of seconds (0 to 3600); using the default 0.25"),
                );
                None
            }
        }
    }

    fn apkovl(&mut self) -> ApkovlSource {
        let v = match self.get(Opt::Apkovl) {
            None => return ApkovlSource::Auto,
            Some(Setting::Negated) => return ApkovlSource::None,
            Some(Setting::Bare) => {
                self.warn(
                    WarningKind::InvalidValue,
                    "apkovl",
                    "`apkovl` without a value; searching boot media as usual",
                );
                return ApkovlSource::Auto;
            }
            Some(Setting::Value(v)) => v.as_str(),
        };
        if v.is_empty() {
            return ApkovlSource::Auto;
        }
        if v == "no" || v == "none" {
            return ApkovlSource::None;
        }
        if is_url(v) {
            return ApkovlSource::Url(v.to_string());
        }
        let fields: Vec<&str> = v.split(':').collect();
        let (dev, fstype, path) = match fields.as_slice() {
            [dev, path] => (*dev, None, *path),
            [dev, fstype, path] => (*dev, Some(*fstype), *path),
            _ => return ApkovlSource::Path(PathBuf::from(v)),
        };
        let device = self.device(Opt::Apkovl, dev);
        ApkovlSource::Device {
            device,
            fstype: fstype.filter(|f| !f.is_empty()).map(str::to_string),
            path: path.to_string(),
        }
    }

    fn repos(&mut self) -> RepoSource {
        match self.get(Opt::AlpineRepo) {
            None => RepoSource::Auto,
            Some(Setting::Negated) => RepoSource::None,
            Some(Setting::Value(v)) if v.is_empty() || v == "auto" => RepoSource::Auto,
            Some(Setting::Value(v)) => RepoSource::List(comma_list(v)),
            Some(Setting::Bare) => {
                self.value(Opt::AlpineRepo);
                RepoSource::Auto
            }
        }
    }
}

/// yes/no in the spellings people use.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "y" | "1" | "true" | "on" => Some(true),
        "no" | "n" | "0" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// `root=`-style device names. The bool says the text was not a recognised form and was taken
/// as a name under `/dev`.
pub fn parse_device(text: &str) -> (DeviceSpec, bool) {
    type Make = fn(String) -> DeviceSpec;
    let prefixed: [(&str, Make); 5] = [
        ("UUID=", DeviceSpec::Uuid),
        ("LABEL=", DeviceSpec::Label),
        ("PARTUUID=", DeviceSpec::PartUuid),
        ("PARTLABEL=", DeviceSpec::PartLabel),
        ("ZFS=", DeviceSpec::Zfs),
    ];
    for (prefix, make) in prefixed {
        if let Some(rest) = text.strip_prefix(prefix) {
            return (make(rest.to_string()), false);
        }
    }
    if text.starts_with('/') {
        (DeviceSpec::Path(PathBuf::from(text)), false)
    } else {
        (
            DeviceSpec::Path(PathBuf::from(format!("/dev/{text}"))),
            true,
        )
    }
}

/// As written on the command line: `/dev/sda1`, `UUID=...`.
impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Path(p) => write!(f, "{}", p.display()),
            DeviceSpec::Uuid(s) => write!(f, "UUID={s}"),
            DeviceSpec::Label(s) => write!(f, "LABEL={s}"),
            DeviceSpec::PartUuid(s) => write!(f, "PARTUUID={s}"),
            DeviceSpec::PartLabel(s) => write!(f, "PARTLABEL={s}"),
            DeviceSpec::Zfs(s) => write!(f, "ZFS={s}"),
        }
    }
}

/// `ip=` (Alpine `configure_ip`): returns the config and what was wrong with the text.
pub fn parse_ip(text: &str) -> (IpConfig, Vec<String>) {
    let mut problems = Vec::new();
    let fields: Vec<&str> = text.split(':').collect();
    let field = |i: usize| fields.get(i).copied().filter(|f| !f.is_empty());
    if fields.len() > 10 {
        problems.push(format!(
            "`ip={text}` has more than 10 fields; the rest is ignored"
        ));
    }
    let client = field(0);
    let device = field(5).map(str::to_string);
    let autoconf = field(6);
    match client {
        Some("off" | "none") => return (IpConfig::Off, problems),
        Some("dhcp") => return (IpConfig::Dhcp { device }, problems),
        Some(c @ ("on" | "any" | "both" | "bootp" | "rarp")) => {
            problems.push(format!("`ip={c}` is kernel autoconfiguration; using dhcp"));
            return (IpConfig::Dhcp { device }, problems);
        }
        _ => {}
    }
    if autoconf == Some("dhcp") {
        return (IpConfig::Dhcp { device }, problems);
    }
    let addr = |i: usize, what: &str, problems: &mut Vec<String>| -> Option<Ipv4Addr> {
        let f = field(i)?;
        match f.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                problems.push(format!("{what} `{f}` is not an IPv4 address; ignored"));
                None
            }
        }
    };
    let client_ip = addr(0, "client address", &mut problems);
    let gateway = addr(2, "gateway", &mut problems);
    let netmask = match field(3) {
        Some(m) if !m.contains('.') => match m.parse::<u8>() {
            Ok(bits) if bits <= 32 => Some(Ipv4Addr::from(
                (u32::MAX).checked_shl(32 - bits as u32).unwrap_or(0),
            )),
            _ => {
                problems.push(format!(
                    "netmask `{m}` is neither dotted nor a prefix length; ignored"
                ));
                None
            }
        },
        _ => addr(3, "netmask", &mut problems),
    };
    let dns = [7, 8]
        .into_iter()
        .filter_map(|i| addr(i, "DNS server", &mut problems))
        .collect();
    match client_ip {
        Some(client) => (
            IpConfig::Static(StaticIp {
                client,
                server: field(1).map(str::to_string),
                gateway,
                netmask,
                hostname: field(4).map(str::to_string),
                device,
                dns,
                ntp: field(9).map(str::to_string),
            }),
            problems,
        ),
        None => {
            if client.is_some() {
                problems.push("no usable client address; using dhcp".to_string());
                (IpConfig::Dhcp { device }, problems)
            } else {
                problems.push(
                    "no client address and no dhcp: the network is not configured".to_string(),
                );
                (IpConfig::Off, problems)
            }
        }
    }
}

/// `BOOTIF=01-aa-bb-cc-dd-ee-ff` (PXELINUX; `01` is the ARP type) → `aa:bb:cc:dd:ee:ff`.
pub fn parse_bootif(v: &str) -> Option<String> {
    let mac = v
        .strip_prefix("01-")
        .unwrap_or(v)
        .replace('-', ":")
        .to_ascii_lowercase();
    let ok = mac.split(':').count() == 6
        && mac
            .split(':')
            .all(|o| o.len() == 2 && o.bytes().all(|b| b.is_ascii_hexdigit()));
    ok.then_some(mac)
}

/// `cryptkey=PATH[:offset:size]` or `EXEC=command`.
pub fn parse_cryptkey(v: &str) -> CryptKey {
    if let Some(cmd) = v.strip_prefix("EXEC=") {
        return CryptKey::Exec(cmd.to_string());
    }
    let mut parts = v.splitn(3, ':');
    let path = parts.next().unwrap_or_default().to_string();
    let offset = parts.next().and_then(|o| o.parse().ok());
    let size = parts.next().and_then(|s| s.parse().ok());
    CryptKey::File { path, offset, size }
}
