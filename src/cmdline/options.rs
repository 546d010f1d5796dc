//! Stage one: the command-line text → [`BootOptions`], a faithful record of what was written.
//!
//! Nothing is judged here: every word is kept in order, classified the way Alpine's
//! `initramfs-init` classifies it (single-user words, `console=`, the `myopts` table with its
//! `name=value` / `name` / `no<name>` forms, everything else unknown). Decisions and warnings
//! belong to stage two, [`super::plan`].

use std::fmt;

macro_rules! known_options {
    ($( $variant:ident = $name:literal : $help:literal ; )*) => {
        /// An option name ramboot recognises: Alpine's `myopts` plus the few names other Alpine
        /// components read from the command line (`modloop`, `modloop_verify`, `noautodetect`) and
        /// `zfs_force`, which Alpine documents but never parses.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Opt { $( $variant ),* }

        impl Opt {
            /// Every known option, in the order of the table.
            pub const ALL: &'static [Opt] = &[ $( Opt::$variant ),* ];

            /// The name as written on the command line.
            pub fn name(self) -> &'static str {
                match self { $( Opt::$variant => $name ),* }
            }

            /// One line on what the option does (for `explain`).
            pub fn help(self) -> &'static str {
                match self { $( Opt::$variant => $help ),* }
            }

            /// The option with exactly this name (case-sensitive, like Alpine).
            pub fn from_name(name: &str) -> Option<Opt> {
                match name { $( $name => Some(Opt::$variant), )* _ => None }
            }
        }
    };
}

known_options! {
    AlpineRepo = "alpine_repo": "comma list of package repositories; `auto` scans boot media for .boot_repository";
    Aoe = "aoe": "ATA over Ethernet targets (shelf.slot list), bare = all";
    AoeIflist = "aoe_iflist": "interfaces used for ATA over Ethernet";
    AoeMtu = "aoe_mtu": "MTU of the ATA over Ethernet interfaces";
    Apkovl = "apkovl": "where the apkovl (saved configuration) comes from: URL, DEVICE:[FSTYPE:]PATH or a path";
    ApkovlKey = "apkovl_key": "ramboot: file whose first line is the passphrase of an encrypted apkovl (*.apkovl.tar.gz.<cipher>); without it, or when it is wrong, the console asks";
    Autodetect = "autodetect": "`noautodetect` stops the hwdrivers service from loading drivers for all devices";
    AutodetectSerial = "autodetect_serial": "add gettys for detected serial ports; `no`, or `setconsole[=REGEX,...]`";
    Blacklist = "blacklist": "comma list of kernel modules never to load in the initramfs";
    BootIf = "BOOTIF": "PXELINUX boot interface MAC (01-aa-bb-...), picks the interface for ip=";
    BootstrapUsrMerged = "bootstrap_usr_merged": "create /bin, /sbin, /lib as links into /usr before installing";
    Chart = "chart": "boot charting with bootchartd (adds the acct package)";
    Cryptdiscards = "cryptdiscards": "allow discards on the encrypted root";
    Cryptdm = "cryptdm": "device-mapper name of the unlocked encrypted root (/dev/mapper/NAME)";
    Cryptheader = "cryptheader": "detached LUKS header (device or file)";
    Cryptkey = "cryptkey": "key for the encrypted root: bare = /crypto_keyfile.bin, PATH[:offset:size] or EXEC=command";
    Cryptoffset = "cryptoffset": "payload offset of the encrypted root, in sectors";
    Cryptroot = "cryptroot": "encrypted (LUKS) device to unlock";
    Dasd = "dasd": "s390x DASD devices to bring online";
    DebugInit = "debug_init": "trace the initramfs and device discovery";
    Ds = "ds": "cloud data source for tiny-cloud (enables tiny-cloud)";
    Init = "init": "program started after switch_root (default /sbin/init)";
    InitArgs = "init_args": "arguments for that program, split on spaces";
    Ip = "ip": "network: dhcp, off/none, or client:server:gw:netmask:hostname:device:autoconf:dns0:dns1:ntp";
    KeepApkNew = "keep_apk_new": "keep .apk-new files: apk runs without --clean-protected and without the overlay list";
    Memdisk = "memdisk": "syslinux memdisk mapped as an MTD block device";
    Modloop = "modloop": "kernel module image: none, a URL, or a path relative to the boot media (read by the modloop service)";
    ModloopVerify = "modloop_verify": "check the modloop signature (default yes)";
    Modules = "modules": "comma list of kernel modules to load early";
    Nbd = "nbd": "network block devices (host:port,...)";
    Overlaytmpfs = "overlaytmpfs": "root= mode: mount the root read-only under a tmpfs overlay";
    Overlaytmpfsflags = "overlaytmpfsflags": "extra mount options for that overlay tmpfs";
    Panic = "panic": "any value: on a fatal boot error let the kernel panic instead of starting a rescue shell";
    Pkgs = "pkgs": "comma list of extra packages to install";
    Quiet = "quiet": "less console output (messages still go to the kernel log)";
    RambootCache = "ramboot_cache": "diskless: keep the installed root as an image on the boot media and mount it instead of installing when nothing changed (default yes; `noramboot_cache` or `ramboot_cache=no` turns it off)";
    RambootLkg = "ramboot_lkg": "after N boots not confirmed by `ramboot ok` use the previous apkovl (default 2 in service mode, else off)";
    RambootInit = "ramboot_init": "service mode: after switch_root ramboot stays PID 1 and runs /etc/inittab and /etc/ramboot/services instead of exec'ing init=";
    RambootWatchdog = "ramboot_watchdog": "service mode: PID 1 feeds /dev/watchdog until reboot(2); bare = 60 s timeout, or SECONDS";
    Resume = "resume": "device holding a hibernation image";
    ResumeOffset = "resume_offset": "offset of the hibernation image in that device";
    Root = "root": "boot an installed root file system from this device instead of diskless";
    RootSize = "root_size": "deprecated: size= of the root tmpfs (use rootflags=size=)";
    Rootflags = "rootflags": "diskless: extra options for the root tmpfs; root= mode: mount options (default ro)";
    Rootfstype = "rootfstype": "file system type of root= (also loaded as a module)";
    S390xNet = "s390x_net": "s390x network device set-up (qeth_l2,bus-ids)";
    Splash = "splash": "boot splash: `nosplash` off, `splash=init` closes it at switch_root";
    SshKey = "ssh_key": "authorized SSH key (or URL to one) for root; adds openssh when default services apply";
    Tinycloud = "tinycloud": "tiny-cloud settings (enables tiny-cloud)";
    UeventBufSize = "uevent_buf_size": "netlink receive buffer for device events, bytes (default 4 MiB)";
    Usbdelay = "usbdelay": "seconds to keep listening for devices once a boot repository was found (default 0.25)";
    Usrflags = "usrflags": "root= mode: mount options for a separate /usr (default ro), `disable` skips it";
    Wireguard = "wireguard": "WireGuard interface in the initramfs: IF;addr,addr[;config]";
    Zfcp = "zfcp": "s390x zFCP devices to bring online";
    ZfsForce = "zfs_force": "root=ZFS=: import the pool even if another system used it";
}

impl fmt::Display for Opt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a known option was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Setting {
    /// `name=value` (the value is everything after the first `=`, possibly empty).
    Value(String),
    /// `name` on its own. Alpine stores `yes`.
    Bare,
    /// `no<name>`. Alpine stores the literal `no`.
    Negated,
}

/// A `console=` word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Console {
    /// The device name: the text before the first comma (`ttyS0`).
    pub device: String,
    /// The rest after that comma (`115200n8`), if any.
    pub options: Option<String>,
}

/// What one word of the command line is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WordKind {
    /// `s`, `single` or `1`: single-user mode.
    Single,
    /// `console=DEV[,OPTS]`.
    Console(Console),
    /// An option from the table.
    Known { opt: Opt, setting: Setting },
    /// Anything else: for the kernel or for init, ignored by the boot.
    Unknown { name: String, value: Option<String> },
}

/// One word, as the kernel split it (quotes removed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    /// The word without its kernel quotes: `name` or `name=value`.
    pub text: String,
    pub kind: WordKind,
}

/// The faithful record of a command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootOptions {
    /// Every word before a lone `--`, in command-line order.
    pub words: Vec<Word>,
    /// Words after a lone `--`. The kernel hands them to PID 1 as arguments; they are not options.
    pub after_dashdash: Vec<String>,
}

impl BootOptions {
    /// The last setting of `opt` (duplicates: last wins, like Alpine).
    pub fn last(&self, opt: Opt) -> Option<&Setting> {
        self.settings(opt).last()
    }

    /// Every setting of `opt`, in command-line order.
    pub fn settings(&self, opt: Opt) -> impl Iterator<Item = &Setting> + '_ {
        self.words.iter().filter_map(move |w| match &w.kind {
            WordKind::Known { opt: o, setting } if *o == opt => Some(setting),
            _ => None,
        })
    }

    /// Every `console=`, in command-line order.
    pub fn consoles(&self) -> impl Iterator<Item = &Console> + '_ {
        self.words.iter().filter_map(|w| match &w.kind {
            WordKind::Console(c) => Some(c),
            _ => None,
        })
    }

    /// `s`, `single` or `1` appeared.
    pub fn single(&self) -> bool {
        self.words.iter().any(|w| w.kind == WordKind::Single)
    }

    /// Words ramboot does not know, in command-line order.
    pub fn unknown(&self) -> impl Iterator<Item = &Word> + '_ {
        self.words
            .iter()
            .filter(|w| matches!(w.kind, WordKind::Unknown { .. }))
    }
}

/// Parses command-line text. Never fails: every word is recorded somehow.
pub fn parse(text: &str) -> BootOptions {
    let mut options = BootOptions::default();
    let mut words = kernel_words(text).into_iter();
    for (name, value) in words.by_ref() {
        if value.is_none() && name == "--" {
            break;
        }
        options.words.push(classify(name, value));
    }
    options.after_dashdash = words
        .map(|(name, value)| match value {
            Some(v) => format!("{name}={v}"),
            None => name,
        })
        .collect();
    options
}

/// Parses raw bytes (`/proc/cmdline` need not be UTF-8): invalid sequences become U+FFFD.
pub fn parse_bytes(bytes: &[u8]) -> BootOptions {
    parse(&String::from_utf8_lossy(bytes))
}

/// Alpine's classification of one word (INIT:L516-L589), plus `noautodetect` and `zfs_force`.
fn classify(name: String, value: Option<String>) -> Word {
    let text = match &value {
        Some(v) => format!("{name}={v}"),
        None => name.clone(),
    };
    let kind = match (name.as_str(), value) {
        ("s" | "single" | "1", None) => WordKind::Single,
        ("console", Some(v)) => {
            let (device, options) = match v.split_once(',') {
                Some((d, o)) => (d.to_string(), Some(o.to_string())),
                None => (v, None),
            };
            WordKind::Console(Console { device, options })
        }
        (n, value) => match (Opt::from_name(n), value) {
            (Some(opt), Some(v)) => WordKind::Known {
                opt,
                setting: Setting::Value(v),
            },
            (Some(opt), None) => WordKind::Known {
                opt,
                setting: Setting::Bare,
            },
            (None, None) => match n.strip_prefix("no").and_then(Opt::from_name) {
                Some(opt) => WordKind::Known {
                    opt,
                    setting: Setting::Negated,
                },
                None => WordKind::Unknown { name, value: None },
            },
            (None, value) => WordKind::Unknown { name, value },
        },
    };
    Word { text, kind }
}

/// Splits like the kernel's `next_arg` (lib/cmdline.c, kernel/params.c): whitespace separates
/// words except inside double quotes; a leading quote on the word or on the value is removed
/// together with a trailing quote, so `opt="a b"` and `"opt=a b"` both give `opt` = `a b`.
/// Alpine's shell split keeps quotes literally; honouring them is what the kernel (and the
/// user) meant. Returns `(name, value)` pairs; empty words are dropped.
pub(crate) fn kernel_words(text: &str) -> Vec<(String, Option<String>)> {
    let b = text.as_bytes();
    let is_space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let lossy = |r: &[u8]| String::from_utf8_lossy(r).into_owned();
    let mut words = Vec::new();
    let mut pos = 0;
    loop {
        while pos < b.len() && is_space(b[pos]) {
            pos += 1;
        }
        if pos >= b.len() {
            return words;
        }
        let mut start = pos;
        let quoted = b[start] == b'"';
        if quoted {
            start += 1;
        }
        let mut in_quote = quoted;
        let mut equals = None;
        let mut end = start;
        while end < b.len() {
            let c = b[end];
            if is_space(c) && !in_quote {
                break;
            }
            // The kernel ignores an `=` in first position (its "no equals" marker is 0).
            if equals.is_none() && c == b'=' && end > start {
                equals = Some(end);
            }
            if c == b'"' {
                in_quote = !in_quote;
            }
            end += 1;
        }
        pos = end;
        let mut stop = end;
        let word = match equals {
            None => {
                if quoted && stop > start && b[stop - 1] == b'"' {
                    stop -= 1;
                }
                (lossy(&b[start..stop]), None)
            }
            Some(eq) => {
                let mut value_start = eq + 1;
                if value_start < end && b[value_start] == b'"' {
                    value_start += 1;
                    if b[end - 1] == b'"' {
                        stop = end - 1;
                    }
                }
                if stop == end && quoted && b[end - 1] == b'"' {
                    stop = end - 1;
                }
                let value = &b[value_start.min(stop)..stop];
                (lossy(&b[start..eq]), Some(lossy(value)))
            }
        };
        // Splitting at ASCII bytes keeps UTF-8 intact, but a slice can still end inside a quoted
        // run; `lossy` only guards against that never producing invalid strings.
        if !(word.0.is_empty() && word.1.is_none()) {
            words.push(word);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<(String, Option<String>)> {
        kernel_words(text)
    }

    fn w(name: &str, value: Option<&str>) -> (String, Option<String>) {
        (name.to_string(), value.map(str::to_string))
    }

    #[test]
    fn kernel_quotes() {
        assert_eq!(words(r#"opt="a b""#), vec![w("opt", Some("a b"))]);
        assert_eq!(words(r#""opt=a b""#), vec![w("opt", Some("a b"))]);
        assert_eq!(words(r#""single""#), vec![w("single", None)]);
        assert_eq!(
            words("  a=b=c\tquiet\n"),
            vec![w("a", Some("b=c")), w("quiet", None)]
        );
        assert_eq!(words(r#"x=""#), vec![w("x", Some(""))]);
        assert_eq!(words(r#"x="" y"#), vec![w("x", Some("")), w("y", None)]);
        assert_eq!(words(r#"a"b c"d"#), vec![w(r#"a"b c"d"#, None)]);
        assert_eq!(words(r#"""#), vec![]);
        assert_eq!(words("=a=b"), vec![w("=a", Some("b"))]);
    }

    #[test]
    fn classification() {
        let o = parse("s console=ttyS0,115200 quiet noquiet modules= foo=bar nofoo -- quiet x=1");
        let kinds: Vec<_> = o.words.iter().map(|w| w.kind.clone()).collect();
        assert_eq!(kinds[0], WordKind::Single);
        assert_eq!(
            kinds[1],
            WordKind::Console(Console {
                device: "ttyS0".into(),
                options: Some("115200".into())
            })
        );
        assert_eq!(o.last(Opt::Quiet), Some(&Setting::Negated));
        assert_eq!(o.last(Opt::Modules), Some(&Setting::Value(String::new())));
        assert_eq!(o.unknown().count(), 2);
        assert_eq!(o.after_dashdash, vec!["quiet", "x=1"]);
    }

    #[test]
    fn every_known_option_round_trips() {
        for &opt in Opt::ALL {
            assert_eq!(Opt::from_name(opt.name()), Some(opt));
            let o = parse(&format!("{}=v {} no{}", opt, opt, opt));
            let s: Vec<_> = o.settings(opt).cloned().collect();
            assert_eq!(
                s,
                vec![Setting::Value("v".into()), Setting::Bare, Setting::Negated]
            );
        }
    }
}
