//! ramboot: a static PID 1 that boots Alpine Linux diskless into RAM, and the host tools around it.
//!
//! The library holds everything; `main.rs` only dispatches. Module map and the system boundary:
//! see `DESIGN.md` in the repository.

pub use ramboot_apk as apk;
pub mod boot;
pub mod civil;
pub mod cli;
pub mod cmdline;
pub mod commit;
pub mod decimal;
pub use ramboot_apk::fnmatch;
pub use ramboot_sys::elf;
pub use ramboot_sys::fsutil;
#[doc(hidden)]
pub mod fuzzing;
pub mod hw;
pub mod initramfs;
pub mod json;
pub mod media;
pub mod net;
pub mod overlay;
pub mod profile;
pub mod rootcache;
pub mod sdimage;
pub mod supervise;
pub mod system;
pub mod xorshift;
pub use ramboot_apk::quote;
pub use ramboot_sys as sys;
