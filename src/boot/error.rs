//! Why a stage could not finish: the boot's one error enum.

use crate::decimal::Decimal;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Why a stage could not finish. Each variant names what was being done; a wrapped error is
/// its [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("root device {spec} not found after {:.1}s", Decimal::secs(*waited))]
    RootNotFound { spec: String, waited: Duration },
    /// `root=` names a ZFS dataset.
    #[error("root={spec}: ZFS roots are not supported by ramboot")]
    ZfsRoot { spec: String },
    #[error("cannot mount {device} on {}: {source}", target.display())]
    RootMount {
        device: String,
        target: PathBuf,
        source: io::Error,
    },
    /// No type was given or recognised and none the kernel knows accepted the device.
    #[error(
        "cannot mount {device} on {}: its filesystem type is not given (rootfstype=) nor recognised, and {}",
        target.display(),
        match last {
            None => "/proc/filesystems lists no block filesystem to try".to_string(),
            Some(e) => format!(
                "none of the kernel's filesystems accepted it (tried {}; last error: {e})",
                tried.join(", ")
            ),
        }
    )]
    RootFsUnknown {
        device: String,
        target: PathBuf,
        tried: Vec<String>,
        #[source]
        last: Option<io::Error>,
    },
    #[error("{} does not exist in the new root {}", init.display(), root.display())]
    InitMissing { init: PathBuf, root: PathBuf },
    #[error("{} is not an executable file", init.display())]
    InitNotExecutable { init: PathBuf },
    #[error("switch_root failed to {step}: {source}")]
    SwitchRoot {
        step: &'static str,
        source: io::Error,
    },
    #[error("cannot execute {}: {source}", init.display())]
    Exec { init: PathBuf, source: io::Error },
    /// Neither media nor the network gave a repository or an apkovl: `network` says why the
    /// network gave none.
    #[error(
        "nothing to boot from: no boot repository and no apkovl on {} (looked for {:.1}s), and {network}",
        if devices.is_empty() { "any device".to_string() } else { devices.join(", ") },
        Decimal::secs(*waited)
    )]
    NoBootMedia {
        devices: Vec<String>,
        waited: Duration,
        network: String,
    },
    /// A Rust panic inside a stage, caught.
    #[error("internal error: {message}")]
    Panic { message: String },
    /// The package installer stopped on an internal error.
    #[error("installing packages failed: {source}")]
    Install { source: crate::apk::ApkError },
    /// The new root's apk database could not be created.
    #[error("creating the apk database: {source}")]
    InitDb { source: crate::apk::ApkError },
    /// The apkovl could not be applied.
    #[error("{0}")]
    Apkovl(#[from] crate::overlay::OverlayError),
    /// The modloop was refused or could not be mounted.
    #[error("modloop refused: {0}")]
    Modloop(#[source] crate::hw::modloop::ModloopError),
    /// The cached root could not be stacked (the install runs instead).
    #[error("cached root: cannot set up {what}: {source}")]
    RootCache { what: String, source: io::Error },
    /// The network could not be configured.
    #[error("{0}")]
    Network(#[source] crate::net::NetError),
    /// A device named in the new root's fstab did not show up.
    #[error("device {spec} not found")]
    DeviceNotFound { spec: String },
}

impl BootError {
    /// The end of the stage's console line (` failed: …`): the title already says what was
    /// being done.
    pub fn console_text(&self) -> String {
        match self {
            Self::Install { source } => source.to_string(),
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chain of `e`'s sources, as texts.
    fn chain(e: &dyn std::error::Error) -> Vec<String> {
        std::iter::successors(e.source(), |e| e.source())
            .map(|e| e.to_string())
            .collect()
    }

    /// Every error a boot error wraps is its source (and its source's source ...).
    #[test]
    fn every_wrapped_error_is_reachable_through_source() {
        use crate::hw::modloop::{Candidates, ModloopError};
        use crate::overlay::OverlayError;
        use std::error::Error as _;
        let io = || io::Error::from_raw_os_error(5);
        let corrupt = OverlayError::Corrupt {
            path: "/a.apkovl.tar.gz".into(),
            source: io(),
        };
        let e = BootError::Apkovl(corrupt);
        let first = e.source().unwrap();
        assert!(first.downcast_ref::<OverlayError>().is_some());
        assert_eq!(chain(&e).len(), 2, "{:?}", chain(&e));
        let e = BootError::Modloop(ModloopError::NoneUsable(Candidates(vec![
            ModloopError::Read {
                path: "/m".into(),
                source: io(),
            },
        ])));
        assert_eq!(
            e.to_string(),
            "modloop refused: no usable modloop; cannot read /m: Input/output error (os error 5)"
        );
        // BootError → ModloopError → Candidates → ModloopError::Read → io::Error.
        assert_eq!(chain(&e).len(), 4, "{:?}", chain(&e));
        let e = BootError::RootFsUnknown {
            device: "/dev/vda".into(),
            target: "/sysroot".into(),
            tried: vec!["ext4".into()],
            last: Some(io()),
        };
        assert!(e.source().unwrap().downcast_ref::<io::Error>().is_some());
        let e = BootError::InitDb {
            source: crate::apk::ApkError::Internal("x".into()),
        };
        assert!(e
            .source()
            .unwrap()
            .downcast_ref::<crate::apk::ApkError>()
            .is_some());
    }
}
