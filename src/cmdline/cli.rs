//! `ramboot cmdline explain [--json] [TEXT... | --file PATH]`.
//!
//! Arguments go through the crate's one parser ([`crate::cli::args`]) in two stages, as in
//! ripgrep: `RawArgs` collects what was typed, `Request::validate` turns it into one consistent
//! request or a usage error.

use crate::cli::args::{unexpected, ArgError, Args, Long, Short, Usage, Value};
use std::ffi::OsString;
use std::io::{self, Write};
use std::path::PathBuf;

const USAGE: &str = "\
usage: ramboot cmdline explain [--json] [TEXT... | --file PATH]

Explains what an Alpine kernel command line means for a ramboot boot: mode, modules,
apkovl source, repositories, packages, handoff target, failure policy, and warnings
about misspelled, deprecated or invalid options.

  TEXT...       the command line (several arguments are joined with spaces)
  --file PATH   read it from a file such as cmdline.txt (`-` for stdin)
  --json        print JSON instead of text
  -h, --help    this help

With neither TEXT nor --file, /proc/cmdline of this machine is explained.
";

const USAGE_OF: Usage = Usage {
    prog: "ramboot cmdline",
    text: USAGE,
    status: 2,
};

/// Errors of the `cmdline` command.
#[derive(Debug, thiserror::Error)]
pub enum CmdlineError {
    /// The command line could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
}

/// What was typed, before any checks.
#[derive(Debug, Default)]
struct RawArgs {
    command: Option<OsString>,
    json: bool,
    help: bool,
    files: Vec<OsString>,
    text: Vec<OsString>,
}

impl RawArgs {
    fn collect(mut p: Args) -> Result<RawArgs, ArgError> {
        let mut raw = RawArgs::default();
        while let Some(arg) = p.next_arg()? {
            match arg {
                Long("json") => raw.json = true,
                Short('h') | Long("help") => raw.help = true,
                Short('f') | Long("file") => raw.files.push(p.value()?),
                Value(v) if raw.command.is_none() => raw.command = Some(v),
                Value(v) => raw.text.push(v),
                _ => return Err(unexpected(arg)),
            }
        }
        Ok(raw)
    }
}

/// Where the command line comes from.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    Text(String),
    File(PathBuf),
    Stdin,
    ProcCmdline,
}

/// A validated request: `explain` this input.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub input: Input,
    pub json: bool,
}

impl Request {
    fn validate(raw: RawArgs) -> Result<Request, ArgError> {
        match raw.command.as_deref().map(|c| c.to_string_lossy()) {
            Some(c) if c == "explain" => {}
            Some(c) => return Err(ArgError::invalid("command", &c, "unknown (explain)")),
            None => return Err(ArgError::Missing("command `explain`".into())),
        }
        if raw.files.len() > 1 {
            return Err(ArgError::Conflict("--file given more than once".into()));
        }
        let input = match (raw.files.into_iter().next(), raw.text.is_empty()) {
            (Some(_), false) => {
                return Err(ArgError::Conflict("give TEXT or --file, not both".into()))
            }
            (Some(f), true) if f == "-" => Input::Stdin,
            (Some(f), true) => Input::File(f.into()),
            (None, false) => {
                let words: Vec<_> = raw.text.iter().map(|t| t.to_string_lossy()).collect();
                Input::Text(words.join(" "))
            }
            (None, true) => Input::ProcCmdline,
        };
        Ok(Request {
            input,
            json: raw.json,
        })
    }
}

/// Entry point for `ramboot cmdline ...`; `args` are the words after `cmdline`.
/// Returns the exit status: 0 done, 1 could not read the input, 2 usage error.
pub fn main(args: &[OsString]) -> i32 {
    let stdout = io::stdout();
    let stderr = io::stderr();
    run(args, &mut stdout.lock(), &mut stderr.lock())
}

/// [`main`] with its output streams passed in (for tests).
pub fn run(args: &[OsString], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let request = USAGE_OF.two_stage_to(
        args,
        RawArgs::collect,
        |r| r.help,
        Request::validate,
        out,
        err,
    );
    let Request { input, json } = match request {
        Ok(r) => r,
        Err(code) => return code,
    };
    let bytes = match read_input(input) {
        Ok(b) => b,
        Err(e) => {
            let _ = writeln!(err, "ramboot cmdline: {e}");
            return 1;
        }
    };
    let options = super::parse_bytes(&bytes);
    let plan = super::plan(&options);
    let text = if json {
        let mut j = super::explain_json(&options, &plan);
        j.push('\n');
        j
    } else {
        super::explain(&options, &plan)
    };
    match out.write_all(text.as_bytes()) {
        Ok(()) => 0,
        // A closed pipe (`| head`) is not worth a message.
        Err(_) => 1,
    }
}

fn read_input(input: Input) -> Result<Vec<u8>, CmdlineError> {
    let read =
        |path: PathBuf| std::fs::read(&path).map_err(|source| CmdlineError::Read { path, source });
    match input {
        Input::Text(t) => Ok(t.into_bytes()),
        Input::File(p) => read(p),
        Input::ProcCmdline => read(PathBuf::from("/proc/cmdline")),
        Input::Stdin => {
            let mut buf = Vec::new();
            io::Read::read_to_end(&mut io::stdin(), &mut buf).map_err(|source| {
                CmdlineError::Read {
                    path: "-".into(),
                    source,
                }
            })?;
            Ok(buf)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<Option<Request>, ArgError> {
        let v: Vec<OsString> = a.iter().map(OsString::from).collect();
        let raw = RawArgs::collect(Args::new(v))?;
        if raw.help {
            return Ok(None);
        }
        Request::validate(raw).map(Some)
    }

    fn explain(input: Input, json: bool) -> Option<Request> {
        Some(Request { input, json })
    }

    #[test]
    fn validation() {
        assert_eq!(
            args(&["explain", "quiet", "modules=a"]).unwrap(),
            explain(Input::Text("quiet modules=a".into()), false)
        );
        assert_eq!(
            args(&["explain", "--json", "--file", "c.txt"]).unwrap(),
            explain(Input::File("c.txt".into()), true)
        );
        assert_eq!(
            args(&["explain", "--file=-"]).unwrap(),
            explain(Input::Stdin, false)
        );
        assert_eq!(
            args(&["explain", "--", "-x"]).unwrap(),
            explain(Input::Text("-x".into()), false)
        );
        assert_eq!(
            args(&["explain"]).unwrap(),
            explain(Input::ProcCmdline, false)
        );
        assert_eq!(args(&["--help"]).unwrap(), None);
        assert!(matches!(args(&[]), Err(ArgError::Missing(_))));
        assert!(matches!(
            args(&["explain", "--file"]),
            Err(ArgError::MissingValue(_))
        ));
        assert!(matches!(
            args(&["explain", "--bogus"]),
            Err(ArgError::UnknownFlag(_))
        ));
        assert!(matches!(
            args(&["frobnicate"]),
            Err(ArgError::Invalid { .. })
        ));
        assert!(matches!(
            args(&["explain", "-f", "a", "x"]),
            Err(ArgError::Conflict(_))
        ));
    }
}
