//! Raw bytes → [`Event`] or the SPEC §1 rejection reason.
//!
//! Known fields are captured as raw JSON text first and interpreted here, so the
//! reason depends on the field's JSON type (a float `ts` is `wrong_type`, `1e999`
//! as `value` is `bad_value`, not a parse failure). Fields are checked in the
//! SPEC's table order and the first failing field decides the reason.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::event::{Event, EventType};
use crate::rows::RejectReason;
use crate::time;

/// Payloads above this many bytes are `too_large`.
pub const MAX_PAYLOAD_BYTES: usize = 65_536;

/// Decodes and validates one event.
pub fn decode(raw: &[u8]) -> Result<Event<'_>, RejectReason> {
    if raw.len() > MAX_PAYLOAD_BYTES {
        return Err(RejectReason::TooLarge);
    }
    let text = std::str::from_utf8(raw).map_err(|_| RejectReason::InvalidJson)?;
    if !text.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{') {
        // Distinguish "valid JSON, but not an object" from "not JSON at all".
        return Err(match serde_json::from_str::<IgnoredAny>(text) {
            Ok(_) => RejectReason::NotObject,
            Err(_) => RejectReason::InvalidJson,
        });
    }
    let fields: RawFields<'_> = serde_json::from_str(text).map_err(|_| RejectReason::InvalidJson)?;
    fields.validate()
}

#[derive(Default)]
struct RawFields<'a> {
    event_id: Option<&'a RawValue>,
    ts: Option<&'a RawValue>,
    customer_id: Option<&'a RawValue>,
    journey_id: Option<&'a RawValue>,
    channel: Option<&'a RawValue>,
    event_type: Option<&'a RawValue>,
    step: Option<&'a RawValue>,
    value: Option<&'a RawValue>,
    attrs: Option<&'a RawValue>,
}

/// JSON type of a raw value, from its first byte (serde_json already checked syntax).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    Object,
    Array,
}

fn kind(raw: &RawValue) -> Kind {
    match raw.get().as_bytes().first() {
        Some(b'n') => Kind::Null,
        Some(b't' | b'f') => Kind::Bool,
        Some(b'"') => Kind::String,
        Some(b'{') => Kind::Object,
        Some(b'[') => Kind::Array,
        _ => Kind::Number,
    }
}

/// `null` on an optional field means absent (SPEC §1).
fn present(raw: Option<&RawValue>) -> Option<&RawValue> {
    raw.filter(|r| kind(r) != Kind::Null)
}

fn required(raw: Option<&RawValue>) -> Result<&RawValue, RejectReason> {
    present(raw).ok_or(RejectReason::MissingField)
}

fn string<'a>(raw: &'a RawValue) -> Result<Cow<'a, str>, RejectReason> {
    if kind(raw) != Kind::String {
        return Err(RejectReason::WrongType);
    }
    let mut de = serde_json::Deserializer::from_str(raw.get());
    de.deserialize_str(CowStrVisitor).map_err(|_| RejectReason::InvalidJson)
}

fn id_string<'a>(raw: &'a RawValue, max: usize) -> Result<Cow<'a, str>, RejectReason> {
    let s = string(raw)?;
    if s.is_empty() || s.len() > max {
        return Err(RejectReason::FieldLength);
    }
    Ok(s)
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

fn timestamp(raw: &RawValue) -> Result<i64, RejectReason> {
    match kind(raw) {
        Kind::String => {
            let s = string(raw)?;
            match time::parse_rfc3339(&s) {
                Some(ms) => Ok(ms),
                None if looks_numeric(&s) => Err(RejectReason::WrongType),
                None => Err(RejectReason::BadTs),
            }
        }
        Kind::Number => {
            let token = raw.get();
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

fn valid_channel(s: &str) -> bool {
    (1..=32).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

impl<'a> RawFields<'a> {
    fn validate(self) -> Result<Event<'a>, RejectReason> {
        let event_id = id_string(required(self.event_id)?, 128)?;
        let ts = timestamp(required(self.ts)?)?;
        let customer_id = id_string(required(self.customer_id)?, 128)?;
        let journey_id = present(self.journey_id).map(|r| id_string(r, 128)).transpose()?;
        let channel = string(required(self.channel)?)?;
        if !valid_channel(&channel) {
            return Err(RejectReason::BadChannel);
        }
        let event_type = EventType::parse(&string(required(self.event_type)?)?).ok_or(RejectReason::UnknownType)?;
        let step = present(self.step).map(|r| id_string(r, 64)).transpose()?;
        let value = match present(self.value) {
            None => None,
            Some(r) if kind(r) == Kind::Number => {
                // Rust's float parser reads JSON number syntax and saturates `1e999` to infinity.
                let v: f64 = r.get().parse().map_err(|_| RejectReason::BadValue)?;
                if !v.is_finite() || v < 0.0 {
                    return Err(RejectReason::BadValue);
                }
                Some(v)
            }
            Some(_) => return Err(RejectReason::WrongType),
        };
        if present(self.attrs).is_some_and(|r| kind(r) != Kind::Object) {
            return Err(RejectReason::WrongType);
        }
        Ok(Event { event_id, ts, customer_id, journey_id, channel, event_type, step, value })
    }
}

enum Field {
    EventId,
    Ts,
    CustomerId,
    JourneyId,
    Channel,
    Type,
    Step,
    Value,
    Attrs,
    Other,
}

impl<'de> de::Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "event_id" => Field::EventId,
                    "ts" => Field::Ts,
                    "customer_id" => Field::CustomerId,
                    "journey_id" => Field::JourneyId,
                    "channel" => Field::Channel,
                    "type" => Field::Type,
                    "step" => Field::Step,
                    "value" => Field::Value,
                    "attrs" => Field::Attrs,
                    _ => Field::Other,
                })
            }
        }
        d.deserialize_identifier(FieldVisitor)
    }
}

impl<'de> de::Deserialize<'de> for RawFields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = RawFields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawFields<'de>, A::Error> {
                let mut out = RawFields::default();
                // A repeated key keeps its last value, as most JSON readers do.
                while let Some(field) = map.next_key::<Field>()? {
                    let slot = match field {
                        Field::EventId => &mut out.event_id,
                        Field::Ts => &mut out.ts,
                        Field::CustomerId => &mut out.customer_id,
                        Field::JourneyId => &mut out.journey_id,
                        Field::Channel => &mut out.channel,
                        Field::Type => &mut out.event_type,
                        Field::Step => &mut out.step,
                        Field::Value => &mut out.value,
                        Field::Attrs => &mut out.attrs,
                        Field::Other => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = Some(map.next_value::<&'de RawValue>()?);
                }
                Ok(out)
            }
        }
        d.deserialize_map(ObjectVisitor)
    }
}

struct CowStrVisitor;

impl<'de> Visitor<'de> for CowStrVisitor {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
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
}
