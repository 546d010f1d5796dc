//! Host commands. Each parses its arguments in two stages, as ripgrep does: raw flags into a
//! plain record (no validation), then that record into a validated request the library runs.

pub mod args;
pub mod install;
pub mod mkinitfs;
pub mod plan;

use args::ArgError;
use std::ffi::OsString;

/// Runs the two parsing stages of a host command and handles `--help` and errors the same way
/// for every command: `Ok(request)`, or `Err(exit status)` once the message is printed.
pub fn two_stage<R, Q, E: std::fmt::Display>(
    name: &str,
    help: &str,
    args: &[OsString],
    parse_raw: impl FnOnce(&[OsString]) -> Result<R, ArgError>,
    wants_help: impl FnOnce(&R) -> bool,
    validate: impl FnOnce(R) -> Result<Q, E>,
) -> Result<Q, i32> {
    let raw = parse_raw(args).map_err(|e| {
        eprintln!("ramboot {name}: {e}\n\n{help}");
        2
    })?;
    if wants_help(&raw) {
        print!("{help}");
        return Err(0);
    }
    validate(raw).map_err(|e| {
        eprintln!("ramboot {name}: {e}");
        2
    })
}

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
  ramboot version
Installed as /sbin/modprobe it answers the kernel's module requests.
";

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
        "apk" => crate::apk::cli::main_apk(rest),
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
