//! The one argument parser of every command: `ramboot mkinitfs|plan|install|apk|cmdline` and the
//! `modprobe` personality. `lexopt` does the splitting (a kept, dependency-free crate of one
//! file); this module fixes the rules and the wording, so every command behaves alike:
//!
//! * `--flag value`, `--flag=value`, `-f value`, `-fvalue`, and short switches combined (`-qb`);
//! * options and positionals may be interleaved; `--` makes everything after it a positional,
//!   and `-` alone is a positional (stdin);
//! * a switch given a value (`--json=1`), a flag without its value, an unknown flag or a stray
//!   positional is an [`ArgError`] naming it; the command prints that line, then its usage, and
//!   exits with its usage status ([`Usage`]);
//! * `-h`/`--help` prints the usage to stdout and exits 0.
//!
//! Parsing has two stages, as in ripgrep: each command's raw stage turns the words into a plain
//! record of what was typed (no checks beyond syntax), its validate stage turns that record into
//! the request it runs, or an [`ArgError`]. [`Usage::two_stage`] runs both the same way for all.

use crate::quote::quoted;
use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::path::PathBuf;

pub use lexopt::Arg::{self, Long, Short, Value};

/// Why a command line was refused; every message names the flag or word at fault.
#[derive(Debug, PartialEq, Eq)]
pub enum ArgError {
    UnknownFlag(String),
    MissingValue(String),
    /// A switch was given a value (`--json=yes`).
    UnexpectedValue(String),
    /// A positional where the command takes none (or no more).
    Unexpected(String),
    NotUtf8(String),
    /// A value that does not fit its flag.
    Invalid {
        flag: String,
        value: String,
        why: String,
    },
    /// A required flag or argument is absent: the text says which.
    Missing(String),
    /// Flags that contradict each other, or anything else: the text says what.
    Conflict(String),
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownFlag(flag) => write!(f, "unknown flag {flag}"),
            Self::MissingValue(flag) => write!(f, "{flag} needs a value"),
            Self::UnexpectedValue(flag) => write!(f, "{flag} takes no value"),
            Self::Unexpected(a) => write!(f, "unexpected argument {}", quoted(a)),
            Self::NotUtf8(a) => write!(f, "argument is not UTF-8: {}", quoted(a)),
            Self::Invalid { flag, value, why } => write!(f, "{flag} {}: {why}", quoted(value)),
            Self::Missing(what) => write!(f, "missing {what}"),
            Self::Conflict(what) => write!(f, "{what}"),
        }
    }
}

impl std::error::Error for ArgError {}

impl ArgError {
    pub fn invalid(flag: &str, value: &str, why: impl Into<String>) -> Self {
        Self::Invalid {
            flag: flag.into(),
            value: value.into(),
            why: why.into(),
        }
    }
}

impl From<lexopt::Error> for ArgError {
    fn from(e: lexopt::Error) -> Self {
        use lexopt::Error as E;
        let lossy = |v: OsString| v.to_string_lossy().into_owned();
        match e {
            E::MissingValue { option } => Self::MissingValue(option.unwrap_or_default()),
            E::UnexpectedOption(flag) => Self::UnknownFlag(flag),
            E::UnexpectedArgument(v) => Self::Unexpected(lossy(v)),
            E::UnexpectedValue { option, .. } => Self::UnexpectedValue(option),
            E::NonUnicodeValue(v) => Self::NotUtf8(lossy(v)),
            E::ParsingFailed { value, error } => Self::invalid("", &value, error.to_string()),
            E::Custom(e) => Self::Conflict(e.to_string()),
        }
    }
}

/// The words of one command line (without the program or command name).
pub struct Args(lexopt::Parser);

impl Args {
    pub fn new<S: Into<OsString>>(args: impl IntoIterator<Item = S>) -> Self {
        Self(lexopt::Parser::from_args(args))
    }

    /// The next flag or positional; `None` at the end.
    pub fn next_arg(&mut self) -> Result<Option<Arg<'_>>, ArgError> {
        Ok(self.0.next()?)
    }

    /// The value of the flag just returned: glued on (`--f=v`, `-fv`) or the next word, even
    /// one starting with `-`.
    pub fn value(&mut self) -> Result<OsString, ArgError> {
        Ok(self.0.value()?)
    }

    pub fn string(&mut self) -> Result<String, ArgError> {
        utf8(self.value()?)
    }

    pub fn path(&mut self) -> Result<PathBuf, ArgError> {
        Ok(self.value()?.into())
    }
}

/// A positional or value as UTF-8 text.
pub fn utf8(v: OsString) -> Result<String, ArgError> {
    v.into_string()
        .map_err(|v| ArgError::NotUtf8(v.to_string_lossy().into_owned()))
}

/// The error for a flag or positional the command does not take.
pub fn unexpected(arg: Arg<'_>) -> ArgError {
    arg.unexpected().into()
}

/// A number value of `flag`.
pub fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, ArgError> {
    value
        .parse()
        .map_err(|_| ArgError::invalid(flag, value, "not a number"))
}

/// A command's name as its messages start, its usage text and the exit status of a refused
/// command line. The status is 2 but where the command's status already means something else:
/// `ramboot install` counts failed packages (as apk does) and says 99 for "nothing installed";
/// `modprobe` exits 1 on any failure, as kmod and busybox do.
pub struct Usage {
    pub prog: &'static str,
    pub text: &'static str,
    pub status: i32,
}

impl Usage {
    /// Prints `e` then the usage to `err`; returns the status to exit with.
    pub fn refuse(&self, e: &dyn fmt::Display, err: &mut dyn Write) -> i32 {
        let _ = writeln!(err, "{}: {e}\n\n{}", self.prog, self.text.trim_end());
        self.status
    }

    /// Runs the two stages on `args` and handles `--help` and refusals the same way for every
    /// command: `Ok(request)`, or `Err(exit status)` once the help or the refusal is printed.
    pub fn two_stage<R, Q>(
        &self,
        args: &[OsString],
        parse_raw: impl FnOnce(Args) -> Result<R, ArgError>,
        wants_help: impl FnOnce(&R) -> bool,
        validate: impl FnOnce(R) -> Result<Q, ArgError>,
    ) -> Result<Q, i32> {
        self.two_stage_to(
            args,
            parse_raw,
            wants_help,
            validate,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        )
    }

    /// [`Usage::two_stage`] with its output streams passed in (for tests).
    pub fn two_stage_to<R, Q>(
        &self,
        args: &[OsString],
        parse_raw: impl FnOnce(Args) -> Result<R, ArgError>,
        wants_help: impl FnOnce(&R) -> bool,
        validate: impl FnOnce(R) -> Result<Q, ArgError>,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<Q, i32> {
        let raw = parse_raw(Args::new(args)).map_err(|e| self.refuse(&e, err))?;
        if wants_help(&raw) {
            let _ = out.write_all(self.text.as_bytes());
            return Err(0);
        }
        validate(raw).map_err(|e| self.refuse(&e, err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    /// Every form the rules allow, and the refusals they name.
    #[test]
    fn rules() {
        let mut p = Args::new(words(&[
            "-o", "out", "--x=1", "--y", "-2", "-qb", "-Sv", "pos", "-", "--", "--z",
        ]));
        let mut seen = Vec::new();
        while let Some(arg) = p.next_arg().unwrap() {
            let item = match arg {
                Short('o') | Long("x") | Long("y") | Short('S') => p.string().unwrap(),
                Short(c) => format!("-{c}"),
                Long(l) => format!("--{l}"),
                Value(v) => utf8(v).unwrap(),
            };
            seen.push(item);
        }
        assert_eq!(seen, ["out", "1", "-2", "-q", "-b", "v", "pos", "-", "--z"]);

        let mut p = Args::new(words(&["--json=1"]));
        assert!(matches!(p.next_arg(), Ok(Some(Long("json")))));
        assert_eq!(
            p.next_arg(),
            Err(ArgError::UnexpectedValue("--json".into()))
        );
        let mut p = Args::new(words(&["--root"]));
        let _ = p.next_arg();
        assert_eq!(p.value(), Err(ArgError::MissingValue("--root".into())));
        let mut p = Args::new(words(&["-z", "--bogus"]));
        let arg = p.next_arg().unwrap().unwrap();
        assert_eq!(unexpected(arg).to_string(), "unknown flag -z");
        let arg = p.next_arg().unwrap().unwrap();
        assert_eq!(unexpected(arg).to_string(), "unknown flag --bogus");
        assert_eq!(
            unexpected(Value("stray".into())).to_string(),
            "unexpected argument \"stray\""
        );
    }

    #[test]
    fn two_stage_prints_help_or_the_refusal_with_usage() {
        let usage = Usage {
            prog: "ramboot t",
            text: "usage: t [--a]\n",
            status: 7,
        };
        let run = |a: &[&str]| {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let r = usage.two_stage_to(
                &words(a),
                |mut p| {
                    let mut help = false;
                    while let Some(arg) = p.next_arg()? {
                        match arg {
                            Long("a") => {}
                            Short('h') | Long("help") => help = true,
                            _ => return Err(unexpected(arg)),
                        }
                    }
                    Ok(help)
                },
                |h| *h,
                |_| Err::<(), _>(ArgError::Missing("X".into())),
                &mut out,
                &mut err,
            );
            (
                r,
                String::from_utf8(out).unwrap(),
                String::from_utf8(err).unwrap(),
            )
        };
        assert_eq!(
            run(&["--help"]),
            (Err(0), "usage: t [--a]\n".into(), "".into())
        );
        assert_eq!(
            run(&["--b"]),
            (
                Err(7),
                "".into(),
                "ramboot t: unknown flag --b\n\nusage: t [--a]\n".into()
            )
        );
        assert_eq!(
            run(&["--a"]),
            (
                Err(7),
                "".into(),
                "ramboot t: missing X\n\nusage: t [--a]\n".into()
            )
        );
    }
}
