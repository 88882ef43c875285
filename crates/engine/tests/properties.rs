//! Properties of the engine over generated inputs: arrival order within the
//! allowed lateness changes no table, hop counts agree between tables, and no
//! byte string can panic it.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use omnimeter_engine::{DurationMs, EngineConfig, PartitionEngine, Rows};
use proptest::prelude::*;

const CHANNELS: [&str; 4] = ["web", "app", "phone", "store"];
const TYPES: [&str; 8] =
    ["touch", "contact", "reply", "request_opened", "request_resolved", "conversion", "error", "abandon"];

fn cfg() -> EngineConfig {
    EngineConfig {
        window: DurationMs(60_000),
        gap: DurationMs(600_000),
        thread_gap: DurationMs(1_800_000),
        allowed_lateness: DurationMs(5_000),
        reply_sla: DurationMs(120_000),
        max_path: 3,
        ..EngineConfig::default()
    }
}

#[derive(Debug, Clone)]
struct Ev {
    ts: i64,
    json: String,
}

/// Events in ts order: steps that hit 0 (ties), exactly `gap` and just below it.
fn events() -> impl Strategy<Value = Vec<Ev>> {
    let step = prop_oneof![Just(0i64), 1i64..3_000, Just(600_000), Just(599_999), 1i64..700_000];
    prop::collection::vec((step, 0usize..3, 0usize..4, 0usize..8, 0u8..4, 0u32..40, 0u8..5), 1..80).prop_map(|raw| {
        let mut ts = 1_793_606_400_000i64;
        raw.into_iter()
            .map(|(dt, cust, ch, ty, thread, id, step)| {
                ts += dt;
                let thread = if thread == 0 { ",\"journey_id\":\"case-1\"".to_owned() } else { String::new() };
                let step = if step == 0 { String::new() } else { format!(",\"step\":\"s{step}\"") };
                let value = if TYPES[ty] == "conversion" { format!(",\"value\":{}.25", id) } else { String::new() };
                // A small id pool makes repeats (duplicates) and same-ts ties common.
                let json = format!(
                    "{{\"event_id\":\"e{id}\",\"ts\":{ts},\"customer_id\":\"c{cust}\"{thread},\"channel\":\"{}\",\"type\":\"{}\"{step}{value}}}",
                    CHANNELS[ch], TYPES[ty]
                );
                Ev { ts, json }
            })
            .collect()
    })
}

fn run(evs: &[&Ev]) -> Rows {
    let mut e = PartitionEngine::new(cfg(), 0);
    for (i, ev) in evs.iter().enumerate() {
        e.push(ev.json.as_bytes(), i as i64);
    }
    e.finish();
    e.take_rows()
}

/// Each table as sorted text lines with summed metrics, so that row splits and order do not matter.
fn canonical(rows: &Rows) -> BTreeMap<&'static str, Vec<String>> {
    fn sum(lines: impl Iterator<Item = (String, Vec<f64>)>) -> Vec<String> {
        let mut m: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for (k, v) in lines {
            let e = m.entry(k).or_insert_with(|| vec![0.0; v.len()]);
            e.iter_mut().zip(v).for_each(|(a, b)| *a += b);
        }
        m.into_iter()
            .map(|(k, v)| format!("{k} {}", v.iter().map(|x| format!("{x:.6}")).collect::<Vec<_>>().join(" ")))
            .collect()
    }
    let mut t = BTreeMap::new();
    let mut journeys: Vec<String> = rows.journeys.iter().map(|j| format!("{j:?}")).collect();
    journeys.sort();
    t.insert("journeys", journeys);
    t.insert(
        "activity",
        sum(rows
            .activity
            .iter()
            .map(|r| (format!("{} {} {:?}", r.window_start, r.channel, r.event_type), vec![r.events as f64]))),
    );
    t.insert(
        "transitions",
        sum(rows
            .transitions
            .iter()
            .map(|r| (format!("{} {} {}", r.window_start, r.from_channel, r.to_channel), vec![r.hops as f64]))),
    );
    t.insert(
        "journey_windows",
        sum(rows.journey_windows.iter().map(|r| {
            (
                format!(
                    "{} {} {:?} {:?} {:?} {:?}",
                    r.window_start,
                    r.first_channel,
                    r.outcome,
                    r.resolution_ms_p50,
                    r.resolution_ms_p90,
                    r.resolution_ms_p99
                ),
                vec![
                    r.journeys as f64,
                    r.hops as f64,
                    r.conversion_value,
                    r.resolved as f64,
                    r.resolution_ms_sum as f64,
                    r.fcr as f64,
                ],
            )
        })),
    );
    t.insert(
        "paths",
        sum(rows.paths.iter().map(|r| {
            (
                format!("{} {}", r.window_start, r.path),
                vec![r.journeys as f64, r.conversions as f64, r.conversion_value],
            )
        })),
    );
    t.insert(
        "friction",
        sum(rows.friction.iter().map(|r| {
            (format!("{} {:?} {} {:?}", r.window_start, r.kind, r.channel, r.step), vec![r.occurrences as f64])
        })),
    );
    t.insert(
        "attribution",
        sum(rows
            .attribution
            .iter()
            .map(|r| (format!("{} {:?} {}", r.window_start, r.model, r.channel), vec![r.conversions, r.value]))),
    );
    t.insert("rejected", rows.rejected.iter().map(|r| format!("{:?}", r.reason)).collect());
    t
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Delaying each event by up to `allowed_lateness` (never making it late) changes no table.
    #[test]
    fn arrival_order_within_lateness_changes_no_table(evs in events(), delays in prop::collection::vec(0i64..=5_000, 80)) {
        let in_order: Vec<&Ev> = evs.iter().collect();
        let mut shuffled: Vec<(i64, usize, &Ev)> = evs.iter().enumerate().map(|(i, e)| (e.ts + delays[i % delays.len()], i, e)).collect();
        shuffled.sort_by_key(|&(arrival, i, _)| (arrival, i));
        let shuffled: Vec<&Ev> = shuffled.into_iter().map(|(_, _, e)| e).collect();
        let a = run(&in_order);
        let b = run(&shuffled);
        prop_assert!(a.rejected.is_empty() && b.rejected.is_empty(), "nothing may be late");
        prop_assert_eq!(canonical(&a), canonical(&b));
    }

    /// Every hop is counted once in `transitions` and once in its journey.
    #[test]
    fn transitions_and_journeys_count_the_same_hops(evs in events()) {
        let rows = run(&evs.iter().collect::<Vec<_>>());
        let t: i64 = rows.transitions.iter().map(|r| r.hops).sum();
        let j: i64 = rows.journeys.iter().map(|r| r.hops).sum();
        let w: i64 = rows.journey_windows.iter().map(|r| r.hops).sum();
        prop_assert_eq!(t, j);
        prop_assert_eq!(w, j);
        let events: i64 = rows.journeys.iter().map(|r| r.events).sum();
        let activity: i64 = rows.activity.iter().map(|r| r.events).sum();
        prop_assert_eq!(events, activity);
    }

    /// Arbitrary bytes are rejected with a reason, never a panic, and each gets a `rejected` row.
    #[test]
    fn arbitrary_bytes_never_panic(inputs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..50)) {
        let mut e = PartitionEngine::new(cfg(), 3);
        for (i, raw) in inputs.iter().enumerate() {
            e.push(raw, i as i64);
        }
        e.finish();
        let rows = e.take_rows();
        prop_assert_eq!(rows.rejected.len() as u64 + e.stats().accepted, inputs.len() as u64);
    }

    /// JSON-shaped noise (valid objects with random field types) never panics either.
    #[test]
    fn json_shaped_noise_never_panics(fields in prop::collection::vec((prop::sample::select(vec!["event_id", "ts", "customer_id", "journey_id", "channel", "type", "step", "value", "attrs"]), prop_oneof![
        Just("null".to_owned()), Just("true".to_owned()), any::<i64>().prop_map(|n| n.to_string()), any::<f64>().prop_map(|f| format!("{f:?}")),
        "[a-z0-9_]{0,40}".prop_map(|s| format!("\"{s}\"")), Just("{}".to_owned()), Just("[1]".to_owned()), Just("\"2026-11-02T08:00:00Z\"".to_owned()),
        Just("1e999".to_owned()), Just("-1".to_owned()), Just("\"touch\"".to_owned()),
    ]), 0..12)) {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        let json = format!("{{{}}}", body.join(","));
        let mut e = PartitionEngine::new(cfg(), 0);
        e.push(json.as_bytes(), 0);
        e.finish();
        let rows = e.take_rows();
        prop_assert_eq!(rows.rejected.len() as u64 + e.stats().accepted, 1);
    }
}
