//! `ramboot cmdline explain [--json] [TEXT... | --file PATH]`.
//!
//! Arguments go through two stages, as in ripgrep: `RawArgs` collects what was typed,
//! `Args::validate` turns it into one consistent request or a usage error. No clap: the
//! binary is PID 1 of an initramfs and every kilobyte is boot time.

use std::ffi::OsString;
use std::fmt;
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

/// Errors of the `cmdline` command.
#[derive(Debug)]
pub enum CliError {
    /// The arguments do not make sense; the message says why.
    Usage(String),
    /// The command line could not be read.
    Read { path: PathBuf, source: io::Error },
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) => write!(f, "{m}"),
            CliError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for CliError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CliError::Read { source, .. } => Some(source),
            CliError::Usage(_) => None,
        }
    }
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
    fn collect(args: &[OsString]) -> Result<RawArgs, CliError> {
        let mut raw = RawArgs::default();
        let mut it = args.iter();
        let mut options_done = false;
        while let Some(arg) = it.next() {
            let s = arg.to_string_lossy();
            if options_done || !s.starts_with('-') || s == "-" {
                match raw.command {
                    None => raw.command = Some(arg.clone()),
                    Some(_) => raw.text.push(arg.clone()),
                }
                continue;
            }
            match s.as_ref() {
                "--" => options_done = true,
                "--json" => raw.json = true,
                "-h" | "--help" => raw.help = true,
                "--file" | "-f" => match it.next() {
                    Some(p) => raw.files.push(p.clone()),
                    None => return Err(CliError::Usage(format!("{s} needs a path"))),
                },
                _ => match s.strip_prefix("--file=") {
                    Some(p) => raw.files.push(p.into()),
                    None => return Err(CliError::Usage(format!("unknown flag {s}"))),
                },
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

/// A validated request.
#[derive(Debug, PartialEq, Eq)]
pub enum Args {
    Help,
    Explain { input: Input, json: bool },
}

impl Args {
    fn validate(raw: RawArgs) -> Result<Args, CliError> {
        if raw.help {
            return Ok(Args::Help);
        }
        match raw.command.as_deref().map(|c| c.to_string_lossy()) {
            Some(c) if c == "explain" => {}
            Some(c) => return Err(CliError::Usage(format!("unknown command `{c}`"))),
            None => return Err(CliError::Usage("missing command `explain`".into())),
        }
        if raw.files.len() > 1 {
            return Err(CliError::Usage("--file given more than once".into()));
        }
        let input = match (raw.files.into_iter().next(), raw.text.is_empty()) {
            (Some(_), false) => {
                return Err(CliError::Usage("give TEXT or --file, not both".into()))
            }
            (Some(f), true) if f == "-" => Input::Stdin,
            (Some(f), true) => Input::File(f.into()),
            (None, false) => {
                let words: Vec<_> = raw.text.iter().map(|t| t.to_string_lossy()).collect();
                Input::Text(words.join(" "))
            }
            (None, true) => Input::ProcCmdline,
        };
        Ok(Args::Explain {
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
    let result = RawArgs::collect(args).and_then(Args::validate);
    let (input, json) = match result {
        Ok(Args::Help) => {
            let _ = out.write_all(USAGE.as_bytes());
            return 0;
        }
        Ok(Args::Explain { input, json }) => (input, json),
        Err(e) => {
            let _ = writeln!(err, "ramboot cmdline: {e}\n\n{USAGE}");
            return 2;
        }
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

fn read_input(input: Input) -> Result<Vec<u8>, CliError> {
    let read =
        |path: PathBuf| std::fs::read(&path).map_err(|source| CliError::Read { path, source });
    match input {
        Input::Text(t) => Ok(t.into_bytes()),
        Input::File(p) => read(p),
        Input::ProcCmdline => read(PathBuf::from("/proc/cmdline")),
        Input::Stdin => {
            let mut buf = Vec::new();
            io::Read::read_to_end(&mut io::stdin(), &mut buf).map_err(|source| CliError::Read {
                path: "-".into(),
                source,
            })?;
            Ok(buf)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<Args, CliError> {
        let v: Vec<OsString> = a.iter().map(OsString::from).collect();
        RawArgs::collect(&v).and_then(Args::validate)
    }

    #[test]
    fn validation() {
        assert_eq!(
            args(&["explain", "quiet", "modules=a"]).unwrap(),
            Args::Explain {
                input: Input::Text("quiet modules=a".into()),
                json: false
            }
        );
        assert_eq!(
            args(&["explain", "--json", "--file", "c.txt"]).unwrap(),
            Args::Explain {
                input: Input::File("c.txt".into()),
                json: true
            }
        );
        assert_eq!(
            args(&["explain", "--file=-"]).unwrap(),
            Args::Explain {
                input: Input::Stdin,
                json: false
            }
        );
        assert_eq!(
            args(&["explain", "--", "-x"]).unwrap(),
            Args::Explain {
                input: Input::Text("-x".into()),
                json: false
            }
        );
        assert_eq!(
            args(&["explain"]).unwrap(),
            Args::Explain {
                input: Input::ProcCmdline,
                json: false
            }
        );
        assert_eq!(args(&["--help"]).unwrap(), Args::Help);
        assert!(matches!(args(&[]), Err(CliError::Usage(_))));
        assert!(matches!(
            args(&["explain", "--file"]),
            Err(CliError::Usage(_))
        ));
        assert!(matches!(
            args(&["explain", "--bogus"]),
            Err(CliError::Usage(_))
        ));
        assert!(matches!(args(&["frobnicate"]), Err(CliError::Usage(_))));
        assert!(matches!(
            args(&["explain", "-f", "a", "x"]),
            Err(CliError::Usage(_))
        ));
    }
}
