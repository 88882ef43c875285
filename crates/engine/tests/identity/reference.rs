//! An independent reference for identity resolution (SPEC §6), written from the
//! SPEC text only (§1 for what is accepted, §2 for the watermark and `late`,
//! §6 for links, owners, conflicts and resolution). It shares no code with the
//! engine and is deliberately plain: decode every line, decide late-ness in
//! arrival order, then sort all links of the whole input and resolve every
//! anonymous event against the final owners. It is slow and that is fine.
//!
//! Include it from a test file with
//! `#[path = "identity/reference.rs"] mod reference;`.
//!
//! Decisions where the SPEC is silent (see also the report in the test file):
//! - Links are ordered by `(ts, event_id)` bytewise and, when two links share
//!   both, by `customer_id` bytewise, so that the result never depends on
//!   arrival order.
//! - Every accepted, non-late event with `customer_id` and `identities` links,
//!   duplicates (§2) included: duplicates are a journey-level notion that
//!   applies after resolution. A conflicting link that appears twice with the
//!   same `(ts, event_id, customer_id)` (an exact re-delivery) is the same link
//!   and gives one conflict row, not two.
//! - RFC 3339: `T`/`t` separator and `Z`/`z` accepted (RFC 3339 ABNF is case
//!   insensitive); a space separator, a leap second (`:60`) and hour `24` are
//!   rejected; `-00:00` is an offset of zero; fraction digits beyond the third
//!   are dropped (truncated, never rounded).
//! - Integer `ts` must fit in `i64`; an integer JSON number that does not is
//!   `bad_ts`. A JSON number written with a fraction or exponent is a float,
//!   hence `wrong_type`.
//! - Duplicate keys inside a JSON object: the last one wins (as `serde_json`
//!   decodes them), for `identities` entries too.

#![allow(unreachable_pub, dead_code)]

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Payload limit of §1 (`too_large` above it).
pub const MAX_PAYLOAD_BYTES: usize = 65_536;

/// One row of the `identities` table (§4, §6).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdentityRow {
    pub identity_type: String,
    pub identity_value: String,
    pub customer_id: String,
    pub linked_ts: i64,
    pub conflict: bool,
}

/// What the reference says about one partition's lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    /// Per input line: the customer the event belongs to after §6, or `None`
    /// when the line is rejected (§1) or late (§2).
    pub customers: Vec<Option<String>>,
    /// Per input line: accepted, not late, and without `customer_id`.
    pub anonymous: Vec<bool>,
    /// Per input line: why it was rejected (`None` when accepted).
    pub rejections: Vec<Option<Reject>>,
    /// Owner rows (one per owned identity) and conflict rows, sorted.
    pub identities: Vec<IdentityRow>,
    /// Anonymous events resolved to an owner.
    pub anonymous_resolved: u64,
    /// Anonymous events that stayed `anon:<type>:<value>`.
    pub anonymous_unresolved: u64,
    /// Identities that got an owner.
    pub links: u64,
    /// Conflict rows.
    pub conflicts: u64,
}

/// Rejection reasons of §1, plus `late` (§2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reject {
    InvalidJson,
    NotObject,
    MissingField,
    WrongType,
    FieldLength,
    BadTs,
    BadChannel,
    UnknownType,
    BadValue,
    TooLarge,
    Late,
}

impl Reject {
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::InvalidJson => "invalid_json",
            Reject::NotObject => "not_object",
            Reject::MissingField => "missing_field",
            Reject::WrongType => "wrong_type",
            Reject::FieldLength => "field_length",
            Reject::BadTs => "bad_ts",
            Reject::BadChannel => "bad_channel",
            Reject::UnknownType => "unknown_type",
            Reject::BadValue => "bad_value",
            Reject::TooLarge => "too_large",
            Reject::Late => "late",
        }
    }
}

/// The fields of an accepted event that §6 needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_id: String,
    pub ts: i64,
    pub customer_id: Option<String>,
    /// `(type, value)` pairs sorted bytewise by type, then value.
    pub identities: Vec<(String, String)>,
}

pub const EVENT_TYPES: [&str; 8] =
    ["touch", "contact", "reply", "request_opened", "request_resolved", "conversion", "error", "abandon"];

// ---------------------------------------------------------------------------
// §1: decoding
// ---------------------------------------------------------------------------

/// A field as §1 sees it: absent (missing or `null`) or present.
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    match obj.get(name) {
        None | Some(Value::Null) => None,
        Some(v) => Some(v),
    }
}

/// A string field of `min..=max` UTF-8 bytes; `Ok(None)` when absent.
fn string_field<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    min: usize,
    max: usize,
) -> Result<Option<&'a str>, Reject> {
    match field(obj, name) {
        None => Ok(None),
        Some(Value::String(s)) => {
            if s.len() < min || s.len() > max {
                Err(Reject::FieldLength)
            } else {
                Ok(Some(s.as_str()))
            }
        }
        Some(_) => Err(Reject::WrongType),
    }
}

fn required<T>(v: Result<Option<T>, Reject>) -> Result<T, Reject> {
    v?.ok_or(Reject::MissingField)
}

fn is_identity_type(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_lowercase()
        && b[1..].iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

fn is_channel(c: &str) -> bool {
    let b = c.as_bytes();
    !b.is_empty() && b.len() <= 32 && b.iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

fn decode_ts(v: &Value) -> Result<i64, Reject> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else if n.is_u64() {
                // An integer, but beyond any epoch-ms this engine can hold.
                Err(Reject::BadTs)
            } else {
                // A float is not an epoch-ms `ts`.
                Err(Reject::WrongType)
            }
        }
        Value::String(s) => parse_rfc3339_ms(s).ok_or(Reject::BadTs),
        _ => Err(Reject::WrongType),
    }
}

fn decode_identities(v: &Value) -> Result<Vec<(String, String)>, Reject> {
    let Value::Object(map) = v else {
        return Err(Reject::WrongType);
    };
    // A value that is not a string is `wrong_type`; every other fault is
    // `field_length`. When both occur, `wrong_type` is reported.
    let mut out = Vec::with_capacity(map.len());
    let mut length_fault = map.is_empty() || map.len() > 8;
    for (t, val) in map {
        let Value::String(s) = val else {
            return Err(Reject::WrongType);
        };
        if !is_identity_type(t) || s.is_empty() || s.len() > 256 {
            length_fault = true;
        }
        out.push((t.clone(), s.clone()));
    }
    if length_fault {
        return Err(Reject::FieldLength);
    }
    out.sort();
    Ok(out)
}

/// Decodes one input line as §1 does, far enough to say accepted or rejected
/// (and why). Checks run in field order; an event with several faults gets the
/// reason of the first one found.
pub fn decode(line: &[u8]) -> Result<Event, Reject> {
    if line.len() > MAX_PAYLOAD_BYTES {
        return Err(Reject::TooLarge);
    }
    let Ok(text) = std::str::from_utf8(line) else {
        return Err(Reject::InvalidJson);
    };
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return Err(Reject::InvalidJson);
    };
    let Value::Object(obj) = value else {
        return Err(Reject::NotObject);
    };

    let event_id = required(string_field(&obj, "event_id", 1, 128))?.to_owned();
    let ts = match field(&obj, "ts") {
        None => return Err(Reject::MissingField),
        Some(v) => decode_ts(v)?,
    };
    let customer_id = string_field(&obj, "customer_id", 1, 128)?.map(str::to_owned);
    let identities = match field(&obj, "identities") {
        None => None,
        Some(v) => Some(decode_identities(v)?),
    };
    if customer_id.is_none() && identities.is_none() {
        return Err(Reject::MissingField);
    }
    string_field(&obj, "journey_id", 1, 128)?;
    let channel = match field(&obj, "channel") {
        None => return Err(Reject::MissingField),
        Some(Value::String(s)) => s,
        Some(_) => return Err(Reject::WrongType),
    };
    if !is_channel(channel) {
        return Err(Reject::BadChannel);
    }
    let ty = match field(&obj, "type") {
        None => return Err(Reject::MissingField),
        Some(Value::String(s)) => s,
        Some(_) => return Err(Reject::WrongType),
    };
    if !EVENT_TYPES.contains(&ty.as_str()) {
        return Err(Reject::UnknownType);
    }
    string_field(&obj, "step", 1, 64)?;
    match field(&obj, "value") {
        None => {}
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if x.is_finite() && x >= 0.0 => {}
            _ => return Err(Reject::BadValue),
        },
        Some(_) => return Err(Reject::WrongType),
    }
    match field(&obj, "attrs") {
        None | Some(Value::Object(_)) => {}
        Some(_) => return Err(Reject::WrongType),
    }
    Ok(Event { event_id, ts, customer_id, identities: identities.unwrap_or_default() })
}

// ---------------------------------------------------------------------------
// RFC 3339
// ---------------------------------------------------------------------------

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i64, |acc, &d| acc * 10 + i64::from(d - b'0')))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DDTHH:MM:SS[.fff…](Z|±HH:MM)` to epoch milliseconds; `None` when
/// there is no offset or the date or time is impossible.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let year = digits(&b[0..4])?;
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &b[start..i];
        for k in 0..3 {
            millis = millis * 10 + frac.get(k).map_or(0, |&d| i64::from(d - b'0'));
        }
    }
    let rest = &b[i..];
    let offset_minutes = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let oh = digits(&[*h1, *h2])?;
            let om = digits(&[*m1, *m2])?;
            if oh > 23 || om > 59 {
                return None;
            }
            let minutes = oh * 60 + om;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let local_ms = (((days * 24 + hour) * 60 + minute) * 60 + second) * 1000 + millis;
    Some(local_ms - offset_minutes * 60_000)
}

// ---------------------------------------------------------------------------
// §2 + §6: resolution
// ---------------------------------------------------------------------------

/// The owning (first) link of an identity.
#[derive(Debug, Clone)]
struct Owner {
    customer_id: String,
    ts: i64,
    event_id: String,
}

/// Resolves one partition's non-blank lines (arrival order) as §2 and §6 say.
pub fn resolve(lines: &[&[u8]], identify_wait_ms: i64, allowed_lateness_ms: i64) -> Resolution {
    // Pass 1, arrival order: §1 decoding and the §2 watermark.
    let mut events: Vec<Option<Event>> = Vec::with_capacity(lines.len());
    let mut rejections = Vec::with_capacity(lines.len());
    let mut max_ts: Option<i64> = None;
    for line in lines {
        match decode(line) {
            Err(reason) => {
                events.push(None);
                rejections.push(Some(reason));
            }
            Ok(ev) => {
                let late = max_ts.is_some_and(|m| i128::from(ev.ts) < i128::from(m) - i128::from(allowed_lateness_ms));
                if late {
                    events.push(None);
                    rejections.push(Some(Reject::Late));
                } else {
                    max_ts = Some(max_ts.map_or(ev.ts, |m| m.max(ev.ts)));
                    events.push(Some(ev));
                    rejections.push(None);
                }
            }
        }
    }

    // Pass 2: every link of the whole input, in (ts, event_id, customer_id) order.
    let mut links: Vec<(i64, &str, &str, &str, &str)> = Vec::new();
    for ev in events.iter().flatten() {
        if let Some(c) = &ev.customer_id {
            for (t, v) in &ev.identities {
                links.push((ev.ts, &ev.event_id, c, t, v));
            }
        }
    }
    // The whole tuple sorts, so that the copies of a re-delivered link lie side by side.
    links.sort_by(|a, b| {
        (a.0, a.1.as_bytes(), a.2.as_bytes(), a.3.as_bytes(), a.4.as_bytes()).cmp(&(
            b.0,
            b.1.as_bytes(),
            b.2.as_bytes(),
            b.3.as_bytes(),
            b.4.as_bytes(),
        ))
    });
    links.dedup(); // an exact re-delivery is one link
    let mut owners: BTreeMap<(String, String), Owner> = BTreeMap::new();
    let mut identities = Vec::new();
    for &(ts, event_id, customer_id, t, v) in &links {
        let key = (t.to_owned(), v.to_owned());
        match owners.get(&key) {
            None => {
                identities.push(IdentityRow {
                    identity_type: t.to_owned(),
                    identity_value: v.to_owned(),
                    customer_id: customer_id.to_owned(),
                    linked_ts: ts,
                    conflict: false,
                });
                owners.insert(key, Owner { customer_id: customer_id.to_owned(), ts, event_id: event_id.to_owned() });
            }
            Some(owner) if owner.customer_id != customer_id => {
                identities.push(IdentityRow {
                    identity_type: t.to_owned(),
                    identity_value: v.to_owned(),
                    customer_id: customer_id.to_owned(),
                    linked_ts: ts,
                    conflict: true,
                });
            }
            Some(_) => {} // a repeated link to the owner: nothing
        }
    }
    let links_count = owners.len() as u64;
    let conflicts = identities.iter().filter(|r| r.conflict).count() as u64;
    identities.sort();

    // Pass 3: every event's customer.
    let mut customers = Vec::with_capacity(lines.len());
    let mut anonymous = Vec::with_capacity(lines.len());
    let (mut resolved, mut unresolved) = (0u64, 0u64);
    for ev in &events {
        let Some(ev) = ev else {
            customers.push(None);
            anonymous.push(false);
            continue;
        };
        if let Some(c) = &ev.customer_id {
            customers.push(Some(c.clone()));
            anonymous.push(false);
            continue;
        }
        anonymous.push(true);
        let deadline = i128::from(ev.ts) + i128::from(identify_wait_ms);
        let best = ev
            .identities
            .iter()
            .filter_map(|(t, v)| owners.get(&(t.clone(), v.clone())))
            .filter(|o| i128::from(o.ts) <= deadline)
            .min_by(|a, b| {
                (a.ts, a.event_id.as_bytes(), a.customer_id.as_bytes()).cmp(&(
                    b.ts,
                    b.event_id.as_bytes(),
                    b.customer_id.as_bytes(),
                ))
            });
        match best {
            Some(owner) => {
                resolved += 1;
                customers.push(Some(owner.customer_id.clone()));
            }
            None => {
                unresolved += 1;
                // Identities are sorted by (type, value); an accepted anonymous
                // event has at least one.
                let (t, v) = &ev.identities[0];
                customers.push(Some(format!("anon:{t}:{v}")));
            }
        }
    }

    Resolution {
        customers,
        anonymous,
        rejections,
        identities,
        anonymous_resolved: resolved,
        anonymous_unresolved: unresolved,
        links: links_count,
        conflicts,
    }
}
