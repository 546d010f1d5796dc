//! Service mode: ramboot as the PID 1 of the running system (issue 9), in progress.
//!
//! - [`inittab`]: busybox init's table and command semantics.
//! - [`machine`]: the supervisor as a state machine over [`Sys`](ramboot_sys::Sys) with an
//!   injected clock (boot order, respawn backoff, signals, orderly shutdown).
//!
//! Not yet wired into the boot: see `DESIGN.md`, "Service mode (in progress)".

pub mod inittab;
pub mod machine;

pub use machine::{Backoff, Config, Event, Outcome, Request, Supervisor};
