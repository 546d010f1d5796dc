//! Alpine's kernel command line → [`BootOptions`] → [`BootPlan`].
//!
//! ramboot replaces Alpine's `initramfs-init`, so it must read the same command lines the same
//! way (mkinitfs' `initramfs-init.in`: its option loop and `myopts`). Two stages keep "what was written" apart from "what we
//! will do", the way ripgrep separates raw from validated arguments:
//!
//! 1. [`parse`] records every word faithfully ([`BootOptions`]). It cannot fail and judges
//!    nothing, so explain can always show the user exactly what the kernel gave us.
//! 2. [`plan`] turns the record into typed decisions ([`BootPlan`]). Bad values become
//!    warnings and documented defaults: the boot of a headless machine must never stop on a
//!    typo.
//!
//! Grammar (Alpine's, with the kernel's quoting):
//! * Words split on whitespace; double quotes group like the kernel's `next_arg`
//!   (`opt="a b"`, `"opt=a b"`). Alpine's shell keeps quotes literally; the kernel (and init's
//!   argv) does not, and nobody writes a literal quote meaning it.
//! * `s`, `single`, `1`: single-user. `console=DEV[,OPTS]` accumulates.
//! * For a known name: `name=value` (value = all after the first `=`), `name` (Alpine: `yes`),
//!   `no<name>` (off; see [`plan`] for where that differs from Alpine). Last one wins.
//! * Anything else is ignored (the kernel hands it to init), but near misses of known names
//!   are reported.
//! * A lone `--` ends the options: the kernel passes what follows to PID 1 as arguments.
//!   Alpine re-reads `/proc/cmdline` and would parse those words too.
//!
//! # Differences from Alpine, on purpose
//!
//! Alpine's parser stores the literal `no` for `no<opt>` and tests many options only for being
//! non-empty, so some words do the opposite of what they say (spec §2.1, §9.13). ramboot does
//! what the user meant:
//!
//! | written | Alpine | ramboot |
//! |---|---|---|
//! | `nodebug_init`, `debug_init=no` | debug on | off |
//! | `nopanic`, `panic=no` | kernel panic on failure | rescue shell |
//! | `notinycloud`, `nods` | tiny-cloud on | off |
//! | `noip` | static address "no", fails | network off |
//! | `noroot`, bare `root` | root= mode with device `no`/`yes` | diskless (bare: warning) |
//! | `apkovl` (bare) | path `yes`, i.e. no apkovl | auto-detect, warning |
//! | `apkovl=no`, `apkovl=none`, `noapkovl` | no apkovl (by accident) | no apkovl (documented) |
//! | `noalpine_repo` | repository `no` | no boot repositories, only the apkovl's |
//! | `nomodloop` | (modloop service ignores it) | like `modloop=none` |
//! | `quiet=1`, `keep_apk_new=true`, ... | off (only `yes` counts) | on (yes/1/true/on) |
//! | `usbdelay=0.5` | shell arithmetic error | 500 ms |
//! | `modloop=<URL>` without `ip=` | no network, download fails | network (DHCP) comes up |
//! | `zfs_force` | documented, never parsed | honoured |
//! | `opt="a b"` | quotes kept, split at the space | kernel quoting: one value `a b` |
//! | words after `--` | parsed as options | arguments for PID 1 only |
//! | `console=` order | prepended (reversed) | command-line order; the last is switch_root's |
//!
//! Invalid values (`usbdelay=abc`, `BOOTIF=zz`, `ip=a.b`) give a warning and the default.
//!
//! This module knows nothing of files or syscalls; the caller passes the text in.

pub mod cli;
mod explain;
mod lint;
mod options;
mod plan;

pub use crate::json::Json;
pub use explain::{explain, explain_json};
pub use lint::distance;
pub use options::{parse, parse_bytes, BootOptions, Console, Opt, Setting, Word, WordKind};
pub use plan::{
    is_url, network_needed_by, parse_bool, parse_bootif, parse_cryptkey, parse_device, parse_ip,
    plan, Aoe, ApkovlSource, AutodetectSerial, BootPlan, Crypt, CryptKey, DeviceSpec, Diskless,
    FailPolicy, IpConfig, Mode, ModloopSpec, RepoSource, Resume, RootSpec, Splash, StaticIp,
    Storage, UsrMount, Warning, WarningKind, Wireguard, DEFAULT_CRYPT_KEYFILE, DEFAULT_INIT,
    DEFAULT_UEVENT_BUF_SIZE, DEFAULT_WATCHDOG_TIMEOUT, DEFAULT_WIREGUARD_CONF, FIXED_MODULES,
};
