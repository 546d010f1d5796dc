//! The init build: what `ramboot mkinitfs` puts at `/init`. As PID 1 it boots (whatever its
//! name: the initramfs has nothing else to run), and it answers to `modprobe`; the host tools
//! (key generation, package building, mkinitfs, plan) live only in the `ramboot` binary, which
//! keeps this one within the initramfs size budget (tests/static_build.rs).

use std::ffi::OsString;

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    if rustix::process::getpid().is_init() {
        ramboot::boot::pid1_main();
    }
    let code = ramboot::hw::run_if_modprobe(&args).unwrap_or_else(|| {
        if args
            .get(1)
            .is_some_and(|a| a == "--version" || a == "version")
        {
            println!("ramboot {} (init build)", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        eprintln!(
            "ramboot-init: the init build boots as PID 1 and runs as modprobe; \
             the host commands are in `ramboot`"
        );
        2
    });
    std::process::exit(code);
}
