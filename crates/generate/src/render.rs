//! Hand-formatted JSON: every string written here is ASCII without quotes or backslashes,
//! so no escaping is needed and the output is valid JSON by construction.

use std::fmt;

use crate::story::{Attrs, Ev, Ids};

/// How an event's `ts` is written; SPEC §1 accepts all three.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TsStyle {
    /// `"2026-11-02T08:00:00.123Z"`
    Utc,
    /// `"2026-11-02T09:00:00.123+01:00"`, the same instant.
    PlusOne,
    /// `1793606400123`
    EpochMs,
    /// `"2026-11-02T10:00:00.123+02:00"`: the same instant with this offset in minutes.
    Offset(i16),
    /// `"2026-11-02T08:00:00Z"`: whole seconds (the instant truncated to its second).
    UtcSeconds,
}

/// A kind of malformed line, injected with `GenConfig::bad_rate`.
///
/// Kinds are used in turn, in the order of [`BadKind::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BadKind {
    /// A JSON object cut in the middle.
    InvalidJson,
    /// A JSON array holding the event.
    NotObject,
    /// The event without its `customer_id` (and without its `identities`, if any: an event
    /// with neither).
    MissingField,
    /// A `channel` with capitals and spaces.
    BadChannel,
    /// A `ts` without an offset.
    BadTs,
    /// A `type` outside the known set.
    UnknownType,
    /// A negative conversion `value`.
    NegativeValue,
    /// A number where `customer_id` must be a string (an anonymous event: where its
    /// identity's value must be a string).
    WrongType,
}

impl BadKind {
    /// Every kind, in the order they are injected.
    pub const ALL: [BadKind; 8] = [
        BadKind::InvalidJson,
        BadKind::NotObject,
        BadKind::MissingField,
        BadKind::BadChannel,
        BadKind::BadTs,
        BadKind::UnknownType,
        BadKind::NegativeValue,
        BadKind::WrongType,
    ];

    /// The rejection reason SPEC §1 gives for this kind of line.
    pub fn expected_reason(self) -> &'static str {
        match self {
            BadKind::InvalidJson => "invalid_json",
            BadKind::NotObject => "not_object",
            BadKind::MissingField => "missing_field",
            BadKind::BadChannel => "bad_channel",
            BadKind::BadTs => "bad_ts",
            BadKind::UnknownType => "unknown_type",
            BadKind::NegativeValue => "bad_value",
            BadKind::WrongType => "wrong_type",
        }
    }
}

/// Everything needed to write one event line.
pub(crate) struct Line<'a> {
    pub(crate) event_id: u64,
    pub(crate) ts: i64,
    pub(crate) ts_style: TsStyle,
    pub(crate) customer: u64,
    pub(crate) case: Option<u32>,
    /// The story's browser cookie, for [`Ids::Cookie`].
    pub(crate) cookie: u64,
    pub(crate) ev: &'a Ev,
}

/// One identity of a generated event (SPEC §6), `type:value` when displayed: the form of a
/// Kafka key of an event without `customer_id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    /// `cookie:ck-0123456789ab`, a browser cookie (48 bits).
    Cookie(u64),
    /// `phone:+34600000000`, the mobile of a customer number.
    Mobile(u64),
    /// `phone:+34910000000`, the landline of a household (two customers: numbers `2h`, `2h + 1`).
    Landline(u64),
    /// `loyalty:L000000000`, the loyalty card of a customer number.
    Loyalty(u64),
}

impl Identity {
    /// The identity's type: `cookie`, `phone` or `loyalty`.
    pub fn type_name(self) -> &'static str {
        match self {
            Identity::Cookie(_) => "cookie",
            Identity::Mobile(_) | Identity::Landline(_) => "phone",
            Identity::Loyalty(_) => "loyalty",
        }
    }

    /// Appends the identity's value.
    pub fn push_value(self, out: &mut Vec<u8>) {
        match self {
            Identity::Cookie(c) => {
                out.extend_from_slice(b"ck-");
                let mut hex = Vec::with_capacity(16);
                push_hex16(&mut hex, c);
                out.extend_from_slice(&hex[4..]);
            }
            // Spanish numbers: 9 digits after +34, mobiles from 6, landlines (Madrid) from 91.
            // Affine maps on the low digits are bijections, so numbers are distinct per customer.
            Identity::Mobile(n) => {
                out.extend_from_slice(b"+346");
                push_scrambled(out, n, 8, 7_368_787, 31_415_926);
            }
            Identity::Landline(h) => {
                out.extend_from_slice(b"+3491");
                push_scrambled(out, h, 7, 2_718_281, 1_414_213);
            }
            Identity::Loyalty(n) => {
                out.push(b'L');
                push_scrambled(out, n, 9, 123_456_791, 577_215_664);
            }
        }
    }

    /// The identity's value as a string.
    pub fn value(self) -> String {
        let mut out = Vec::with_capacity(16);
        self.push_value(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.type_name(), self.value())
    }
}

/// The identities an event carries, sorted bytewise by type (then value): the first is
/// its smallest identity (SPEC §6).
pub(crate) fn identities(ids: Ids, customer: u64, cookie: u64) -> [Option<Identity>; 2] {
    match ids {
        Ids::None => [None, None],
        Ids::Cookie => [Some(Identity::Cookie(cookie)), None],
        Ids::Phone => [Some(Identity::Mobile(customer)), None],
        Ids::Loyalty => [Some(Identity::Loyalty(customer)), None],
        Ids::Profile => [Some(Identity::Loyalty(customer)), Some(Identity::Mobile(customer))],
        Ids::Household => [Some(Identity::Landline(customer / 2)), None],
    }
}

/// `n`'s low `digits` digits mapped by `x -> (x * mul + add) mod 10^digits` (a bijection when
/// `mul` is coprime to 10), zero-padded, after the higher digits of `n` if any.
fn push_scrambled(out: &mut Vec<u8>, n: u64, digits: u32, mul: u64, add: u64) {
    let m = 10u64.pow(digits);
    let (high, low) = (n / m, n % m);
    if high > 0 {
        out.extend_from_slice(itoa::Buffer::new().format(high).as_bytes());
    }
    let scrambled = ((u128::from(low) * u128::from(mul) + u128::from(add)) % u128::from(m)) as u64;
    push_padded(out, scrambled, digits as usize);
}

/// `cust-0000042`: seven digits at least, more when needed.
pub(crate) fn push_customer_id(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(b"cust-");
    push_padded(out, n, 7);
}

fn push_padded(out: &mut Vec<u8>, n: u64, width: usize) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n);
    for _ in digits.len()..width {
        out.push(b'0');
    }
    out.extend_from_slice(digits.as_bytes());
}

fn push_int(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn push_hex16(out: &mut Vec<u8>, n: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        out.push(HEX[((n >> (shift * 4)) & 0xf) as usize]);
    }
}

/// Civil date from days since 1970-01-01 (H. Hinnant's algorithm, proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DDTHH:MM:SS.mmm` of the wall clock `ms` (no offset suffix).
fn push_wall_clock(out: &mut Vec<u8>, ms: i64) {
    push_wall_clock_to(out, ms, true);
}

/// `YYYY-MM-DDTHH:MM:SS`, then `.mmm` with `millis`.
fn push_wall_clock_to(out: &mut Vec<u8>, ms: i64, millis: bool) {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000) as u64;
    let (year, month, day) = civil_from_days(days);
    push_padded(out, year.max(0) as u64, 4);
    out.push(b'-');
    push_padded(out, u64::from(month), 2);
    out.push(b'-');
    push_padded(out, u64::from(day), 2);
    out.push(b'T');
    push_padded(out, in_day / 3_600_000, 2);
    out.push(b':');
    push_padded(out, in_day / 60_000 % 60, 2);
    out.push(b':');
    push_padded(out, in_day / 1_000 % 60, 2);
    if millis {
        out.push(b'.');
        push_padded(out, in_day % 1_000, 3);
    }
}

fn push_ts(out: &mut Vec<u8>, ts: i64, style: TsStyle) {
    match style {
        TsStyle::EpochMs => push_int(out, ts),
        TsStyle::Utc => {
            out.push(b'"');
            push_wall_clock(out, ts);
            out.extend_from_slice(b"Z\"");
        }
        TsStyle::PlusOne => {
            out.push(b'"');
            push_wall_clock(out, ts + 3_600_000);
            out.extend_from_slice(b"+01:00\"");
        }
        TsStyle::Offset(minutes) => {
            out.push(b'"');
            push_wall_clock(out, ts + i64::from(minutes) * 60_000);
            out.push(if minutes < 0 { b'-' } else { b'+' });
            let m = u64::from(minutes.unsigned_abs());
            push_padded(out, m / 60, 2);
            out.push(b':');
            push_padded(out, m % 60, 2);
            out.push(b'"');
        }
        TsStyle::UtcSeconds => {
            out.push(b'"');
            push_wall_clock_to(out, ts, false);
            out.extend_from_slice(b"Z\"");
        }
    }
}

fn push_cents(out: &mut Vec<u8>, cents: u32) {
    out.extend_from_slice(itoa::Buffer::new().format(cents / 100).as_bytes());
    out.push(b'.');
    push_padded(out, u64::from(cents % 100), 2);
}

fn push_attrs(out: &mut Vec<u8>, attrs: Attrs) {
    let (key, text, num): (&str, Option<&str>, u32) = match attrs {
        Attrs::None => return,
        Attrs::Device(d) => ("device", Some(d), 0),
        Attrs::Page(p) => ("page", None, p),
        Attrs::Store(s) => ("store", None, s),
        Attrs::QueueSecs(s) => ("queue_s", None, s),
        Attrs::ErrorCode(c) => ("code", Some(c), 0),
        Attrs::Campaign(c) => ("campaign", Some(c), 0),
        Attrs::Topic(t) => ("topic", Some(t), 0),
    };
    out.extend_from_slice(b",\"attrs\":{\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    match (attrs, text) {
        (Attrs::Page(p), _) => {
            out.extend_from_slice(b"\"/p/");
            push_int(out, i64::from(p));
            out.push(b'"');
        }
        (Attrs::Store(s), _) => {
            out.extend_from_slice(b"\"S");
            push_padded(out, u64::from(s), 3);
            out.push(b'"');
        }
        (_, Some(t)) => {
            out.push(b'"');
            out.extend_from_slice(t.as_bytes());
            out.push(b'"');
        }
        (_, None) => push_int(out, i64::from(num)),
    }
    out.push(b'}');
}

/// Appends the event as one JSON object, altered as `bad` says.
pub(crate) fn push_line(out: &mut Vec<u8>, line: &Line<'_>, bad: Option<BadKind>) {
    let start = out.len();
    if bad == Some(BadKind::NotObject) {
        out.push(b'[');
    }
    out.extend_from_slice(b"{\"event_id\":\"");
    push_hex16(out, line.event_id);
    out.extend_from_slice(b"\",\"ts\":");
    if bad == Some(BadKind::BadTs) {
        out.push(b'"');
        push_wall_clock(out, line.ts);
        out.push(b'"');
    } else {
        push_ts(out, line.ts, line.ts_style);
    }
    match bad {
        _ if line.ev.anonymous => {}
        Some(BadKind::MissingField) => {}
        Some(BadKind::WrongType) => {
            out.extend_from_slice(b",\"customer_id\":");
            push_int(out, line.customer as i64);
        }
        _ => {
            out.extend_from_slice(b",\"customer_id\":\"");
            push_customer_id(out, line.customer);
            out.push(b'"');
        }
    }
    let ids = identities(line.ev.ids, line.customer, line.cookie);
    // Without `customer_id`, `identities` would make a valid anonymous event: both go.
    if ids[0].is_some() && bad != Some(BadKind::MissingField) {
        let wrong_type = line.ev.anonymous && bad == Some(BadKind::WrongType);
        out.extend_from_slice(b",\"identities\":{");
        for (i, id) in ids.into_iter().flatten().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(id.type_name().as_bytes());
            out.extend_from_slice(b"\":");
            if wrong_type {
                push_int(out, line.customer as i64);
            } else {
                out.push(b'"');
                id.push_value(out);
                out.push(b'"');
            }
        }
        out.push(b'}');
    }
    if let Some(case) = line.case {
        out.extend_from_slice(b",\"journey_id\":\"case-");
        push_padded(out, u64::from(case), 6);
        out.push(b'"');
    }
    out.extend_from_slice(b",\"channel\":\"");
    if bad == Some(BadKind::BadChannel) {
        out.extend_from_slice(b"Web Shop");
    } else {
        out.extend_from_slice(line.ev.channel.as_str().as_bytes());
    }
    out.extend_from_slice(b"\",\"type\":\"");
    match bad {
        Some(BadKind::UnknownType) => out.extend_from_slice(b"purchase"),
        Some(BadKind::NegativeValue) => out.extend_from_slice(b"conversion"),
        _ => out.extend_from_slice(line.ev.kind.as_str().as_bytes()),
    }
    out.push(b'"');
    if let Some(step) = line.ev.step {
        out.extend_from_slice(b",\"step\":\"");
        out.extend_from_slice(step.as_bytes());
        out.push(b'"');
    }
    if bad == Some(BadKind::NegativeValue) {
        out.extend_from_slice(b",\"value\":-");
        push_cents(out, line.ev.value_cents.unwrap_or(1_250).max(1));
    } else if let Some(cents) = line.ev.value_cents {
        out.extend_from_slice(b",\"value\":");
        push_cents(out, cents);
    }
    push_attrs(out, line.ev.attrs);
    out.push(b'}');
    match bad {
        Some(BadKind::NotObject) => out.push(b']'),
        // A prefix of an object is never valid JSON: the closing brace is always cut.
        Some(BadKind::InvalidJson) => out.truncate(start + (out.len() - start) / 2),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wall(ms: i64) -> String {
        let mut out = Vec::new();
        push_wall_clock(&mut out, ms);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn formats_dates() {
        assert_eq!(wall(0), "1970-01-01T00:00:00.000");
        assert_eq!(wall(1_793_606_400_123), "2026-11-02T08:00:00.123");
        assert_eq!(wall(951_782_400_000 - 1), "2000-02-28T23:59:59.999");
        assert_eq!(wall(951_782_400_000 + 86_400_000), "2000-03-01T00:00:00.000");
        assert_eq!(wall(1_798_761_599_999), "2026-12-31T23:59:59.999");
    }

    #[test]
    fn pads_ids_and_values() {
        let mut out = Vec::new();
        push_customer_id(&mut out, 42);
        out.push(b' ');
        push_customer_id(&mut out, 123_456_789);
        out.push(b' ');
        push_cents(&mut out, 5);
        out.push(b' ');
        push_cents(&mut out, 45_000);
        out.push(b' ');
        push_hex16(&mut out, 0xab);
        assert_eq!(
            String::from_utf8(out).unwrap_or_default(),
            "cust-0000042 cust-123456789 0.05 450.00 00000000000000ab"
        );
    }

    #[test]
    fn identity_values() {
        assert_eq!(Identity::Cookie(0x0123_4567_89ab).to_string(), "cookie:ck-0123456789ab");
        assert_eq!(Identity::Mobile(0).to_string(), "phone:+3463".to_string() + "1415926");
        assert_eq!(Identity::Landline(1).value().len(), "+34910000000".len());
        assert_eq!(Identity::Loyalty(2).value().len(), "L000000000".len());
        assert_eq!(Identity::Mobile(100_000_000).value(), "+3461".to_string() + &Identity::Mobile(0).value()[4..]);
        // Distinct customers, distinct numbers and cards.
        let mut seen = std::collections::HashSet::new();
        for n in 0..50_000 {
            for id in [Identity::Mobile(n), Identity::Landline(n), Identity::Loyalty(n)] {
                let value = id.value();
                assert!(value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+'), "{value}");
                assert!(seen.insert(value));
            }
        }
        // Sorted bytewise by type: the smallest identity first.
        let [a, b] = identities(Ids::Profile, 7, 0);
        assert!(a.zip(b).is_some_and(|(a, b)| a.type_name() < b.type_name()));
        assert_eq!(identities(Ids::Household, 7, 0)[0], identities(Ids::Household, 6, 0)[0]);
        assert_ne!(identities(Ids::Household, 7, 0)[0], identities(Ids::Household, 8, 0)[0]);
    }
}
