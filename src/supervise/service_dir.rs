//! Service directories in the runit/s6 convention, so an apkovl made with `lbu` can carry
//! them: `/etc/ramboot/services/<name>/` holds
//! - `run` (required, executable): started with the service directory as working directory;
//! - `finish` (optional): run after each exit of `run` with runit's two arguments, the exit code
//!   (-1 when killed by a signal) and the signal number (0 when it exited);
//! - `down`: not started at boot;
//! - `env/`: s6 envdir semantics: each file names a variable, its first line (trailing blanks
//!   removed, NULs turned into newlines) is the value, an empty file unsets it;
//! - `user`: `user[:group]`, names or numbers, resolved through the root's `/etc/passwd` and
//!   `/etc/group` (supplementary groups from `/etc/group`);
//! - `depends`: one service name per line (`#` comments): started once those are ready;
//! - `notification-fd`: s6 readiness: the service writes a newline on that descriptor when ready
//!   (without it, started counts as ready);
//! - `log/`: a logger service (its own `run`, ...) reading the service's stdout and stderr on
//!   its stdin, named `<name>/log`.
//!
//! A directory that cannot be used is reported with its cause and skipped; the others run.

use ramboot_sys::{Credentials, Sys};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// One service as its directory describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceDef {
    /// The directory name (`<name>/log` for a logger).
    pub name: String,
    /// The directory, as PID 1 sees it.
    pub dir: PathBuf,
    pub finish: bool,
    pub down: bool,
    /// (variable, value); `None` unsets it.
    pub env: Vec<(OsString, Option<OsString>)>,
    /// The user, with the name and home directory `USER`, `LOGNAME` and `HOME` get.
    pub user: Option<(Credentials, String, OsString)>,
    pub depends: Vec<String>,
    pub notification_fd: Option<i32>,
    /// Has a `log/` service (for a main service) or is one (`<name>/log`).
    pub logged: bool,
    pub is_logger: bool,
}

/// A directory skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

/// Every service under `dir` (sorted by name; a logger right after its service). A missing
/// directory means no services.
pub fn load_all(sys: &dyn Sys, dir: &Path) -> (Vec<ServiceDef>, Vec<Skipped>) {
    let mut names: Vec<String> = match std::fs::read_dir(sys.path(dir)) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect(),
        Err(_) => Vec::new(),
    };
    crate::sys::sort::sort(&mut names);
    let (mut defs, mut skipped) = (Vec::new(), Vec::new());
    for name in names {
        let main_dir = dir.join(&name);
        let has_log = sys.path(&main_dir.join("log")).is_dir();
        match load(sys, &name, &main_dir) {
            Ok(mut def) => {
                if has_log {
                    match load(sys, &format!("{name}/log"), &main_dir.join("log")) {
                        Ok(mut log) => {
                            def.logged = true;
                            log.logged = true;
                            log.is_logger = true;
                            defs.push(def);
                            defs.push(log);
                            continue;
                        }
                        Err(reason) => skipped.push(Skipped {
                            name: format!("{name}/log"),
                            reason: format!("{reason}; {name} runs without its logger"),
                        }),
                    }
                }
                defs.push(def);
            }
            Err(reason) => skipped.push(Skipped { name, reason }),
        }
    }
    (defs, skipped)
}

/// One service directory.
pub fn load(sys: &dyn Sys, name: &str, dir: &Path) -> Result<ServiceDef, String> {
    let host = sys.path(dir);
    let run = host.join("run");
    match std::fs::metadata(&run) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {}
        Ok(_) => return Err("run is not an executable file".into()),
        Err(e) => return Err(format!("cannot use run: {e}")),
    }
    let notification_fd = match read_optional(&host.join("notification-fd"))? {
        None => None,
        Some(text) => Some(parse_notification_fd(&text)?),
    };
    let user = match read_optional(&host.join("user"))? {
        None => None,
        Some(text) => Some(resolve_user(sys, text.trim())?),
    };
    let depends = read_optional(&host.join("depends"))?
        .map(|t| {
            t.lines()
                .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Ok(ServiceDef {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        finish: host.join("finish").is_file(),
        down: host.join("down").exists(),
        env: read_envdir(&host.join("env"))?,
        user,
        depends,
        notification_fd,
        logged: false,
        is_logger: false,
    })
}

fn read_optional(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", file_name(path))),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn parse_notification_fd(text: &str) -> Result<i32, String> {
    match text.trim().parse::<i32>() {
        Ok(n) if n >= 3 => Ok(n),
        _ => Err(format!(
            "notification-fd must hold a descriptor number of 3 or more, not '{}'",
            text.trim()
        )),
    }
}

/// s6-envdir: file name = variable, first line = value, empty file = unset.
fn read_envdir(dir: &Path) -> Result<Vec<(OsString, Option<OsString>)>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read env/: {e}")),
    };
    let mut vars = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        if name.as_encoded_bytes().contains(&b'=') || name.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let bytes = std::fs::read(entry.path())
            .map_err(|e| format!("cannot read env/{}: {e}", name.to_string_lossy()))?;
        let value = if bytes.is_empty() {
            None
        } else {
            let line = bytes.split(|&b| b == b'\n').next().unwrap_or(&[]);
            let end = line
                .iter()
                .rposition(|&b| b != b' ' && b != b'\t')
                .map_or(0, |i| i + 1);
            let value: Vec<u8> = line[..end]
                .iter()
                .map(|&b| if b == 0 { b'\n' } else { b })
                .collect();
            Some(OsString::from_vec(value))
        };
        vars.push((name, value));
    }
    crate::sys::sort::sort(&mut vars);
    Ok(vars)
}

/// `user[:group]` through the root's account files.
fn resolve_user(sys: &dyn Sys, spec: &str) -> Result<(Credentials, String, OsString), String> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = std::fs::read_to_string(sys.path(Path::new("/etc/passwd"))).unwrap_or_default();
    let groups = std::fs::read_to_string(sys.path(Path::new("/etc/group"))).unwrap_or_default();
    // name:x:uid:gid:gecos:home:shell
    let account = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && (f[0] == user || f[2] == user));
    let (name, uid, mut gid, home) = match account {
        Some(f) => {
            let uid = f[2].parse().map_err(|_| format!("bad uid for {user}"))?;
            let gid = f[3].parse().map_err(|_| format!("bad gid for {user}"))?;
            (f[0].to_string(), uid, gid, f[5].to_string())
        }
        None => match user.parse::<u32>() {
            Ok(uid) => (user.to_string(), uid, uid, "/".to_string()),
            Err(_) => return Err(format!("user {user}: not in /etc/passwd")),
        },
    };
    // name:x:gid:member,member
    let group_lines: Vec<Vec<&str>> = groups
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 3)
        .collect();
    if let Some(g) = group {
        gid = match group_lines.iter().find(|f| f[0] == g || f[2] == g) {
            Some(f) => f[2].parse().map_err(|_| format!("bad gid for group {g}"))?,
            None => g
                .parse()
                .map_err(|_| format!("group {g}: not in /etc/group"))?,
        };
    }
    let mut supplementary: Vec<u32> = group_lines
        .iter()
        .filter(|f| f.get(3).is_some_and(|m| m.split(',').any(|m| m == name)))
        .filter_map(|f| f[2].parse().ok())
        .collect();
    if !supplementary.contains(&gid) {
        supplementary.insert(0, gid);
    }
    let creds = Credentials {
        uid,
        gid,
        groups: supplementary,
    };
    Ok((creds, name, home.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ramboot_sys::RecordingSys;

    fn script(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn a_full_service_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let svc = root.join("etc/ramboot/services/web");
        script(&svc.join("run"));
        script(&svc.join("finish"));
        script(&svc.join("log/run"));
        std::fs::create_dir_all(svc.join("env")).unwrap();
        std::fs::write(svc.join("env/PORT"), "8080  \nignored\n").unwrap();
        std::fs::write(svc.join("env/HOME"), "").unwrap();
        std::fs::write(svc.join("env/NL"), b"a\0b").unwrap();
        std::fs::write(svc.join("depends"), "db # the database\n\nnet\n").unwrap();
        std::fs::write(svc.join("notification-fd"), "5\n").unwrap();
        std::fs::write(svc.join("user"), "www:adm\n").unwrap();
        std::fs::write(svc.join("down"), "").unwrap();
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww:x:101:102:web:/var/www:/sbin/nologin\n",
        )
        .unwrap();
        std::fs::write(
            root.join("etc/group"),
            "root:x:0:\nadm:x:4:root\nwww:x:102:\nvideo:x:27:root,www\n",
        )
        .unwrap();
        // Not a service: a plain file, a hidden directory, a directory without run.
        std::fs::write(root.join("etc/ramboot/services/README"), "").unwrap();
        std::fs::create_dir_all(root.join("etc/ramboot/services/.hidden")).unwrap();
        std::fs::create_dir_all(root.join("etc/ramboot/services/broken")).unwrap();
        let sys = RecordingSys::new(root);
        let (defs, skipped) = load_all(&sys, Path::new("/etc/ramboot/services"));
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].name, "broken");
        assert!(skipped[0].reason.starts_with("cannot use run: "));
        assert_eq!(defs.len(), 2);
        let web = &defs[0];
        assert_eq!(web.name, "web");
        assert!(web.finish && web.down && web.logged && !web.is_logger);
        assert_eq!(web.depends, ["db", "net"]);
        assert_eq!(web.notification_fd, Some(5));
        assert_eq!(
            web.env,
            [
                ("HOME".into(), None),
                ("NL".into(), Some("a\nb".into())),
                ("PORT".into(), Some("8080".into())),
            ]
        );
        let (creds, name, home) = web.user.clone().unwrap();
        assert_eq!((creds.uid, creds.gid), (101, 4));
        assert_eq!(creds.groups, [4, 27]);
        assert_eq!((name.as_str(), home.to_str().unwrap()), ("www", "/var/www"));
        assert_eq!(defs[1].name, "web/log");
        assert!(defs[1].is_logger);
    }

    #[test]
    fn bad_files_name_their_cause() {
        let dir = tempfile::tempdir().unwrap();
        let svc = dir.path().join("s");
        script(&svc.join("run"));
        let sys = RecordingSys::new(dir.path());
        std::fs::write(svc.join("notification-fd"), "1").unwrap();
        assert_eq!(
            load(&sys, "s", Path::new("/s")).unwrap_err(),
            "notification-fd must hold a descriptor number of 3 or more, not '1'"
        );
        std::fs::remove_file(svc.join("notification-fd")).unwrap();
        std::fs::write(svc.join("user"), "nobody").unwrap();
        assert_eq!(
            load(&sys, "s", Path::new("/s")).unwrap_err(),
            "user nobody: not in /etc/passwd"
        );
        std::fs::write(svc.join("user"), "1000:1001").unwrap();
        let (creds, _, _) = load(&sys, "s", Path::new("/s")).unwrap().user.unwrap();
        assert_eq!(
            (creds.uid, creds.gid, creds.groups),
            (1000, 1001, vec![1001])
        );
        std::fs::set_permissions(svc.join("run"), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            load(&sys, "s", Path::new("/s")).unwrap_err(),
            "run is not an executable file"
        );
    }
}
