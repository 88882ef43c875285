//! Number, duration and date formatting for people: thousands separators,
//! one-decimal percentages, "2h 5m" durations and UTC timestamps.

/// `1234567` → `"1,234,567"`.
pub(crate) fn int(n: i128) -> String {
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{}", group(&n.unsigned_abs().to_string()))
}

/// Inserts a comma every three digits from the right of a digit string.
fn group(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) fn count(n: u64) -> String {
    int(i128::from(n))
}

/// Fixed decimals with a grouped integer part: `12345.678, 2` → `"12,345.68"`.
pub(crate) fn decimal(x: f64, places: usize) -> String {
    if !x.is_finite() {
        return "—".to_string();
    }
    let fixed = format!("{:.*}", places, x.abs());
    let (whole, frac) = fixed.split_once('.').unwrap_or((&fixed, ""));
    // Rounding may have produced "-0.0"; only a non-zero result keeps its sign.
    let negative = x < 0.0 && fixed.bytes().any(|b| matches!(b, b'1'..=b'9'));
    let grouped = group(whole);
    let sign = if negative { "-" } else { "" };
    if frac.is_empty() { format!("{sign}{grouped}") } else { format!("{sign}{grouped}.{frac}") }
}

/// Money-like values: two decimals, none when the value is whole.
pub(crate) fn value(x: f64) -> String {
    if (x - x.round()).abs() < 0.005 { decimal(x, 0) } else { decimal(x, 2) }
}

/// Possibly fractional counts (linear attribution): one decimal unless whole.
pub(crate) fn fractional(x: f64) -> String {
    if (x - x.round()).abs() < 0.05 { decimal(x, 0) } else { decimal(x, 1) }
}

/// A ratio as a percentage with one decimal: `0.1584` → `"15.8%"`.
pub(crate) fn percent(ratio: f64) -> String {
    format!("{}%", decimal(ratio * 100.0, 1))
}

pub(crate) fn percent_or_dash(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "—".to_string(), percent)
}

/// Two most significant units: `250_000` → `"4m 10s"`, `7_500_000` → `"2h 5m"`.
pub(crate) fn duration(ms: i64) -> String {
    const S: i64 = 1000;
    const M: i64 = 60 * S;
    const H: i64 = 60 * M;
    const D: i64 = 24 * H;
    if ms < 0 {
        return format!("-{}", duration(ms.saturating_neg()));
    }
    let two = |big: i64, big_unit: &str, small: i64, small_unit: &str| {
        if small == 0 { format!("{big}{big_unit}") } else { format!("{big}{big_unit} {small}{small_unit}") }
    };
    match ms {
        ms if ms < S => format!("{ms}ms"),
        ms if ms < M => format!("{}s", ms / S),
        ms if ms < H => two(ms / M, "m", ms % M / S, "s"),
        ms if ms < D => two(ms / H, "h", ms % H / M, "m"),
        ms => two(ms / D, "d", ms % D / H, "h"),
    }
}

/// `"2026-11-02 08:15 UTC"`.
pub(crate) fn utc(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", in_day / 3_600_000, in_day % 3_600_000 / 60_000)
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `"repeat_contact"` → `"Repeat contact"`.
pub(crate) fn humanize(key: &str) -> String {
    let spaced = key.replace('_', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => spaced,
    }
}

/// Cuts to at most `max` characters (not bytes), marking the cut with an ellipsis.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(int(0), "0");
        assert_eq!(int(999), "999");
        assert_eq!(int(1000), "1,000");
        assert_eq!(int(-1_234_567), "-1,234,567");
        assert_eq!(decimal(12345.678, 2), "12,345.68");
        assert_eq!(decimal(-0.04, 1), "0.0");
        assert_eq!(decimal(-1234.5, 1), "-1,234.5");
        assert_eq!(decimal(f64::NAN, 1), "—");
        assert_eq!(decimal(1e40, 0).len(), 41 + 13);
        assert_eq!(value(80.67), "80.67");
        assert_eq!(value(1200.0), "1,200");
        assert_eq!(fractional(2.3333), "2.3");
        assert_eq!(fractional(3.0), "3");
        assert_eq!(percent(0.15841), "15.8%");
        assert_eq!(percent(1.0), "100.0%");
        assert_eq!(percent_or_dash(None), "—");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(0), "0ms");
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(42_000), "42s");
        assert_eq!(duration(250_000), "4m 10s");
        assert_eq!(duration(240_000), "4m");
        assert_eq!(duration(7_500_000), "2h 5m");
        assert_eq!(duration(97_200_000), "1d 3h");
        assert_eq!(duration(-42_000), "-42s");
    }

    #[test]
    fn dates_and_text() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        // 2024-02-29T13:45:00Z, a leap day.
        assert_eq!(utc(1_709_214_300_000), "2024-02-29 13:45 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59 UTC");
        assert_eq!(humanize("unanswered_contact"), "Unanswered contact");
        assert_eq!(humanize(""), "");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("ééé", 3), "ééé");
        assert_eq!(truncate("éééé", 3), "éé…");
    }
}
