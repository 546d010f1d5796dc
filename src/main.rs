//! The thin binary: PID 1 boots, `modprobe` (by name) loads modules, anything else is a host command.

use std::ffi::OsString;
use std::path::Path;

fn main() {
    if rustix::process::getpid().is_init() {
        ramboot::boot::pid1_main();
    }
    let args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args.first().map(|a| Path::new(a).file_name().unwrap_or(a.as_os_str()).to_os_string()).unwrap_or_default();
    let code = if argv0 == "modprobe" {
        {
        let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        ramboot::hw::modprobe_main(&args, &ramboot::sys::RealSys)
    }
    } else {
        ramboot::cli::main(&args[1..])
    };
    std::process::exit(code);
}
