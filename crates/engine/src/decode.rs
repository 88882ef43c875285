//! Raw bytes → [`Event`] or the SPEC §1 rejection reason.
//!
//! One pass over the bytes: a small JSON scanner checks the syntax of the whole
//! payload exactly as strictly as serde_json does (numbers, escapes, no control
//! characters in strings, nothing after the object) and notes where each known
//! field's value lies. The fields are then interpreted in the SPEC's table order,
//! so the first failing field decides the reason, and by their JSON type (a float
//! `ts` is `wrong_type`, `1e999` as `value` is `bad_value`, not a parse failure).
//!
//! Hand-written because decoding is most of file mode's work: capturing each field
//! as a serde_json `RawValue` and parsing it again cost about 4,900 instructions
//! an event, this about a tenth of that. The serde_json decoder stays as the test
//! oracle (`reference.rs`): both must agree on every payload.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use smallvec::SmallVec;

use crate::event::{Event, EventType, Identities};
use crate::rows::RejectReason;
use crate::time;

#[cfg(test)]
mod reference;

/// Payloads above this many bytes are `too_large`.
pub const MAX_PAYLOAD_BYTES: usize = 65_536;

/// Decodes and validates one event.
pub fn decode(raw: &[u8]) -> Result<Event<'_>, RejectReason> {
    if raw.len() > MAX_PAYLOAD_BYTES {
        return Err(RejectReason::TooLarge);
    }
    // SIMD validation: std's took about 5 % of the decoding thread's instructions.
    let text = simdutf8::basic::from_utf8(raw).map_err(|_| RejectReason::InvalidJson)?;
    decode_valid(text)
}

/// [`decode`] of a payload already known to be UTF-8 (an adapter that validated a
/// whole block of lines at once): the same result as `decode(text.as_bytes())`.
pub fn decode_str(text: &str) -> Result<Event<'_>, RejectReason> {
    if text.len() > MAX_PAYLOAD_BYTES {
        return Err(RejectReason::TooLarge);
    }
    decode_valid(text)
}

fn decode_valid(text: &str) -> Result<Event<'_>, RejectReason> {
    let raw = text.as_bytes();
    let mut scan = Scanner { b: raw, i: 0 };
    scan.skip_ws();
    if scan.peek() != Some(b'{') {
        // Distinguish "valid JSON, but not an object" from "not JSON at all" (rare: not worth a fast path).
        return Err(match serde_json::from_str::<IgnoredAny>(text) {
            Ok(_) => RejectReason::NotObject,
            Err(_) => RejectReason::InvalidJson,
        });
    }
    let spans = scan.object().map_err(|Syntax| RejectReason::InvalidJson)?;
    Fields { text, spans }.validate()
}

/// The payload is not JSON (any syntax error: they all reject as `invalid_json`).
struct Syntax;

/// JSON type of a value, from its first byte.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    Object,
    Array,
}

/// Where a value lies in the payload: a string's text between its quotes
/// (`escaped` when it holds a backslash), any other value's whole token.
#[derive(Clone, Copy, Debug)]
struct Span {
    // u32: payloads are at most MAX_PAYLOAD_BYTES, and small spans keep the nine
    // captured fields in two cache lines.
    start: u32,
    end: u32,
    kind: Kind,
    escaped: bool,
}

impl Span {
    fn range(&self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

// Known fields, as indexes into the captured spans.
const EVENT_ID: usize = 0;
const TS: usize = 1;
const CUSTOMER_ID: usize = 2;
const JOURNEY_ID: usize = 3;
const CHANNEL: usize = 4;
const TYPE: usize = 5;
const STEP: usize = 6;
const VALUE: usize = 7;
const ATTRS: usize = 8;
const IDENTITIES: usize = 9;
const FIELDS: usize = 10;

/// The field a key names once its escapes are resolved (a plainly written known key is
/// matched by `Scanner::known_key` before it is read as a string).
fn field_index(key: &[u8]) -> Option<usize> {
    Some(match *key {
        [b't', b's'] => TS,
        [b't', b'y', b'p', b'e'] => TYPE,
        [b's', b't', b'e', b'p'] => STEP,
        [b'v', b'a', b'l', b'u', b'e'] => VALUE,
        [b'a', b't', b't', b'r', b's'] => ATTRS,
        [b'c', b'h', b'a', b'n', b'n', b'e', b'l'] => CHANNEL,
        [b'e', b'v', b'e', b'n', b't', b'_', b'i', b'd'] => EVENT_ID,
        [b'j', b'o', b'u', b'r', b'n', b'e', b'y', b'_', b'i', b'd'] => JOURNEY_ID,
        [b'c', b'u', b's', b't', b'o', b'm', b'e', b'r', b'_', b'i', b'd'] => CUSTOMER_ID,
        [b'i', b'd', b'e', b'n', b't', b'i', b't', b'i', b'e', b's'] => IDENTITIES,
        _ => return None,
    })
}

/// A cursor over the payload. Every method leaves `i` just past what it read.
struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Result<(), Syntax> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(Syntax)
        }
    }

    /// The top-level object (`i` at its `{`) up to the end of the payload. A
    /// repeated key keeps its last value, as serde_json and most readers do.
    fn object(&mut self) -> Result<[Option<Span>; FIELDS], Syntax> {
        let mut spans = [None; FIELDS];
        self.i += 1;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
        } else {
            loop {
                self.eat(b'"')?;
                let field = match self.known_key() {
                    Some(field) => Some(field),
                    None => {
                        let key = self.string()?;
                        let name = &self.b[key.range()];
                        if key.escaped {
                            // serde_json reads top-level keys strictly: a lone surrogate is invalid JSON.
                            let name = std::str::from_utf8(name).ok().and_then(unescape).ok_or(Syntax)?;
                            field_index(name.as_bytes())
                        } else {
                            // `known_key` already matched every known name written plainly.
                            None
                        }
                    }
                };
                self.skip_ws();
                self.eat(b':')?;
                self.skip_ws();
                let value = self.value()?;
                if let Some(f) = field {
                    spans[f] = Some(value);
                }
                self.skip_ws();
                match self.peek() {
                    Some(b',') => {
                        self.i += 1;
                        self.skip_ws();
                    }
                    Some(b'}') => {
                        self.i += 1;
                        break;
                    }
                    _ => return Err(Syntax),
                }
            }
        }
        self.skip_ws();
        if self.i == self.b.len() { Ok(spans) } else { Err(Syntax) }
    }

    /// A known field's name and its closing quote (`i` just past the opening one),
    /// read in one comparison: the fast path for the keys every event has.
    #[inline]
    fn known_key(&mut self) -> Option<usize> {
        /// `name` at the start of `rest`, compared as one fixed-size array (no memcmp call).
        fn at<const N: usize>(rest: &[u8], name: &[u8; N], field: usize) -> Option<(usize, usize)> {
            (rest.first_chunk::<N>() == Some(name)).then_some((field, N))
        }
        let rest = &self.b[self.i..];
        let (field, len) = match rest.first()? {
            b'e' => at(rest, b"event_id\"", EVENT_ID),
            b't' => at(rest, b"ts\"", TS).or_else(|| at(rest, b"type\"", TYPE)),
            b'c' => at(rest, b"customer_id\"", CUSTOMER_ID).or_else(|| at(rest, b"channel\"", CHANNEL)),
            b'j' => at(rest, b"journey_id\"", JOURNEY_ID),
            b's' => at(rest, b"step\"", STEP),
            b'v' => at(rest, b"value\"", VALUE),
            b'a' => at(rest, b"attrs\"", ATTRS),
            b'i' => at(rest, b"identities\"", IDENTITIES),
            _ => None,
        }?;
        self.i += len;
        Some(field)
    }

    /// Any value, `i` at its first byte.
    fn value(&mut self) -> Result<Span, Syntax> {
        let start = self.i;
        let kind = match self.peek() {
            Some(b'"') => {
                self.i += 1;
                return self.string();
            }
            Some(b'[') => {
                self.nested()?;
                Kind::Array
            }
            Some(b'{') => {
                self.nested()?;
                Kind::Object
            }
            _ => self.scalar()?,
        };
        Ok(Span { start: start as u32, end: self.i as u32, kind, escaped: false })
    }

    /// A string's rest, `i` just past its opening quote. Escapes must be well
    /// formed; whether `\u` escapes pair up is checked only when the text is read
    /// ([`unescape`]), as serde_json does for values it skips. Inlined: most of a
    /// payload is strings, most of them short, so a call would cost as much as the scan.
    #[inline(always)]
    fn string(&mut self) -> Result<Span, Syntax> {
        let start = self.i;
        let mut escaped = false;
        loop {
            self.i = next_special(self.b, self.i);
            match self.peek() {
                Some(b'"') => {
                    let span = Span { start: start as u32, end: self.i as u32, kind: Kind::String, escaped };
                    self.i += 1;
                    return Ok(span);
                }
                Some(b'\\') => {
                    escaped = true;
                    match self.b.get(self.i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 2,
                        Some(b'u') => {
                            let hex = self.b.get(self.i + 2..self.i + 6).ok_or(Syntax)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err(Syntax);
                            }
                            self.i += 6;
                        }
                        _ => return Err(Syntax),
                    }
                }
                // A control character, or the end of the payload.
                _ => return Err(Syntax),
            }
        }
    }

    /// `null`, `true`, `false` or a number.
    fn scalar(&mut self) -> Result<Kind, Syntax> {
        let (word, kind): (&[u8], Kind) = match self.peek() {
            Some(b'n') => (b"null", Kind::Null),
            Some(b't') => (b"true", Kind::Bool),
            Some(b'f') => (b"false", Kind::Bool),
            Some(b'-' | b'0'..=b'9') => return self.number().map(|()| Kind::Number),
            _ => return Err(Syntax),
        };
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(kind)
        } else {
            Err(Syntax)
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    /// JSON number syntax: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Result<(), Syntax> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.i += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(Syntax);
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(Syntax),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(Syntax);
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(Syntax);
            }
        }
        Ok(())
    }

    /// Skips an array or object (`i` at its opening bracket) with a stack of open
    /// brackets instead of recursion, so that nesting depth costs no call stack.
    fn nested(&mut self) -> Result<(), Syntax> {
        let mut open: SmallVec<[u8; 32]> = SmallVec::new();
        loop {
            // A value starts here.
            self.skip_ws();
            match self.peek() {
                Some(bracket @ (b'[' | b'{')) => {
                    self.i += 1;
                    self.skip_ws();
                    // `]` and `}` follow `[` and `{` two code points on.
                    if self.peek() == Some(bracket + 2) {
                        self.i += 1;
                    } else {
                        open.push(bracket);
                        if bracket == b'{' {
                            self.member_key()?;
                        }
                        continue;
                    }
                }
                Some(b'"') => {
                    self.i += 1;
                    self.string()?;
                }
                _ => {
                    self.scalar()?;
                }
            }
            // A value ended: close the containers that end here, or go on after a comma.
            loop {
                let Some(&bracket) = open.last() else { return Ok(()) };
                self.skip_ws();
                match self.peek() {
                    Some(b',') => {
                        self.i += 1;
                        if bracket == b'{' {
                            self.skip_ws();
                            self.member_key()?;
                        }
                        break;
                    }
                    Some(c) if c == bracket + 2 => {
                        self.i += 1;
                        open.pop();
                    }
                    _ => return Err(Syntax),
                }
            }
        }
    }

    /// `"key" :` inside a skipped object.
    fn member_key(&mut self) -> Result<(), Syntax> {
        self.eat(b'"')?;
        self.string()?;
        self.skip_ws();
        self.eat(b':')
    }
}

/// Index of the first `"`, `\` or control character at or after `i` (or the
/// length): eight bytes per step, as strings are most of a payload's bytes.
#[inline(always)]
fn next_special(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        // Per byte, the high bit marks zero (after the xor) or below 0x20; the
        // lowest marked byte is always a true match (borrows only run upwards).
        let zero = |x: u64| x.wrapping_sub(ONES) & !x;
        let hits = (zero(w ^ (ONES * u64::from(b'"')))
            | zero(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w))
            & HIGH;
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            break;
        }
        i += 1;
    }
    i
}

/// The text of a string whose escapes the scanner has checked. `None` when a
/// `\u` escape is half of a surrogate pair without the other half: serde_json
/// refuses such a string when it reads it, so the event is `invalid_json`.
fn unescape(s: &str) -> Option<String> {
    fn hex4(s: &str) -> Option<(u32, &str)> {
        let digits = s.get(..4).filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))?;
        Some((u32::from_str_radix(digits, 16).ok()?, &s[4..]))
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let escape = *rest.as_bytes().get(at + 1)?;
        rest = rest.get(at + 2..)?;
        out.push(match escape {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let (unit, after) = hex4(rest)?;
                rest = after;
                match unit {
                    0xD800..=0xDBFF => {
                        let (low, after) = hex4(rest.strip_prefix("\\u")?)?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return None;
                        }
                        rest = after;
                        char::from_u32(0x1_0000 + ((unit - 0xD800) << 10 | (low - 0xDC00)))?
                    }
                    0xDC00..=0xDFFF => return None,
                    _ => char::from_u32(unit)?,
                }
            }
            _ => return None,
        });
    }
    out.push_str(rest);
    Some(out)
}

/// Whether a string spells a JSON-style number (`-12`, `3.5`, `1e3`): such a
/// string as `ts` is the wrong type rather than a malformed timestamp.
fn looks_numeric(s: &str) -> bool {
    let b = s.strip_prefix('-').unwrap_or(s).as_bytes();
    let int = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if int == 0 {
        return false;
    }
    let mut rest = &b[int..];
    if let Some((b'.', frac)) = rest.split_first() {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    if let Some((b'e' | b'E', exp)) = rest.split_first() {
        let exp = exp.strip_prefix(b"+").or_else(|| exp.strip_prefix(b"-")).unwrap_or(exp);
        return !exp.is_empty() && exp.iter().all(u8::is_ascii_digit);
    }
    rest.is_empty()
}

/// `[a-z][a-z0-9_]{0,31}`.
fn valid_identity_type(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=32).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

fn valid_channel(s: &str) -> bool {
    (1..=32).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

/// The known fields of a syntactically valid payload, still uninterpreted.
struct Fields<'a> {
    text: &'a str,
    spans: [Option<Span>; FIELDS],
}

impl<'a> Fields<'a> {
    /// `null` on an optional field means absent (SPEC §1).
    fn present(&self, field: usize) -> Option<Span> {
        self.spans[field].filter(|s| s.kind != Kind::Null)
    }

    fn required(&self, field: usize) -> Result<Span, RejectReason> {
        self.present(field).ok_or(RejectReason::MissingField)
    }

    /// A value's bytes: spans end at ASCII delimiters, so they are always `str` boundaries.
    fn token(&self, s: Span) -> &'a str {
        self.text.get(s.range()).unwrap_or_default()
    }

    fn string(&self, s: Span) -> Result<Cow<'a, str>, RejectReason> {
        if s.kind != Kind::String {
            return Err(RejectReason::WrongType);
        }
        let text = self.token(s);
        if !s.escaped {
            return Ok(Cow::Borrowed(text));
        }
        unescape(text).map(Cow::Owned).ok_or(RejectReason::InvalidJson)
    }

    fn id_string(&self, s: Span, max: usize) -> Result<Cow<'a, str>, RejectReason> {
        let text = self.string(s)?;
        if text.is_empty() || text.len() > max {
            return Err(RejectReason::FieldLength);
        }
        Ok(text)
    }

    fn timestamp(&self, s: Span) -> Result<i64, RejectReason> {
        match s.kind {
            Kind::String => {
                let text = self.string(s)?;
                match time::parse_rfc3339(&text) {
                    Some(ms) => Ok(ms),
                    None if looks_numeric(&text) => Err(RejectReason::WrongType),
                    None => Err(RejectReason::BadTs),
                }
            }
            Kind::Number => {
                let token = self.token(s);
                if token.contains(['.', 'e', 'E']) {
                    return Err(RejectReason::WrongType);
                }
                // An integer too big for i64 is still an integer: out of range, not the wrong type.
                let ms: i64 = token.parse().map_err(|_| RejectReason::BadTs)?;
                if (time::MIN_TS_MS..=time::MAX_TS_MS).contains(&ms) { Ok(ms) } else { Err(RejectReason::BadTs) }
            }
            Kind::Null => Err(RejectReason::MissingField),
            _ => Err(RejectReason::WrongType),
        }
    }

    fn validate(self) -> Result<Event<'a>, RejectReason> {
        let event_id = self.id_string(self.required(EVENT_ID)?, 128)?;
        let ts = self.timestamp(self.required(TS)?)?;
        // SPEC §1: `customer_id` may be absent when `identities` is there (checked in its turn).
        let customer_id = match (self.present(CUSTOMER_ID), self.present(IDENTITIES)) {
            (Some(s), _) => Some(self.id_string(s, 128)?),
            (None, Some(_)) => None,
            (None, None) => return Err(RejectReason::MissingField),
        };
        let journey_id = self.present(JOURNEY_ID).map(|s| self.id_string(s, 128)).transpose()?;
        let channel = self.string(self.required(CHANNEL)?)?;
        if !valid_channel(&channel) {
            return Err(RejectReason::BadChannel);
        }
        let event_type = EventType::parse(&self.string(self.required(TYPE)?)?).ok_or(RejectReason::UnknownType)?;
        let step = self.present(STEP).map(|s| self.id_string(s, 64)).transpose()?;
        let value = match self.present(VALUE) {
            None => None,
            Some(s) if s.kind == Kind::Number => {
                // Rust's float parser reads JSON number syntax and saturates `1e999` to infinity.
                let v: f64 = self.token(s).parse().map_err(|_| RejectReason::BadValue)?;
                if !v.is_finite() || v < 0.0 {
                    return Err(RejectReason::BadValue);
                }
                Some(v)
            }
            Some(_) => return Err(RejectReason::WrongType),
        };
        if self.present(ATTRS).is_some_and(|s| s.kind != Kind::Object) {
            return Err(RejectReason::WrongType);
        }
        let identities = match self.present(IDENTITIES) {
            None => Identities::new(),
            Some(s) => self.identities(s)?,
        };
        Ok(Event {
            event_id,
            ts,
            customer_id,
            journey_id,
            channel,
            event_type,
            step,
            value,
            identities,
            anonymous: false,
        })
    }

    /// SPEC §1 `identities`: an object of 1–8 entries `"type": "value"`. Entries are
    /// checked in the order they are written; a repeated type keeps its last value.
    fn identities(&self, s: Span) -> Result<Identities<'a>, RejectReason> {
        if s.kind != Kind::Object {
            return Err(RejectReason::WrongType);
        }
        let body = &self.text.as_bytes()[..s.end as usize];
        let mut scan = Scanner { b: body, i: s.start as usize + 1 };
        let mut out = Identities::new();
        scan.skip_ws();
        if scan.peek() == Some(b'}') {
            return Err(RejectReason::FieldLength);
        }
        // The whole payload passed the syntax check, so the scanner cannot fail here;
        // a failure still rejects rather than panics.
        let bad = |Syntax| RejectReason::InvalidJson;
        // Keys first, as serde_json reads the whole object before any value is judged.
        let mut entries: SmallVec<[(Cow<'a, str>, Span); 4]> = SmallVec::new();
        loop {
            scan.eat(b'"').map_err(bad)?;
            let key = scan.string().map_err(bad)?;
            scan.skip_ws();
            scan.eat(b':').map_err(bad)?;
            scan.skip_ws();
            let value = scan.value().map_err(bad)?;
            entries.push((self.string(key)?, value));
            scan.skip_ws();
            match scan.peek() {
                Some(b',') => {
                    scan.i += 1;
                    scan.skip_ws();
                }
                _ => break,
            }
        }
        for (key, value) in entries {
            if value.kind != Kind::String {
                return Err(RejectReason::WrongType);
            }
            let value = self.string(value)?;
            if !valid_identity_type(&key) || value.is_empty() || value.len() > 256 {
                return Err(RejectReason::FieldLength);
            }
            match out.iter_mut().find(|(t, _)| *t == key) {
                Some(entry) => entry.1 = value,
                None => out.push((key, value)),
            }
        }
        if out.len() > 8 {
            return Err(RejectReason::FieldLength);
        }
        out.sort_unstable();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RejectReason::*;

    const OK: &str =
        r#"{"event_id":"e1","ts":"2026-11-02T08:00:00Z","customer_id":"c1","channel":"web","type":"touch"}"#;

    fn with(field: &str, json: &str) -> String {
        let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(OK).unwrap();
        v.remove(field);
        let obj = serde_json::to_string(&v).unwrap();
        if json.is_empty() { obj } else { format!("{},\"{field}\":{json}}}", &obj[..obj.len() - 1]) }
    }

    fn reason(s: &str) -> Option<RejectReason> {
        decode(s.as_bytes()).err()
    }

    #[test]
    fn accepts_a_minimal_event_and_optional_fields() {
        let e = decode(OK.as_bytes()).unwrap();
        assert_eq!((e.event_id.as_ref(), e.ts, e.channel.as_ref()), ("e1", 1_793_606_400_000, "web"));
        assert_eq!((e.journey_id, e.step, e.value), (None, None, None));
        let full = r#"{"event_id":"e\u00e9","ts":1793606400000,"customer_id":"c","journey_id":"case-1","channel":"whats_app2","type":"conversion","step":"pay","value":12.5,"attrs":{"a":[1,{"b":null}]},"extra":[1e999]}"#;
        let e = decode(full.as_bytes()).unwrap();
        assert_eq!(e.event_id, "eé");
        assert_eq!(e.journey_id.as_deref(), Some("case-1"));
        assert_eq!((e.event_type, e.value), (EventType::Conversion, Some(12.5)));
    }

    #[test]
    fn null_on_optional_fields_means_absent() {
        let s = with("step", "null");
        let s = format!("{},\"journey_id\":null,\"value\":null,\"attrs\":null}}", &s[..s.len() - 1]);
        let e = decode(s.as_bytes()).unwrap();
        assert_eq!((e.step, e.journey_id, e.value), (None, None, None));
    }

    #[test]
    fn invalid_json_not_utf8_nan_and_trailing_garbage() {
        assert_eq!(reason("{\"event_id\":"), Some(InvalidJson));
        assert_eq!(reason(""), Some(InvalidJson));
        assert_eq!(decode(b"{\"event_id\":\"\xff\"}").err(), Some(InvalidJson));
        assert_eq!(reason(&with("value", "NaN")), Some(InvalidJson));
        assert_eq!(reason(&with("value", "Infinity")), Some(InvalidJson));
        assert_eq!(reason(&format!("{OK} x")), Some(InvalidJson));
        assert_eq!(reason("[1,"), Some(InvalidJson));
    }

    #[test]
    fn not_object() {
        for s in ["[1,2]", "\"text\"", "42", "null", "true", " [] "] {
            assert_eq!(reason(s), Some(NotObject), "{s}");
        }
    }

    #[test]
    fn missing_fields_including_null() {
        for f in ["event_id", "ts", "customer_id", "channel", "type"] {
            assert_eq!(reason(&with(f, "")), Some(MissingField), "{f} absent");
            assert_eq!(reason(&with(f, "null")), Some(MissingField), "{f} null");
        }
    }

    #[test]
    fn wrong_types() {
        assert_eq!(reason(&with("event_id", "12")), Some(WrongType));
        assert_eq!(reason(&with("customer_id", "{}")), Some(WrongType));
        assert_eq!(reason(&with("ts", "1793606400000.0")), Some(WrongType), "float ts");
        assert_eq!(reason(&with("ts", "1.7936064e12")), Some(WrongType), "exponent ts");
        assert_eq!(reason(&with("ts", "\"1793606400000\"")), Some(WrongType), "numeric string ts");
        assert_eq!(reason(&with("ts", "true")), Some(WrongType));
        assert_eq!(reason(&with("channel", "[\"web\"]")), Some(WrongType));
        assert_eq!(reason(&with("type", "1")), Some(WrongType));
        assert_eq!(reason(&with("value", "true")), Some(WrongType), "a boolean is not a number");
        assert_eq!(reason(&with("value", "\"12\"")), Some(WrongType));
        assert_eq!(reason(&with("step", "5")), Some(WrongType));
        assert_eq!(reason(&with("journey_id", "5")), Some(WrongType));
        assert_eq!(reason(&with("attrs", "[1]")), Some(WrongType));
        assert_eq!(reason(&with("attrs", "\"x\"")), Some(WrongType));
    }

    #[test]
    fn field_lengths_count_utf8_bytes() {
        assert_eq!(reason(&with("event_id", "\"\"")), Some(FieldLength));
        assert!(decode(with("event_id", &format!("\"{}\"", "a".repeat(128))).as_bytes()).is_ok());
        assert_eq!(reason(&with("event_id", &format!("\"{}\"", "a".repeat(129)))), Some(FieldLength));
        // 64 two-byte characters are 128 bytes: fine; 65 are 130: too long.
        assert!(decode(with("customer_id", &format!("\"{}\"", "é".repeat(64))).as_bytes()).is_ok());
        assert_eq!(reason(&with("customer_id", &format!("\"{}\"", "é".repeat(65)))), Some(FieldLength));
        assert_eq!(reason(&with("journey_id", "\"\"")), Some(FieldLength));
        assert!(decode(with("step", &format!("\"{}\"", "s".repeat(64))).as_bytes()).is_ok());
        assert_eq!(reason(&with("step", &format!("\"{}\"", "s".repeat(65)))), Some(FieldLength));
        assert_eq!(reason(&with("step", "\"\"")), Some(FieldLength));
    }

    #[test]
    fn bad_timestamps() {
        for ts in [
            "\"2026-11-02T08:00:00\"",
            "\"2026-11-02T08:00:00+2\"",
            "\"2026-11-02T25:00:00Z\"",
            "\"02/11/2026 08:00\"",
            "\"\"",
            "99999999999999999999",
            "-62135596800001",
            "253402300800000",
        ] {
            assert_eq!(reason(&with("ts", ts)), Some(BadTs), "{ts}");
        }
        let s = with("ts", "\"2026-11-02T08:00:00.123456789+01:00\"");
        assert_eq!(decode(s.as_bytes()).unwrap().ts, 1_793_602_800_123);
        assert_eq!(decode(with("ts", "-5").as_bytes()).unwrap().ts, -5);
    }

    #[test]
    fn channels() {
        for ch in ["\"\"", "\"Web\"", "\"wéb\"", "\"we b\"", "\"web-1\"", &format!("\"{}\"", "x".repeat(33))] {
            assert_eq!(reason(&with("channel", ch)), Some(BadChannel), "{ch}");
        }
        assert!(decode(with("channel", &format!("\"{}\"", "x".repeat(32))).as_bytes()).is_ok());
        assert!(decode(with("channel", "\"new_channel_9\"").as_bytes()).is_ok());
    }

    #[test]
    fn types_and_values() {
        assert_eq!(reason(&with("type", "\"purchase\"")), Some(UnknownType));
        assert_eq!(reason(&with("type", "\"Touch\"")), Some(UnknownType));
        assert_eq!(reason(&with("value", "-1")), Some(BadValue));
        assert_eq!(reason(&with("value", "-0.5")), Some(BadValue));
        assert_eq!(reason(&with("value", "1e999")), Some(BadValue), "not finite");
        assert_eq!(decode(with("value", "0").as_bytes()).unwrap().value, Some(0.0));
        assert_eq!(decode(with("value", "2.5e2").as_bytes()).unwrap().value, Some(250.0));
    }

    #[test]
    fn too_large_is_checked_first() {
        let pad = "a".repeat(MAX_PAYLOAD_BYTES);
        assert_eq!(reason(&with("attrs", &format!("{{\"p\":\"{pad}\"}}"))), Some(TooLarge));
        assert_eq!(decode(&vec![b'x'; MAX_PAYLOAD_BYTES + 1]).err(), Some(TooLarge));
        let exact = with("attrs", "{\"p\":\"\"}");
        let fill = "a".repeat(MAX_PAYLOAD_BYTES - exact.len());
        let exact = with("attrs", &format!("{{\"p\":\"{fill}\"}}"));
        assert_eq!(exact.len(), MAX_PAYLOAD_BYTES);
        assert!(decode(exact.as_bytes()).is_ok());
    }

    #[test]
    fn first_failing_field_in_spec_order_decides() {
        let s = r#"{"ts":"nope","customer_id":"","channel":"BAD","type":"x"}"#;
        assert_eq!(reason(s), Some(MissingField), "event_id first");
        let s = r#"{"event_id":"e","ts":"nope","customer_id":"","channel":"BAD","type":"x"}"#;
        assert_eq!(reason(s), Some(BadTs));
        let s = r#"{"event_id":"e","ts":0,"customer_id":"c","channel":"BAD","type":"x"}"#;
        assert_eq!(reason(s), Some(BadChannel));
    }

    #[test]
    fn repeated_keys_keep_the_last_value() {
        let s = r#"{"event_id":"e","ts":0,"customer_id":"c","channel":"BAD","channel":"web","type":"touch"}"#;
        assert_eq!(decode(s.as_bytes()).unwrap().channel, "web");
    }

    mod same_as_serde_json {
        use proptest::prelude::*;

        use super::super::{decode, reference};

        /// JSON values, mostly valid; the invalid ones probe each syntax rule.
        fn value() -> impl Strategy<Value = String> {
            let select = |v: Vec<&'static str>| prop::sample::select(v).prop_map(str::to_owned);
            let leaf = prop_oneof![
                3 => select(vec!["null", "true", "false", "0", "-0", "1.5", "1e5", "1E+2", "2.5e2", "-1", "1e999"]),
                3 => select(vec!["-1e999", "99999999999999999999", "1793606400000", "1793606400000.0", "-5"]),
                1 => select(vec!["fals", "nullx", "01", "-", "1.", ".5", "1e-", "+1", "NaN", "Infinity", "1x", "1e"]),
                6 => select(vec![
                    r#""2026-11-02T08:00:00Z""#, r#""2026-11-02T08:00:00.5+01:00""#, r#""2026-11-02T08:00:00""#,
                    r#""1793606400000""#, r#""web""#, r#""Web""#, r#""touch""#, r#""conversion""#, r#""""#,
                    r#""\u0077eb""#, r#""t\u006fuch""#, r#""\ud800""#, r#""\udc00""#, r#""\ud83d\ude00""#,
                    r#""\ud83d\u0041""#, r#""\ud83dx""#, r#""\ud83d\n""#, r#""\ud83d\ud83d""#,
                    r#""a\"b\\c\/d\b\f\n\r\t""#, r#""é😀""#, r#""2026-11-02T08:00:00\u005a""#,
                ]),
                1 => select(vec![r#""\q""#, r#""\u12""#, r#""\u12G4""#, "\"ctl\u{1}\"", "\"tab\tin\"", r#""unterminated"#]),
                2 => "[a-z_]{0,40}".prop_map(|s| format!("\"{s}\"")),
                2 => any::<i64>().prop_map(|n| n.to_string()),
                1 => any::<f64>().prop_map(|f| format!("{f:?}")),
            ];
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec((ws(), inner.clone()), 0..4).prop_map(|v| {
                        let items: Vec<String> = v.into_iter().map(|(w, v)| format!("{w}{v}{w}")).collect();
                        format!("[{}]", items.join(","))
                    }),
                    prop::collection::vec((key(), ws(), inner), 0..4).prop_map(|v| {
                        let body: Vec<String> = v.into_iter().map(|(k, w, v)| format!("{k}{w}:{w}{v}")).collect();
                        format!("{{{}}}", body.join(","))
                    }),
                    (0usize..200).prop_map(|d| format!("{}{}", "[".repeat(d), "]".repeat(d))),
                ]
            })
        }

        fn key() -> impl Strategy<Value = String> {
            let select = |v: Vec<&'static str>| prop::sample::select(v).prop_map(str::to_owned);
            prop_oneof![
                10 => select(vec![
                    r#""event_id""#, r#""ts""#, r#""customer_id""#, r#""journey_id""#, r#""channel""#, r#""type""#,
                    r#""step""#, r#""value""#, r#""attrs""#, r#""extra""#, r#""event\u005fid""#, r#""t\u0073""#,
                    r#""\ud83d\ude00""#, r#""""#,
                ]),
                1 => select(vec![r#""\ud800""#, r#""bad\q""#, "ts", "1"]),
            ]
        }

        fn ws() -> impl Strategy<Value = &'static str> {
            prop_oneof![20 => prop::sample::select(vec!["", "", " ", "\n\t\r "]), 1 => prop::sample::select(vec!["\u{a0}", "\u{c}"])]
        }

        /// Mostly valid events with hostile values and keys, then perhaps one damaged byte.
        fn payload() -> impl Strategy<Value = Vec<u8>> {
            let good = [
                (r#""event_id""#, r#""e1""#),
                (r#""ts""#, r#""2026-11-02T08:00:00.123Z""#),
                (r#""customer_id""#, r#""c1""#),
                (r#""channel""#, r#""web""#),
                (r#""type""#, r#""conversion""#),
                (r#""step""#, r#""pay""#),
                (r#""value""#, "12.5"),
                (r#""attrs""#, r#"{"a":[1,{"b":null}]}"#),
            ];
            let fields =
                prop::collection::vec((any::<prop::sample::Index>(), 0u8..10, key(), value(), ws(), ws()), 0..4);
            (
                fields,
                prop::option::weighted(0.15, any::<prop::sample::Index>()),
                prop::option::weighted(0.2, (any::<prop::sample::Index>(), 0u8..4, any::<u8>())),
                ws(),
            )
                .prop_map(move |(changes, drop_one, damage, edge)| {
                    let mut pairs: Vec<(String, String)> =
                        good.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
                    for (at, how, k, v, w1, w2) in changes {
                        let i = at.index(pairs.len());
                        match how {
                            0..=4 => pairs[i].1 = format!("{w1}{v}{w2}"),
                            5 | 6 => pairs.push((k, v)),
                            7 => pairs[i].0 = k,
                            _ => pairs.insert(i, (format!("{w1}{k}{w2}"), v)),
                        }
                    }
                    if let Some(at) = drop_one.filter(|_| !pairs.is_empty()) {
                        pairs.remove(at.index(pairs.len()));
                    }
                    let body: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                    let mut raw = format!("{edge}{{{}}}{edge}", body.join(",")).into_bytes();
                    if let Some((at, kind, byte)) = damage {
                        let i = at.index(raw.len());
                        match kind {
                            0 => raw[i] = byte,
                            1 => raw.truncate(i),
                            2 => raw.insert(i, byte),
                            _ => {
                                raw.remove(i);
                            }
                        }
                    }
                    raw
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

            /// The scanner and the serde_json decoder it replaced give the same event
            /// or the same reason for every payload.
            #[test]
            fn on_hostile_payloads(raw in payload()) {
                prop_assert_eq!(decode(&raw), reference::decode(&raw), "{}", String::from_utf8_lossy(&raw));
            }

            #[test]
            fn on_any_value(v in value(), w in ws()) {
                let raw = format!("{w}{v}{w}");
                prop_assert_eq!(decode(raw.as_bytes()), reference::decode(raw.as_bytes()), "{}", raw);
            }

            #[test]
            fn on_arbitrary_bytes(raw in prop::collection::vec(prop_oneof![
                Just(b'{'), Just(b'}'), Just(b'['), Just(b']'), Just(b'"'), Just(b':'), Just(b','), Just(b'\\'),
                Just(b'u'), Just(b'd'), Just(b'8'), Just(b'0'), Just(b'1'), Just(b'e'), Just(b'-'), Just(b'.'),
                Just(b' '), any::<u8>(),
            ], 0..40)) {
                prop_assert_eq!(decode(&raw), reference::decode(&raw));
            }
        }
    }
}
