//! The one argument parser of every command: `ramboot mkinitfs|plan|install|apk|cmdline` and the
//! `modprobe` personality, so every command behaves alike:
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
//!
//! Own code rather than the `lexopt` crate (an interface of the same shape: [`Args::next_arg`],
//! [`Args::value`], [`Arg`]): the parser runs in the init build too (`modprobe`), where this one
//! measured 4.6 KB smaller (12.6 KB in the host build).

use crate::quote::quoted;
use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

pub use Arg::{Long, Short, Value};

/// One word of a command line, or one letter of a word of short flags.
#[derive(Debug, PartialEq, Eq)]
pub enum Arg<'a> {
    /// `-x`, alone or among others (`-qx`).
    Short(char),
    /// `--name` (without the dashes and any `=value`).
    Long(&'a str),
    /// A positional.
    Value(OsString),
}

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

/// The words of one command line (without the program or command name).
pub struct Args {
    words: std::vec::IntoIter<OsString>,
    /// The word of short flags being read (`-qb`) and the offset of its next letter.
    shorts: Option<(Vec<u8>, usize)>,
    /// The value glued to the last long flag (`--f=v`), until it is taken.
    glued: Option<OsString>,
    /// The last flag as typed (`--root`, `-S`), for messages and [`Arg::Long`].
    last: String,
    only_positionals: bool,
}

impl Args {
    pub fn new<S: Into<OsString>>(args: impl IntoIterator<Item = S>) -> Self {
        let words: Vec<OsString> = args.into_iter().map(Into::into).collect();
        Self {
            words: words.into_iter(),
            shorts: None,
            glued: None,
            last: String::new(),
            only_positionals: false,
        }
    }

    /// The next flag or positional; `None` at the end. A value glued to the previous flag that
    /// was not taken (`--json=1`) is refused here.
    pub fn next_arg(&mut self) -> Result<Option<Arg<'_>>, ArgError> {
        if self.glued.take().is_some() {
            return Err(ArgError::UnexpectedValue(std::mem::take(&mut self.last)));
        }
        if let Some(c) = self.next_short() {
            return Ok(Some(Short(c)));
        }
        let Some(word) = self.words.next() else {
            return Ok(None);
        };
        let bytes = word.as_bytes();
        if self.only_positionals || bytes.len() < 2 || bytes[0] != b'-' {
            return Ok(Some(Value(word)));
        }
        if bytes == b"--" {
            self.only_positionals = true;
            return self.next_arg();
        }
        if let Some(long) = bytes.strip_prefix(b"--") {
            let (name, glued) = match long.iter().position(|&b| b == b'=') {
                Some(i) => (&long[..i], Some(long[i + 1..].to_vec())),
                None => (long, None),
            };
            self.last = format!("--{}", String::from_utf8_lossy(name));
            self.glued = glued.map(OsString::from_vec);
            return Ok(Some(Long(&self.last[2..])));
        }
        self.shorts = Some((word.into_vec(), 1));
        Ok(self.next_short().map(Short))
    }

    /// The next letter of the current word of short flags.
    fn next_short(&mut self) -> Option<char> {
        let (word, at) = self.shorts.as_mut()?;
        let rest = &word[*at..];
        let len = rest.len().min(4);
        let c = (1..=len)
            .find_map(|n| std::str::from_utf8(&rest[..n]).ok())
            .and_then(|s| s.chars().next());
        *at += c.map_or(1, char::len_utf8);
        if *at >= word.len() {
            self.shorts = None;
        }
        let c = c.unwrap_or(char::REPLACEMENT_CHARACTER);
        self.last = format!("-{c}");
        Some(c)
    }

    /// The value of the flag just returned: glued on (`--f=v`, `-fv`, `-f=v`) or the next word,
    /// even one starting with `-`.
    pub fn value(&mut self) -> Result<OsString, ArgError> {
        if let Some(v) = self.glued.take() {
            return Ok(v);
        }
        if let Some((word, at)) = self.shorts.take() {
            let rest = &word[at..];
            return Ok(OsString::from_vec(
                rest.strip_prefix(b"=").unwrap_or(rest).to_vec(),
            ));
        }
        self.words
            .next()
            .ok_or_else(|| ArgError::MissingValue(self.last.clone()))
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
    match arg {
        Short(c) => ArgError::UnknownFlag(format!("-{c}")),
        Long(name) => ArgError::UnknownFlag(format!("--{name}")),
        Value(v) => ArgError::Unexpected(v.to_string_lossy().into_owned()),
    }
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

    /// Values keep their bytes; a short flag's value may be glued with or without `=`.
    #[test]
    fn values_glued_to_short_flags_and_not_utf8() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(b"x\xffy".to_vec());
        let mut long = b"--root=".to_vec();
        long.extend_from_slice(bad.as_encoded_bytes());
        let mut p = Args::new([
            OsString::from_vec(long),
            "-S=5".into(),
            "-qS".into(),
            "6".into(),
        ]);
        assert_eq!(p.next_arg(), Ok(Some(Long("root"))));
        assert_eq!(p.value(), Ok(bad.clone()));
        assert_eq!(p.next_arg(), Ok(Some(Short('S'))));
        assert_eq!(p.string().as_deref(), Ok("5"));
        assert_eq!(p.next_arg(), Ok(Some(Short('q'))));
        assert_eq!(p.next_arg(), Ok(Some(Short('S'))));
        assert_eq!(p.string().as_deref(), Ok("6"));
        assert_eq!(p.next_arg(), Ok(None));
        assert_eq!(utf8(bad), Err(ArgError::NotUtf8("x\u{fffd}y".into())));
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
