//! The init build: what `ramboot mkinitfs` puts at `/init`. It boots as PID 1 and answers to
//! `modprobe`; the host tools (key generation, package building, mkinitfs, plan) live only in the
//! `ramboot` binary, which keeps this one within the initramfs size budget.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if rustix::process::getpid().is_init() {
        ramboot::boot::pid1_main();
    }
    let argv0 = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let code = if argv0 == "modprobe" {
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        ramboot::hw::modprobe_main(&args, &ramboot::sys::RealSys)
    } else {
        eprintln!("ramboot-init: the init build boots as PID 1 and runs as modprobe; host commands are in `ramboot`");
        2
    };
    std::process::exit(code);
}
