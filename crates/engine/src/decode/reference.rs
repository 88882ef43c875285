//! The first decoder (serde_json capturing each known field as a `RawValue`, then
//! re-parsing it), kept as the oracle that the one-pass scanner is tested against:
//! every SPEC rejection reason, down to which field decides, must come out the same.

#![allow(clippy::unwrap_used)]

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::MAX_PAYLOAD_BYTES;
use crate::event::{Event, EventType};
use crate::rows::RejectReason;
use crate::time;

/// Decodes and validates one event.
pub(super) fn decode(raw: &[u8]) -> Result<Event<'_>, RejectReason> {
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
    identities: Option<&'a RawValue>,
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
        let customer_id = match (present(self.customer_id), present(self.identities)) {
            (Some(r), _) => Some(id_string(r, 128)?),
            (None, Some(_)) => None,
            (None, None) => return Err(RejectReason::MissingField),
        };
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
        let mut identities = crate::event::Identities::new();
        if let Some(r) = present(self.identities) {
            if kind(r) != Kind::Object {
                return Err(RejectReason::WrongType);
            }
            let entries: Entries<'a> = serde_json::from_str(r.get()).map_err(|_| RejectReason::InvalidJson)?;
            if entries.0.is_empty() {
                return Err(RejectReason::FieldLength);
            }
            for (t, v) in entries.0 {
                if kind(v) != Kind::String {
                    return Err(RejectReason::WrongType);
                }
                let v = string(v)?;
                let type_ok = t.len() <= 32
                    && t.bytes().next().is_some_and(|c| c.is_ascii_lowercase())
                    && t.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
                if !type_ok || v.is_empty() || v.len() > 256 {
                    return Err(RejectReason::FieldLength);
                }
                identities.retain(|(old, _)| *old != t);
                identities.push((t, v));
            }
            if identities.len() > 8 {
                return Err(RejectReason::FieldLength);
            }
            identities.sort();
        }
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
}

/// An object's entries in written order, values left raw.
struct Entries<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> de::Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key_seed(CowStrSeed)? {
                    out.push((k, map.next_value::<&'de RawValue>()?));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(EntriesVisitor)
    }
}

struct CowStrSeed;

impl<'de> de::DeserializeSeed<'de> for CowStrSeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(CowStrVisitor)
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
    Identities,
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
                    "identities" => Field::Identities,
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
                        Field::Identities => &mut out.identities,
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
