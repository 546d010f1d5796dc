//! apk version strings: validation and ordering.
//!
//! apk compares versions token by token (`src/version.c` in apk-tools); the rules are odd enough
//! (`1.0 > 1.00`, `1.0_rc < 1.0 < 1.0_p`) that they are reproduced here exactly, including the
//! ordering apk gives to invalid strings, because repositories in the wild contain some.

use std::cmp::Ordering;

/// Token types in the order apk ranks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Tok {
    Invalid = -1,
    DigitOrZero = 0,
    Digit = 1,
    Letter = 2,
    Suffix = 3,
    SuffixNo = 4,
    RevisionNo = 5,
    End = 6,
}

const PRE_SUFFIXES: [&str; 4] = ["alpha", "beta", "pre", "rc"];
const POST_SUFFIXES: [&str; 5] = ["cvs", "svn", "git", "hg", "p"];

/// A cursor over a version string that yields (type, value) tokens.
struct Tokens<'a> {
    rest: &'a [u8],
    /// Type of the token that the next `value()` call reads.
    kind: Tok,
}

impl<'a> Tokens<'a> {
    fn new(v: &'a str) -> Self {
        Tokens {
            rest: v.as_bytes(),
            kind: Tok::Digit,
        }
    }

    /// Works out the type of the next token from the separator in front of it.
    fn advance_type(&mut self) {
        let prev = self.kind;
        let mut next = Tok::Invalid;
        match self.rest.first() {
            None | Some(0) => next = Tok::End,
            Some(&c) if matches!(prev, Tok::Digit | Tok::DigitOrZero) && c.is_ascii_lowercase() => {
                next = Tok::Letter
            }
            Some(&c) if prev == Tok::Letter && c.is_ascii_digit() => next = Tok::Digit,
            Some(&c) if prev == Tok::Suffix && c.is_ascii_digit() => next = Tok::SuffixNo,
            Some(&c) => {
                match c {
                    b'.' => next = Tok::DigitOrZero,
                    b'_' => next = Tok::Suffix,
                    b'-' if self.rest.get(1) == Some(&b'r') => {
                        next = Tok::RevisionNo;
                        self.rest = &self.rest[1..];
                    }
                    _ => {}
                }
                self.rest = &self.rest[1..];
            }
        }
        let allowed_drop = matches!(
            (next, prev),
            (Tok::DigitOrZero, Tok::Digit)
                | (Tok::Suffix, Tok::SuffixNo)
                | (Tok::Digit, Tok::Letter)
        );
        if next < prev && !allowed_drop {
            next = Tok::Invalid;
        }
        self.kind = next;
    }

    /// Reads the value of the current token and moves to the next one.
    fn value(&mut self) -> i64 {
        let s = self.rest;
        if s.is_empty() || s[0] == 0 {
            self.kind = Tok::End;
            return 0;
        }
        let mut used = 0usize;
        let mut value: i64 = 0;
        let mut then: Option<Tok> = None;
        match self.kind {
            Tok::DigitOrZero if s[0] == b'0' => {
                let zeros = s.iter().take_while(|&&c| c == b'0').count();
                // Only the extra zeros are consumed; what follows reads as a plain number.
                used = zeros - 1;
                value = -(used as i64);
                then = Some(Tok::Digit);
            }
            Tok::DigitOrZero | Tok::Digit | Tok::SuffixNo | Tok::RevisionNo => {
                while used < s.len() && s[used].is_ascii_digit() {
                    value = value
                        .wrapping_mul(10)
                        .wrapping_add(i64::from(s[used] - b'0'));
                    used += 1;
                }
                if used >= 18 {
                    self.kind = Tok::Invalid;
                    return -1;
                }
            }
            Tok::Letter => {
                value = i64::from(s[0]);
                used = 1;
            }
            Tok::Suffix => {
                if let Some(i) = PRE_SUFFIXES
                    .iter()
                    .position(|p| s.starts_with(p.as_bytes()))
                {
                    used = PRE_SUFFIXES[i].len();
                    value = i as i64 - PRE_SUFFIXES.len() as i64;
                } else if let Some(i) = POST_SUFFIXES
                    .iter()
                    .position(|p| s.starts_with(p.as_bytes()))
                {
                    used = POST_SUFFIXES[i].len();
                    value = i as i64;
                } else {
                    self.kind = Tok::Invalid;
                    return -1;
                }
            }
            Tok::Invalid | Tok::End => {
                self.kind = Tok::Invalid;
                return -1;
            }
        }
        self.rest = &s[used..];
        if self.rest.is_empty() {
            self.kind = Tok::End;
        } else if let Some(t) = then {
            self.kind = t;
        } else {
            self.advance_type();
        }
        value
    }
}

/// True when apk would accept `v` as a version (it is lenient: `a` and `1..2` pass).
pub fn validate(v: &str) -> bool {
    let mut t = Tokens::new(v);
    loop {
        t.value();
        match t.kind {
            Tok::End => return true,
            Tok::Invalid => return false,
            _ => {}
        }
    }
}

/// Compares two versions the way apk does. With `fuzzy` (the `~` operator) a version that
/// runs out of tokens first compares equal, so `1.2` fuzzily equals `1.2.3`.
pub fn compare_fuzzy(a: &str, b: &str, fuzzy: bool) -> Ordering {
    let mut ta = Tokens::new(a);
    let mut tb = Tokens::new(b);
    let (mut av, mut bv) = (0i64, 0i64);
    while ta.kind == tb.kind && !matches!(ta.kind, Tok::End | Tok::Invalid) && av == bv {
        av = ta.value();
        bv = tb.value();
    }
    if av != bv {
        return av.cmp(&bv);
    }
    if ta.kind == tb.kind || fuzzy {
        return Ordering::Equal;
    }
    let (at, bt) = (ta.kind, tb.kind);
    // A pre-release suffix (`_rc`, `_alpha`, ...) makes its side the smaller one.
    if at == Tok::Suffix && ta.value() < 0 {
        return Ordering::Less;
    }
    if bt == Tok::Suffix && tb.value() < 0 {
        return Ordering::Greater;
    }
    // Otherwise the side whose next token has the larger type is the older version.
    bt.cmp(&at)
}

/// Compares two versions exactly (no fuzzy matching).
pub fn compare(a: &str, b: &str) -> Ordering {
    compare_fuzzy(a, b, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples() {
        assert_eq!(compare("1.0", "1.00"), Ordering::Greater);
        assert_eq!(compare("01", "1"), Ordering::Equal);
        assert_eq!(compare("1.0_rc", "1.0"), Ordering::Less);
        assert_eq!(compare("1.0-r1", "1.0.1"), Ordering::Less);
        assert_eq!(compare_fuzzy("1.2.3", "1.2", true), Ordering::Equal);
        assert_ne!(compare_fuzzy("1.20", "1.2", true), Ordering::Equal);
        assert!(validate("1.2.3_rc1-r0"));
        assert!(!validate("1.0_foo"));
        assert!(!validate("999999999999999999"));
    }
}
