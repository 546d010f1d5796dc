//! ramboot: a static PID 1 that boots Alpine Linux diskless into RAM, and the host tools around it.
//!
//! The library holds everything; `main.rs` only dispatches. Module map and the system boundary:
//! see `DESIGN.md` in the repository.

pub mod apk;
pub mod boot;
pub mod cli;
pub mod cmdline;
pub mod elf;
pub mod fnmatch;
pub mod fsutil;
#[doc(hidden)]
pub mod fuzzing;
pub mod hw;
pub mod initramfs;
pub mod json;
pub mod media;
pub mod overlay;
pub mod quote;
pub mod sys;
