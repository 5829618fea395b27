//! An on-demand JSON scanner: it walks a document, hands out the few values the caller asks
//! for (borrowed from the input), and skips everything else without building it.
//!
//! Skipping is where the time goes in a ~1.3 KB Kong event (headers, tries, workspace ids), so
//! the scanner first classifies the whole document 64 bytes at a time ([`classify`]): with
//! masks of the unescaped quotes and of the brackets outside strings, a string's end is the next
//! quote bit and a nested value's end is found by counting bracket bits, a block at a time.
//! Whitespace, keys, numbers and literals are read byte by byte where the scanner stands.

use std::borrow::Cow;
use std::cell::RefCell;

use super::classify::{Block, classify};

thread_local! {
    /// Mask buffers, reused by the scanners of a thread.
    static POOL: RefCell<Vec<Vec<Block>>> = const { RefCell::new(Vec::new()) };
}

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
#[derive(Debug)]
pub struct Scanner<'a> {
    buf: &'a [u8],
    pos: usize,
    blocks: Vec<Block>,
}

impl Drop for Scanner<'_> {
    fn drop(&mut self) {
        let blocks = std::mem::take(&mut self.blocks);
        // A huge document's buffer is not kept.
        if blocks.capacity() <= 1 << 16 {
            let _ = POOL.try_with(|p| p.borrow_mut().push(blocks));
        }
    }
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
        let mut blocks = POOL
            .try_with(|p| p.borrow_mut().pop())
            .ok()
            .flatten()
            .unwrap_or_default();
        classify(buf, &mut blocks);
        Scanner { buf, pos: 0, blocks }
    }

    /// Current byte offset.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Skips whitespace and returns the next byte without consuming it.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        // Compact JSON (what Kong sends) has no whitespace: one look.
        match self.buf.get(self.pos) {
            Some(&b) if b > b' ' => Some(b),
            _ => self.peek_slow(),
        }
    }

    #[cold]
    fn peek_slow(&mut self) -> Option<u8> {
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
    #[inline(always)]
    pub fn next_key(&mut self, first: &mut bool) -> Result<Option<&'a [u8]>, ScanError> {
        let mut b = self.peek().ok_or(ScanError::Eof)?;
        match b {
            b'}' => {
                self.pos += 1;
                return Ok(None);
            }
            b',' if !*first => {
                self.pos += 1;
                b = self.peek().ok_or(ScanError::Eof)?;
            }
            _ if *first => {}
            _ => return Err(ScanError::Unexpected(b)),
        }
        *first = false;
        if b != b'"' {
            return Err(ScanError::Unexpected(b));
        }
        let start = self.pos + 1;
        let end = self.next_quote(start).ok_or(ScanError::Eof)?;
        let key = self.buf.get(start..end).ok_or(ScanError::Eof)?;
        self.pos = end + 1;
        if self.buf.get(self.pos) == Some(&b':') {
            self.pos += 1;
        } else {
            self.expect(b':')?;
        }
        Ok(Some(key))
    }

    /// Skips the rest of the object the scanner is inside (its opening `{` consumed), up to and
    /// including its `}`: for callers that found what they wanted in it.
    pub fn skip_rest_of_object(&mut self) -> Result<(), ScanError> {
        self.skip_brackets(1)
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
        let (value, end) = self.string_at(self.pos - 1)?;
        self.pos = end;
        Ok(value)
    }

    /// The string whose opening quote is at `quote`, and the position after its closing one.
    #[inline]
    fn string_at(&self, quote: usize) -> Result<(Cow<'a, str>, usize), ScanError> {
        let start = quote + 1;
        let end = self.next_quote(start).ok_or(ScanError::Eof)?;
        let raw = self.buf.get(start..end).ok_or(ScanError::Eof)?;
        let (escaped, ascii) = self.escapes_and_ascii(start, end);
        let value = if escaped {
            Cow::Owned(unescape(raw)?)
        } else if ascii {
            Cow::Borrowed(ascii_str(raw))
        } else {
            Cow::Borrowed(std::str::from_utf8(raw).map_err(|_| ScanError::BadString)?)
        };
        Ok((value, end + 1))
    }

    /// Reads a number.
    #[inline]
    pub fn number(&mut self) -> Result<Number, ScanError> {
        let first = self.peek().ok_or(ScanError::Eof)?;
        if first != b'-' && !first.is_ascii_digit() {
            return Err(ScanError::Unexpected(first));
        }
        let (n, end) = number_at(self.buf, self.pos)?;
        self.pos = end;
        Ok(n)
    }

    /// Returns the raw bytes of the next value and moves past it.
    pub fn raw_value(&mut self) -> Result<&'a [u8], ScanError> {
        self.peek().ok_or(ScanError::Eof)?;
        let start = self.pos;
        self.skip_value()?;
        Ok(&self.buf[start..self.pos])
    }

    /// Moves past the next value without looking inside it more than needed.
    #[inline]
    pub fn skip_value(&mut self) -> Result<(), ScanError> {
        match self.peek().ok_or(ScanError::Eof)? {
            b'"' => {
                // Escapes do not matter to a string that is skipped.
                let end = self.next_quote(self.pos + 1).ok_or(ScanError::Eof)?;
                self.pos = end + 1;
                Ok(())
            }
            b'{' | b'[' => self.skip_nested(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => {
                let len = self.buf[self.pos..]
                    .iter()
                    .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                    .unwrap_or(self.buf.len() - self.pos);
                self.pos += len;
                Ok(())
            }
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

    /// Skips the object or array starting at the current byte.
    #[inline]
    fn skip_nested(&mut self) -> Result<(), ScanError> {
        self.skip_brackets(0)
    }

    /// Moves past the bracket that closes `depth` levels from the current byte.
    fn skip_brackets(&mut self, depth: u32) -> Result<(), ScanError> {
        self.pos = self.closing_bracket(self.pos, depth)? + 1;
        Ok(())
    }

    /// The position of the bracket that closes `depth` levels from byte `from` on, counting
    /// the brackets outside strings: whole blocks at once while the depth cannot reach zero in
    /// them.
    fn closing_bracket(&self, from: usize, depth: u32) -> Result<usize, ScanError> {
        let blocks = &self.blocks[..];
        let mut i = from / 64;
        let mut depth = i64::from(depth);
        // Only brackets from `from` on.
        let first = !0u64 << (from % 64);
        let b = blocks.get(i).ok_or(ScanError::Eof)?;
        let (mut open, mut close) = (b.open & first, b.close & first);
        loop {
            let closes = i64::from(close.count_ones());
            if closes < depth {
                // The value does not end in this block.
                depth += i64::from(open.count_ones()) - closes;
            } else {
                let mut both = open | close;
                while both != 0 {
                    let at = both.trailing_zeros();
                    both &= both - 1;
                    // +1 for an open bracket, -1 for a close.
                    depth += ((open >> at) & 1) as i64 * 2 - 1;
                    if depth <= 0 {
                        if depth < 0 {
                            // A close with nothing open: broken JSON.
                            return Err(ScanError::Unexpected(b']'));
                        }
                        let pos = 64 * i + at as usize;
                        return if pos < self.buf.len() {
                            Ok(pos)
                        } else {
                            Err(ScanError::Eof)
                        };
                    }
                }
            }
            i += 1;
            let b = blocks.get(i).ok_or(ScanError::Eof)?;
            (open, close) = (b.open, b.close);
        }
    }

    /// The next unescaped quote at or after byte `from`.
    #[inline(always)]
    fn next_quote(&self, from: usize) -> Option<usize> {
        let mut i = from / 64;
        let mut m = self.blocks.get(i)?.quote & (!0u64 << (from % 64));
        loop {
            if m != 0 {
                return Some(64 * i + m.trailing_zeros() as usize);
            }
            i += 1;
            m = self.blocks.get(i)?.quote;
        }
    }

    /// Whether `start..end` holds a backslash, and whether it is all ASCII.
    #[inline]
    fn escapes_and_ascii(&self, start: usize, end: usize) -> (bool, bool) {
        let (first, last) = (start / 64, end / 64);
        let lo = !0u64 << (start % 64);
        let hi = (1u64 << (end % 64)).wrapping_sub(1);
        let (mut backslash, mut high) = (0u64, 0u64);
        for i in first..=last {
            let m = match (i == first, i == last) {
                (true, true) => lo & hi,
                (true, false) => lo,
                (false, true) => hi,
                (false, false) => !0,
            };
            if let Some(b) = self.blocks.get(i) {
                backslash |= b.backslash & m;
                high |= b.non_ascii & m;
            }
        }
        (backslash != 0, high == 0)
    }
}

/// The number starting at `start` (a `-` or a digit), and the position after it.
#[inline]
fn number_at(buf: &[u8], start: usize) -> Result<(Number, usize), ScanError> {
    let neg = buf.get(start) == Some(&b'-');
    let mut pos = start + usize::from(neg);
    // Fast path: plain integers, the common case in Kong events. Up to 18 digits cannot
    // overflow an i64.
    let digits_start = pos;
    let mut v: i64 = 0;
    while let Some(&b) = buf.get(pos) {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        v = v.wrapping_mul(10).wrapping_add(i64::from(d));
        pos += 1;
    }
    let digits = pos - digits_start;
    if digits == 0 {
        return Err(ScanError::BadNumber);
    }
    match buf.get(pos) {
        Some(b'.' | b'e' | b'E') => {}
        // Too big for 64 bits: still a number, read as a float below.
        _ if digits <= 18 => return Ok((Number::Int(if neg { -v } else { v }), pos)),
        _ => {}
    }
    while let Some(&b) = buf.get(pos) {
        if !(b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-')) {
            break;
        }
        pos += 1;
    }
    let text = std::str::from_utf8(&buf[start..pos]).map_err(|_| ScanError::BadNumber)?;
    let f = text.parse::<f64>().map_err(|_| ScanError::BadNumber)?;
    Ok((Number::Float(f), pos))
}

/// `raw` as a `str`, for bytes the classifier found to be all ASCII.
#[inline]
fn ascii_str(raw: &[u8]) -> &str {
    debug_assert!(raw.is_ascii());
    #[allow(unsafe_code)]
    // SAFETY: every byte is below 0x80 (the classifier's `non_ascii` mask is clear over the
    // range), and ASCII is valid UTF-8.
    unsafe {
        std::str::from_utf8_unchecked(raw)
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
