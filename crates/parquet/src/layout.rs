//! Where files go: the Hive folders `<table>/date=YYYY-MM-DD/hour=HH` of a UTC
//! timestamp, and file names derived from the source position so that a replayed
//! batch lands on the same names.

use omnimeter_engine::time::civil_from_days;

const MS_PER_HOUR: i64 = 3_600_000;

/// Hours since the Unix epoch; floors, so times before 1970 go to the hour that
/// contains them rather than the one after.
pub fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(MS_PER_HOUR)
}

/// The folder key `<table>/date=YYYY-MM-DD/hour=HH` of an hour from [`hour_of`].
pub(crate) fn hour_dir(table: &str, hour: i64) -> String {
    let (y, m, d) = civil_from_days(hour.div_euclid(24));
    let h = hour.rem_euclid(24);
    format!("{table}/date={y:04}-{m:02}-{d:02}/hour={h:02}")
}

/// The file name of a key `<table>/date=…/hour=…/<name>` under `table`; `None`
/// for anything else, so foreign files in the tree are never touched.
pub(crate) fn file_in_hour<'k>(key: &'k str, table: &str) -> Option<&'k str> {
    let mut parts = key.split('/');
    let ok = parts.next() == Some(table)
        && parts.next().is_some_and(|p| p.starts_with("date="))
        && parts.next().is_some_and(|p| p.starts_with("hour="));
    let name = parts.next()?;
    (ok && parts.next().is_none()).then_some(name)
}

/// `p{partition:05}-o{offset:020}.parquet`: zero-padded so names sort by position.
/// A closing batch (journeys closed at the end of a finite input, with no new
/// offsets of its own) gets `-end`, so it never shares a name with the regular
/// batch that a later run starts at the same offset.
pub(crate) fn file_name(partition: i32, first_offset: i64, closing: bool) -> String {
    let end = if closing { "-end" } else { "" };
    format!("p{partition:05}-o{first_offset:020}{end}.parquet")
}

/// A file name this sink produced, recognised for cleanup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Named {
    pub(crate) partition: i32,
    pub(crate) first_offset: i64,
    pub(crate) closing: bool,
    pub(crate) temp: bool,
}

/// Parses a name made by [`file_name`] or its [`crate::store::temp_name`]; anything else is `None`
/// so foreign files in the tree are never touched.
pub(crate) fn parse_name(name: &str) -> Option<Named> {
    let (name, temp) = match name.strip_prefix('.') {
        Some(rest) => (rest.strip_suffix(".tmp")?, true),
        None => (name, false),
    };
    let name = name.strip_suffix(".parquet")?;
    let (name, closing) = match name.strip_suffix("-end") {
        Some(rest) => (rest, true),
        None => (name, false),
    };
    let (p, o) = name.strip_prefix('p')?.split_once("-o")?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(p) || !all_digits(o) {
        return None;
    }
    Some(Named { partition: p.parse().ok()?, first_offset: o.parse().ok()?, closing, temp })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::temp_name;

    fn dir(ms: i64) -> String {
        format!("r/{}", hour_dir("t", hour_of(ms)))
    }

    #[test]
    fn civil_dates_and_hours() {
        assert_eq!(dir(0), "r/t/date=1970-01-01/hour=00");
        assert_eq!(dir(3_599_999), "r/t/date=1970-01-01/hour=00");
        assert_eq!(dir(3_600_000), "r/t/date=1970-01-01/hour=01");
        // Before the epoch: the last millisecond of 1969, not hour 0 of 1970.
        assert_eq!(dir(-1), "r/t/date=1969-12-31/hour=23");
        assert_eq!(dir(-86_400_000), "r/t/date=1969-12-31/hour=00");
        assert_eq!(dir(-86_400_001), "r/t/date=1969-12-30/hour=23");
        // 2024-02-29T13:45:00Z (leap day) and the day after.
        assert_eq!(dir(1_709_214_300_000), "r/t/date=2024-02-29/hour=13");
        assert_eq!(dir(1_709_251_200_000), "r/t/date=2024-03-01/hour=00");
        // 2000-02-29 (400-year leap) and 1900-03-01 (1900 is not a leap year).
        assert_eq!(dir(951_782_400_000), "r/t/date=2000-02-29/hour=00");
        assert_eq!(dir(-2_203_891_200_000), "r/t/date=1900-03-01/hour=00");
        // 2025-12-31T23:59:59.999Z
        assert_eq!(dir(1_767_225_599_999), "r/t/date=2025-12-31/hour=23");
    }

    #[test]
    fn names_are_padded_and_parse_back() {
        let name = file_name(3, 42, false);
        assert_eq!(name, "p00003-o00000000000000000042.parquet");
        let tmp = temp_name(&name);
        assert_eq!(tmp, ".p00003-o00000000000000000042.parquet.tmp");
        assert_eq!(parse_name(&name), Some(Named { partition: 3, first_offset: 42, closing: false, temp: false }));
        assert_eq!(parse_name(&tmp), Some(Named { partition: 3, first_offset: 42, closing: false, temp: true }));
        let end = file_name(3, 42, true);
        assert_eq!(end, "p00003-o00000000000000000042-end.parquet");
        assert_eq!(parse_name(&end).map(|n| (n.first_offset, n.closing)), Some((42, true)));
        let big = file_name(123_456, i64::MAX, false);
        assert_eq!(parse_name(&big).map(|n| n.first_offset), Some(i64::MAX));
        assert_eq!(file_in_hour("t/date=2024-02-29/hour=13/x.parquet", "t"), Some("x.parquet"));
        for not_in_hour in
            ["t/x.parquet", "t/date=1/x", "u/date=1/hour=2/x", "t/date=1/hour=2/sub/x", "t/hour=1/date=2/x"]
        {
            assert_eq!(file_in_hour(not_in_hour, "t"), None, "{not_in_hour}");
        }
        for foreign in
            ["part-0.parquet", "p1-o2.parquet.bak", ".p1-o2.parquet", "p-1-o2.parquet", "p1-o+2.parquet", "_SUCCESS"]
        {
            assert_eq!(parse_name(foreign), None, "{foreign}");
        }
    }
}
