//! Service mode: ramboot as the PID 1 of the running system (issue 9).
//!
//! - [`inittab`]: busybox init's table and command semantics.
//! - [`machine`]: the supervisor as a state machine over [`Sys`](ramboot_sys::Sys) with an
//!   injected clock (boot order, respawn backoff, signals, orderly shutdown).
//! - [`service_dir`], [`services`], [`rotating_log`]: runit/s6-style service directories
//!   supervised on the same machine (readiness, dependencies, backoff with jitter, crash-loop
//!   limit, captured and rotated output).
//! - [`watchdog`]: `/dev/watchdog` fed from the supervisor's timer, magic-closed just before
//!   `reboot(2)`.
//! - [`event_loop`]: signals through a `signalfd`, reaping, timers; [`run`] is PID 1's entry,
//!   [`run_as_subreaper`] the same supervision as an ordinary process (tests, containers).
//!
//! How it is reached: `crate::system::main` (system mode: after the memfd handoff of
//! `ramboot_init`, or as the installed root's init) calls [`run`] once the set-up and the
//! companions are started. See `DESIGN.md`, "Service mode".

pub mod control;
pub mod event_loop;
pub mod inittab;
pub mod machine;
pub mod rotating_log;
pub mod service_dir;
pub mod services;
pub mod watchdog;

pub use event_loop::{run, run_as_subreaper, supervise};
pub use machine::{Backoff, Config, Event, Outcome, Request, Supervisor};
pub use services::ServiceConfig;
pub use watchdog::WatchdogConfig;
