//! The one JSON writer of the crate: a value tree ([`Json`]) rendered compact or indented. Every
//! machine-readable output builds one (the boot timeline, `plan --json`, `cmdline explain
//! --json`). Hand-written because serde would cost more binary size than all of these outputs
//! together.

use std::fmt::Write as _;

/// A JSON value; objects keep their insertion order.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// Integral values print without a fraction; non-finite ones print as `null`.
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

fn push_num(out: &mut String, v: f64) {
    if !v.is_finite() {
        out.push_str("null");
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
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
