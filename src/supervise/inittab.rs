//! `/etc/inittab` with busybox init's semantics, so Alpine's stock table runs unchanged.
//!
//! A line is `id:runlevels:action:process`. As in busybox:
//! - `id` names the terminal the process gets as stdin/stdout/stderr (`ttyS0` means
//!   `/dev/ttyS0`); empty means PID 1's own console.
//! - `runlevels` is ignored (busybox has none).
//! - `process` is the rest of the line, colons included. A leading `-` marks a login shell
//!   (argv\[0\] keeps the dash). When it holds a shell metacharacter it runs as
//!   `/bin/sh -c "exec <process>"`, otherwise it is split on blanks and looked up in `PATH`.
//! - `#` starts a comment anywhere on the line (busybox's config parser does the same, so a
//!   process cannot contain `#`); blank lines are skipped.
//! - A line with an unknown action, fewer than four fields or an empty process is reported
//!   with its line number and skipped; the rest of the table still runs.
//! - The same process on the same terminal twice is one entry: the later line's action wins
//!   and the entry moves to the later position (busybox keeps one process per such pair, which
//!   is also what lets a reload keep running processes).
//!
//! Without an inittab, busybox's built-in table applies ([`Inittab::busybox_default`]).

use ramboot_sys::Spawn;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

/// When an entry runs (busybox's action names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// At boot, first, one after another, each waited for.
    Sysinit,
    /// At boot after every sysinit, one after another, each waited for.
    Wait,
    /// At boot after every wait, started and not waited for.
    Once,
    /// Started after boot and restarted whenever it ends.
    Respawn,
    /// Like respawn, after "Please press Enter to activate this console." is answered.
    Askfirst,
    /// On SIGINT (Ctrl-Alt-Del), each waited for.
    Ctrlaltdel,
    /// At halt, poweroff and reboot, before every process is killed, each waited for.
    Shutdown,
    /// On SIGQUIT: after the shutdown actions and killing every process, PID 1 execs it.
    Restart,
}

impl Action {
    pub fn parse(name: &str) -> Option<Action> {
        Some(match name {
            "sysinit" => Action::Sysinit,
            "wait" => Action::Wait,
            "once" => Action::Once,
            "respawn" => Action::Respawn,
            "askfirst" => Action::Askfirst,
            "ctrlaltdel" => Action::Ctrlaltdel,
            "shutdown" => Action::Shutdown,
            "restart" => Action::Restart,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::Sysinit => "sysinit",
            Action::Wait => "wait",
            Action::Once => "once",
            Action::Respawn => "respawn",
            Action::Askfirst => "askfirst",
            Action::Ctrlaltdel => "ctrlaltdel",
            Action::Shutdown => "shutdown",
            Action::Restart => "restart",
        }
    }

    /// Kept running: started after boot, restarted when it ends.
    pub fn respawns(self) -> bool {
        matches!(self, Action::Respawn | Action::Askfirst)
    }
}

/// One inittab line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub action: Action,
    /// The terminal to open as stdio (`/dev/...`), or `None` for PID 1's console.
    pub tty: Option<PathBuf>,
    /// The process field as written.
    pub process: String,
    /// Where it was written (0 for the built-in table).
    pub line: usize,
}

impl Entry {
    fn new(action: Action, tty: &str, process: &str, line: usize) -> Entry {
        let tty = match tty {
            "" => None,
            t if t.starts_with("/dev/") => Some(PathBuf::from(t)),
            t => Some(PathBuf::from("/dev").join(t)),
        };
        Entry {
            action,
            tty,
            process: process.to_string(),
            line,
        }
    }

    /// What to start for this entry, with `env` as its whole environment.
    pub fn spawn(&self, env: &[(OsString, OsString)]) -> Spawn {
        let mut spawn = command_spawn(&self.process);
        spawn.env = env.to_vec();
        spawn.console = self.tty.clone();
        spawn.press_enter = self.action == Action::Askfirst;
        spawn
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} '{}'", self.action.name(), self.process)?;
        if let Some(tty) = &self.tty {
            write!(f, " on {}", tty.display())?;
        }
        Ok(())
    }
}

/// The characters that make busybox hand a process field to `/bin/sh -c`.
const SHELL_CHARS: &[char] = &[
    '~', '`', '!', '$', '^', '&', '*', '(', ')', '=', '|', '\\', '{', '}', '[', ']', ';', '"',
    '\'', '<', '>', '?',
];

/// A process field as busybox init runs it (see the module docs).
pub fn command_spawn(process: &str) -> Spawn {
    let login = process.starts_with('-');
    let command = process.strip_prefix('-').unwrap_or(process);
    if command.contains(SHELL_CHARS) {
        return Spawn {
            program: "/bin/sh".into(),
            argv0: Some(if login { "-/bin/sh" } else { "/bin/sh" }.into()),
            args: vec!["-c".into(), format!("exec {command}").into()],
            controlling_tty: login,
            ..Default::default()
        };
    }
    let mut words = command.split([' ', '\t']).filter(|w| !w.is_empty());
    let program = words.next().unwrap_or_default();
    Spawn {
        program: program.into(),
        argv0: Some(
            if login {
                format!("-{program}")
            } else {
                program.to_string()
            }
            .into(),
        ),
        args: words.map(OsString::from).collect(),
        controlling_tty: login,
        ..Default::default()
    }
}

/// A line that was skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for BadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad inittab entry at line {}: {}",
            self.line, self.reason
        )
    }
}

/// The table, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inittab {
    pub entries: Vec<Entry>,
}

impl Inittab {
    /// Parses `text`; bad lines are returned, not fatal.
    pub fn parse(text: &str) -> (Inittab, Vec<BadLine>) {
        let mut table = Inittab::default();
        let mut bad = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("");
            if line.trim().is_empty() {
                continue;
            }
            match parse_line(line, i + 1) {
                Ok(entry) => table.add(entry),
                Err(reason) => bad.push(BadLine {
                    line: i + 1,
                    reason,
                }),
            }
        }
        (table, bad)
    }

    /// Busybox's table when there is no `/etc/inittab`.
    pub fn busybox_default() -> Inittab {
        let mut table = Inittab::default();
        let builtin = [
            (Action::Ctrlaltdel, "", "reboot"),
            (Action::Shutdown, "", "umount -a -r"),
            (Action::Shutdown, "", "swapoff -a"),
            (Action::Restart, "", "init"),
            (Action::Askfirst, "", "-/bin/sh"),
            (Action::Askfirst, "/dev/tty2", "-/bin/sh"),
            (Action::Askfirst, "/dev/tty3", "-/bin/sh"),
            (Action::Askfirst, "/dev/tty4", "-/bin/sh"),
            (Action::Sysinit, "", "/etc/init.d/rcS"),
        ];
        for (action, tty, process) in builtin {
            table.add(Entry::new(action, tty, process, 0));
        }
        table
    }

    /// Adds `entry`, replacing an earlier one for the same process and terminal.
    fn add(&mut self, entry: Entry) {
        self.entries
            .retain(|e| !(e.process == entry.process && e.tty == entry.tty));
        self.entries.push(entry);
    }

    /// The entries with `action`, in order.
    pub fn with(&self, action: Action) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(move |e| e.action == action)
    }
}

fn parse_line(line: &str, number: usize) -> Result<Entry, String> {
    let mut fields = line.splitn(4, ':');
    let (Some(id), Some(_runlevels), Some(action), Some(process)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err("expected id:runlevels:action:process".into());
    };
    let action = Action::parse(action.trim())
        .ok_or_else(|| format!("unknown action {}", crate::quote::quoted(action)))?;
    let process = process.trim();
    if process.is_empty() {
        return Err("no process to run".into());
    }
    Ok(Entry::new(action, id.trim(), process, number))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Alpine's stock /etc/inittab (alpine-baselayout), comments included.
    const ALPINE: &str = "\
# /etc/inittab

::sysinit:/sbin/openrc sysinit
::sysinit:/sbin/openrc boot
::wait:/sbin/openrc default

# Set up a couple of getty's
tty1::respawn:/sbin/getty 38400 tty1
tty2::respawn:/sbin/getty 38400 tty2

# Put a getty on the serial port
#ttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100

# Stuff to do for the 3-finger salute
::ctrlaltdel:/sbin/reboot

# Stuff to do before rebooting
::shutdown:/sbin/openrc shutdown
";

    fn args(s: &Spawn) -> Vec<String> {
        s.args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn alpine_stock_inittab() {
        let (t, bad) = Inittab::parse(ALPINE);
        assert!(bad.is_empty());
        let shown: Vec<String> = t.entries.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "sysinit '/sbin/openrc sysinit'",
                "sysinit '/sbin/openrc boot'",
                "wait '/sbin/openrc default'",
                "respawn '/sbin/getty 38400 tty1' on /dev/tty1",
                "respawn '/sbin/getty 38400 tty2' on /dev/tty2",
                "ctrlaltdel '/sbin/reboot'",
                "shutdown '/sbin/openrc shutdown'",
            ]
        );
        assert_eq!(t.entries[6].line, 18);
        let getty = t.entries[3].spawn(&[("PATH".into(), "/sbin".into())]);
        assert_eq!(getty.program, PathBuf::from("/sbin/getty"));
        assert_eq!(args(&getty), ["38400", "tty1"]);
        assert_eq!(getty.console, Some(PathBuf::from("/dev/tty1")));
        assert_eq!(getty.env.len(), 1);
        assert!(!getty.press_enter && !getty.controlling_tty);
    }

    #[test]
    fn bad_lines_are_reported_with_their_number_and_skipped() {
        let text =
            "::sysinit:/bin/true\n::bogus:/bin/x\nnot a line\n::respawn:\n  \n::once:/bin/a:b\n";
        let (t, bad) = Inittab::parse(text);
        let lines: Vec<usize> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, [2, 3, 4]);
        assert_eq!(
            bad[0].to_string(),
            "bad inittab entry at line 2: unknown action \"bogus\""
        );
        assert_eq!(t.entries.len(), 2);
        // The process is the rest of the line, colons included.
        assert_eq!(t.entries[1].process, "/bin/a:b");
    }

    #[test]
    fn comments_end_a_line_anywhere_like_busybox() {
        let (t, bad) = Inittab::parse("::once:/bin/echo hi # greet\n# ::once:/bin/no\n");
        assert!(bad.is_empty());
        assert_eq!(t.entries.len(), 1);
        assert_eq!(args(&t.entries[0].spawn(&[])), ["hi"]);
    }

    #[test]
    fn shell_characters_run_through_sh_and_a_dash_makes_a_login_shell() {
        let s = command_spawn("/bin/echo $HOME > /dev/null");
        assert_eq!(s.program, PathBuf::from("/bin/sh"));
        assert_eq!(args(&s), ["-c", "exec /bin/echo $HOME > /dev/null"]);
        assert_eq!(s.argv0, Some("/bin/sh".into()));
        let s = command_spawn("-/bin/sh");
        assert_eq!(s.program, PathBuf::from("/bin/sh"));
        assert_eq!(s.argv0, Some("-/bin/sh".into()));
        assert!(s.controlling_tty);
        let s = command_spawn("-/bin/login -f root; echo");
        assert_eq!(s.argv0, Some("-/bin/sh".into()));
        assert_eq!(args(&s), ["-c", "exec /bin/login -f root; echo"]);
        let s = command_spawn("getty \t 115200  ttyS0");
        assert_eq!(s.program, PathBuf::from("getty"));
        assert_eq!(args(&s), ["115200", "ttyS0"]);
    }

    #[test]
    fn the_same_process_on_the_same_tty_is_one_entry_the_later_wins() {
        let text = "tty1::respawn:/sbin/getty tty1\n::once:/x\ntty1::askfirst:/sbin/getty tty1\ntty2::respawn:/sbin/getty tty1\n";
        let (t, _) = Inittab::parse(text);
        let shown: Vec<String> = t.entries.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "once '/x'",
                "askfirst '/sbin/getty tty1' on /dev/tty1",
                "respawn '/sbin/getty tty1' on /dev/tty2",
            ]
        );
        assert!(t.entries[1].spawn(&[]).press_enter);
    }

    #[test]
    fn busybox_default_table() {
        let t = Inittab::busybox_default();
        assert_eq!(t.with(Action::Sysinit).count(), 1);
        assert_eq!(
            t.with(Action::Sysinit).next().unwrap().process,
            "/etc/init.d/rcS"
        );
        let shells: Vec<Option<PathBuf>> =
            t.with(Action::Askfirst).map(|e| e.tty.clone()).collect();
        assert_eq!(
            shells,
            [
                None,
                Some("/dev/tty2".into()),
                Some("/dev/tty3".into()),
                Some("/dev/tty4".into())
            ]
        );
        let down: Vec<&str> = t
            .with(Action::Shutdown)
            .map(|e| e.process.as_str())
            .collect();
        assert_eq!(down, ["umount -a -r", "swapoff -a"]);
        assert_eq!(t.with(Action::Restart).next().unwrap().process, "init");
        assert_eq!(t.with(Action::Ctrlaltdel).next().unwrap().process, "reboot");
    }
}
