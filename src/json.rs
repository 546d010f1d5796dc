//! A tiny JSON writer for the few machine-readable outputs (timeline, `--json` reports).
//! Hand-written because serde would cost more binary size than all of these outputs together.

use std::fmt::Write as _;

/// Appends `s` as a JSON string literal (quotes included).
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

/// `s` as a JSON string literal.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_str(&mut out, s);
    out
}

/// A JSON array from already-rendered values.
pub fn array(items: &[String]) -> String {
    format!("[{}]", items.join(","))
}

/// A JSON array of strings.
pub fn string_array<S: AsRef<str>>(items: &[S]) -> String {
    let v: Vec<String> = items.iter().map(|s| string(s.as_ref())).collect();
    array(&v)
}

/// An object built field by field, in insertion order.
#[derive(Default)]
pub struct Object {
    body: String,
}

impl Object {
    pub fn new() -> Self {
        Self::default()
    }

    fn key(&mut self, k: &str) {
        if !self.body.is_empty() {
            self.body.push(',');
        }
        push_str(&mut self.body, k);
        self.body.push(':');
    }

    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        push_str(&mut self.body, v);
        self
    }

    /// Numbers print without a fraction when they have none; non-finite ones become `null`.
    pub fn num(&mut self, k: &str, v: f64) -> &mut Self {
        self.key(k);
        if !v.is_finite() {
            self.body.push_str("null");
        } else if v.fract() == 0.0 && v.abs() < 1e15 {
            let _ = write!(self.body, "{}", v as i64);
        } else {
            let _ = write!(self.body, "{v}");
        }
        self
    }

    pub fn bool(&mut self, k: &str, v: bool) -> &mut Self {
        self.key(k);
        self.body.push_str(if v { "true" } else { "false" });
        self
    }

    /// A value that is already JSON (a nested object or array).
    pub fn raw(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        self.body.push_str(v);
        self
    }

    pub fn opt_str(&mut self, k: &str, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.str(k, v),
            None => self.raw(k, "null"),
        }
    }

    pub fn finish(&self) -> String {
        format!("{{{}}}", self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_shapes() {
        assert_eq!(string("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
        let mut o = Object::new();
        o.str("s", "x")
            .num("i", 3.0)
            .num("f", 1.5)
            .bool("b", true)
            .raw("a", &string_array(&["p", "q"]));
        o.opt_str("n", None).num("nan", f64::NAN);
        assert_eq!(
            o.finish(),
            r#"{"s":"x","i":3,"f":1.5,"b":true,"a":["p","q"],"n":null,"nan":null}"#
        );
    }
}
