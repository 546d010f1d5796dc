//! Names from outside (archive entries, arguments, index lines) in user-facing messages: in
//! double quotes, with quotes, backslashes and control characters escaped, so a hostile name
//! cannot forge or garble a console line. One Display type for every message, instead of Rust's
//! Debug formatting, whose output is meant for programmers and changes with the type.

use std::fmt;

/// `text` as `"text"`, escaped (see the module docs).
pub struct Quoted<'a>(pub &'a str);

/// Shorthand for [`Quoted`].
pub fn quoted(text: &str) -> Quoted<'_> {
    Quoted(text)
}

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c if c.is_control() => write!(f, "{}", c.escape_default())?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_escapes_what_could_forge_a_line() {
        assert_eq!(quoted("etc/hostname").to_string(), "\"etc/hostname\"");
        assert_eq!(
            quoted("a\"b\\c\nd\x1b[2Je\u{7f}").to_string(),
            "\"a\\\"b\\\\c\\nd\\u{1b}[2Je\\u{7f}\""
        );
        assert_eq!(quoted("grüße").to_string(), "\"grüße\"");
    }
}
