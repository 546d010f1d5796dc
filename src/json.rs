//! The one JSON writer of the crate: a value tree ([`Json`]) rendered compact or indented. Every
//! machine-readable output builds one (the boot timeline, `plan --json`, `cmdline explain
//! --json`). Hand-written because serde would cost more binary size than all of these outputs
//! together.

use crate::decimal::Decimal;
use std::fmt::Write as _;

/// A JSON value; objects keep their insertion order.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// Integral values print without a fraction, others with at most six decimals (rounded;
    /// beyond 10^12 to an integer); non-finite ones print as `null`.
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn str(s: impl Into<String>) -> Json {
        Json::Str(s.into())
    }

    pub fn strs<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Json {
        Json::Arr(items.into_iter().map(|s| Json::str(s.as_ref())).collect())
    }

    pub fn opt_str(s: Option<impl Into<String>>) -> Json {
        s.map_or(Json::Null, Json::str)
    }

    pub fn obj<K: Into<String>>(fields: impl IntoIterator<Item = (K, Json)>) -> Json {
        Json::Obj(fields.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// Compact text, or two-space indented when `pretty`.
    pub fn render(&self, pretty: bool) -> String {
        let mut out = String::new();
        self.write(&mut out, pretty, 0);
        out
    }

    fn write(&self, out: &mut String, pretty: bool, depth: usize) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Num(n) => push_num(out, *n),
            Json::Str(s) => push_str(out, s),
            Json::Arr(items) if items.is_empty() => out.push_str("[]"),
            Json::Obj(fields) if fields.is_empty() => out.push_str("{}"),
            Json::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    separate(out, i, pretty, depth + 1);
                    item.write(out, pretty, depth + 1);
                }
                newline(out, pretty, depth);
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    separate(out, i, pretty, depth + 1);
                    push_str(out, k);
                    out.push_str(if pretty { ": " } else { ":" });
                    v.write(out, pretty, depth + 1);
                }
                newline(out, pretty, depth);
                out.push('}');
            }
        }
    }
}

/// The comma before every item but the first, then its line when `pretty`.
fn separate(out: &mut String, index: usize, pretty: bool, depth: usize) {
    if index > 0 {
        out.push(',');
    }
    newline(out, pretty, depth);
}

fn newline(out: &mut String, pretty: bool, depth: usize) {
    if pretty {
        out.push('\n');
        out.extend(std::iter::repeat("  ").take(depth));
    }
}

/// Written from integers: `f64`'s `Display` would link the float formatting code into the init
/// (see crate::decimal). Every fraction printed today is milliseconds from microseconds.
fn push_num(out: &mut String, v: f64) {
    if !v.is_finite() {
        out.push_str("null");
    } else if (v.fract() == 0.0 || v.abs() >= 1e12) && v.abs() < 9e18 {
        let _ = write!(out, "{}", v.round() as i64);
    } else if v.abs() < 1e12 {
        if v < 0.0 {
            out.push('-');
        }
        let micros = (v.abs() * 1e6).round() as u64;
        let _ = write!(out, "{}", Decimal::ratio(micros, 1_000_000));
    } else {
        out.push_str("null");
    }
}

/// Appends `s` as a JSON string literal, quotes included (RFC 8259: quote, backslash and
/// control characters escaped).
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        let mut s = String::new();
        push_str(&mut s, "a\"b\\c\n\u{1}é");
        assert_eq!(s, r#""a\"b\\c\n\u0001é""#);
    }

    #[test]
    fn numbers_as_the_float_would_print_them() {
        let text = |v: f64| Json::Num(v).render(false);
        // Milliseconds from microseconds, as the boot timeline writes them.
        for micros in (0..3_000_000u64).step_by(997) {
            let ms = micros as f64 / 1000.0;
            assert_eq!(text(ms), ms.to_string());
        }
        assert_eq!(text(-2.25), "-2.25");
        assert_eq!(text(-7.0), "-7");
        assert_eq!(text(1e15), "1000000000000000");
        assert_eq!(text(1e12 + 0.5), "1000000000001");
        assert_eq!(text(1e300), "null");
        assert_eq!(text(f64::INFINITY), "null");
    }

    #[test]
    fn compact_and_pretty() {
        let j = Json::obj([
            ("a", Json::Arr(vec![Json::Num(1.0), Json::Null])),
            ("b", Json::obj(Vec::<(String, Json)>::new())),
            ("c", Json::Bool(true)),
            ("s", Json::strs(["p", "q"])),
            ("f", Json::Num(1.5)),
            ("nan", Json::Num(f64::NAN)),
            ("n", Json::opt_str(None::<String>)),
        ]);
        assert_eq!(
            j.render(false),
            r#"{"a":[1,null],"b":{},"c":true,"s":["p","q"],"f":1.5,"nan":null,"n":null}"#
        );
        assert_eq!(
            Json::obj([
                ("a", Json::Arr(vec![Json::Num(1.0), Json::Null])),
                ("b", Json::obj(Vec::<(String, Json)>::new())),
            ])
            .render(true),
            "{\n  \"a\": [\n    1,\n    null\n  ],\n  \"b\": {}\n}"
        );
    }
}
