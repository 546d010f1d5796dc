//! Dependency atoms: `[!]name[@tag][op version]`.
//!
//! The same grammar serves `depends`, `provides`, `install_if`, `replaces` and the world file.
//! Names such as `so:libc.musl-x86_64.so.1` or `/bin/sh` are ordinary names to apk.

use super::checksum::Checksum;
use super::version;
use super::ApkError;
use std::cmp::Ordering;
use std::fmt;

/// Bits of a version operator.
pub const LESS: u8 = 1;
/// `=`
pub const EQUAL: u8 = 2;
/// `>`
pub const GREATER: u8 = 4;
/// `~`: same version prefix.
pub const FUZZY: u8 = 8;
/// `><`: the version is a package identity (`Q1…`).
pub const CHECKSUM: u8 = LESS | GREATER;
/// No version constraint.
pub const ANY: u8 = LESS | EQUAL | GREATER;

/// One dependency atom.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Dep {
    /// Package (or provided) name.
    pub name: String,
    /// `!name`: the atom forbids matching providers.
    pub conflict: bool,
    /// Repository tag (`name@tag`).
    pub tag: Option<String>,
    /// Operator bits; [`ANY`] when there is no version.
    pub op: u8,
    /// The version compared against, when there is an operator.
    pub version: Option<String>,
}

fn op_text(op: u8) -> &'static str {
    match op {
        LESS => "<",
        x if x == LESS | EQUAL => "<=",
        EQUAL => "=",
        x if x == GREATER | EQUAL => ">=",
        GREATER => ">",
        x if x == EQUAL | FUZZY => "~",
        CHECKSUM => "><",
        _ => "",
    }
}

impl Dep {
    /// An unversioned atom on `name`.
    pub fn any(name: &str) -> Dep {
        Dep {
            name: name.into(),
            conflict: false,
            tag: None,
            op: ANY,
            version: None,
        }
    }

    /// Parses one atom.
    pub fn parse(atom: &str) -> Result<Dep, ApkError> {
        let bad = |reason: &'static str| ApkError::BadDependency {
            atom: atom.into(),
            reason,
        };
        let (conflict, rest) = match atom.strip_prefix('!') {
            Some(r) => (true, r),
            None => (false, atom),
        };
        let op_start = rest.find(['<', '>', '=', '~']).unwrap_or(rest.len());
        let (name_tag, verpart) = rest.split_at(op_start);
        let (name, tag) = match name_tag.split_once('@') {
            Some((n, t)) => (n, Some(t.to_string())),
            None => (name_tag, None),
        };
        if name.is_empty() {
            return Err(bad("empty name"));
        }
        if name.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("control character or space in name"));
        }
        if verpart.is_empty() {
            return Ok(Dep {
                name: name.into(),
                conflict,
                tag,
                op: ANY,
                version: None,
            });
        }
        let op_len = verpart
            .find(|c| !matches!(c, '<' | '>' | '=' | '~'))
            .unwrap_or(verpart.len());
        let (op_str, ver) = verpart.split_at(op_len);
        let op = match op_str {
            "<" => LESS,
            "<=" => LESS | EQUAL,
            "=" => EQUAL,
            ">=" => GREATER | EQUAL,
            ">" => GREATER,
            "~" | "=~" | "~=" => EQUAL | FUZZY,
            "><" => CHECKSUM,
            _ => return Err(bad("unknown version operator")),
        };
        if ver.is_empty() {
            return Err(bad("operator without a version"));
        }
        if op == CHECKSUM {
            if Checksum::parse(ver).is_none() {
                return Err(bad("`><` needs a package checksum"));
            }
        } else if !version::validate(ver) {
            return Err(bad("invalid version"));
        }
        Ok(Dep {
            name: name.into(),
            conflict,
            tag,
            op,
            version: Some(ver.into()),
        })
    }

    /// Parses a list of atoms separated by runs of spaces or newlines (not tabs).
    pub fn parse_list(text: &str) -> Result<Vec<Dep>, ApkError> {
        text.split([' ', '\n'])
            .filter(|a| !a.is_empty())
            .map(Dep::parse)
            .collect()
    }

    /// Does a provider with version `provided` (None: a virtual provide) and identity `identity`
    /// satisfy this atom? `None` for `provided` and `identity` together means "no provider".
    pub fn matches_provider(&self, provided: Option<&str>, identity: Option<&Checksum>) -> bool {
        let hit = match (&self.version, provided) {
            (None, _) => true,
            (Some(want), _) if self.op == CHECKSUM => {
                identity.is_some_and(|id| Checksum::parse(want).as_ref() == Some(id))
            }
            // A virtual provider never satisfies a versioned atom.
            (Some(_), None) => false,
            (Some(want), Some(have)) => {
                let ord = version::compare_fuzzy(have, want, self.op & FUZZY != 0);
                let bit = match ord {
                    Ordering::Less => LESS,
                    Ordering::Equal => EQUAL,
                    Ordering::Greater => GREATER,
                };
                self.op & bit != 0
            }
        };
        hit != self.conflict
    }

    /// The `name=version` or `name` form used in `provides`: the provided version, if any.
    pub fn provided_version(&self) -> Option<&str> {
        if self.op == EQUAL {
            self.version.as_deref()
        } else {
            None
        }
    }
}

impl fmt::Display for Dep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.conflict {
            f.write_str("!")?;
        }
        f.write_str(&self.name)?;
        if let Some(t) = &self.tag {
            write!(f, "@{t}")?;
        }
        if let Some(v) = &self.version {
            write!(f, "{}{v}", op_text(self.op))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Dep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Formats a list of atoms space-separated, as in APKINDEX `D:` lines.
pub fn list_text(deps: &[Dep]) -> String {
    deps.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// apk's name order: case-insensitive first, then bytewise.
pub fn name_cmp(a: &str, b: &str) -> Ordering {
    let ci = a
        .bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()));
    ci.then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        for s in [
            "foo",
            "!foo",
            "so:libc.so.1",
            "foo>=1.2",
            "foo<2",
            "foo~1.2",
            "foo@edge",
            "!bar<3",
            "cmd:sh=1.0",
        ] {
            assert_eq!(Dep::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(Dep::parse("foo=~1.2").unwrap().to_string(), "foo~1.2");
        assert!(Dep::parse("foo=>1").is_err());
        assert!(Dep::parse("foo>=").is_err());
        assert!(Dep::parse("foo>=1.0_foo").is_err());
        assert_eq!(Dep::parse_list("a  b\nc").unwrap().len(), 3);
    }

    #[test]
    fn matching() {
        let d = Dep::parse("foo~1.2").unwrap();
        assert!(d.matches_provider(Some("1.2.3"), None));
        assert!(d.matches_provider(Some("1.2_rc1"), None));
        assert!(!d.matches_provider(Some("1.20"), None));
        assert!(!d.matches_provider(None, None));
        let c = Dep::parse("!foo<2").unwrap();
        assert!(c.matches_provider(Some("2.0"), None));
        assert!(!c.matches_provider(Some("1.0"), None));
        assert!(Dep::parse("foo").unwrap().matches_provider(None, None));
    }
}
