//! Fuzzing the decoder and the engine with proptest: arbitrary bytes, byte-level
//! mutations of valid events, structure-aware hostile JSON (wrong types, huge
//! numbers, odd unicode, missing, extra and repeated keys, deep nesting) and
//! hostile engine settings. Nothing may panic, and what goes in must come out:
//! every payload is counted or rejected with a reason, row counts add up across
//! tables, and a checkpoint → restore in the middle changes no row.
//!
//! The budget is per target, from `OMNIMETER_FUZZ_CASES` (default [`CI_CASES`],
//! about a minute for the whole file in a debug build). The longer run:
//!
//!     OMNIMETER_FUZZ_CASES=250000 cargo test --release -p omnimeter-engine --test fuzz
//!
//! Failures shrink to a minimal input, which proptest saves to
//! `tests/fuzz.proptest-regressions` and replays first from then on.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use omnimeter_engine::time::{MAX_TS_MS, MIN_TS_MS, format_rfc3339};
use omnimeter_engine::{
    DurationMs, EngineConfig, Event, FrictionKind, MAX_PAYLOAD_BYTES, Outcome, PartitionEngine, RejectReason, Rows,
    Stats, Tally, decode,
};
use proptest::prelude::*;
use proptest::sample::Index;

/// Cases per target when `OMNIMETER_FUZZ_CASES` is not set.
const CI_CASES: u32 = 2_000;

fn fuzz_config() -> ProptestConfig {
    let cases = std::env::var("OMNIMETER_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(CI_CASES);
    ProptestConfig { cases, max_shrink_iters: 4_096, ..ProptestConfig::default() }
}

const T0: i64 = 1_793_606_400_000; // 2026-11-02T08:00:00Z

/// A JSON string literal.
fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

// ---------------------------------------------------------------- values

/// Strings that probe lengths (bytes, not chars), escapes and odd unicode, as JSON text.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(js("")),
        Just(js(&"x".repeat(128))),
        Just(js(&"x".repeat(129))),
        Just(js(&"é".repeat(64))),
        Just(js(&"é".repeat(65))),
        Just(js(&"😀".repeat(32))),
        Just(js(&"😀".repeat(33))),
        Just(js(&"s".repeat(64))),
        Just(js(&"s".repeat(65))),
        Just(js("\u{0}")),
        Just(js("\u{202e}web")),
        Just(js("we\u{301}b")),
        Just(js("\u{feff}web")),
        Just(js("\u{fffd}")),
        Just(js("web ")),
        Just(js("Web")),
        Just(r#""\u0077eb""#.to_owned()),
        Just(r#""\ud800""#.to_owned()),
        Just(r#""\udc00\ud800""#.to_owned()),
        Just(r#""\ud83d\ude00""#.to_owned()),
        Just("\"raw\u{1}control\"".to_owned()),
        Just("\"unterminated".to_owned()),
        Just(r#""bad \q escape""#.to_owned()),
        any::<String>().prop_map(|s| js(&s)),
        "[a-z0-9_]{0,40}".prop_map(|s| js(&s)),
    ]
}

fn hostile_number() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_owned()),
        Just("-0".to_owned()),
        Just("0.0".to_owned()),
        Just("1e308".to_owned()),
        Just("1.7976931348623157e308".to_owned()),
        Just("1e309".to_owned()),
        Just("-1e309".to_owned()),
        Just("1e-400".to_owned()),
        Just("-1".to_owned()),
        Just("2.5E+2".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("-9223372036854775808".to_owned()),
        Just("9223372036854775807".to_owned()),
        Just("-9223372036854775809".to_owned()),
        Just(MIN_TS_MS.to_string()),
        Just((MIN_TS_MS - 1).to_string()),
        Just(MAX_TS_MS.to_string()),
        Just((MAX_TS_MS + 1).to_string()),
        Just("1".repeat(400)),
        Just("01".to_owned()),
        Just("1.".to_owned()),
        Just("+1".to_owned()),
        Just("NaN".to_owned()),
        Just("-Infinity".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        any::<u64>().prop_map(|n| n.to_string()),
    ]
}

/// Nested arrays and objects; deep ones come close to the 64 KiB payload limit.
fn nested() -> impl Strategy<Value = String> {
    let depth = prop_oneof![8 => 0usize..8, 2 => 100usize..300, 1 => Just(30_000usize), 1 => Just(40_000usize)];
    (depth, any::<bool>(), any::<bool>()).prop_map(|(d, objects, closed)| {
        let (open, close) = if objects { ("{\"a\":", "}") } else { ("[", "]") };
        let mut s = String::with_capacity(d * (open.len() + close.len()) + 2);
        for _ in 0..d {
            s.push_str(open);
        }
        s.push('1');
        if closed {
            for _ in 0..d {
                s.push_str(close);
            }
        }
        if objects { format!("{{\"n\":{s}}}") } else { s }
    })
}

fn any_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just(r#"{"a":1,"a":[true,null]}"#.to_owned()),
        hostile_string(),
        hostile_number(),
        nested(),
    ]
}

/// How a valid instant is written: SPEC allows epoch ms or RFC 3339 with any offset.
fn ts_text(ms: i64, form: u8) -> String {
    match form % 6 {
        0 | 1 => ms.to_string(),
        2 => js(&format_rfc3339(ms)),
        3 => {
            // Same instant at +05:30; beyond the range that is a bad_ts, which is fine too.
            let local = format_rfc3339(ms + 330 * 60_000);
            js(&format!("{}+05:30", local.trim_end_matches('Z')))
        }
        4 => js(&format_rfc3339(ms).replace('T', "t").replace('Z', "z")),
        _ => js(&format!("{}999999Z", format_rfc3339(ms).trim_end_matches('Z'))),
    }
}

fn hostile_ts() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(js("0001-01-01T00:00:00Z")),
        Just(js("0001-01-01T00:00:00+00:01")),
        Just(js("0000-12-31T23:59:59.999Z")),
        Just(js("9999-12-31T23:59:59.999Z")),
        Just(js("9999-12-31T23:59:59.999-23:59")),
        Just(js("10000-01-01T00:00:00Z")),
        Just(js("2016-12-31T23:59:60Z")),
        Just(js("2026-11-02T08:00:00+23:59")),
        Just(js("2026-11-02T08:00:00-23:59")),
        Just(js("2026-11-02T08:00:00+99:99")),
        Just(js("2024-02-29T12:00:00Z")),
        Just(js("2023-02-29T12:00:00Z")),
        Just(js("2026-11-02T08:00:00.1234567890123456789Z")),
        Just(js("2026-11-02T08:00:00")),
        Just(js("2026-11-02 08:00:00Z")),
        Just(js("1793606400000")),
        Just(js("２０２６-11-02T08:00:00Z")),
        hostile_number(),
        any::<i64>().prop_map(|ms| ts_text(ms.clamp(MIN_TS_MS, MAX_TS_MS), 2)),
    ]
}

// ---------------------------------------------------------------- events

const CHANNELS: [&str; 6] = ["web", "app", "phone", "store", "x_9", "a_very_long_channel_name_of_32_b"];
const TYPES: [&str; 8] =
    ["touch", "contact", "reply", "request_opened", "request_resolved", "conversion", "error", "abandon"];

/// One event as `(key, value)` JSON text pairs, mostly valid so that the engine
/// has journeys to build, with hostile values, keys and shapes mixed in.
#[derive(Debug, Clone)]
struct EventSpec {
    fields: Vec<(String, String)>,
    /// Byte-level damage after rendering: none, or (position, kind, byte).
    damage: Option<(Index, u8, u8)>,
}

impl EventSpec {
    fn render(&self) -> Vec<u8> {
        let body: Vec<String> = self.fields.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        let mut raw = format!("{{{}}}", body.join(",")).into_bytes();
        if let Some((at, kind, byte)) = self.damage {
            let i = at.index(raw.len());
            match kind % 4 {
                0 => raw[i] = byte,
                1 => raw.truncate(i),
                2 => raw.insert(i, byte),
                _ => {
                    raw.remove(i);
                }
            }
        }
        raw
    }
}

/// What one required field gets: its valid value (which depends on the running
/// ts and other choices, so it is filled in later), nothing, or other JSON text.
#[derive(Debug, Clone)]
enum Choice {
    Valid,
    Absent,
    Text(String),
}

/// Usually the valid value, sometimes absent, null or hostile.
fn field(hostile: impl Strategy<Value = String>) -> impl Strategy<Value = Choice> {
    prop_oneof![
        120 => Just(Choice::Valid),
        1 => Just(Choice::Absent),
        1 => Just(Choice::Text("null".to_owned())),
        2 => hostile.prop_map(Choice::Text),
    ]
}

#[derive(Debug, Clone)]
struct Base {
    dt: i64,
    customer: usize,
    thread: Option<usize>,
    channel: usize,
    ty: usize,
    id: u32,
    step: Option<usize>,
    value: Option<u32>,
    ts_form: u8,
}

fn base() -> impl Strategy<Value = Base> {
    // Time steps hit ties, the lateness and gap boundaries, and rare huge jumps.
    let dt = prop_oneof![
        30 => Just(0i64),
        100 => 1i64..3_000,
        20 => 3_000i64..700_000,
        10 => -10_000i64..0,
        5 => prop_oneof![Just(600_000i64), Just(599_999), Just(1_800_000), Just(86_400_000), Just(-86_400_000)],
        1 => prop_oneof![Just(i64::MAX), Just(i64::MIN), Just(MAX_TS_MS), Just(MIN_TS_MS)],
    ];
    (
        dt,
        0usize..4,
        prop::option::weighted(0.2, 0usize..2),
        0usize..CHANNELS.len(),
        0usize..TYPES.len(),
        0u32..40,
        prop::option::weighted(0.5, 0usize..4),
        prop::option::weighted(0.3, 0u32..500),
        any::<u8>(),
    )
        .prop_map(|(dt, customer, thread, channel, ty, id, step, value, ts_form)| Base {
            dt,
            customer,
            thread,
            channel,
            ty,
            id,
            step,
            value,
            ts_form,
        })
}

/// Mutations of the field list: repeats with another value, extra keys, escaped keys, reordering.
#[derive(Debug, Clone)]
enum Mutation {
    Repeat(Index, String),
    Extra(String, String),
    EscapeKey(Index),
    Swap(Index, Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), any_value()).prop_map(|(i, v)| Mutation::Repeat(i, v)),
        (prop_oneof![Just(js("extra")), Just(js("")), Just(js("ts ")), hostile_string()], any_value())
            .prop_map(|(k, v)| Mutation::Extra(k, v)),
        any::<Index>().prop_map(Mutation::EscapeKey),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
    ]
}

fn event_specs() -> impl Strategy<Value = Vec<EventSpec>> {
    let per_event = (
        base(),
        field(hostile_string()),
        field(prop_oneof![hostile_ts(), any_value()]),
        field(hostile_string()),
        field(prop_oneof![hostile_string(), any_value()]),
        field(prop_oneof![hostile_string(), any_value()]),
        prop_oneof![12 => Just(None), 1 => any_value().prop_map(Some)],
        prop_oneof![
            12 => Just(None),
            4 => Just(Some(r#"{"k":"v","k":{"deep":[1,{"x":null}]}}"#.to_owned())),
            1 => any_value().prop_map(Some),
            1 => nested().prop_map(|n| Some(format!("{{\"n\":{n}}}"))),
        ],
        prop_oneof![4 => Just(Vec::new()), 1 => prop::collection::vec(mutation(), 1..3)],
        prop::option::weighted(0.03, (any::<Index>(), any::<u8>(), any::<u8>())),
    );
    prop::collection::vec(per_event, 1..48).prop_map(|raw| {
        let mut ts = T0;
        raw.into_iter()
            .map(|(b, id, ts_f, cust, channel, ty, value, attrs, mutations, damage)| {
                ts = ts.saturating_add(b.dt).clamp(MIN_TS_MS, MAX_TS_MS);
                let pick = |choice: Choice, valid: String| match choice {
                    Choice::Valid => Some(valid),
                    Choice::Absent => None,
                    Choice::Text(t) => Some(t),
                };
                let mut fields: Vec<(String, Option<String>)> = vec![
                    (js("event_id"), pick(id, js(&format!("e{}", b.id)))),
                    (js("ts"), pick(ts_f, ts_text(ts, b.ts_form))),
                    (js("customer_id"), pick(cust, js(&format!("c{}", b.customer)))),
                    (js("channel"), pick(channel, js(CHANNELS[b.channel]))),
                    (js("type"), pick(ty, js(TYPES[b.ty]))),
                ];
                if let Some(t) = b.thread {
                    fields.push((js("journey_id"), Some(js(&format!("case-{t}")))));
                }
                if let Some(s) = b.step {
                    fields.push((js("step"), Some(js(["login", "checkout", "payment", "é"][s]))));
                }
                match (value, b.value) {
                    (Some(v), _) => fields.push((js("value"), Some(v))),
                    (None, Some(v)) => fields.push((js("value"), Some(format!("{}.5", v)))),
                    (None, None) => {}
                }
                if let Some(a) = attrs {
                    fields.push((js("attrs"), Some(a)));
                }
                let mut fields: Vec<(String, String)> =
                    fields.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect();
                for m in mutations {
                    if fields.is_empty() {
                        break;
                    }
                    match m {
                        Mutation::Repeat(i, v) => {
                            let k = fields[i.index(fields.len())].0.clone();
                            fields.push((k, v));
                        }
                        Mutation::Extra(k, v) => fields.push((k, v)),
                        Mutation::EscapeKey(i) => {
                            // "ts" as "\u0074s": the same key once unescaped.
                            let n = fields.len();
                            let k = &mut fields[i.index(n)].0;
                            if let Some(c) = k.chars().nth(1).filter(char::is_ascii_alphabetic) {
                                *k = format!("\"\\u{:04x}{}", c as u32, &k[2..]);
                            }
                        }
                        Mutation::Swap(a, b) => {
                            let n = fields.len();
                            fields.swap(a.index(n), b.index(n));
                        }
                    }
                }
                EventSpec { fields, damage }
            })
            .collect()
    })
}

fn engine_config() -> impl Strategy<Value = EngineConfig> {
    let d = |v: Vec<i64>| prop::sample::select(v).prop_map(DurationMs);
    (
        d(vec![1, 1_000, 60_000, 3_600_000, i64::MAX]),
        d(vec![1, 1_000, 600_000, 1_800_000, i64::MAX]),
        d(vec![1, 600_000, 86_400_000, i64::MAX]),
        d(vec![0, 1, 5_000, 86_400_000, i64::MAX]),
        d(vec![0, 1_000, 900_000, i64::MAX]),
        prop::sample::select(vec![1usize, 2, 3, 12, 1024]),
    )
        .prop_map(|(window, gap, thread_gap, allowed_lateness, reply_sla, max_path)| EngineConfig {
            window,
            gap,
            thread_gap,
            allowed_lateness,
            reply_sla,
            max_path,
            ..EngineConfig::default()
        })
}

// ---------------------------------------------------------------- checks

/// What `decode` promises about an event it accepts (SPEC §1).
fn check_event(e: &Event<'_>) -> Result<(), TestCaseError> {
    prop_assert!((1..=128).contains(&e.event_id.len()));
    prop_assert!(e.customer_id.as_ref().is_none_or(|c| (1..=128).contains(&c.len())));
    prop_assert!(e.customer_id.is_some() || !e.identities.is_empty());
    prop_assert!(e.identities.len() <= 8);
    prop_assert!(e.journey_id.as_ref().is_none_or(|j| (1..=128).contains(&j.len())));
    prop_assert!((1..=32).contains(&e.channel.len()));
    prop_assert!(e.channel.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'));
    prop_assert!(e.step.as_ref().is_none_or(|s| (1..=64).contains(&s.len())));
    prop_assert!(e.value.is_none_or(|v| v.is_finite() && v >= 0.0));
    prop_assert!((MIN_TS_MS..=MAX_TS_MS).contains(&e.ts));
    // An accepted event written back canonically decodes to the same event.
    let mut obj = serde_json::Map::new();
    obj.insert("event_id".into(), e.event_id.as_ref().into());
    obj.insert("ts".into(), e.ts.into());
    if let Some(c) = &e.customer_id {
        obj.insert("customer_id".into(), c.as_ref().into());
    }
    if !e.identities.is_empty() {
        let ids: serde_json::Map<_, _> = e.identities.iter().map(|(t, v)| (t.to_string(), v.as_ref().into())).collect();
        obj.insert("identities".into(), ids.into());
    }
    if let Some(j) = &e.journey_id {
        obj.insert("journey_id".into(), j.as_ref().into());
    }
    obj.insert("channel".into(), e.channel.as_ref().into());
    obj.insert("type".into(), e.event_type.as_str().into());
    if let Some(s) = &e.step {
        obj.insert("step".into(), s.as_ref().into());
    }
    if let Some(v) = e.value {
        obj.insert("value".into(), v.into());
    }
    let again = serde_json::to_vec(&obj).unwrap();
    let decoded = decode(&again);
    prop_assert_eq!(decoded.as_ref(), Ok(e));
    Ok(())
}

/// Pushes one payload and checks its fate against `decode` and the watermark.
fn push_checked(e: &mut PartitionEngine, raw: &[u8], offset: i64) -> Result<(), TestCaseError> {
    let wm = e.watermark();
    let before = e.stats().clone();
    let got = e.push(raw, offset);
    let after = e.stats();
    prop_assert_eq!(after.inputs, before.inputs + 1);
    match decode(raw) {
        Err(reason) => {
            prop_assert_eq!(got, Some(reason));
            prop_assert!(reason != RejectReason::Late);
        }
        Ok(ev) => {
            check_event(&ev)?;
            let late = wm.is_some_and(|w| ev.ts < w);
            prop_assert_eq!(got, late.then_some(RejectReason::Late));
            prop_assert_eq!(after.accepted, before.accepted + u64::from(!late));
        }
    }
    if let Some(r) = got {
        prop_assert_eq!(after.rejected[r.index()], before.rejected[r.index()] + 1);
    }
    Ok(())
}

/// Invariants of one whole run: every input accounted for, tables that agree.
fn check_totals(rows: &Rows, stats: &Stats, inputs: u64, max_path: usize) -> Result<(), TestCaseError> {
    prop_assert_eq!(stats.inputs, inputs);
    prop_assert_eq!(stats.accepted + stats.rejected.iter().sum::<u64>(), inputs);
    prop_assert_eq!(stats.processed + stats.duplicates, stats.accepted);
    let mut by_reason = [0u64; RejectReason::ALL.len()];
    for r in &rows.rejected {
        by_reason[r.reason.index()] += 1;
    }
    prop_assert_eq!(by_reason, stats.rejected);

    let sum = |f: fn(&omnimeter_engine::JourneyRow) -> i64| rows.journeys.iter().map(f).sum::<i64>();
    prop_assert_eq!(rows.journeys.len() as u64, stats.journeys_opened);
    prop_assert_eq!(stats.journeys_closed_total(), stats.journeys_opened);
    prop_assert_eq!(sum(|j| j.events) as u64, stats.processed);
    prop_assert_eq!(rows.activity.iter().map(|r| r.events).sum::<i64>() as u64, stats.processed);
    let hops = sum(|j| j.hops);
    prop_assert_eq!(rows.transitions.iter().map(|r| r.hops).sum::<i64>(), hops);
    prop_assert_eq!(rows.journey_windows.iter().map(|r| r.hops).sum::<i64>(), hops);
    prop_assert_eq!(rows.journey_windows.iter().map(|r| r.journeys).sum::<i64>(), rows.journeys.len() as i64);
    prop_assert_eq!(rows.paths.iter().map(|r| r.journeys).sum::<i64>(), rows.journeys.len() as i64);
    let converted = rows.journeys.iter().filter(|j| j.outcome == Outcome::Converted).count() as i64;
    prop_assert_eq!(rows.paths.iter().map(|r| r.conversions).sum::<i64>(), converted);
    for o in Outcome::ALL {
        let n = rows.journeys.iter().filter(|j| j.outcome == o).count() as u64;
        prop_assert_eq!(stats.journeys_closed[o as usize], n, "{:?}", o);
    }
    let friction = |k: FrictionKind| rows.friction.iter().filter(|f| f.kind == k).map(|f| f.occurrences).sum::<i64>();
    prop_assert_eq!(friction(FrictionKind::RepeatContact), sum(|j| j.repeat_contacts));
    prop_assert_eq!(friction(FrictionKind::UnansweredContact), sum(|j| j.unanswered_contacts));
    prop_assert_eq!(friction(FrictionKind::Error), sum(|j| j.errors));
    let unresolved = rows.journeys.iter().filter(|j| j.outcome == Outcome::Unresolved).count() as i64;
    prop_assert_eq!(friction(FrictionKind::DropOff), unresolved);
    for model in ["first_touch", "last_touch", "linear"] {
        let c: f64 = rows.attribution.iter().filter(|a| a.model.as_str() == model).map(|a| a.conversions).sum();
        prop_assert!((c - converted as f64).abs() < 1e-6 * (1.0 + converted as f64), "{} {} {}", model, c, converted);
    }
    for j in &rows.journeys {
        prop_assert!(j.events >= 1 && j.start_ts <= j.end_ts && j.duration_ms == j.end_ts - j.start_ts);
        prop_assert!(j.hops < j.events && j.channels >= 1 && j.channels <= j.hops + 1);
        prop_assert!(j.repeat_contacts >= 0 && j.unanswered_contacts <= j.repeat_contacts + 1);
        let segments: Vec<&str> = j.path.split('>').collect();
        let truncated = segments.last() == Some(&"…");
        let shown = segments.len() - usize::from(truncated);
        prop_assert!(shown <= max_path && shown >= 1);
        prop_assert_eq!(truncated, j.hops + 1 > max_path as i64, "{}", &j.path);
        if !truncated {
            prop_assert_eq!(shown as i64, j.hops + 1);
        }
        prop_assert_eq!(segments[0], &*j.first_channel);
        prop_assert!(j.conversion_value >= 0.0);
        prop_assert_eq!(j.resolution_ms.is_some(), j.first_contact_resolution.is_some());
        prop_assert!(j.resolution_ms.is_none_or(|r| r >= 0 && r <= j.duration_ms));
    }
    for w in &rows.journey_windows {
        prop_assert_eq!(w.resolution_ms_p50.is_some(), w.resolved > 0);
        prop_assert!(w.resolution_ms_p50 <= w.resolution_ms_p90 && w.resolution_ms_p90 <= w.resolution_ms_p99);
        prop_assert!(w.fcr <= w.resolved && w.resolved <= w.journeys);
    }
    Ok(())
}

/// Runs `payloads` through an engine, taking rows before each cut; with `restore`,
/// the engine is also checkpointed and rebuilt from the bytes at each cut.
fn run(cfg: EngineConfig, payloads: &[Vec<u8>], cuts: &[usize], restore: bool) -> Result<(Rows, Stats), TestCaseError> {
    let mut e = PartitionEngine::new(cfg, 5);
    let mut rows = Rows::default();
    // Live counts (for metrics) are not checkpointed: taken before each cut, they
    // must add up to the same totals as the counters and the rows.
    let mut tally = Tally::default();
    let mut take_tally = |e: &mut PartitionEngine| {
        let t = e.take_tally();
        tally.inputs += t.inputs;
        tally.duplicates += t.duplicates;
        tally.rejected.iter_mut().zip(t.rejected).for_each(|(a, b)| *a += b);
        tally.events.extend(t.events);
        tally.hops.extend(t.hops);
        tally.friction.extend(t.friction);
    };
    for (i, raw) in payloads.iter().enumerate() {
        if cuts.contains(&i) {
            rows.append(&mut e.take_rows());
            take_tally(&mut e);
            if restore {
                let bytes = e.checkpoint().map_err(|err| TestCaseError::fail(err.to_string()))?;
                let open = (e.open_journeys(), e.buffered_events(), e.watermark());
                e = PartitionEngine::restore(cfg, 5, &bytes).map_err(|err| TestCaseError::fail(err.to_string()))?;
                prop_assert_eq!((e.open_journeys(), e.buffered_events(), e.watermark()), open);
            }
        }
        push_checked(&mut e, raw, i as i64)?;
    }
    e.finish();
    prop_assert_eq!((e.open_journeys(), e.buffered_events()), (0, 0));
    rows.append(&mut e.take_rows());
    take_tally(&mut e);
    let stats = e.stats();
    prop_assert_eq!((tally.inputs, tally.duplicates, tally.rejected), (stats.inputs, stats.duplicates, stats.rejected));
    prop_assert_eq!(tally.events.iter().map(|t| t.2).sum::<u64>(), stats.processed);
    let hops: i64 = rows.journeys.iter().map(|j| j.hops).sum();
    prop_assert_eq!(tally.hops.iter().map(|t| t.2).sum::<u64>(), hops as u64);
    let friction: i64 = rows.friction.iter().map(|f| f.occurrences).sum();
    prop_assert_eq!(tally.friction.iter().map(|t| t.3).sum::<u64>(), friction as u64);
    // A finished engine can still be checkpointed and restored, and stays empty.
    let bytes = e.checkpoint().map_err(|err| TestCaseError::fail(err.to_string()))?;
    let mut again = PartitionEngine::restore(cfg, 5, &bytes).map_err(|err| TestCaseError::fail(err.to_string()))?;
    again.finish();
    prop_assert!(again.take_rows().is_empty());
    Ok((rows, e.stats().clone()))
}

/// Rows as comparable text: unlike `PartialEq` on floats, a NaN equals itself here,
/// and a difference names the table it is in.
fn fingerprint(rows: &Rows) -> BTreeMap<&'static str, Vec<String>> {
    let mut m = BTreeMap::new();
    m.insert("journeys", rows.journeys.iter().map(|r| format!("{r:?}")).collect());
    m.insert("activity", rows.activity.iter().map(|r| format!("{r:?}")).collect());
    m.insert("transitions", rows.transitions.iter().map(|r| format!("{r:?}")).collect());
    m.insert("journey_windows", rows.journey_windows.iter().map(|r| format!("{r:?}")).collect());
    m.insert("paths", rows.paths.iter().map(|r| format!("{r:?}")).collect());
    m.insert("friction", rows.friction.iter().map(|r| format!("{r:?}")).collect());
    m.insert("attribution", rows.attribution.iter().map(|r| format!("{r:?}")).collect());
    m.insert("rejected", rows.rejected.iter().map(|r| format!("{r:?}")).collect());
    m
}

proptest! {
    #![proptest_config(fuzz_config())]

    /// Arbitrary bytes, and valid events with a damaged byte: rejected with a
    /// reason or accepted, never a panic, every payload accounted for.
    #[test]
    fn fuzz_arbitrary_bytes(payloads in prop::collection::vec(prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..300),
        2 => (0u32..40, any::<Index>(), any::<u8>(), any::<u8>()).prop_map(|(id, at, kind, byte)| {
            let fields = [
                ("event_id", js(&format!("e{id}"))),
                ("ts", (T0 + i64::from(id) * 1000).to_string()),
                ("customer_id", js(&format!("c{}", id % 3))),
                ("channel", js("web")),
                ("type", js("contact")),
                ("step", js("s")),
                ("value", "1".to_owned()),
                ("attrs", r#"{"k":[1]}"#.to_owned()),
            ];
            let fields = fields.into_iter().map(|(k, v)| (js(k), v)).collect();
            EventSpec { fields, damage: Some((at, kind, byte)) }.render()
        }),
    ], 1..64), cfg in engine_config()) {
        let n = payloads.len() as u64;
        let (rows, stats) = run(cfg, &payloads, &[], false)?;
        check_totals(&rows, &stats, n, cfg.max_path)?;
    }

    /// Structure-aware hostile events through decode and a whole engine run, with
    /// the same run repeated through checkpoint → restore at random cuts.
    #[test]
    fn fuzz_hostile_events_through_the_engine(specs in event_specs(), cfg in engine_config(), cuts in prop::collection::vec(any::<Index>(), 0..4)) {
        let payloads: Vec<Vec<u8>> = specs.iter().map(EventSpec::render).collect();
        let cuts: Vec<usize> = cuts.iter().map(|c| c.index(payloads.len() + 1)).collect();
        let (rows, stats) = run(cfg, &payloads, &cuts, false)?;
        check_totals(&rows, &stats, payloads.len() as u64, cfg.max_path)?;
        let (restored_rows, restored_stats) = run(cfg, &payloads, &cuts, true)?;
        prop_assert_eq!(&restored_stats, &stats);
        prop_assert_eq!(fingerprint(&restored_rows), fingerprint(&rows));
    }

    /// Single hostile payloads straight into `decode`: the reason is a pure function
    /// of the bytes, and anything accepted obeys SPEC §1.
    #[test]
    fn fuzz_decode(spec in event_specs().prop_map(|mut v| v.swap_remove(0)), top in prop_oneof![
        4 => Just(None), 1 => nested().prop_map(Some), 1 => any_value().prop_map(Some),
    ]) {
        let raw = match top { Some(t) => t.into_bytes(), None => spec.render() };
        let first = decode(&raw);
        prop_assert_eq!(&decode(&raw), &first);
        match &first {
            Ok(e) => check_event(e)?,
            Err(r) => prop_assert!(*r != RejectReason::Late),
        }
        if raw.len() > MAX_PAYLOAD_BYTES {
            prop_assert_eq!(first.err(), Some(RejectReason::TooLarge));
        }
    }
}

proptest! {
    #![proptest_config(fuzz_config())]

    /// A damaged checkpoint is refused or restores an engine that still runs without panicking.
    #[test]
    fn fuzz_damaged_checkpoints(specs in event_specs(), cut in any::<Index>(), damage in prop::collection::vec((any::<Index>(), any::<u8>()), 1..4)) {
        let cfg = EngineConfig::default();
        let payloads: Vec<Vec<u8>> = specs.iter().map(EventSpec::render).collect();
        let cut = cut.index(payloads.len() + 1);
        let mut e = PartitionEngine::new(cfg, 1);
        for (i, raw) in payloads[..cut].iter().enumerate() {
            e.push(raw, i as i64);
        }
        e.take_rows();
        let mut bytes = e.checkpoint().unwrap();
        for (at, byte) in damage {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if let Ok(mut r) = PartitionEngine::restore(cfg, 1, &bytes) {
            for (i, raw) in payloads[cut..].iter().enumerate() {
                r.push(raw, (cut + i) as i64);
            }
            r.take_rows();
            r.take_tally();
            r.finish();
            r.take_rows();
        }
    }
}
