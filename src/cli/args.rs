//! The first, raw stage of argument parsing shared by the host commands: split `--flag value`,
//! `--flag=value`, `-f value` and positionals; no meaning attached yet.

use crate::quote::quoted;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;

#[derive(Debug, PartialEq, Eq)]
pub enum Arg {
    /// `--name` or `-n`, with the value glued on by `=` if there was one.
    Flag {
        name: String,
        inline: Option<OsString>,
    },
    Positional(OsString),
}

#[derive(Debug, PartialEq, Eq)]
pub enum ArgError {
    MissingValue(String),
    Unexpected(String),
    Invalid {
        flag: String,
        value: String,
        why: String,
    },
    Missing(String),
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingValue(flag) => write!(f, "{flag} needs a value"),
            Self::Unexpected(a) => write!(f, "unexpected argument {}", quoted(a)),
            Self::Invalid { flag, value, why } => write!(f, "{flag} {}: {why}", quoted(value)),
            Self::Missing(what) => write!(f, "missing {what}"),
        }
    }
}

impl std::error::Error for ArgError {}

pub struct RawArgs {
    items: VecDeque<OsString>,
    only_positionals: bool,
}

impl RawArgs {
    pub fn new(args: &[OsString]) -> Self {
        Self {
            items: args.iter().cloned().collect(),
            only_positionals: false,
        }
    }

    /// The next argument; `--` turns everything after it into positionals.
    pub fn next_arg(&mut self) -> Option<Arg> {
        let item = self.items.pop_front()?;
        if self.only_positionals {
            return Some(Arg::Positional(item));
        }
        let text = item.to_string_lossy();
        if text == "--" {
            self.only_positionals = true;
            return self.next_arg();
        }
        if let Some(long) = text.strip_prefix("--") {
            return Some(match long.split_once('=') {
                Some((name, value)) => Arg::Flag {
                    name: format!("--{name}"),
                    inline: Some(value.into()),
                },
                None => Arg::Flag {
                    name: format!("--{long}"),
                    inline: None,
                },
            });
        }
        if text.len() > 1 && text.starts_with('-') {
            return Some(Arg::Flag {
                name: text.into_owned(),
                inline: None,
            });
        }
        Some(Arg::Positional(item))
    }

    /// The value of `flag`: the inline one, else the next argument.
    pub fn value(&mut self, flag: &str, inline: Option<OsString>) -> Result<OsString, ArgError> {
        if let Some(v) = inline {
            return Ok(v);
        }
        self.items
            .pop_front()
            .ok_or_else(|| ArgError::MissingValue(flag.into()))
    }

    pub fn string(&mut self, flag: &str, inline: Option<OsString>) -> Result<String, ArgError> {
        let v = self.value(flag, inline)?;
        v.into_string().map_err(|v| ArgError::Invalid {
            flag: flag.into(),
            value: v.to_string_lossy().into_owned(),
            why: "not UTF-8".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_flags_values_and_positionals() {
        let args: Vec<OsString> = ["-o", "out", "--x=1", "--y", "2", "pos", "--", "--z"]
            .iter()
            .map(OsString::from)
            .collect();
        let mut r = RawArgs::new(&args);
        let Some(Arg::Flag { name, inline }) = r.next_arg() else {
            panic!()
        };
        assert_eq!(
            (name.as_str(), r.value("-o", inline).unwrap()),
            ("-o", OsString::from("out"))
        );
        assert_eq!(
            r.next_arg(),
            Some(Arg::Flag {
                name: "--x".into(),
                inline: Some("1".into())
            })
        );
        let Some(Arg::Flag { inline, .. }) = r.next_arg() else {
            panic!()
        };
        assert_eq!(r.string("--y", inline).unwrap(), "2");
        assert_eq!(r.next_arg(), Some(Arg::Positional("pos".into())));
        assert_eq!(r.next_arg(), Some(Arg::Positional("--z".into())));
        assert_eq!(r.next_arg(), None);
        assert_eq!(
            r.value("--q", None),
            Err(ArgError::MissingValue("--q".into()))
        );
    }
}
