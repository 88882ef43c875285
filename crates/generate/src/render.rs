//! Hand-formatted JSON: every string written here is ASCII without quotes or backslashes,
//! so no escaping is needed and the output is valid JSON by construction.

use crate::story::{Attrs, Ev};

/// How an event's `ts` is written; SPEC §1 accepts all three.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TsStyle {
    /// `"2026-11-02T08:00:00.123Z"`
    Utc,
    /// `"2026-11-02T09:00:00.123+01:00"`, the same instant.
    PlusOne,
    /// `1793606400123`
    EpochMs,
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
    /// The event without its `customer_id`.
    MissingField,
    /// A `channel` with capitals and spaces.
    BadChannel,
    /// A `ts` without an offset.
    BadTs,
    /// A `type` outside the known set.
    UnknownType,
    /// A negative conversion `value`.
    NegativeValue,
    /// A number where `customer_id` must be a string.
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
    pub(crate) ev: &'a Ev,
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
    out.push(b'.');
    push_padded(out, in_day % 1_000, 3);
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
}
