//! The thin binary: PID 1 started as the init boots, `modprobe` (by name) loads modules,
//! anything else is a host command.

use std::ffi::OsString;

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    if ramboot::cli::boots_as_pid1(rustix::process::getpid().is_init(), &args) {
        ramboot::boot::pid1_main();
    }
    let code = ramboot::hw::run_if_modprobe(&args)
        .unwrap_or_else(|| ramboot::cli::main(args.get(1..).unwrap_or_default()));
    std::process::exit(code);
}
