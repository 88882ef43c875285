//! The engine's identity stage (file mode: links and holds in one partition) against
//! the independent SPEC §6 reference (`identity/reference.rs`) on generated stories:
//! links before and after the anonymous events, `identify_wait` boundaries (exactly
//! equal counts as linked), shared phones, malformed `identities`, duplicates, late
//! stragglers.
//!
//! Two engines read each input: one resolves identities itself; the other does not
//! resolve at all and is fed each anonymous event with the customer the reference
//! gave it. Every table must come out the same, and the `identities` rows must be the
//! reference's: so the engine resolves as the reference does, and holding events
//! for `identify_wait` changes no table.

#![allow(clippy::unwrap_used)]

#[path = "identity/reference.rs"]
mod reference;
#[path = "identity/stories.rs"]
mod stories;

use std::borrow::Cow;

use omnimeter_engine::{DurationMs, EngineConfig, PartitionEngine, Rows, decode};
use proptest::prelude::*;

const LATENESS_MS: i64 = 5_000;

fn cfg(resolve: bool) -> EngineConfig {
    EngineConfig {
        window: DurationMs(60_000),
        gap: DurationMs(300_000),
        thread_gap: DurationMs(900_000),
        allowed_lateness: DurationMs(LATENESS_MS),
        identify_wait: DurationMs(stories::WAIT_MS),
        resolve_identities: resolve,
        ..EngineConfig::default()
    }
}

/// Every row as text, sorted: tables compare as multisets.
fn fingerprint(mut rows: Rows) -> Vec<String> {
    // Window sums of floating-point values add journeys in the order they close, and
    // that order follows the watermark's steps (a resolving engine's stage waits behind
    // anonymous events, the fed one does not): the same terms, summed in another order,
    // may differ in the last bits. Nine decimals, as the output tools compare six.
    let r = |x: &mut f64| *x = (*x * 1e9).round() / 1e9;
    rows.journey_windows.iter_mut().for_each(|w| r(&mut w.conversion_value));
    rows.paths.iter_mut().for_each(|p| r(&mut p.conversion_value));
    rows.attribution.iter_mut().for_each(|a| {
        r(&mut a.conversions);
        r(&mut a.value);
    });
    let mut out = Vec::new();
    let mut add = |table: &str, v: String| out.push(format!("{table} {v}"));
    for mut j in rows.journeys.drain(..) {
        j.partition = 0;
        add("journeys", format!("{j:?}"));
    }
    rows.activity.iter().for_each(|r| add("activity", format!("{r:?}")));
    rows.transitions.iter().for_each(|r| add("transitions", format!("{r:?}")));
    rows.journey_windows.iter().for_each(|r| add("journey_windows", format!("{r:?}")));
    rows.paths.iter().for_each(|r| add("paths", format!("{r:?}")));
    rows.friction.iter().for_each(|r| add("friction", format!("{r:?}")));
    rows.attribution.iter().for_each(|r| add("attribution", format!("{r:?}")));
    rows.rejected.iter().for_each(|r| add("rejected", format!("{} {:?}", r.offset, r.reason)));
    out.sort();
    out
}

fn identity_rows(rows: &Rows) -> Vec<(String, String, String, i64, bool)> {
    let mut v: Vec<_> = rows
        .identities
        .iter()
        .map(|r| {
            (
                r.identity_type.to_string(),
                r.identity_value.to_string(),
                r.customer_id.to_string(),
                r.linked_ts,
                r.conflict,
            )
        })
        .collect();
    v.sort();
    v
}

fn check(lines: &[String]) -> Result<(), TestCaseError> {
    let raw: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    let want = reference::resolve(&raw, stories::WAIT_MS, LATENESS_MS);

    let mut resolving = PartitionEngine::new(cfg(true), 0);
    let mut fed = PartitionEngine::new(cfg(false), 0);
    for (offset, line) in raw.iter().enumerate() {
        resolving.push(line, offset as i64);
        let decoded = decode(line).map(|mut e| {
            if e.customer_id.is_none()
                && let Some(Some(customer)) = want.customers.get(offset)
            {
                e.customer_id = Some(Cow::Owned(customer.clone()));
                e.anonymous = true;
            }
            e.identities.clear();
            e
        });
        fed.push_decoded(line, decoded, offset as i64);
    }
    resolving.finish();
    fed.finish();
    // One take at the end: both engines hand each window's aggregates out in one piece.
    let (a, b) = (resolving.take_rows(), fed.take_rows());

    let mut want_ids: Vec<_> = want
        .identities
        .iter()
        .map(|r| (r.identity_type.clone(), r.identity_value.clone(), r.customer_id.clone(), r.linked_ts, r.conflict))
        .collect();
    want_ids.sort();
    prop_assert_eq!(identity_rows(&a), want_ids, "identities rows");
    let counts = resolving.identity_counts();
    prop_assert_eq!(
        (counts.links, counts.conflicts, counts.resolved, counts.unresolved),
        (want.links, want.conflicts, want.anonymous_resolved, want.anonymous_unresolved)
    );
    let late = a.rejected.iter().filter(|r| r.reason.as_str() == "late").count();
    let want_late = want.rejections.iter().flatten().filter(|r| r.as_str() == "late").count();
    prop_assert_eq!(late, want_late, "late events");
    prop_assert_eq!(fingerprint(a), fingerprint(b));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn file_mode_resolves_as_the_reference_on_stories(lines in stories::identity_input()) {
        check(&lines)?;
    }

    #[test]
    fn file_mode_resolves_as_the_reference_with_stragglers(lines in stories::identity_input_with_stragglers()) {
        check(&lines)?;
    }
}

#[test]
fn the_public_identity_sample_agrees_with_the_reference() {
    let bytes = std::fs::read(
        std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")), std::path::PathBuf::from)
            .join("../../tests/data/public-identity.ndjson"),
    )
    .unwrap();
    // The reference takes UTF-8 lines; the few that are not are rejected by both anyway.
    let lines: Vec<String> = bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty() && std::str::from_utf8(l).is_ok())
        .map(|l| String::from_utf8(l.to_vec()).unwrap())
        .collect();
    let raw: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    let want = reference::resolve(&raw, 30 * 60_000, LATENESS_MS);
    let mut e = PartitionEngine::new(EngineConfig::default(), 0);
    for (i, l) in raw.iter().enumerate() {
        e.push(l, i as i64);
    }
    e.finish();
    let c = e.identity_counts();
    assert_eq!((c.links, c.conflicts), (want.links, want.conflicts));
    assert_eq!((c.resolved, c.unresolved), (want.anonymous_resolved, want.anonymous_unresolved));
}
