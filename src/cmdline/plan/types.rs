//! The boot plan's types: what [`super::plan`] decides and the boot consumes.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

/// The modules Alpine always asks for, after `modules=` and `rootfstype=`.
pub const FIXED_MODULES: [&str; 3] = ["loop", "squashfs", "simpledrm"];
/// nlplug-findfs's default netlink buffer.
pub const DEFAULT_UEVENT_BUF_SIZE: usize = 4 << 20;
/// The program started after switch_root unless `init=` says otherwise.
pub const DEFAULT_INIT: &str = "/sbin/init";
/// The key file a bare `cryptkey` means.
pub const DEFAULT_CRYPT_KEYFILE: &str = "/crypto_keyfile.bin";
/// `ramboot_watchdog` without a value: the watchdog's timeout.
pub const DEFAULT_WATCHDOG_TIMEOUT: Duration = Duration::from_secs(60);
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
    /// `notinycloud`, `nods` (or `=no`): no tiny-cloud, whatever the machine says.
    pub tiny_cloud_off: bool,
    /// Storage and platform set-up ramboot records but does not do yet.
    pub storage: Storage,
    /// `ramboot_init` (also `=1|yes`): service mode, ramboot stays PID 1 of the new root
    /// (re-executed from a sealed memfd) instead of exec'ing [`BootPlan::init`], which it then
    /// ignores.
    pub ramboot_init: bool,
    /// `ramboot_watchdog[=SECONDS]`: the hardware watchdog's timeout, when PID 1 (service
    /// mode) is to feed it.
    pub watchdog: Option<Duration>,
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
    /// `apkovl_key=`: the file holding an encrypted apkovl's passphrase (as the init sees it).
    pub apkovl_key: Option<PathBuf>,
    pub keep_apk_new: bool,
    pub bootstrap_usr_merged: bool,
    /// `ramboot_cache` (default yes): the installed root is kept on the boot media as an image
    /// and mounted on the next boot whose inputs are the same.
    pub root_cache: bool,
    /// `ramboot_lkg`: unconfirmed boots of an apkovl before the boot falls back to the
    /// previous one (0: off).
    pub lkg_tries: u32,
}

/// `ramboot_lkg` without a number, and its default in service mode.
pub const DEFAULT_LKG_TRIES: u32 = 2;

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
