//! Host commands. Each parses its arguments with [`args`], the one parser of every command (the
//! `modprobe` personality included), in two stages as ripgrep does: raw flags into a plain record
//! (no validation), then that record into a validated request the library runs.

pub mod apk;
pub mod args;
pub mod ctl;
pub mod install;
pub mod mkinitfs;
pub mod modprobe;
pub mod plan;
pub mod profile;
pub mod sdimage;

use std::ffi::OsString;

pub const USAGE: &str = "\
ramboot — Alpine diskless boot as one static binary

As PID 1 (/init in an initramfs) it boots. On a host:
  ramboot mkinitfs -o FILE [options]      build an initramfs (see `ramboot mkinitfs --help`)
  ramboot cmdline explain [--json] [TEXT | --file FILE]
                                          what a kernel command line means for the boot
  ramboot plan --root DIR [--cmdline TEXT] [--json]
                                          dry-run the boot against DIR standing in for /
  ramboot install --root DIR [--apkovl FILE] [options] PKG...
                                          install apk packages into DIR (after the apkovl,
                                          as the boot does)
  ramboot apk genkey|mkpkg|index ...      build signed apk packages and indexes
  ramboot sdimage -o FILE --target rpi|virt|none [options]
                                          write a bootable Alpine-layout card image
                                          (see `ramboot sdimage --help`)
  ramboot profile check|apkovl PROFILE [-o FILE]
                                          a provisioning profile (TOML) checked, or
                                          written as the apkovl the boot applies
  ramboot ctl status|start|stop|restart|log ...
                                          control the services of ramboot as PID 1
                                          (see `ramboot ctl --help`)
  ramboot poweroff|reboot|halt            ask PID 1 to power off, reboot or halt
  ramboot version
Installed as /sbin/modprobe it answers the kernel's module requests.
";

/// Whether a process should boot the system: only as PID 1 and only when started as the init —
/// argv\[0\] named `init` (`/init` in an initramfs, `/sbin/init`) or no arguments at all. As the
/// entrypoint of a container, `ramboot mkinitfs …` is PID 1 too, and runs its command.
pub fn boots_as_pid1(is_pid1: bool, args: &[OsString]) -> bool {
    if !is_pid1 {
        return false;
    }
    let named_init = args
        .first()
        .is_some_and(|a| std::path::Path::new(a).file_name() == Some("init".as_ref()));
    named_init || args.len() <= 1
}

/// Dispatches a host command; returns the exit status.
pub fn main(args: &[OsString]) -> i32 {
    let Some(cmd) = args.first().and_then(|a| a.to_str()) else {
        eprint!("{USAGE}");
        return 2;
    };
    let rest = &args[1..];
    match cmd {
        "mkinitfs" => mkinitfs::main(rest),
        "cmdline" => crate::cmdline::cli::main(rest),
        "plan" => plan::main(rest),
        "install" => install::main(rest),
        "sdimage" => sdimage::main(rest),
        "apk" => crate::cli::apk::main_apk(rest),
        "profile" => profile::main(rest),
        "ctl" => ctl::main(rest),
        "poweroff" | "reboot" | "halt" => {
            ctl::run_if_power(&crate::sys::RealSys, args).unwrap_or(2)
        }
        "version" | "--version" | "-V" => {
            println!("ramboot {}", env!("CARGO_PKG_VERSION"));
            0
        }
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            0
        }
        other => {
            eprintln!(
                "ramboot: unknown command {}\n\n{USAGE}",
                crate::quote::quoted(other)
            );
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    /// Issue 8 (10): PID 1 boots only as the init; a container entrypoint runs its command.
    #[test]
    fn pid1_boots_only_as_the_init() {
        for init in [
            &["/init"][..],
            &["init"],
            &["/init", "single"],
            &["/sbin/init", "s"],
        ] {
            assert!(boots_as_pid1(true, &args(init)), "{init:?}");
        }
        assert!(
            boots_as_pid1(true, &args(&["/usr/bin/ramboot"])),
            "no arguments"
        );
        assert!(boots_as_pid1(true, &[]), "no argv at all");
        for cmd in [
            &["ramboot", "mkinitfs", "-o", "x"][..],
            &["/usr/bin/ramboot", "--version"],
            &["ramboot", "cmdline", "explain", "quiet"],
        ] {
            assert!(!boots_as_pid1(true, &args(cmd)), "{cmd:?}");
        }
        assert!(!boots_as_pid1(false, &args(&["/init"])), "not PID 1");
    }
}
