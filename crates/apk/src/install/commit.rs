//! Phase 4: committing staged packages into the root, strictly in install order, as apk does:
//! pre-install script, directories, ownership and protected-path decisions, renames, the old
//! version's leftovers, post-install script; then directory permissions merged over the
//! transaction. A package that failed to stage (bad checksum, missing file, hostile entry) is
//! reported and the others still install, as at boot.

use super::prepare::Target;
use super::protect::Protection;
use super::scripts::ScriptRunner;
use super::stage::{self, Job, Settings, WorkResult};
use super::{InstallReport, InstallRequest, Progress};
use crate::checksum::Checksum;
use crate::db::{self, DirRec, FileRec, InstalledPkg};
use crate::extract::{Committer, StagedEntry, StagedPackage, Staging};
use crate::ids::IdCache;
use crate::pkg::PkgInfo;
use crate::stream::{Control, ScriptKind};
use crate::tar::Kind;
use crate::ApkError;
use ramboot_sys::fsutil::Root;
use std::collections::{HashMap, HashSet};

/// Merged directory permissions: (uid, gid, mode, created by this transaction).
type DirPerm = (u32, u32, u32, bool);

/// Stages the jobs in parallel and commits them in order. Returns the db indices of the
/// packages installed now (for the triggers).
pub(super) fn stage_and_commit(
    req: &InstallRequest,
    target: &Target,
    db: &mut db::Db,
    jobs: &[Job],
    scripts: &ScriptRunner<'_>,
    report: &mut InstallReport,
) -> Result<Vec<usize>, ApkError> {
    let privileged = scripts.privileged();
    let umask = ramboot_sys::current_umask();
    let staging = Staging::create(&target.root)
        .map_err(|e| ApkError::io("creating the staging directory", e))?;
    let threads = if req.jobs > 0 {
        req.jobs
    } else {
        ramboot_sys::cpus()
    };
    let settings = Settings {
        threads,
        privileged,
        umask,
    };
    let mut commit = Commit::new(req, target, db, &staging, scripts, report);
    let total = jobs.len();
    let committed = stage::stage_and_commit(jobs, &staging, &settings, |job, result| {
        commit.package(job, total, result)
    });
    if committed.is_ok() {
        commit.fix_dir_perms();
    }
    let installed_now = std::mem::take(&mut commit.installed_now);
    drop(commit);
    staging.remove();
    committed?;
    Ok(installed_now)
}

/// The committing thread's state over the whole transaction.
struct Commit<'a> {
    req: &'a InstallRequest,
    root: &'a Root,
    staging: &'a Staging,
    protection: &'a Protection,
    scripts: &'a ScriptRunner<'a>,
    db: &'a mut db::Db,
    report: &'a mut InstallReport,
    committer: Committer<'a>,
    ids: IdCache,
    /// File ownership: path -> index into `db.packages`; overlay files are None.
    owner: HashMap<String, Option<usize>>,
    /// Directory permissions merged over the transaction: path -> (uid, gid, mode, created).
    dir_perms: HashMap<String, DirPerm>,
    /// Indices into `db.packages` of the packages installed now.
    installed_now: Vec<usize>,
    bytes_done: u64,
}

/// One package's commit in progress.
struct Package {
    info: PkgInfo,
    nv: String,
    /// The version it replaces (an upgrade): its index in `db.packages`.
    old: Option<usize>,
    /// Its index in `db.packages` once recorded.
    new_index: usize,
    problems: Vec<String>,
    broken_files: bool,
    broken_script: bool,
    /// Its directories and files, as the db records them.
    dirs: Vec<DirRec>,
    dir_index: HashMap<String, usize>,
}

/// What happens to a file entry.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Written (as `<name>.apk-new` when a changed protected file is in the way).
    Place { apk_new: bool },
    /// The file on disk stays; the package still owns the path.
    KeepExisting,
    /// Neither written nor recorded for this package.
    Skip,
}

/// `dir/name` as the pair; `("", name)` at the top.
fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// `dir/name`, or `name` at the top.
fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

impl<'a> Commit<'a> {
    fn new(
        req: &'a InstallRequest,
        target: &'a Target,
        db: &'a mut db::Db,
        staging: &'a Staging,
        scripts: &'a ScriptRunner<'a>,
        report: &'a mut InstallReport,
    ) -> Self {
        let mut owner: HashMap<String, Option<usize>> = HashMap::new();
        for (i, p) in db.packages.iter().enumerate() {
            for f in p.file_paths() {
                owner.insert(f, Some(i));
            }
        }
        for f in &target.overlay_files {
            owner.insert(f.clone(), None);
        }
        Commit {
            req,
            root: &target.root,
            staging,
            protection: &target.protection,
            scripts,
            db,
            report,
            committer: Committer::new(&target.root, staging, scripts.privileged(), scripts.sys()),
            ids: IdCache::default(),
            owner,
            dir_perms: HashMap::new(),
            installed_now: Vec::new(),
            bytes_done: 0,
        }
    }

    /// Commits one package (or records why it failed to stage).
    fn package(&mut self, job: &Job, total: usize, result: WorkResult) {
        if let Some(p) = &self.req.progress {
            p(&Progress::Package {
                index: job.index + 1,
                total,
                name: job.info.name.clone(),
                version: job.info.version.clone(),
                bytes_done: self.bytes_done,
            });
        }
        let (control, staged) = match result {
            Ok(ok) => ok,
            Err((e, _)) => {
                log::error!("apk: {e}");
                self.report.failed.push((job.info.nv(), e));
                return;
            }
        };
        self.committer.reset_cache();
        let control = control.as_ref();
        let mut pkg = self.start(job, control, &staged);
        let old_version = pkg.old.map(|o| self.db.packages[o].info.version.clone());
        let mut script_args = vec![pkg.info.version.clone()];
        script_args.extend(old_version);
        let (pre, post) = match pkg.old {
            Some(_) => (ScriptKind::PreUpgrade, ScriptKind::PostUpgrade),
            None => (ScriptKind::PreInstall, ScriptKind::PostInstall),
        };
        // Owners, looked up when apk looks them up (see `ids` and `stream::Lookup`).
        self.ids
            .look_up_all(self.root, &staged.owners_before_script);
        let first_owner = staged
            .entries
            .first()
            .filter(|_| staged.first_entry_before_script)
            .map(|e| resolve_owner(&mut self.ids, self.root, e));
        self.script(&mut pkg, control, pre, &script_args);
        self.ids.look_up_all(self.root, &staged.owners_after_script);
        // The entries, in archive order.
        for (n, e) in staged.entries.iter().enumerate() {
            let (uid, gid) = match first_owner {
                Some(owner) if n == 0 => owner,
                _ => resolve_owner(&mut self.ids, self.root, e),
            };
            if e.kind == Kind::Dir {
                self.dir_entry(&mut pkg, e, uid, gid);
            } else {
                self.file_entry(&mut pkg, e, uid, gid);
            }
        }
        if let Some(o) = pkg.old {
            self.purge_old_files(o, &pkg.dirs);
            self.remove_unused_dirs(o, &pkg.dirs);
        }
        self.script(&mut pkg, control, post, &script_args);
        let scripts = control.map(|c| c.scripts.clone()).unwrap_or_default();
        self.record(pkg, scripts, &staged);
    }

    /// The package as it will be recorded: the index's record with what only its control part
    /// says (replaces, triggers), and what staging found wrong.
    fn start(&self, job: &Job, control: Option<&Control>, staged: &StagedPackage) -> Package {
        let mut info = job.info.clone();
        if let Some(c) = control {
            info.replaces = c.info.replaces.clone();
            info.replaces_priority = c.info.replaces_priority;
            info.triggers = c.info.triggers.clone();
        }
        Package {
            nv: info.nv(),
            old: self
                .db
                .packages
                .iter()
                .position(|p| p.info.name == info.name),
            new_index: self.db.packages.len(),
            info,
            problems: staged.warnings.clone(),
            broken_files: staged.broken_files,
            broken_script: false,
            dirs: Vec::new(),
            dir_index: HashMap::new(),
        }
    }

    /// Runs the package's `kind` script, if it has one. One that ran may have added users, so
    /// owner names are looked up afresh.
    fn script(
        &mut self,
        pkg: &mut Package,
        control: Option<&Control>,
        kind: ScriptKind,
        args: &[String],
    ) {
        let Some(body) = control.and_then(|c| c.script(kind)) else {
            return;
        };
        match self
            .scripts
            .run(&pkg.info, kind, body, args, &mut self.report.warnings)
        {
            Ok(true) => self.ids.reset(),
            Ok(false) => {}
            Err(m) => {
                pkg.broken_script = true;
                pkg.problems.push(m);
            }
        }
    }

    /// A directory entry: created if missing; its permissions merge into the transaction's.
    fn dir_entry(&mut self, pkg: &mut Package, e: &StagedEntry, uid: u32, gid: u32) {
        let mode = e.mode & 0o7777;
        match self.committer.mkdir(&e.path, e.mode) {
            Ok(created) => {
                let entry = self
                    .dir_perms
                    .entry(e.path.clone())
                    .or_insert((uid, gid, mode, created));
                if (uid, gid) < (entry.0, entry.1) {
                    (entry.0, entry.1, entry.2) = (uid, gid, mode);
                } else if (uid, gid) == (entry.0, entry.1) {
                    entry.2 &= mode;
                }
            }
            Err(err) => {
                // apk records the directory even when creating it failed.
                pkg.broken_files = true;
                pkg.problems.push(format!("{}: {err}", e.path));
            }
        }
        if !pkg.dir_index.contains_key(&e.path) {
            pkg.dir_index.insert(e.path.clone(), pkg.dirs.len());
            pkg.dirs.push(DirRec {
                path: e.path.clone(),
                uid,
                gid,
                mode,
                xattr_csum: e.xattr_csum,
                files: Vec::new(),
            });
        }
    }

    /// Any entry but a directory: who owns the path decides, then protection, then it is
    /// written and recorded.
    fn file_entry(&mut self, pkg: &mut Package, e: &StagedEntry, uid: u32, gid: u32) {
        let (dir, name) = split(&e.path);
        // The checksum the db has for the file now, taken before a takeover below forgets it
        // (apk compares with it in `apk_db_migrate_files`).
        let recorded_sum = self.recorded_sum(&e.path);
        let mut fate = self.owner_fate(pkg, e);
        if fate != Fate::Skip && self.protection.protects(dir) {
            fate = self.protected_fate(pkg, e, fate, recorded_sum);
        }
        // The checksum recorded: none when the file could not be written (apk).
        let mut csum = e.checksum;
        let mut written = true;
        match fate {
            Fate::Skip | Fate::KeepExisting => self.discard_staged(e),
            Fate::Place { apk_new } => {
                if let Err(err) = self.committer.place(e, &e.path, uid, gid, apk_new) {
                    pkg.broken_files = true;
                    pkg.problems.push(format!("{}: {err}", e.path));
                    self.discard_staged(e);
                    // apk keeps a file it failed to write in the db: without checksum when
                    // its temporary file could not be created (no parent directory), with it
                    // when only the final rename failed.
                    if self.committer.dir(dir).is_err() {
                        csum = None;
                    }
                    written = false;
                }
            }
        }
        if fate == Fate::Skip {
            return;
        }
        if written {
            self.report.files += 1;
            self.report.bytes += e.size;
        }
        self.bytes_done += e.size;
        let di = match pkg.dir_index.get(dir) {
            Some(&di) => di,
            None => {
                pkg.dir_index.insert(dir.to_string(), pkg.dirs.len());
                pkg.dirs.push(DirRec {
                    path: dir.to_string(),
                    uid: 0,
                    gid: 0,
                    mode: 0o755,
                    xattr_csum: None,
                    files: Vec::new(),
                });
                pkg.dirs.len() - 1
            }
        };
        let mode = if e.kind == Kind::Symlink {
            0o777
        } else {
            e.mode & 0o7777
        };
        pkg.dirs[di].files.retain(|f| f.name != name);
        pkg.dirs[di].files.push(FileRec {
            name: name.to_string(),
            uid,
            gid,
            mode,
            xattr_csum: e.xattr_csum,
            csum,
        });
        self.owner.insert(e.path.clone(), Some(pkg.new_index));
    }

    fn discard_staged(&self, e: &StagedEntry) {
        if let Some(s) = &e.staged {
            self.staging.discard(s);
        }
    }

    /// The checksum the db records for `path`, under its current owner.
    fn recorded_sum(&self, path: &str) -> Option<Checksum> {
        let o = self.owner.get(path).copied().flatten()?;
        let (d, f) = split(path);
        self.db
            .packages
            .get(o)?
            .dirs
            .iter()
            .find(|x| x.path == d)
            .and_then(|x| x.files.iter().find(|y| y.name == f))
            .and_then(|y| y.csum)
    }

    /// Who owns the path now: the overlay (its copy stays), another package (replaces decide;
    /// at diskless boot the newcomer wins), or nobody.
    fn owner_fate(&mut self, pkg: &mut Package, e: &StagedEntry) -> Fate {
        let o = match self.owner.get(&e.path).copied() {
            Some(None) => return Fate::KeepExisting,
            Some(Some(o)) if Some(o) != pkg.old && o != pkg.new_index => o,
            _ => return Fate::Place { apk_new: false },
        };
        let info = &pkg.info;
        let other = &self.db.packages[o].info;
        let same =
            other.name == info.name || (!other.origin.is_empty() && other.origin == info.origin);
        let replaces = |a: &PkgInfo, b: &PkgInfo| {
            a.replaces.iter().any(|d| {
                d.name == b.name && d.matches_provider(Some(&b.version), b.identity.as_ref())
            })
        };
        if same || replaces(info, other) {
            self.db.packages[o].forget_file(&e.path);
        } else if replaces(other, info) {
            return Fate::Skip;
        } else if self.req.diskless_boot {
            self.report.warnings.push(format!(
                "{}: overwriting {} owned by {}",
                pkg.nv,
                e.path,
                other.nv()
            ));
            self.db.packages[o].forget_file(&e.path);
        } else {
            pkg.problems.push(format!(
                "trying to overwrite {} owned by {}",
                e.path,
                other.nv()
            ));
            pkg.broken_files = true;
            return Fate::Skip;
        }
        Fate::Place { apk_new: false }
    }

    /// A protected path (`etc/...`): a file the user changed stays, and the package's copy
    /// becomes `.apk-new` (or is dropped with `--clean-protected`, or when they are equal).
    fn protected_fate(
        &mut self,
        pkg: &mut Package,
        e: &StagedEntry,
        fate: Fate,
        recorded_sum: Option<Checksum>,
    ) -> Fate {
        if fate != (Fate::Place { apk_new: false }) {
            return fate;
        }
        match self.committer.existing(&e.path, true) {
            Ok(Some(disk_sum)) => {
                let differs = recorded_sum.is_none() || recorded_sum != disk_sum;
                if !differs {
                    fate
                } else if self.req.clean_protected
                    || (e.checksum.is_some() && e.checksum == disk_sum)
                {
                    Fate::KeepExisting
                } else {
                    Fate::Place { apk_new: true }
                }
            }
            Ok(None) => fate,
            Err(err) => {
                pkg.broken_files = true;
                pkg.problems.push(format!("{}: {err}", e.path));
                Fate::Skip
            }
        }
    }

    /// An upgrade: the old version's files the new one does not ship are removed (a protected
    /// file the user changed stays, as in apk's `apk_db_purge_pkg`).
    fn purge_old_files(&mut self, o: usize, new_dirs: &[DirRec]) {
        let keep: HashSet<String> = new_dirs
            .iter()
            .flat_map(|d| d.files.iter().map(move |f| join(&d.path, &f.name)))
            .collect();
        let old_files: Vec<(String, Option<Checksum>)> = self.db.packages[o]
            .dirs
            .iter()
            .flat_map(|d| {
                d.files
                    .iter()
                    .map(move |f| (join(&d.path, &f.name), f.csum))
            })
            .collect();
        for (f, sum) in old_files {
            if keep.contains(&f) || self.owner.get(&f) != Some(&Some(o)) {
                continue;
            }
            let (d, _) = split(&f);
            let unlink = !self.protection.protects(d)
                || matches!(
                    (sum, self.committer.existing(&f, true)),
                    (Some(s), Ok(Some(Some(disk)))) if s == disk
                );
            if unlink {
                self.committer.remove(&f);
            }
            self.owner.remove(&f);
        }
    }

    /// An upgrade: directories no package uses any more go too, deepest first, if empty.
    fn remove_unused_dirs(&mut self, o: usize, new_dirs: &[DirRec]) {
        let mut used: HashSet<&str> = new_dirs.iter().map(|d| d.path.as_str()).collect();
        for (i, p) in self.db.packages.iter().enumerate() {
            if i != o {
                used.extend(p.dirs.iter().map(|d| d.path.as_str()));
            }
        }
        let in_use =
            |d: &str| used.contains(d) || used.iter().any(|u| u.starts_with(&format!("{d}/")));
        let mut gone: Vec<String> = Vec::new();
        for d in &self.db.packages[o].dirs {
            let mut cur = d.path.as_str();
            while !cur.is_empty() && !in_use(cur) {
                if !gone.iter().any(|g| g == cur) {
                    gone.push(cur.to_string());
                }
                cur = cur.rsplit_once('/').map_or("", |(p, _)| p);
            }
        }
        ramboot_sys::sort::sort_by_key(&mut gone, |d| std::cmp::Reverse(d.matches('/').count()));
        for d in &gone {
            self.committer.rmdir(d);
            self.dir_perms.remove(d);
        }
    }

    /// The package goes into the db (replacing its old version) and the report.
    fn record(
        &mut self,
        pkg: Package,
        scripts: Vec<(ScriptKind, Vec<u8>)>,
        staged: &StagedPackage,
    ) {
        self.db.packages.push(InstalledPkg {
            info: pkg.info.clone(),
            dirs: pkg.dirs,
            broken_files: pkg.broken_files,
            broken_script: pkg.broken_script,
            broken_xattr: staged.broken_xattr,
            sha256_160: false,
            tag: None,
            scripts,
        });
        if let Some(o) = pkg.old {
            // Re-point ownership of files that moved index when the old record goes away.
            self.db.packages.remove(o);
            for i in self.owner.values_mut().flatten() {
                if *i > o {
                    *i -= 1;
                }
            }
            self.installed_now.iter_mut().for_each(|i| {
                if *i > o {
                    *i -= 1
                }
            });
        }
        self.installed_now.push(self.db.packages.len() - 1);
        self.report
            .installed
            .push((pkg.info.name.clone(), pkg.info.version.clone()));
        let nv = pkg.nv;
        for p in &pkg.problems {
            log::warn!("apk: {nv}: {p}");
        }
        if pkg.broken_files || pkg.broken_script {
            self.report.broken.push((nv, pkg.problems.join("; ")));
        } else if !pkg.problems.is_empty() {
            self.report
                .warnings
                .extend(pkg.problems.into_iter().map(|p| format!("{nv}: {p}")));
        }
    }

    /// Directory permissions, merged over all packages (apk_db_update_directory_permissions).
    fn fix_dir_perms(&mut self) {
        let mut dirs: Vec<(&String, &DirPerm)> =
            self.dir_perms.iter().filter(|(_, v)| v.3).collect();
        ramboot_sys::sort::sort(&mut dirs);
        self.committer.reset_cache();
        for (path, &(uid, gid, mode, _)) in dirs {
            self.committer.fix_dir(path, uid, gid, mode);
        }
    }
}

/// An entry's (uid, gid): its owner names through the id cache, its numbers as the fallback.
fn resolve_owner(ids: &mut IdCache, root: &Root, e: &StagedEntry) -> (u32, u32) {
    (
        ids.uid(root, &e.uname, e.uid),
        ids.gid(root, &e.gname, e.gid),
    )
}
