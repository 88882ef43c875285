//! Event-time arithmetic: RFC 3339 parsing to epoch milliseconds, human durations
//! (`500ms`, `5s`, `30m`, `24h`), and civil-date helpers. Hand-written because the
//! SPEC's acceptance rules (offset required, fractions truncated to ms, years
//! 0001–9999) are stricter and narrower than a general date library's.

use std::fmt;

/// Smallest and largest accepted instants: 0001-01-01T00:00:00.000Z and
/// 9999-12-31T23:59:59.999Z, the range every Parquet reader and Python can hold.
pub const MIN_TS_MS: i64 = -62_135_596_800_000;
pub const MAX_TS_MS: i64 = 253_402_300_799_999;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Calendar date (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// The value of two ASCII digits at `b[i..i + 2]` (the caller checked the length).
#[inline]
fn two_digits(b: &[u8], i: usize) -> Option<u32> {
    let (hi, lo) = (b[i].wrapping_sub(b'0'), b[i + 1].wrapping_sub(b'0'));
    (hi < 10 && lo < 10).then(|| u32::from(hi) * 10 + u32::from(lo))
}

/// Parses an RFC 3339 date-time with a mandatory offset (`Z` or `±HH:MM`) into
/// epoch milliseconds. Fractions beyond milliseconds are truncated. `T`/`Z` may
/// be lower case (RFC 3339's grammar is case-insensitive); a space separator,
/// a missing offset, second 60 and years outside 0001–9999 are refused.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if let Some(fields) = common_layout(b) {
        return fields;
    }
    parse_general(b)
}

/// The layouts producers write — `YYYY-MM-DDTHH:MM:SS`, then `.mmm` or nothing, then `Z`
/// or `±HH:MM` — at fixed positions, without loops or an `Option` per field. `None` when
/// `b` has another layout (another fraction length, say); the general parser then
/// decides. Equal to it on every input of these layouts (the `common_layout_agrees_…`
/// properties).
#[inline]
fn common_layout(b: &[u8]) -> Option<Option<i64>> {
    let mut head = [b'0'; 24];
    head[..19].copy_from_slice(b.get(..19)?);
    let shape =
        head[4] == b'-' && head[7] == b'-' && matches!(head[10], b'T' | b't') && head[13] == b':' && head[16] == b':';
    if !shape
        || !digits_at(&head, 0..8, 0x00FF_FF00_FFFF_FFFF)
        || !digits_at(&head, 8..16, 0xFFFF_00FF_FF00_FFFF)
        || !digits_at(&head, 16..24, 0x0000_0000_00FF_FF00)
    {
        return None;
    }
    let digit = |c: u8| c.wrapping_sub(b'0') < 10;
    let (millis, tail) = match &b[19..] {
        [b'.', x, y, z, tail @ ..]
            if digit(*x) && digit(*y) && digit(*z) && !tail.first().is_some_and(|c| digit(*c)) =>
        {
            (i64::from(u32::from(x - b'0') * 100 + u32::from(y - b'0') * 10 + u32::from(z - b'0')), tail)
        }
        [b'.', ..] => return None,
        tail => (0, tail),
    };
    let offset_min = match tail {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] if [h1, h2, m1, m2].iter().all(|c| digit(**c)) => {
            let (oh, om) =
                (u32::from(h1 - b'0') * 10 + u32::from(h2 - b'0'), u32::from(m1 - b'0') * 10 + u32::from(m2 - b'0'));
            if oh > 23 || om > 59 {
                return Some(None);
            }
            let off = i64::from(oh * 60 + om);
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    let d = |i: usize| u32::from(head[i] - b'0');
    let two = |i: usize| d(i) * 10 + d(i + 1);
    let year = i64::from(two(0) * 100 + two(2));
    Some(assemble(year, two(5), two(8), two(11), two(14), two(17), millis, offset_min))
}

/// Whether every byte of `b[range]` (eight bytes) under a `0xFF` lane of `lanes`
/// (little-endian: lane 0 is the first byte) is an ASCII digit, all lanes at once.
#[inline]
fn digits_at(b: &[u8; 24], range: std::ops::Range<usize>, lanes: u64) -> bool {
    let mut word = [0u8; 8];
    word.copy_from_slice(&b[range]);
    let x = (u64::from_le_bytes(word) ^ 0x3030_3030_3030_3030) & lanes;
    // A digit lane now holds 0–9: no high nibble, and adding 6 stays below 16 (no carry
    // can cross lanes once the high nibbles are known to be zero).
    x & 0xF0F0_F0F0_F0F0_F0F0 == 0 && (x + 0x0606_0606_0606_0606) & 0x1010_1010_1010_1010 & lanes == 0
}

/// Checks a date-time's fields and turns them into epoch milliseconds.
#[allow(clippy::too_many_arguments)]
#[inline]
fn assemble(
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millis: i64,
    offset_min: i64,
) -> Option<i64> {
    if year < 1 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_min * 60;
    let ms = secs * 1000 + millis;
    (MIN_TS_MS..=MAX_TS_MS).contains(&ms).then_some(ms)
}

fn parse_general(b: &[u8]) -> Option<i64> {
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = i64::from(two_digits(b, 0)? * 100 + two_digits(b, 2)?);
    let month = two_digits(b, 5)?;
    let day = two_digits(b, 8)?;
    let hour = two_digits(b, 11)?;
    let minute = two_digits(b, 14)?;
    let second = two_digits(b, 17)?;
    let mut rest = &b[19..];
    let mut millis = 0i64;
    if let Some((b'.', frac)) = rest.split_first() {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        for i in 0..3 {
            millis = millis * 10 + frac.get(i).filter(|_| i < n).map_or(0, |&c| i64::from(c - b'0'));
        }
        rest = &frac[n..];
    }
    let offset_min: i64 = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let oh = two_digits(&[*h1, *h2], 0)?;
            let om = two_digits(&[*m1, *m2], 0)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let off = i64::from(oh * 60 + om);
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    assemble(year, month, day, hour, minute, second, millis, offset_min)
}

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` (for logs and tests).
pub fn format_rfc3339(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// Start of the tumbling window of length `window_ms` (epoch-aligned) holding `ts`.
/// Total for every `ts` and positive `window_ms`: a window starting below `i64::MIN`
/// (only reachable with sentinel instants such as a watermark minus a huge lateness)
/// is reported as starting at `i64::MIN`.
#[inline]
pub fn window_start(ts: i64, window_ms: i64) -> i64 {
    ts.saturating_sub(ts.rem_euclid(window_ms))
}

/// A duration as written on the command line and in config: an integer followed
/// by `ms`, `s`, `m`, `h` or `d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DurationMs(pub i64);

/// A duration string that does not follow `<integer><ms|s|m|h|d>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?}: expected an integer and a unit, like 500ms, 5s, 30m, 24h or 7d")]
pub struct DurationError(pub String);

impl std::str::FromStr for DurationMs {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || DurationError(s.to_owned());
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        let (num, unit) = t.split_at(split);
        let n: i64 = num.parse().map_err(|_| err())?;
        let scale = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(err()),
        };
        n.checked_mul(scale).map(DurationMs).ok_or_else(err)
    }
}

impl fmt::Display for DurationMs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        for (unit, scale) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
            if ms != 0 && ms % scale == 0 {
                return write!(f, "{}{unit}", ms / scale);
            }
        }
        write!(f, "{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utc_and_offsets_to_the_same_instant() {
        let z = parse_rfc3339("2026-11-02T08:16:45.753Z");
        assert_eq!(z, Some(1_793_607_405_753));
        assert_eq!(parse_rfc3339("2026-11-02T17:16:45.753+09:00"), z);
        assert_eq!(parse_rfc3339("2026-11-02T04:46:45.753-03:30"), z);
        assert_eq!(parse_rfc3339("2026-11-02t08:16:45.753z"), z);
    }

    #[test]
    fn truncates_long_fractions_and_pads_short_ones() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00.123999Z"), Some(123));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00.5Z"), Some(500));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.999Z"), Some(-1));
    }

    #[test]
    fn refuses_missing_offset_impossible_dates_and_odd_shapes() {
        for bad in [
            "2026-11-02T08:00:00",
            "2026-11-02T08:00:00+2",
            "2026-11-02T08:00:00+02",
            "2026-11-02T25:00:00Z",
            "2026-11-02T08:60:00Z",
            "2026-11-02T08:00:60Z",
            "2026-02-29T08:00:00Z",
            "2026-13-01T08:00:00Z",
            "2026-00-01T08:00:00Z",
            "2026-11-00T08:00:00Z",
            "0000-01-01T00:00:00Z",
            "2026-11-02 08:00:00Z",
            "2026-11-02T08:00:00.Z",
            "02/11/2026 08:00",
            "2026-11-02T08:00:00+24:00",
            "2026-11-02T08:00:00Zjunk",
            "+2026-11-02T08:00:00Z",
            "",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert!(parse_rfc3339("2024-02-29T08:00:00Z").is_some());
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), Some(MIN_TS_MS));
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59.999Z"), Some(MAX_TS_MS));
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59.999-01:00"), None, "past the range after the offset");
    }

    proptest::proptest! {
        /// The fast path gives what the general parser gives, on every input of its
        /// layout: valid or impossible dates, any digits, either case of `T` and `Z`.
        #[test]
        fn common_layout_agrees_with_the_general_parser(
            y in 0u32..=9999, mo in 0u32..=19, d in 0u32..=39, h in 0u32..=29, mi in 0u32..=69,
            sec in 0u32..=69, ms in 0u32..=999, t in proptest::bool::ANY, z in proptest::bool::ANY,
        ) {
            let text = format!(
                "{y:04}-{mo:02}-{d:02}{}{h:02}:{mi:02}:{sec:02}.{ms:03}{}",
                if t { 'T' } else { 't' },
                if z { 'Z' } else { 'z' }
            );
            let b = text.as_bytes();
            proptest::prop_assert_eq!(common_layout(b), Some(parse_general(b)), "{}", text);
        }

        /// The same with whole seconds or milliseconds, and `Z` or any `±HH:MM` offset.
        #[test]
        fn common_layout_agrees_with_the_general_parser_on_offsets_and_whole_seconds(
            y in 0u32..=9999, mo in 0u32..=19, d in 0u32..=39, h in 0u32..=29, mi in 0u32..=69,
            sec in 0u32..=69, ms in proptest::option::of(0u32..=999), off in proptest::option::of((proptest::bool::ANY, 0u32..=29, 0u32..=69)),
        ) {
            let frac = ms.map_or(String::new(), |ms| format!(".{ms:03}"));
            let zone = off.map_or("Z".to_owned(), |(plus, oh, om)| format!("{}{oh:02}:{om:02}", if plus { '+' } else { '-' }));
            let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}{frac}{zone}");
            let b = text.as_bytes();
            proptest::prop_assert_eq!(common_layout(b), Some(parse_general(b)), "{}", text);
        }

        /// One byte of a valid timestamp replaced by anything: the fast path either
        /// declines or agrees (a non-digit it took for a digit would show here).
        #[test]
        fn common_layout_declines_or_agrees_on_one_changed_byte(at in 0usize..24, byte in proptest::num::u8::ANY) {
            let mut b = *b"2024-02-29T23:59:59.999Z";
            b[at] = byte;
            match common_layout(&b) {
                Some(fast) => proptest::prop_assert_eq!(fast, parse_general(&b)),
                None => proptest::prop_assert!(!byte.is_ascii_digit() || [4, 7, 10, 13, 16, 19, 23].contains(&at)),
            }
        }
    }

    #[test]
    fn civil_from_days_inverts_days_from_civil() {
        for days in (-800_000..800_000).step_by(37) {
            let (y, m, d) = civil_from_days(days);
            assert!((1..=12).contains(&m) && (1..=31).contains(&d));
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(-719_468), (0, 3, 1));
    }

    #[test]
    fn formats_back() {
        assert_eq!(format_rfc3339(1_793_607_405_753), "2026-11-02T08:16:45.753Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_rfc3339(MIN_TS_MS), "0001-01-01T00:00:00.000Z");
    }

    #[test]
    fn windows_are_epoch_aligned_also_before_1970() {
        assert_eq!(window_start(125_000, 60_000), 120_000);
        assert_eq!(window_start(120_000, 60_000), 120_000);
        assert_eq!(window_start(-1, 60_000), -60_000);
    }

    #[test]
    fn window_start_saturates_instead_of_overflowing() {
        // Regression: metrics compute the window of `watermark - gap`, which saturates
        // to i64::MIN with a huge allowed_lateness; the subtraction then overflowed.
        assert_eq!(window_start(i64::MIN, 60_000), i64::MIN);
        assert_eq!(window_start(i64::MIN, 7), i64::MIN);
        assert_eq!(window_start(i64::MIN + 2, 7), i64::MIN + 1, "i64::MIN + 1 is a multiple of 7");
        assert_eq!(window_start(i64::MAX, 60_000), i64::MAX - i64::MAX % 60_000);
        assert_eq!(window_start(MIN_TS_MS, i64::MAX), -i64::MAX);
        assert_eq!(window_start(MAX_TS_MS, i64::MAX), 0);
        assert_eq!(window_start(MIN_TS_MS, 60_000), MIN_TS_MS);
        assert_eq!(window_start(MAX_TS_MS, 60_000), MAX_TS_MS - 59_999);
    }

    #[test]
    fn durations() {
        assert_eq!("500ms".parse(), Ok(DurationMs(500)));
        assert_eq!("5s".parse(), Ok(DurationMs(5000)));
        assert_eq!("30m".parse(), Ok(DurationMs(1_800_000)));
        assert_eq!("24h".parse(), Ok(DurationMs(86_400_000)));
        assert_eq!("0s".parse(), Ok(DurationMs(0)));
        for bad in ["", "5", "s", "5 s", "1.5s", "-5s", "5sec", "99999999999999999999h"] {
            assert!(bad.parse::<DurationMs>().is_err(), "{bad}");
        }
        assert_eq!(DurationMs(1_800_000).to_string(), "30m");
        assert_eq!(DurationMs(1500).to_string(), "1500ms");
    }
}
