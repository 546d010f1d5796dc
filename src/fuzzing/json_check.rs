//! A strict JSON syntax check (RFC 8259), so the fuzzers can assert that every `--json` output
//! parses whatever the input was. Validation only: no values are built.

/// `Err` names the byte offset where `text` stops being one JSON value.
pub fn validate(text: &str) -> Result<(), usize> {
    let mut p = Parser {
        b: text.as_bytes(),
        i: 0,
        depth: 0,
    };
    p.value()?;
    p.ws();
    if p.i == p.b.len() {
        Ok(())
    } else {
        Err(p.i)
    }
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<(), usize> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.i)
        }
    }

    fn value(&mut self) -> Result<(), usize> {
        self.ws();
        self.depth += 1;
        if self.depth > 256 {
            return Err(self.i);
        }
        let r = match self.peek() {
            Some(b'{') => self.seq(b'}', true),
            Some(b'[') => self.seq(b']', false),
            Some(b'"') => self.string(),
            Some(b't') => self.word(b"true"),
            Some(b'f') => self.word(b"false"),
            Some(b'n') => self.word(b"null"),
            _ => self.number(),
        };
        self.depth -= 1;
        r
    }

    /// An object (`keyed`) or an array, after its opening bracket.
    fn seq(&mut self, close: u8, keyed: bool) -> Result<(), usize> {
        self.i += 1;
        self.ws();
        if self.peek() == Some(close) {
            self.i += 1;
            return Ok(());
        }
        loop {
            if keyed {
                self.ws();
                self.string()?;
                self.ws();
                self.eat(b':')?;
            }
            self.value()?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(c) if c == close => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.i),
            }
        }
    }

    fn string(&mut self) -> Result<(), usize> {
        self.eat(b'"')?;
        loop {
            match self.peek() {
                None => return Err(self.i),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            let hex = self.b.get(self.i + 1..self.i + 5).ok_or(self.i)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err(self.i);
                            }
                            self.i += 5;
                        }
                        _ => return Err(self.i),
                    }
                }
                Some(c) if c < 0x20 => return Err(self.i),
                Some(_) => self.i += 1,
            }
        }
    }

    fn word(&mut self, w: &[u8]) -> Result<(), usize> {
        if self.b[self.i..].starts_with(w) {
            self.i += w.len();
            Ok(())
        } else {
            Err(self.i)
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<(), usize> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.i),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(self.i);
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(self.i);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn accepts_json_and_rejects_the_rest() {
        for ok in [
            r#"{"a":[1,-2.5e3,true,false,null,"x\u00e9\n"],"b":{}}"#,
            " [ ] ",
            "0",
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
        for bad in [
            "{",
            r#"{"a" 1}"#,
            "[1,]",
            "01",
            "\"\u{1}\"",
            r#""\x""#,
            "{} {}",
            "",
        ] {
            assert!(validate(bad).is_err(), "{bad}");
        }
    }
}
