//! The independent identity reference (`identity/reference.rs`, written from
//! SPEC §1, §2 and §6 only) checked against the public identity sample, and the
//! identity story generator (`identity/stories.rs`) run through it.
//!
//! This file uses no engine code at all: it backs the engine's identity stage
//! the way `decode/reference.rs` backs the decoder.

#![allow(clippy::unwrap_used)]

#[path = "identity/reference.rs"]
mod reference;
#[path = "identity/stories.rs"]
mod stories;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use reference::{IdentityRow, parse_rfc3339_ms, resolve};

/// Defaults of §5.
const IDENTIFY_WAIT_MS: i64 = 30 * 60 * 1000;
const ALLOWED_LATENESS_MS: i64 = 5_000;

fn data_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")), std::path::PathBuf::from)
        .join("../../tests/data")
}

/// Non-blank lines of a file with their 0-based offsets (blank lines skipped
/// but counted in the offset, as the sample's `rejected.csv` does).
fn lines_of(bytes: &[u8]) -> Vec<(usize, &[u8])> {
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
        .map(|(i, l)| (i, l.strip_suffix(b"\r").unwrap_or(l)))
        .collect()
}

fn read_csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            headers.iter().map(str::to_owned).zip(r.iter().map(str::to_owned)).collect()
        })
        .collect()
}

#[test]
fn rfc3339_parser_basics() {
    assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00.1239Z"), Some(123));
    assert_eq!(parse_rfc3339_ms("1970-01-01T01:00:00+01:00"), Some(0));
    assert_eq!(parse_rfc3339_ms("1969-12-31T19:00:00-05:00"), Some(0));
    assert_eq!(parse_rfc3339_ms("2026-11-03T00:00:00.000Z"), Some(1_793_664_000_000));
    assert_eq!(parse_rfc3339_ms("2024-02-29T00:00:00Z"), Some(1_709_164_800_000));
    assert_eq!(parse_rfc3339_ms("2026-02-29T00:00:00Z"), None);
    assert_eq!(parse_rfc3339_ms("2026-02-30T10:00:00Z"), None);
    assert_eq!(parse_rfc3339_ms("2026-11-02T07:07:10.838"), None);
    assert_eq!(parse_rfc3339_ms("2026-11-02T24:00:00Z"), None);
    assert_eq!(parse_rfc3339_ms("2026-11-02T07:07:10.Z"), None);
    assert_eq!(parse_rfc3339_ms("1793347200000"), None);
}

/// One event line; `customer` `Some("null")` writes `"customer_id": null`.
fn line(id: &str, ts: i64, customer: Option<&str>, ids: Option<&str>) -> String {
    let customer = match customer {
        Some("null") => r#","customer_id":null"#.to_owned(),
        Some(c) => format!(r#","customer_id":"{c}""#),
        None => String::new(),
    };
    let ids = ids.map(|i| format!(r#","identities":{i}"#)).unwrap_or_default();
    format!(r#"{{"event_id":"{id}","ts":{ts}{customer}{ids},"channel":"web","type":"touch"}}"#)
}

fn row(t: &str, v: &str, c: &str, ts: i64, conflict: bool) -> IdentityRow {
    IdentityRow { identity_type: t.into(), identity_value: v.into(), customer_id: c.into(), linked_ts: ts, conflict }
}

/// The §6 rules on a hand-made story, expectations worked out from the SPEC
/// text (identify_wait 60 s, allowed_lateness 5 s).
#[test]
fn reference_follows_spec_on_a_hand_made_story() {
    let p = Some(r#"{"phone":"P"}"#);
    let k = Some(r#"{"cookie":"K"}"#);
    let lines = [
        line("a1", 39_999, None, p),        // 0: ts + wait < owner link: anon
        line("a2", 40_000, None, p),        // 1: ts + wait = owner link: c1
        line("l1", 100_000, Some("c1"), p), // 2: owner of P
        line("a3", 100_005, None, p),       // 3: c1
        line("l2", 200_000, Some("c2"), p), // 4: conflict
        line("l3", 300_000, Some("c1"), p), // 5: the owner again: no row
        line("l4", 400_000, Some("c2"), p), // 6: conflict
        line("z", 500_000, Some("c3"), k),  // 7: same ts as 8, later event_id: conflict
        line("a", 500_000, Some("c4"), k),  // 8: owner of K
        line("a4", 600_000, None, Some(r#"{"phone":"P","cookie":"K"}"#)), // 9: P's link first: c1
        line("a5", 600_000, None, Some(r#"{"loyalty":"L9","cookie":"Q"}"#)), // 10: anon:cookie:Q
        line("l5", 594_999, Some("c5"), Some(r#"{"loyalty":"L7"}"#)), // 11: late, links nothing
        line("a6", 595_000, None, Some(r#"{"loyalty":"L7"}"#)), // 12: on the watermark: accepted, anon
        line("bad1", 600_000, Some("c1"), Some("{}")), // 13: field_length
        line("bad2", 600_000, None, None),  // 14: missing_field
        line("a7", 600_000, Some("null"), Some(r#"{"cookie":"K2"}"#)), // 15: link at ts + wait: c2
        line("l6", 660_000, Some("c2"), Some(r#"{"cookie":"K2"}"#)), // 16: owner of K2
        line("l7", 660_000, Some("c1"), Some(r#"{"cookie":"K2"}"#)), // 17: conflict
        line("l7", 660_000, Some("c1"), Some(r#"{"cookie":"K2"}"#)), // 18: re-delivery: same link, no row
    ];
    let bytes: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    let res = resolve(&bytes, 60_000, 5_000);
    let some = |c: &str| Some(c.to_owned());
    assert_eq!(
        res.customers,
        vec![
            some("anon:phone:P"),
            some("c1"),
            some("c1"),
            some("c1"),
            some("c2"),
            some("c1"),
            some("c2"),
            some("c3"),
            some("c4"),
            some("c1"),
            some("anon:cookie:Q"),
            None,
            some("anon:loyalty:L7"),
            None,
            None,
            some("c2"),
            some("c2"),
            some("c1"),
            some("c1"),
        ]
    );
    let anonymous: Vec<usize> = (0..lines.len()).filter(|&i| res.anonymous[i]).collect();
    assert_eq!(anonymous, vec![0, 1, 3, 9, 10, 12, 15]);
    use reference::Reject;
    assert_eq!(res.rejections[11], Some(Reject::Late));
    assert_eq!(res.rejections[13], Some(Reject::FieldLength));
    assert_eq!(res.rejections[14], Some(Reject::MissingField));
    let mut expected = vec![
        row("phone", "P", "c1", 100_000, false),
        row("phone", "P", "c2", 200_000, true),
        row("phone", "P", "c2", 400_000, true),
        row("cookie", "K", "c4", 500_000, false),
        row("cookie", "K", "c3", 500_000, true),
        row("cookie", "K2", "c2", 660_000, false),
        row("cookie", "K2", "c1", 660_000, true),
    ];
    expected.sort();
    assert_eq!(res.identities, expected);
    assert_eq!((res.links, res.conflicts), (3, 4));
    assert_eq!((res.anonymous_resolved, res.anonymous_unresolved), (4, 3));
}

#[test]
fn reference_matches_public_identity_sample() {
    let dir = data_dir();
    let raw = std::fs::read(dir.join("public-identity.ndjson")).unwrap();
    let numbered = lines_of(&raw);
    let lines: Vec<&[u8]> = numbered.iter().map(|&(_, l)| l).collect();
    let res = resolve(&lines, IDENTIFY_WAIT_MS, ALLOWED_LATENESS_MS);
    assert_eq!(res.customers.len(), lines.len());
    assert_eq!(res.anonymous.len(), lines.len());

    let expected_dir = dir.join("public-identity.expected");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(expected_dir.join("summary.json")).unwrap()).unwrap();

    // Rejections: same lines, same reasons (and nothing late).
    let mut expected_rejected: BTreeMap<usize, String> = BTreeMap::new();
    for row in read_csv(&expected_dir.join("rejected.csv")) {
        expected_rejected.insert(row["offset"].parse().unwrap(), row["reason"].clone());
    }
    let ours_rejected: BTreeMap<usize, String> = numbered
        .iter()
        .zip(&res.rejections)
        .filter_map(|(&(off, _), r)| r.map(|r| (off, r.as_str().to_owned())))
        .collect();
    assert_eq!(ours_rejected, expected_rejected, "rejected lines and reasons");
    let accepted = res.customers.iter().filter(|c| c.is_some()).count();
    assert_eq!(accepted as u64, summary["accepted"].as_u64().unwrap());

    // identities.csv, as a multiset.
    let mut expected_rows: Vec<IdentityRow> = read_csv(&expected_dir.join("identities.csv"))
        .into_iter()
        .map(|r| IdentityRow {
            identity_type: r["identity_type"].clone(),
            identity_value: r["identity_value"].clone(),
            customer_id: r["customer_id"].clone(),
            linked_ts: parse_rfc3339_ms(&r["linked_ts"]).unwrap(),
            conflict: r["conflict"].parse().unwrap(),
        })
        .collect();
    expected_rows.sort();
    let mut ours = res.identities.clone();
    ours.sort();
    if ours != expected_rows {
        let e: BTreeSet<_> = expected_rows.iter().collect();
        let o: BTreeSet<_> = ours.iter().collect();
        panic!(
            "identities differ\nonly expected: {:#?}\nonly ours: {:#?}\n({} expected rows, {} ours)",
            e.difference(&o).collect::<Vec<_>>(),
            o.difference(&e).collect::<Vec<_>>(),
            expected_rows.len(),
            ours.len()
        );
    }

    // The four identity counts of summary.json.
    assert_eq!(res.links, summary["identity_links"].as_u64().unwrap(), "identity_links");
    assert_eq!(res.conflicts, summary["identity_conflicts"].as_u64().unwrap(), "identity_conflicts");
    assert_eq!(res.anonymous_resolved, summary["anonymous_resolved"].as_u64().unwrap(), "anonymous_resolved");
    assert_eq!(res.anonymous_unresolved, summary["anonymous_unresolved"].as_u64().unwrap(), "anonymous_unresolved");

    // journeys.csv: per customer, the anonymous events of its journeys. Journeys
    // count processed events only, so a duplicate (a repeat of an event_id in
    // the same journey) is not in them; the sample's duplicates are exact
    // re-deliveries, so counting each (customer, journey_id, event_id, ts) once
    // gives the processed events.
    let mut expected_anon: BTreeMap<String, u64> = BTreeMap::new();
    for row in read_csv(&expected_dir.join("journeys.csv")) {
        let n: u64 = row["anonymous_events"].parse().unwrap();
        if n > 0 {
            *expected_anon.entry(row["customer_id"].clone()).or_default() += n;
        }
    }
    let mut ours_anon: BTreeMap<String, u64> = BTreeMap::new();
    let mut seen = HashSet::new();
    for (i, line) in lines.iter().enumerate() {
        if !res.anonymous[i] {
            continue;
        }
        let customer = res.customers[i].clone().unwrap();
        let v: serde_json::Value = serde_json::from_slice(line).unwrap();
        let journey = v.get("journey_id").and_then(|j| j.as_str()).map(str::to_owned);
        let ts = reference::decode(line).unwrap().ts;
        let event_id = v["event_id"].as_str().unwrap().to_owned();
        if seen.insert((customer.clone(), journey, event_id, ts)) {
            *ours_anon.entry(customer).or_default() += 1;
        }
    }
    assert_eq!(ours_anon, expected_anon, "anonymous events per customer");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn reference_handles_identity_stories(lines in stories::identity_input()) {
        let bytes: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        let res = resolve(&bytes, stories::WAIT_MS, ALLOWED_LATENESS_MS);
        prop_assert_eq!(res.customers.len(), lines.len());
        prop_assert_eq!(res.anonymous.len(), lines.len());
        // The strategy's arrival jitter stays within the lateness: nothing late.
        prop_assert!(res.rejections.iter().all(|r| *r != Some(reference::Reject::Late)));
        let owners = res.identities.iter().filter(|r| !r.conflict).count() as u64;
        prop_assert_eq!(owners, res.links);
        prop_assert_eq!(res.identities.len() as u64, res.links + res.conflicts);
        let anon = res.anonymous.iter().filter(|&&a| a).count() as u64;
        prop_assert_eq!(anon, res.anonymous_resolved + res.anonymous_unresolved);
        for (c, &a) in res.customers.iter().zip(&res.anonymous) {
            if let Some(c) = c {
                let known = stories::CUSTOMERS.contains(&c.as_str());
                prop_assert!(known || (a && c.starts_with("anon:")), "customer {}", c);
            }
        }
        // Arrival order does not matter when nothing is late.
        let mut reversed = bytes.clone();
        reversed.reverse();
        let back = resolve(&reversed, stories::WAIT_MS, i64::MAX / 4);
        prop_assert_eq!(&back.identities, &res.identities);
        let mut bwd = back.customers.clone();
        bwd.reverse();
        prop_assert_eq!(&bwd, &res.customers);
    }

    #[test]
    fn reference_handles_stragglers(lines in stories::identity_input_with_stragglers()) {
        let bytes: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        let res = resolve(&bytes, stories::WAIT_MS, ALLOWED_LATENESS_MS);
        prop_assert_eq!(res.customers.len(), lines.len());
    }
}
