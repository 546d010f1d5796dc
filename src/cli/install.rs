//! `ramboot install`: apk's installer on a host. With `--apkovl FILE` it first does the boot's
//! apkovl step on the target root ([`crate::boot::apkovl`], the same code the boot runs), so an
//! image can be built or checked exactly as the boot would assemble it. The apk component
//! parses the command line and runs the install; the apkovl step lives with the boot.

use crate::apk::cli::{parse_install, run_install};
use crate::boot::apkovl;
use crate::sys::RealSys;
use std::ffi::OsString;

/// Runs `ramboot install ...`; returns the exit status (99: nothing was installed).
pub fn main(args: &[OsString]) -> i32 {
    let mut parsed = match parse_install(args) {
        Ok(Some(p)) => p,
        Ok(None) => return 0,
        Err(e) => {
            eprintln!("ramboot install: {e}");
            return 99;
        }
    };
    if let Some(file) = parsed.apkovl.take() {
        match apkovl::prepare_install(&RealSys, &mut parsed.req, &file) {
            Ok(applied) => {
                for w in &applied.warnings {
                    eprintln!("WARNING: apkovl: {w}");
                }
            }
            Err(e) => {
                // The boot would go on with a clean default system; an image built from a
                // refused apkovl would not be what the user asked for.
                eprintln!("ERROR: {e} ({}); nothing installed", file.display());
                return 99;
            }
        }
    }
    run_install(parsed)
}
