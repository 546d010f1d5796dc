//! The thin binary: PID 1 started as the init boots, `modprobe` (by name) loads modules,
//! anything else is a host command.

use std::ffi::OsString;
use std::path::Path;

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    if ramboot::cli::boots_as_pid1(rustix::process::getpid().is_init(), &args) {
        ramboot::boot::pid1_main();
    }
    let argv0 = args
        .first()
        .map(|a| {
            Path::new(a)
                .file_name()
                .unwrap_or(a.as_os_str())
                .to_os_string()
        })
        .unwrap_or_default();
    let code = if argv0 == "modprobe" {
        ramboot::cli::modprobe::main(&args, &ramboot::sys::RealSys)
    } else {
        ramboot::cli::main(args.get(1..).unwrap_or_default())
    };
    std::process::exit(code);
}
