//! Shared helpers for the apk integration tests: a test key, repositories built on the fly.
#![allow(dead_code)]

use ramboot::apk::build::{BuiltPackage, IndexBuilder, PackageBuilder};
use ramboot::apk::sign::{SigAlgo, SigningKey};
use ramboot::apk::{install, InstallReport, InstallRequest, ScriptPolicy};
pub use ramboot::fsutil::Resolve;
use ramboot::sys::RecordingSys;

/// Both resolutions: openat2 and the walk older kernels get.
pub const RESOLVERS: [Resolve; 2] = [Resolve::Kernel, Resolve::Walk];
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub const KEY_NAME: &str = "test-5f000000.rsa.pub";

/// One RSA key per test binary (1024 bits: tests only).
pub fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate(KEY_NAME, 1024).unwrap())
}

/// Another key with the same name (for bad-signature tests).
pub fn impostor_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate(KEY_NAME, 1024).unwrap())
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
    pub fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }
    pub fn keys(&self) -> PathBuf {
        let k = self.dir.path().join("keys");
        if !k.exists() {
            std::fs::create_dir_all(&k).unwrap();
            std::fs::write(k.join(KEY_NAME), key().public_pem()).unwrap();
        }
        k
    }

    /// Writes packages and a signed index into `repo/<arch>/`; returns the built packages.
    pub fn publish(&self, pkgs: Vec<PackageBuilder>) -> Vec<BuiltPackage> {
        self.publish_with(pkgs, |_| {})
    }

    pub fn publish_with(
        &self,
        pkgs: Vec<PackageBuilder>,
        tweak: impl FnOnce(&mut IndexBuilder),
    ) -> Vec<BuiltPackage> {
        publish_in(&self.repo(), pkgs, tweak)
    }

    pub fn request(&self, world: &[&str]) -> InstallRequest {
        InstallRequest {
            root: self.root(),
            repositories: vec![self.repo()],
            keys_dirs: vec![self.keys()],
            world_add: world.iter().map(|s| s.to_string()).collect(),
            initdb: true,
            scripts: ScriptPolicy::Never,
            jobs: 2,
            ..Default::default()
        }
    }

    pub fn install(&self, world: &[&str]) -> InstallReport {
        let sys = RecordingSys::new("/");
        install(&self.request(world), &sys).unwrap()
    }

    /// `apk add -u`: the named packages and their dependencies move to the newest versions.
    pub fn upgrade(&self, world: &[&str]) -> InstallReport {
        let mut req = self.request(world);
        req.upgrade = true;
        install(&req, &RecordingSys::new("/")).unwrap()
    }

    /// An install that may be refused: the error's text.
    pub fn try_install(&self, world: &[&str]) -> Result<InstallReport, String> {
        install(&self.request(world), &RecordingSys::new("/")).map_err(|e| e.to_string())
    }

    /// [`Fixture::install`] with paths resolved by `resolve`.
    pub fn install_resolved(&self, world: &[&str], resolve: Resolve) -> InstallReport {
        let mut req = self.request(world);
        req.resolve = resolve;
        install(&req, &RecordingSys::new("/")).unwrap()
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root().join(rel)).unwrap()
    }
}

/// Writes packages and a signed index into `repo/<arch>/`; returns the built packages.
pub fn publish_in(
    repo: &Path,
    pkgs: Vec<PackageBuilder>,
    tweak: impl FnOnce(&mut IndexBuilder),
) -> Vec<BuiltPackage> {
    let arch = ramboot::apk::build::default_arch();
    let dir = repo.join(arch);
    std::fs::create_dir_all(&dir).unwrap();
    let mut idx = IndexBuilder {
        description: "test repo".into(),
        ..Default::default()
    };
    let mut built = Vec::new();
    for p in pkgs {
        let b = p.build(Some(key())).unwrap();
        std::fs::write(dir.join(b.file_name()), &b.bytes).unwrap();
        idx.add(&b.info);
        built.push(b);
    }
    tweak(&mut idx);
    std::fs::write(
        dir.join("APKINDEX.tar.gz"),
        idx.build(Some(key()), SigAlgo::Sha1).unwrap(),
    )
    .unwrap();
    built
}

pub fn pkg(name: &str, version: &str) -> PackageBuilder {
    PackageBuilder::new(name, version)
}

pub fn names(r: &InstallReport) -> Vec<String> {
    r.installed.iter().map(|(n, _)| n.clone()).collect()
}

/// No file outside `inside` was touched: used by hostile tests on a sandbox dir.
pub fn list_tree(p: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, p: &Path, out: &mut Vec<String>) {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                out.push(e.path().strip_prefix(base).unwrap().display().to_string());
                if e.file_type().unwrap().is_dir() {
                    walk(base, &e.path(), out);
                }
            }
        }
    }
    walk(p, p, &mut out);
    out.sort();
    out
}
