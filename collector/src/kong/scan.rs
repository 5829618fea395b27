//! An on-demand JSON scanner: it walks a document byte by byte, hands out the few values the
//! caller asks for (borrowed from the input), and skips everything else without building it.
//!
//! Skipping is where the time goes in a ~1.3 KB Kong event (headers, tries, workspace ids), so
//! strings are skipped with `memchr2` and nested values by tracking depth only.

use std::borrow::Cow;

use memchr::memchr2;

/// Why the scanner stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanError {
    /// The input ended inside a value.
    Eof,
    /// A byte that cannot appear here.
    Unexpected(u8),
    /// A string that is not valid UTF-8, or a bad escape.
    BadString,
    /// A number that does not parse.
    BadNumber,
}

/// A cursor over a JSON document.
#[derive(Debug, Clone)]
pub struct Scanner<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// A JSON number as read: integer if it had no fraction or exponent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// An integer.
    Int(i64),
    /// Any other number.
    Float(f64),
}

impl Number {
    /// The number as a float.
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

impl<'a> Scanner<'a> {
    /// A scanner at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Scanner { buf, pos: 0 }
    }

    /// Current byte offset.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Skips whitespace and returns the next byte without consuming it.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.buf.get(self.pos) {
            if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(b);
            }
            self.pos += 1;
        }
        None
    }

    /// Whether only whitespace is left.
    pub fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// Consumes `expected` (after whitespace).
    #[inline]
    pub fn expect(&mut self, expected: u8) -> Result<(), ScanError> {
        match self.peek() {
            Some(b) if b == expected => {
                self.pos += 1;
                Ok(())
            }
            Some(b) => Err(ScanError::Unexpected(b)),
            None => Err(ScanError::Eof),
        }
    }

    /// Starts an object: consumes `{`.
    #[inline]
    pub fn begin_object(&mut self) -> Result<(), ScanError> {
        self.expect(b'{')
    }

    /// The next key of an object, or `None` at its end (consumes the `}`). Keys are returned raw
    /// (escapes not decoded): the keys vigil looks for have none.
    #[inline]
    pub fn next_key(&mut self, first: &mut bool) -> Result<Option<&'a [u8]>, ScanError> {
        match self.peek() {
            Some(b'}') => {
                self.pos += 1;
                return Ok(None);
            }
            Some(b',') if !*first => self.pos += 1,
            Some(_) if *first => {}
            Some(b) => return Err(ScanError::Unexpected(b)),
            None => return Err(ScanError::Eof),
        }
        *first = false;
        self.expect(b'"')?;
        let start = self.pos;
        self.skip_string_body()?;
        let key = &self.buf[start..self.pos - 1];
        self.expect(b':')?;
        Ok(Some(key))
    }

    /// Starts an array: consumes `[`.
    pub fn begin_array(&mut self) -> Result<(), ScanError> {
        self.expect(b'[')
    }

    /// Advances to the next array element; false at the end of the array (consumes the `]`).
    pub fn next_element(&mut self, first: &mut bool) -> Result<bool, ScanError> {
        match self.peek() {
            Some(b']') => {
                self.pos += 1;
                Ok(false)
            }
            Some(b',') if !*first => {
                self.pos += 1;
                *first = false;
                Ok(true)
            }
            Some(_) if *first => {
                *first = false;
                Ok(true)
            }
            Some(b) => Err(ScanError::Unexpected(b)),
            None => Err(ScanError::Eof),
        }
    }

    /// Whether the next value is `null`; consumes it if so.
    #[inline]
    pub fn take_null(&mut self) -> bool {
        if self.peek() == Some(b'n') && self.buf[self.pos..].starts_with(b"null") {
            self.pos += 4;
            true
        } else {
            false
        }
    }

    /// Reads a string value, borrowed unless it has escapes.
    #[inline]
    pub fn string(&mut self) -> Result<Cow<'a, str>, ScanError> {
        self.expect(b'"')?;
        let start = self.pos;
        let escaped = self.skip_string_body()?;
        let raw = &self.buf[start..self.pos - 1];
        if escaped {
            unescape(raw).map(Cow::Owned)
        } else {
            std::str::from_utf8(raw)
                .map(Cow::Borrowed)
                .map_err(|_| ScanError::BadString)
        }
    }

    /// Reads a number.
    #[inline]
    pub fn number(&mut self) -> Result<Number, ScanError> {
        let first = self.peek().ok_or(ScanError::Eof)?;
        if first != b'-' && !first.is_ascii_digit() {
            return Err(ScanError::Unexpected(first));
        }
        let start = self.pos;
        let neg = first == b'-';
        if neg {
            self.pos += 1;
        }
        // Fast path: plain integers, the common case in Kong events.
        let mut v: i64 = 0;
        let mut digits = 0;
        let mut overflow = false;
        while let Some(&b) = self.buf.get(self.pos) {
            if !b.is_ascii_digit() {
                break;
            }
            match v.checked_mul(10).and_then(|v| v.checked_add(i64::from(b - b'0'))) {
                Some(n) => v = n,
                // Too big for 64 bits: still a number, read as a float below.
                None => overflow = true,
            }
            digits += 1;
            self.pos += 1;
        }
        if digits == 0 {
            return Err(ScanError::BadNumber);
        }
        match self.buf.get(self.pos) {
            Some(b'.' | b'e' | b'E') => {}
            _ if !overflow => return Ok(Number::Int(if neg { -v } else { v })),
            _ => {}
        }
        while let Some(&b) = self.buf.get(self.pos) {
            if !(b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-')) {
                break;
            }
            self.pos += 1;
        }
        let text = std::str::from_utf8(&self.buf[start..self.pos]).map_err(|_| ScanError::BadNumber)?;
        text.parse::<f64>().map(Number::Float).map_err(|_| ScanError::BadNumber)
    }

    /// Returns the raw bytes of the next value and moves past it.
    pub fn raw_value(&mut self) -> Result<&'a [u8], ScanError> {
        self.peek().ok_or(ScanError::Eof)?;
        let start = self.pos;
        self.skip_value()?;
        Ok(&self.buf[start..self.pos])
    }

    /// Moves past the next value without looking inside it more than needed.
    pub fn skip_value(&mut self) -> Result<(), ScanError> {
        match self.peek().ok_or(ScanError::Eof)? {
            b'"' => {
                self.pos += 1;
                self.skip_string_body().map(|_| ())
            }
            b'{' | b'[' => self.skip_nested(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number().map(|_| ()),
            b => Err(ScanError::Unexpected(b)),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), ScanError> {
        if self.buf[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else if word.starts_with(&self.buf[self.pos..]) {
            Err(ScanError::Eof)
        } else {
            Err(ScanError::Unexpected(self.buf[self.pos]))
        }
    }

    /// Skips an object or array by depth; strings inside are skipped whole so their brackets do
    /// not count.
    fn skip_nested(&mut self) -> Result<(), ScanError> {
        let mut depth = 0usize;
        while let Some(&b) = self.buf.get(self.pos) {
            self.pos += 1;
            match b {
                b'"' => {
                    self.skip_string_body()?;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
        Err(ScanError::Eof)
    }

    /// Skips to just after the closing quote of a string whose opening quote was consumed.
    /// Returns whether the string contains escapes.
    #[inline]
    fn skip_string_body(&mut self) -> Result<bool, ScanError> {
        let mut escaped = false;
        loop {
            let rest = self.buf.get(self.pos..).ok_or(ScanError::Eof)?;
            let i = memchr2(b'"', b'\\', rest).ok_or(ScanError::Eof)?;
            if rest[i] == b'"' {
                self.pos += i + 1;
                return Ok(escaped);
            }
            // A backslash: skip it and the escaped byte.
            escaped = true;
            self.pos += i + 2;
            if self.pos > self.buf.len() {
                return Err(ScanError::Eof);
            }
        }
    }
}

/// Decodes the escapes of a JSON string body.
fn unescape(raw: &[u8]) -> Result<String, ScanError> {
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let e = *raw.get(i + 1).ok_or(ScanError::BadString)?;
        i += 2;
        let c = match e {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let mut cp = hex4(raw.get(i..i + 4))?;
                i += 4;
                if (0xd800..0xdc00).contains(&cp) {
                    // A surrogate pair: the low half must follow.
                    if raw.get(i..i + 2) != Some(b"\\u") {
                        return Err(ScanError::BadString);
                    }
                    let low = hex4(raw.get(i + 2..i + 6))?;
                    if !(0xdc00..0xe000).contains(&low) {
                        return Err(ScanError::BadString);
                    }
                    i += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (low.wrapping_sub(0xdc00) & 0x3ff);
                }
                let ch = char::from_u32(cp).ok_or(ScanError::BadString)?;
                let mut tmp = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                continue;
            }
            _ => return Err(ScanError::BadString),
        };
        out.push(c);
    }
    String::from_utf8(out).map_err(|_| ScanError::BadString)
}

fn hex4(b: Option<&[u8]>) -> Result<u32, ScanError> {
    let b = b.ok_or(ScanError::BadString)?;
    if !b.iter().all(u8::is_ascii_hexdigit) {
        return Err(ScanError::BadString);
    }
    let s = std::str::from_utf8(b).map_err(|_| ScanError::BadString)?;
    u32::from_str_radix(s, 16).map_err(|_| ScanError::BadString)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_skips() {
        let doc = br#" {"a": {"x": [1, "]}", {"y": null}]}, "b": "h\u00e9\"llo", "c": -12, "d": 1.5e3, "e": true} "#;
        let mut s = Scanner::new(doc);
        s.begin_object().expect("object");
        let mut first = true;
        let mut seen = Vec::new();
        while let Some(k) = s.next_key(&mut first).expect("key") {
            match k {
                b"b" => assert_eq!(s.string().expect("string"), "hé\"llo"),
                b"c" => assert_eq!(s.number().expect("number"), Number::Int(-12)),
                b"d" => assert_eq!(s.number().expect("number"), Number::Float(1500.0)),
                _ => s.skip_value().expect("skip"),
            }
            seen.push(String::from_utf8_lossy(k).into_owned());
        }
        assert_eq!(seen, ["a", "b", "c", "d", "e"]);
        assert!(s.at_end());
    }

    #[test]
    fn truncation_is_an_error() {
        for doc in [
            &br#"{"a": "unterminated"#[..],
            br#"{"a": [1, 2"#,
            br#"{"a": tr"#,
            br#"{"a""#,
        ] {
            let mut s = Scanner::new(doc);
            s.begin_object().expect("object");
            let mut first = true;
            let r = (|| {
                while s.next_key(&mut first)?.is_some() {
                    s.skip_value()?;
                }
                Ok::<(), ScanError>(())
            })();
            assert!(r.is_err(), "{}", String::from_utf8_lossy(doc));
        }
    }

    #[test]
    fn surrogate_pairs() {
        let mut s = Scanner::new(br#""\ud83d\ude00""#);
        assert_eq!(s.string().expect("string"), "😀");
    }
}
