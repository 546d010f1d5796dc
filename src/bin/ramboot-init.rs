//! The init build: what `ramboot mkinitfs` puts at `/init`. As PID 1 it boots (whatever its
//! name: the initramfs has nothing else to run), and it answers to `modprobe`, `ctl`, `ok`,
//! `poweroff`, `reboot` and `halt` (in a diskless system in service mode PID 1's binary is the
//! only ramboot there is: `/proc/1/exe ctl status` must work); the host tools
//! (key generation, package building, mkinitfs, plan) live only in the `ramboot` binary, which
//! keeps this one within the initramfs size budget (tests/static_build.rs).

use std::ffi::OsString;

pub fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    if rustix::process::getpid().is_init() {
        ramboot::boot::pid1_main();
    }
    let code = ramboot::hw::run_if_modprobe(&args).unwrap_or_else(|| {
        let rest = args.get(1..).unwrap_or_default();
        if let Some(code) = ramboot::cli::ctl::run_if_power(&ramboot::sys::RealSys, rest) {
            return code;
        }
        if rest.first().is_some_and(|a| a == "ctl") {
            return ramboot::cli::ctl::main(&rest[1..]);
        }
        if rest.first().is_some_and(|a| a == "ok") {
            return ramboot::cli::commit::ok_main(&ramboot::sys::RealSys, &rest[1..]);
        }
        if args
            .get(1)
            .is_some_and(|a| a == "--version" || a == "version")
        {
            println!("ramboot {} (init build)", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        eprintln!(
            "ramboot-init: the init build boots as PID 1 and runs as modprobe, ctl, ok, \
             poweroff, reboot and halt; the host commands are in `ramboot`"
        );
        2
    });
    std::process::exit(code);
}
