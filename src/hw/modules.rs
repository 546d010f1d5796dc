//! Kernel module loading with modprobe semantics, natively.
//!
//! Why native: busybox modprobe loads one module at a time and forks per request, and libkmod is a
//! C dependency we cannot link into a static Rust PID 1 cheaply. Here the indexes that depmod wrote
//! (`modules.dep`, `modules.alias`, `modules.softdep`, `modules.builtin`, `modules.builtin.modinfo`)
//! and the `modprobe.d` configuration are read once into a [`ModuleDb`], and a [`ModuleLoader`]
//! turns requests (names, aliases, modaliases) into a plan where each module waits only for its own
//! dependencies, so independent modules load in parallel.
//!
//! Rules, as in kmod's modprobe:
//! * names normalise `-` to `_`; aliases too, outside `[...]`;
//! * lookup order: `modprobe.d` `alias`, then a module of that name, then `modules.alias` patterns,
//!   then built-in modules and their aliases;
//! * `blacklist` hides a module from alias lookups; with [`Request::blacklist_all`] (`modprobe -b`)
//!   also from lookups by name. Dependencies are never blacklisted;
//! * built-in and already loaded modules (`/proc/modules`, `/sys/module/<name>`) are no-ops and
//!   `EEXIST` counts as success;
//! * a failure is a warning naming the module and errno, never fatal: the report says what happened.
//!
//! Compressed modules (`.ko.gz`, `.ko.xz`, `.ko.zst`) go to the kernel as files when
//! `/sys/module/compression` names their format, and are decompressed here otherwise.

use crate::fnmatch::fnmatch;
use crate::sys::{ModuleImage, Sys};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

/// Errors of the module component.
#[derive(Debug)]
pub enum ModuleError {
    /// `modules.dep` could not be read: without it nothing can be loaded.
    ReadIndex { path: PathBuf, source: io::Error },
    /// A module file could not be read or decompressed.
    ReadModule {
        module: String,
        path: PathBuf,
        source: io::Error,
    },
}

impl fmt::Display for ModuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModuleError::ReadIndex { path, source } => {
                write!(f, "cannot read module index {}: {source}", path.display())
            }
            ModuleError::ReadModule {
                module,
                path,
                source,
            } => {
                write!(
                    f,
                    "cannot read module {module} ({}): {source}",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for ModuleError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ModuleError::ReadIndex { source, .. } | ModuleError::ReadModule { source, .. } => {
                Some(source)
            }
        }
    }
}

/// `-` → `_`, the kernel's canonical module name.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// Like [`normalize`], but leaves `[...]` classes alone (kmod's `alias_normalize`).
pub fn normalize_alias(alias: &str) -> String {
    let mut out = String::with_capacity(alias.len());
    let mut in_class = false;
    for c in alias.chars() {
        match c {
            '[' => in_class = true,
            ']' => in_class = false,
            '-' if !in_class => {
                out.push('_');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// The module name a `modules.dep` path stands for: `kernel/fs/fat/vfat.ko.xz` → `vfat`.
pub fn name_from_path(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = match base.find(".ko") {
        Some(i) => &base[..i],
        None => base,
    };
    normalize(stem)
}

/// Compression of a module file, from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
}

impl Compression {
    pub fn of(path: &str) -> Compression {
        if path.ends_with(".gz") {
            Compression::Gzip
        } else if path.ends_with(".xz") {
            Compression::Xz
        } else if path.ends_with(".zst") {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The word `/sys/module/compression` uses for this format.
    fn kernel_name(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }
}

/// Decompresses a module image in userspace.
pub fn decompress(compression: Compression, mut input: impl Read) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match compression {
        Compression::None => {
            input.read_to_end(&mut out)?;
        }
        Compression::Gzip => {
            flate2::read::GzDecoder::new(input).read_to_end(&mut out)?;
        }
        Compression::Xz => {
            let mut r = io::BufReader::new(input);
            lzma_rs::xz_decompress(&mut r, &mut out)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("xz: {e}")))?;
        }
        Compression::Zstd => {
            let mut d = ruzstd::decoding::StreamingDecoder::new(input)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}")))?;
            d.read_to_end(&mut out)?;
        }
    }
    Ok(out)
}

/// One line of `modules.dep`.
#[derive(Clone, Debug)]
pub struct ModuleEntry {
    /// Relative to the modules directory.
    pub path: String,
    /// Every module this one needs (depmod lists the full closure).
    pub deps: Vec<String>,
}

/// `softdep` pre/post lists (module names or aliases).
#[derive(Clone, Debug, Default)]
pub struct SoftDep {
    pub pre: Vec<String>,
    pub post: Vec<String>,
}

/// Glob aliases, bucketed by the literal text before the first `:` so a modalias is only matched
/// against patterns of its own bus (plus the few that start with a wildcard).
/// Glob aliases indexed for fast modalias lookups (thousands of `of:`/`pci:`/`usb:` patterns,
/// one lookup per device, and under emulation every microsecond counts). Each pattern keeps its
/// longest literal run (the needle): a text the pattern matches contains the needle, so it also
/// contains the needle's last three bytes. Patterns are bucketed by those three bytes and a lookup
/// only visits the buckets of the trigrams that occur in the text, then checks the needle with a
/// substring search before the glob match.
#[derive(Default, Debug)]
struct AliasTable {
    by_trigram: HashMap<[u8; 3], Vec<AliasEntry>>,
    /// Needles shorter than three bytes.
    short: Vec<AliasEntry>,
}

#[derive(Debug)]
struct AliasEntry {
    pattern: String,
    module: String,
    needle: String,
}

/// The longest run of literal characters in a glob (outside `[...]`, escapes cut runs short):
/// every text the glob matches contains it.
fn longest_literal(pattern: &str) -> String {
    let b = pattern.as_bytes();
    let mut best = "";
    let (mut i, mut start) = (0usize, 0usize);
    loop {
        let end = i >= b.len();
        if end || matches!(b[i], b'*' | b'?' | b'[' | b'\\') {
            if let Some(run) = pattern.get(start..i.min(b.len())) {
                if run.len() > best.len() {
                    best = run;
                }
            }
            if end {
                break;
            }
            i = match b[i] {
                b'[' => {
                    // Same rules as the matcher: `!`/`^` negates, a leading `]` is literal.
                    let mut j = i + 1;
                    if matches!(b.get(j), Some(b'!' | b'^')) {
                        j += 1;
                    }
                    if b.get(j) == Some(&b']') {
                        j += 1;
                    }
                    match b[j.min(b.len())..].iter().position(|&c| c == b']') {
                        Some(k) => j + k + 1,
                        None => break, // unterminated: stop, the run so far is still required
                    }
                }
                b'\\' => i + 2,
                _ => i + 1,
            };
            start = i;
        } else {
            i += 1;
        }
    }
    best.to_string()
}

impl AliasTable {
    fn insert(&mut self, pattern: String, module: String) {
        let needle = longest_literal(&pattern);
        let entry = AliasEntry {
            pattern,
            module,
            needle,
        };
        match entry.needle.as_bytes() {
            [.., a, b, c] => {
                let key = [*a, *b, *c];
                self.by_trigram.entry(key).or_default().push(entry);
            }
            _ => self.short.push(entry),
        }
    }

    fn lookup(&self, alias: &str, out: &mut Vec<String>) {
        let mut seen: HashSet<[u8; 3]> = HashSet::new();
        let buckets = alias
            .as_bytes()
            .windows(3)
            .map(|w| [w[0], w[1], w[2]])
            .filter(|k| seen.insert(*k))
            .filter_map(|k| self.by_trigram.get(&k))
            .flatten();
        for e in buckets.chain(&self.short) {
            if alias.contains(e.needle.as_str())
                && fnmatch(&e.pattern, alias)
                && !out.contains(&e.module)
            {
                out.push(e.module.clone());
            }
        }
    }
}

/// The `modprobe.d` configuration plus what the kernel command line adds.
#[derive(Default, Debug)]
pub struct ModprobeConfig {
    pub blacklist: HashSet<String>,
    /// Parameters per module, in file order.
    pub options: HashMap<String, Vec<String>>,
    aliases: AliasTable,
    pub softdeps: HashMap<String, SoftDep>,
}

impl ModprobeConfig {
    /// Parses one `modprobe.d` file. `install`/`remove` commands are ignored (no shell here).
    pub fn parse(&mut self, text: &str) {
        let mut logical = String::new();
        for raw in text.lines() {
            // Backslash continues a line.
            if let Some(stripped) = raw.strip_suffix('\\') {
                logical.push_str(stripped);
                logical.push(' ');
                continue;
            }
            logical.push_str(raw);
            let line = std::mem::take(&mut logical);
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("blacklist"), Some(m)) => {
                    self.blacklist.insert(normalize(m));
                }
                (Some("options"), Some(m)) => {
                    self.options
                        .entry(normalize(m))
                        .or_default()
                        .extend(words.map(str::to_string));
                }
                (Some("alias"), Some(a)) => {
                    if let Some(m) = words.next() {
                        self.aliases.insert(normalize_alias(a), normalize(m));
                    }
                }
                (Some("softdep"), Some(m)) => {
                    let sd = self.softdeps.entry(normalize(m)).or_default();
                    let mut post = false;
                    for w in words {
                        match w {
                            "pre:" => post = false,
                            "post:" => post = true,
                            w if post => sd.post.push(w.to_string()),
                            w => sd.pre.push(w.to_string()),
                        }
                    }
                }
                (Some(cmd @ ("install" | "remove")), Some(m)) => {
                    log::debug!("modprobe.d: `{cmd} {m}` ignored (no shell commands in ramboot)");
                }
                _ => {}
            }
        }
    }

    /// Applies the kernel command line: `modprobe.blacklist=a,b`, Alpine's `blacklist=a,b` (which
    /// Alpine's init turns into a modprobe.d file) and `module.param=value`.
    pub fn parse_cmdline(&mut self, cmdline: &str) {
        for word in cmdline.split_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            if key == "modprobe.blacklist" || key == "blacklist" {
                self.blacklist
                    .extend(value.split(',').filter(|s| !s.is_empty()).map(normalize));
            } else if let Some((module, param)) = key.split_once('.') {
                if !module.is_empty() && !param.is_empty() && !module.contains('/') {
                    let value = value.trim_matches('"');
                    self.options
                        .entry(normalize(module))
                        .or_default()
                        .push(format!("{param}={value}"));
                }
            }
        }
    }
}

/// Everything needed to resolve and order module requests for one kernel release.
#[derive(Debug)]
pub struct ModuleDb {
    /// `/lib/modules/<release>` as PID 1 sees it.
    pub dir: PathBuf,
    pub modules: HashMap<String, ModuleEntry>,
    pub builtin: HashSet<String>,
    aliases: AliasTable,
    builtin_aliases: AliasTable,
    pub softdeps: HashMap<String, SoftDep>,
    pub config: ModprobeConfig,
}

fn read_opt(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

impl ModuleDb {
    /// Reads the indexes under `/lib/modules/<release>` and the configuration in
    /// `/lib/modprobe.d`, `/etc/modprobe.d` and `/proc/cmdline`, all through `sys.path`.
    pub fn open(sys: &dyn Sys, release: &str) -> Result<ModuleDb, ModuleError> {
        let dir = PathBuf::from("/lib/modules").join(release);
        let mut db = ModuleDb::from_dir_host(&sys.path(&dir), dir)?;
        for conf_dir in ["/lib/modprobe.d", "/etc/modprobe.d"] {
            let host = sys.path(Path::new(conf_dir));
            let mut files: Vec<PathBuf> = std::fs::read_dir(&host)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            for f in files {
                db.config.parse(&read_opt(&f));
            }
        }
        db.config
            .parse_cmdline(&read_opt(&sys.path(Path::new("/proc/cmdline"))));
        Ok(db)
    }

    /// Reads the depmod indexes from a host directory (no configuration). `dir` is how the files
    /// are named in load requests (the guest path).
    pub fn from_dir_host(host: &Path, dir: PathBuf) -> Result<ModuleDb, ModuleError> {
        let dep_path = host.join("modules.dep");
        let dep = std::fs::read_to_string(&dep_path).map_err(|source| ModuleError::ReadIndex {
            path: dep_path,
            source,
        })?;
        let mut db = ModuleDb {
            dir,
            modules: HashMap::new(),
            builtin: HashSet::new(),
            aliases: AliasTable::default(),
            builtin_aliases: AliasTable::default(),
            softdeps: HashMap::new(),
            config: ModprobeConfig::default(),
        };
        for line in dep.lines() {
            let Some((path, deps)) = line.split_once(':') else {
                continue;
            };
            let path = path.trim();
            if path.is_empty() {
                continue;
            }
            let deps = deps.split_whitespace().map(name_from_path).collect();
            db.modules.insert(
                name_from_path(path),
                ModuleEntry {
                    path: path.to_string(),
                    deps,
                },
            );
        }
        for line in read_opt(&host.join("modules.alias")).lines() {
            let mut w = line.split_whitespace();
            if let (Some("alias"), Some(pat), Some(m)) = (w.next(), w.next(), w.next()) {
                db.aliases.insert(normalize_alias(pat), normalize(m));
            }
        }
        for line in read_opt(&host.join("modules.softdep")).lines() {
            let mut cfg = ModprobeConfig::default();
            cfg.parse(line);
            for (m, sd) in cfg.softdeps {
                let e = db.softdeps.entry(m).or_default();
                e.pre.extend(sd.pre);
                e.post.extend(sd.post);
            }
        }
        for line in read_opt(&host.join("modules.builtin"))
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            db.builtin.insert(name_from_path(line.trim()));
        }
        // `name.alias=pattern` records, NUL-separated.
        if let Ok(bytes) = std::fs::read(host.join("modules.builtin.modinfo")) {
            for rec in bytes.split(|&b| b == 0) {
                let Ok(rec) = std::str::from_utf8(rec) else {
                    continue;
                };
                if let Some((name, rest)) = rec.split_once('.') {
                    if let Some(pat) = rest.strip_prefix("alias=") {
                        db.builtin_aliases
                            .insert(normalize_alias(pat), normalize(name));
                    }
                }
            }
        }
        Ok(db)
    }

    /// Softdeps from the config override those depmod extracted, as in kmod.
    pub fn softdep(&self, module: &str) -> Option<&SoftDep> {
        self.config
            .softdeps
            .get(module)
            .or_else(|| self.softdeps.get(module))
    }

    /// Resolves a name, alias or modalias to module names (loadable or built-in).
    /// `blacklist_names` also applies the blacklist to a direct name match (`modprobe -b`).
    pub fn resolve(&self, query: &str, blacklist_names: bool) -> Resolved {
        let q = normalize_alias(query);
        let mut via_alias = Vec::new();
        self.config.aliases.lookup(&q, &mut via_alias);
        if via_alias.is_empty() {
            let name = normalize(query);
            if self.modules.contains_key(&name) || self.builtin.contains(&name) {
                if blacklist_names && self.config.blacklist.contains(&name) {
                    return Resolved {
                        modules: vec![],
                        blacklisted: vec![name],
                    };
                }
                return Resolved {
                    modules: vec![name],
                    blacklisted: vec![],
                };
            }
            self.aliases.lookup(&q, &mut via_alias);
            self.builtin_aliases.lookup(&q, &mut via_alias);
        }
        let (blacklisted, modules) = via_alias
            .into_iter()
            .partition(|m| self.config.blacklist.contains(m));
        Resolved {
            modules,
            blacklisted,
        }
    }

    /// Parameters for a module from `options` lines and the kernel command line.
    pub fn params(&self, module: &str) -> Vec<String> {
        self.config.options.get(module).cloned().unwrap_or_default()
    }
}

/// What a lookup found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    pub modules: Vec<String>,
    /// Matches hidden by the blacklist.
    pub blacklisted: Vec<String>,
}

/// A load request.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// Names, aliases or modaliases.
    pub names: Vec<String>,
    /// Apply the blacklist to names too (`modprobe -b`); aliases always honour it.
    pub blacklist_all: bool,
    /// Extra parameters per module name (`modprobe name a=b`).
    pub params: HashMap<String, Vec<String>>,
}

impl Request {
    pub fn names<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Request {
        Request {
            names: names.into_iter().map(Into::into).collect(),
            ..Request::default()
        }
    }
}

/// Why a module did not load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailReason {
    /// The kernel refused it: errno and its text.
    Kernel { errno: i32, message: String },
    /// Reading or decompressing the file failed.
    Read(String),
    /// A module it depends on failed.
    Dependency(String),
    /// Listed as a dependency but missing from `modules.dep`.
    Missing,
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailReason::Kernel { errno, message } => write!(f, "{message} (errno {errno})"),
            FailReason::Read(m) => write!(f, "{m}"),
            FailReason::Dependency(d) => write!(f, "dependency {d} failed"),
            FailReason::Missing => write!(f, "not in modules.dep"),
        }
    }
}

/// What a [`ModuleLoader::load`] call did. Names are sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Loaded by this call.
    pub loaded: Vec<String>,
    /// Built in, loaded before, or `EEXIST`.
    pub already: Vec<String>,
    pub failed: Vec<(String, FailReason)>,
    /// Requests that matched no module at all.
    pub not_found: Vec<String>,
    /// Modules a lookup skipped because of the blacklist.
    pub blacklisted: Vec<String>,
}

impl LoadReport {
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.not_found.is_empty()
    }

    pub fn merge(&mut self, other: LoadReport) {
        self.loaded.extend(other.loaded);
        self.already.extend(other.already);
        self.failed.extend(other.failed);
        self.not_found.extend(other.not_found);
        self.blacklisted.extend(other.blacklisted);
        self.sort();
    }

    fn sort(&mut self) {
        for v in [
            &mut self.loaded,
            &mut self.already,
            &mut self.not_found,
            &mut self.blacklisted,
        ] {
            v.sort();
            v.dedup();
        }
        self.failed.sort_by(|a, b| a.0.cmp(&b.0));
    }

    /// Did this module end up in the kernel (now or before)?
    pub fn present(&self, module: &str) -> bool {
        self.loaded.iter().chain(&self.already).any(|m| m == module)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Loaded,
    Already,
    Failed(FailReason),
}

/// One module of a plan, after its dependencies.
#[derive(Debug)]
struct Step {
    name: String,
    /// Indices of earlier steps that must finish first and must succeed.
    hard: Vec<usize>,
    /// Indices of earlier steps that must finish first (softdep `pre:`).
    soft: Vec<usize>,
}

/// Loads modules from a [`ModuleDb`] through [`Sys::load_module`]. Shareable between threads;
/// remembers what it has loaded so repeated requests (coldplug, hotplug, fs modules) are cheap.
pub struct ModuleLoader<'s> {
    sys: &'s dyn Sys,
    db: ModuleDb,
    /// Modules known to be in the kernel.
    present: Mutex<HashSet<String>>,
    /// `/sys/module/compression`, read once: the format the kernel decompresses itself.
    kernel_compression: Option<String>,
    max_threads: usize,
}

impl<'s> ModuleLoader<'s> {
    pub fn new(sys: &'s dyn Sys, db: ModuleDb) -> Self {
        let kernel_compression =
            std::fs::read_to_string(sys.path(Path::new("/sys/module/compression")))
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty());
        let max_threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8);
        ModuleLoader {
            sys,
            db,
            present: Mutex::new(HashSet::new()),
            kernel_compression,
            max_threads,
        }
    }

    /// Opens the database for the running kernel (`uname -r`).
    pub fn open(sys: &'s dyn Sys) -> Result<Self, ModuleError> {
        Ok(Self::new(sys, ModuleDb::open(sys, &sys.kernel_release())?))
    }

    pub fn db(&self) -> &ModuleDb {
        &self.db
    }

    /// Re-reads the indexes (after the modloop replaced `/lib/modules/<release>`), keeping what is
    /// known to be loaded.
    pub fn reload(&mut self) -> Result<(), ModuleError> {
        let release = self
            .db
            .dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.db = ModuleDb::open(self.sys, &release)?;
        Ok(())
    }

    /// Caps the worker threads (1 = sequential, deterministic traces).
    pub fn with_max_threads(mut self, n: usize) -> Self {
        self.max_threads = n.max(1);
        self
    }

    fn lock_present(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.present.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refreshes the set of loaded modules from `/proc/modules`.
    fn refresh_present(&self) {
        let text = read_opt(&self.sys.path(Path::new("/proc/modules")));
        let mut present = self.lock_present();
        present.extend(
            text.lines()
                .filter_map(|l| l.split_whitespace().next())
                .map(normalize),
        );
    }

    fn is_present(&self, name: &str) -> bool {
        if self.db.builtin.contains(name) || self.lock_present().contains(name) {
            return true;
        }
        // Built-in modules with parameters and modules loaded by others show up here too.
        let dir = self.sys.path(&Path::new("/sys/module").join(name));
        if dir.is_dir() {
            self.lock_present().insert(name.to_string());
            return true;
        }
        false
    }

    /// Resolves and loads what `req` names, dependencies first, independent modules in parallel.
    pub fn load(&self, req: &Request) -> LoadReport {
        let mut report = LoadReport::default();
        self.refresh_present();
        let mut targets: Vec<String> = Vec::new();
        for name in &req.names {
            let r = self.db.resolve(name, req.blacklist_all);
            if r.modules.is_empty() && r.blacklisted.is_empty() {
                log::debug!("module {name} not found in {}", self.db.dir.display());
                report.not_found.push(name.clone());
            }
            report.blacklisted.extend(r.blacklisted);
            for m in r.modules {
                if !targets.contains(&m) {
                    targets.push(m);
                }
            }
        }
        let (steps, pre_outcomes) = self.plan(&targets);
        for (name, outcome) in pre_outcomes {
            match outcome {
                Outcome::Already => report.already.push(name),
                Outcome::Failed(r) => report.failed.push((name, r)),
                Outcome::Loaded => report.loaded.push(name),
            }
        }
        let outcomes = self.execute(&steps, &req.params);
        for (step, outcome) in steps.iter().zip(outcomes) {
            match outcome {
                Outcome::Loaded => report.loaded.push(step.name.clone()),
                Outcome::Already => report.already.push(step.name.clone()),
                Outcome::Failed(reason) => {
                    log::warn!("module {}: {reason}", step.name);
                    report.failed.push((step.name.clone(), reason));
                }
            }
        }
        report.sort();
        report
    }

    /// Orders the closure of `targets`: softdep `pre:` and dependencies before each module,
    /// `post:` after. Modules already present are settled without a step.
    fn plan(&self, targets: &[String]) -> (Vec<Step>, Vec<(String, Outcome)>) {
        struct Walk<'a, 'b> {
            loader: &'a ModuleLoader<'b>,
            steps: Vec<Step>,
            index: HashMap<String, Option<usize>>,
            settled: Vec<(String, Outcome)>,
            /// On the DFS stack: edges back to these are cycle edges and are dropped.
            visiting: HashSet<String>,
        }
        impl Walk<'_, '_> {
            /// Returns the step index of `name`, if it needs one.
            fn visit(&mut self, name: &str) -> Option<usize> {
                if let Some(i) = self.index.get(name) {
                    return *i;
                }
                if self.visiting.contains(name) {
                    return None;
                }
                let loader = self.loader;
                if loader.is_present(name) {
                    self.index.insert(name.to_string(), None);
                    self.settled.push((name.to_string(), Outcome::Already));
                    return None;
                }
                let Some(entry) = loader.db.modules.get(name) else {
                    self.index.insert(name.to_string(), None);
                    self.settled
                        .push((name.to_string(), Outcome::Failed(FailReason::Missing)));
                    return None;
                };
                self.visiting.insert(name.to_string());
                let softdep = loader.db.softdep(name).cloned().unwrap_or_default();
                let mut soft = Vec::new();
                for s in &softdep.pre {
                    for m in loader.db.resolve(s, false).modules {
                        soft.extend(self.visit(&m));
                    }
                }
                // depmod lists deps so that the last one loads first.
                let mut hard = Vec::new();
                let mut missing = None;
                for d in entry.deps.iter().rev() {
                    hard.extend(self.visit(d));
                    if self
                        .settled
                        .iter()
                        .any(|(n, o)| n == d && matches!(o, Outcome::Failed(_)))
                    {
                        missing = Some(d.clone());
                    }
                }
                self.visiting.remove(name);
                if let Some(d) = missing {
                    self.index.insert(name.to_string(), None);
                    self.settled
                        .push((name.to_string(), Outcome::Failed(FailReason::Dependency(d))));
                    return None;
                }
                let i = self.steps.len();
                self.steps.push(Step {
                    name: name.to_string(),
                    hard,
                    soft,
                });
                self.index.insert(name.to_string(), Some(i));
                for s in &softdep.post {
                    for m in loader.db.resolve(s, false).modules {
                        self.visit(&m);
                    }
                }
                Some(i)
            }
        }
        let mut w = Walk {
            loader: self,
            steps: Vec::new(),
            index: HashMap::new(),
            settled: Vec::new(),
            visiting: HashSet::new(),
        };
        for t in targets {
            w.visit(t);
        }
        (w.steps, w.settled)
    }

    /// Runs the steps on up to `max_threads` workers; a step starts once its own waits are done.
    fn execute(&self, steps: &[Step], extra: &HashMap<String, Vec<String>>) -> Vec<Outcome> {
        #[derive(Clone)]
        enum State {
            Pending,
            Running,
            Done(Outcome),
        }
        let state = Mutex::new(vec![State::Pending; steps.len()]);
        let cv = Condvar::new();
        let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
        let worker = || loop {
            // Take the first pending step whose waits are all done.
            let job = {
                let mut st = lock();
                loop {
                    let done = |i: usize| matches!(st[i], State::Done(_));
                    let ready = (0..steps.len()).find(|&i| {
                        matches!(st[i], State::Pending)
                            && steps[i].hard.iter().chain(&steps[i].soft).all(|&d| done(d))
                    });
                    if let Some(i) = ready {
                        let failed_dep = steps[i]
                            .hard
                            .iter()
                            .find(|&&d| matches!(st[d], State::Done(Outcome::Failed(_))))
                            .map(|&d| steps[d].name.clone());
                        st[i] = State::Running;
                        break Some((i, failed_dep));
                    }
                    if st.iter().all(|s| !matches!(s, State::Pending)) {
                        break None;
                    }
                    st = cv.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            };
            let Some((i, failed_dep)) = job else { break };
            let outcome = match failed_dep {
                Some(d) => Outcome::Failed(FailReason::Dependency(d)),
                // A panic here must not leave the step Running (the other workers would wait
                // forever, and this is PID 1): it becomes a failure of this module.
                None => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.load_one(&steps[i].name, extra.get(&steps[i].name))
                }))
                .unwrap_or_else(|_| {
                    Outcome::Failed(FailReason::Read("internal error while loading".into()))
                }),
            };
            lock()[i] = State::Done(outcome);
            cv.notify_all();
        };
        let threads = self.max_threads.min(steps.len());
        if threads <= 1 {
            worker();
        } else {
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(worker);
                }
            });
        }
        let st = state.into_inner().unwrap_or_else(|e| e.into_inner());
        st.into_iter()
            .map(|s| match s {
                State::Done(o) => o,
                _ => Outcome::Failed(FailReason::Read("not run".into())),
            })
            .collect()
    }

    /// Loads one module whose dependencies are in.
    fn load_one(&self, name: &str, extra: Option<&Vec<String>>) -> Outcome {
        let Some(entry) = self.db.modules.get(name) else {
            return Outcome::Failed(FailReason::Missing);
        };
        let mut params = self.db.params(name);
        params.extend(extra.into_iter().flatten().cloned());
        let params = params.join(" ");
        let guest = self.db.dir.join(&entry.path);
        let compression = Compression::of(&entry.path);
        let kernel_does_it = compression != Compression::None
            && self
                .kernel_compression
                .as_deref()
                .is_some_and(|k| k.split_whitespace().any(|w| w == compression.kernel_name()));
        let mut result = if compression == Compression::None || kernel_does_it {
            self.sys.load_module(
                ModuleImage::File {
                    path: &guest,
                    compressed: kernel_does_it,
                },
                &params,
            )
        } else {
            Err(io::Error::from(io::ErrorKind::Unsupported))
        };
        if compression != Compression::None
            && matches!(&result, Err(e) if e.kind() == io::ErrorKind::Unsupported || e.raw_os_error() == Some(95))
        {
            // Decompress here: the kernel cannot (EOPNOTSUPP) or does not claim to.
            let bytes =
                std::fs::File::open(self.sys.path(&guest)).and_then(|f| decompress(compression, f));
            result = match bytes {
                Ok(b) => self.sys.load_module(ModuleImage::Bytes(&b), &params),
                Err(e) => {
                    let err = ModuleError::ReadModule {
                        module: name.into(),
                        path: guest.clone(),
                        source: e,
                    };
                    return Outcome::Failed(FailReason::Read(err.to_string()));
                }
            };
        }
        match result {
            Ok(()) => {
                log::debug!("loaded module {name}");
                self.lock_present().insert(name.to_string());
                Outcome::Loaded
            }
            Err(e) if e.raw_os_error() == Some(17) => {
                self.lock_present().insert(name.to_string());
                Outcome::Already
            }
            Err(e) => match e.raw_os_error() {
                Some(errno) => Outcome::Failed(FailReason::Kernel {
                    errno,
                    message: e.to_string(),
                }),
                None => Outcome::Failed(FailReason::Read(e.to_string())),
            },
        }
    }
}

/// The modules a set of names, aliases or `modules.dep` path globs needs: the closure over
/// dependencies and softdeps, as paths relative to the modules directory (sorted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Closure {
    pub paths: Vec<PathBuf>,
    /// Entries that matched nothing (neither loadable nor built in).
    pub missing: Vec<String>,
}

/// [`closure_detailed`] without the list of misses (they are logged).
pub fn closure(modules_dir: &Path, names_or_globs: &[&str]) -> Result<Vec<PathBuf>, ModuleError> {
    let c = closure_detailed(modules_dir, names_or_globs)?;
    for m in &c.missing {
        log::warn!(
            "feature entry {m} matches no module in {}",
            modules_dir.display()
        );
    }
    Ok(c.paths)
}

/// Computes the module closure for mkinitfs. Entries with a `/` are globs over `modules.dep`
/// paths (`*` crosses `/`, like `find -path`; a trailing `/` means the whole directory; a
/// trailing `.ko*` is optional); others are module names or aliases. Blank lines and `#` comments
/// are skipped so feature files can be passed line by line.
pub fn closure_detailed(
    modules_dir: &Path,
    names_or_globs: &[&str],
) -> Result<Closure, ModuleError> {
    let db = ModuleDb::from_dir_host(modules_dir, modules_dir.to_path_buf())?;
    let mut want: BTreeSet<String> = BTreeSet::new();
    let mut missing = Vec::new();
    for raw in names_or_globs {
        let entry = raw.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let before = want.len();
        let mut hit = false;
        if entry.contains('/') {
            let pat = if entry.ends_with('/') {
                format!("{entry}*")
            } else {
                entry.to_string()
            };
            for (name, m) in &db.modules {
                let stem = m
                    .path
                    .find(".ko")
                    .map(|i| &m.path[..i + 3])
                    .unwrap_or(&m.path);
                if fnmatch(&pat, &m.path) || fnmatch(&pat, stem) {
                    want.insert(name.clone());
                }
            }
        } else {
            let r = db.resolve(entry, false);
            hit = r.modules.iter().any(|m| db.builtin.contains(m));
            want.extend(r.modules.into_iter().filter(|m| db.modules.contains_key(m)));
        }
        if want.len() == before && !hit {
            missing.push(entry.to_string());
        }
    }
    // Close over hard and soft dependencies.
    let mut stack: Vec<String> = want.iter().cloned().collect();
    while let Some(m) = stack.pop() {
        let mut next: Vec<String> = db
            .modules
            .get(&m)
            .map(|e| e.deps.clone())
            .unwrap_or_default();
        if let Some(sd) = db.softdep(&m) {
            for s in sd.pre.iter().chain(&sd.post) {
                next.extend(db.resolve(s, false).modules);
            }
        }
        for n in next {
            if db.modules.contains_key(&n) && want.insert(n.clone()) {
                stack.push(n);
            }
        }
    }
    let mut paths: Vec<PathBuf> = want
        .iter()
        .filter_map(|m| db.modules.get(m))
        .map(|e| PathBuf::from(&e.path))
        .collect();
    paths.sort();
    Ok(Closure { paths, missing })
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The needle never rejects a text the glob matches.
        #[test]
        fn needle_is_necessary(p in "[ab*?\\[\\]!\\\\]{0,10}", t in "[ab\\[\\]!*?\\\\]{0,12}") {
            if crate::fnmatch::fnmatch(&p, &t) {
                proptest::prop_assert!(t.contains(longest_literal(&p).as_str()), "{p:?} {t:?}");
            }
        }
    }

    #[test]
    fn literal_runs() {
        assert_eq!(
            longest_literal("of:N*T*Cbrcm,bcm2835-sdhostC*"),
            "Cbrcm,bcm2835-sdhostC"
        );
        assert_eq!(longest_literal("pci:v00001AF4d*sv*"), "pci:v00001AF4d");
        assert_eq!(longest_literal("a[xyz]bcd?e"), "bcd");
        assert_eq!(longest_literal("*"), "");
        assert_eq!(longest_literal("ab[cd"), "ab");
        assert_eq!(longest_literal("x\\*yz"), "yz");
        assert_eq!(longest_literal("[]ab]cd"), "cd");
        assert_eq!(longest_literal("é\\éxy"), "é");
    }

    #[test]
    fn names_normalise() {
        assert_eq!(
            name_from_path("kernel/drivers/block/virtio_blk.ko"),
            "virtio_blk"
        );
        assert_eq!(
            name_from_path("kernel/fs/nls/nls_iso8859-1.ko.xz"),
            "nls_iso8859_1"
        );
        assert_eq!(normalize_alias("fs-vfat"), "fs_vfat");
        assert_eq!(normalize_alias("pci:v[0-9]-x"), "pci:v[0-9]_x");
    }

    #[test]
    fn config_parses() {
        let mut c = ModprobeConfig::default();
        c.parse("# c\nblacklist evbug\noptions snd-hda index=1 \\\n  model=x\nalias fs-foo vfat\nsoftdep a pre: b c post: d\ninstall x /bin/true\n");
        assert!(c.blacklist.contains("evbug"));
        assert_eq!(c.options["snd_hda"], vec!["index=1", "model=x"]);
        assert_eq!(c.softdeps["a"].pre, vec!["b", "c"]);
        assert_eq!(c.softdeps["a"].post, vec!["d"]);
        c.parse_cmdline("quiet blacklist=dummy,evbug-x modprobe.blacklist=y usb-storage.delay_use=0 modules=loop");
        assert!(
            c.blacklist.contains("evbug_x")
                && c.blacklist.contains("y")
                && c.blacklist.contains("dummy")
        );
        assert_eq!(c.options["usb_storage"], vec!["delay_use=0"]);
    }
}
