//! Service mode: ramboot as the PID 1 of the running system (issue 9), in progress.
//!
//! Built so far: [`inittab`] (busybox init's table and command semantics).
//! Not yet wired into the boot: see `DESIGN.md`, "Service mode (in progress)".

pub mod inittab;
