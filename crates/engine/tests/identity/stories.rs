//! Identity stories (SPEC §6) as a proptest strategy: NDJSON lines of one
//! source partition in which customers `c1`..`c5` link cookies, phones and
//! loyalty cards, anonymous events (no `customer_id`, only `identities`) come
//! before, at and after those links, and identities are shared between
//! customers often enough for conflicts.
//!
//! Include it from a test file with `#[path = "identity/stories.rs"] mod stories;`
//! (it needs `proptest` and `serde_json`).
//!
//! What a case holds:
//! - 1–12 linking events (`customer_id` + 1–3 identities drawn from a pool of 9:
//!   3 cookies, 3 phones, 3 loyalty cards, so one phone is soon linked to two
//!   customers); about one in five takes the `ts` of the previous link, so
//!   `(ts, event_id)` ties are decided by `event_id`.
//! - 0–16 anonymous events, each anchored on a link L carrying one of L's
//!   identities (plus 0–2 others), at `ts = L.ts − WAIT_MS − 1`, `− WAIT_MS`,
//!   `− WAIT_MS + 1` (the §6 edge: equality counts), `= L.ts`, or anywhere
//!   within ±3·`WAIT_MS` of it; some say `"customer_id": null`.
//! - 0–6 plain customer events (no identities, sometimes `"identities": null`).
//! - 0–3 events with a malformed `identities` (rejected `wrong_type` or
//!   `field_length` by §1), with or without `customer_id`.
//! - 0–4 repeated `event_id`s: an exact re-delivery of a line, or the same
//!   `event_id` on a copy at a later `ts` (never the same `(ts, event_id)` with
//!   other content, so `(ts, event_id)` order is never ambiguous).
//! - All 8 types, channels `web app phone store whatsapp`, an explicit
//!   `journey_id` on some, `value` on some; `ts` mostly integer epoch ms around
//!   [`T0`], sometimes RFC 3339 (`Z`, `+02:00`, or 6 fraction digits that
//!   truncate to the same millisecond).
//!
//! Arrival order: each event arrives at `ts + jitter`, jitter in
//! `0..=MAX_JITTER_MS` (3 s), and lines are in arrival order. An event can then
//! only follow events with `ts ≤` its own `ts + 3 s`, so with
//! `allowed_lateness ≥ 3 s` (the default 5 s) **nothing from
//! [`identity_input`] is ever late**, and the tables must not depend on
//! how the lines are split or ordered. [`identity_input_with_stragglers`] is
//! the same but about one event in ten is delayed by up to 30 s, so it may be
//! `late` under 5 s of lateness.

#![allow(unreachable_pub, dead_code)]

use proptest::prelude::*;
use proptest::sample::{Index, subsequence};
use serde_json::{Map, Value, json};

/// `identify_wait` the stories' timeline is built around.
pub const WAIT_MS: i64 = 60_000;
/// Start of the timeline (2026-11-02T08:00:00Z).
pub const T0: i64 = 1_793_606_400_000;
/// Links fall within `T0 .. T0 + SPAN_MS`.
pub const SPAN_MS: i64 = 20 * 60_000;
/// Largest arrival delay of [`identity_input`].
pub const MAX_JITTER_MS: i64 = 3_000;
/// Largest arrival delay of a straggler in [`identity_input_with_stragglers`].
pub const MAX_STRAGGLE_MS: i64 = 30_000;

pub const CUSTOMERS: [&str; 5] = ["c1", "c2", "c3", "c4", "c5"];
pub const IDENTITIES: [(&str, &str); 9] = [
    ("cookie", "ck-1"),
    ("cookie", "ck-2"),
    ("cookie", "ck-3"),
    ("phone", "+34600000001"),
    ("phone", "+34600000002"),
    ("phone", "+34600000003"),
    ("loyalty", "L001"),
    ("loyalty", "L002"),
    ("loyalty", "L003"),
];
pub const CHANNELS: [&str; 5] = ["web", "app", "phone", "store", "whatsapp"];
pub const TYPES: [&str; 8] =
    ["touch", "contact", "reply", "request_opened", "request_resolved", "conversion", "error", "abandon"];
const JOURNEYS: [&str; 3] = ["case-1", "order-7", "case-2"];
const STEPS: [&str; 4] = ["login", "checkout", "payment", "queue"];

/// Everything about an event but who it is and when.
#[derive(Debug, Clone)]
struct Body {
    channel: usize,
    kind: usize,
    journey: Option<usize>,
    value: Option<u32>,
    step: Option<usize>,
    ts_style: u8,
    salt: u16,
}

fn body() -> impl Strategy<Value = Body> {
    (
        0..CHANNELS.len(),
        0..TYPES.len(),
        proptest::option::weighted(0.25, 0..JOURNEYS.len()),
        proptest::option::weighted(0.3, 0..500u32),
        proptest::option::of(0..STEPS.len()),
        0..10u8,
        any::<u16>(),
    )
        .prop_map(|(channel, kind, journey, value, step, ts_style, salt)| Body {
            channel,
            kind,
            journey,
            value,
            step,
            ts_style,
            salt,
        })
}

/// Arrival delay: `(small, big, straggler?)`; resolved in [`build`].
fn jitter() -> impl Strategy<Value = (i64, i64, bool)> {
    (0..=MAX_JITTER_MS, 0..=MAX_STRAGGLE_MS, proptest::bool::weighted(0.1))
}

#[derive(Debug, Clone)]
enum Ids {
    None,
    Null,
    Some(Vec<usize>),
    Malformed(u8),
}

#[derive(Debug, Clone)]
struct Spec {
    ts: i64,
    customer: Option<usize>,
    null_customer: bool,
    ids: Ids,
    body: Body,
    jitter: (i64, i64, bool),
}

type LinkGen = (usize, Vec<usize>, Option<i64>, Body, (i64, i64, bool));
type AnonGen = (Index, Index, i64, Vec<usize>, bool, Body, (i64, i64, bool));
type PlainGen = (usize, i64, bool, Body, (i64, i64, bool));
type BadGen = (u8, Option<usize>, i64, Body, (i64, i64, bool));
type DupGen = (Index, bool, i64, (i64, i64, bool));

fn pool() -> Vec<usize> {
    (0..IDENTITIES.len()).collect()
}

fn links() -> impl Strategy<Value = Vec<LinkGen>> {
    proptest::collection::vec(
        (
            0..CUSTOMERS.len(),
            subsequence(pool(), 1..=3),
            prop_oneof![4 => (0..SPAN_MS).prop_map(Some), 1 => Just(None)],
            body(),
            jitter(),
        ),
        1..=12,
    )
}

fn anonymous() -> impl Strategy<Value = Vec<AnonGen>> {
    proptest::collection::vec(
        (
            any::<Index>(),
            any::<Index>(),
            prop_oneof![Just(-WAIT_MS - 1), Just(-WAIT_MS), Just(-WAIT_MS + 1), Just(0i64), -3 * WAIT_MS..3 * WAIT_MS,],
            subsequence(pool(), 0..=2),
            proptest::bool::weighted(0.2),
            body(),
            jitter(),
        ),
        0..=16,
    )
}

fn plain() -> impl Strategy<Value = Vec<PlainGen>> {
    proptest::collection::vec((0..CUSTOMERS.len(), 0..SPAN_MS, proptest::bool::weighted(0.3), body(), jitter()), 0..=6)
}

fn malformed() -> impl Strategy<Value = Vec<BadGen>> {
    proptest::collection::vec((0..10u8, proptest::option::of(0..CUSTOMERS.len()), 0..SPAN_MS, body(), jitter()), 0..=3)
}

fn duplicates() -> impl Strategy<Value = Vec<DupGen>> {
    proptest::collection::vec((any::<Index>(), proptest::bool::weighted(0.6), 1..10 * WAIT_MS, jitter()), 0..=4)
}

/// Identity stories, never late under `allowed_lateness ≥ MAX_JITTER_MS`.
pub fn identity_input() -> impl Strategy<Value = Vec<String>> {
    (links(), anonymous(), plain(), malformed(), duplicates()).prop_map(|(l, a, p, m, d)| build(l, a, p, m, d, false))
}

/// As [`identity_input`], but about one event in ten arrives up to
/// `MAX_STRAGGLE_MS` late, so some are `late` under the default 5 s.
pub fn identity_input_with_stragglers() -> impl Strategy<Value = Vec<String>> {
    (links(), anonymous(), plain(), malformed(), duplicates()).prop_map(|(l, a, p, m, d)| build(l, a, p, m, d, true))
}

fn build(
    link_gens: Vec<LinkGen>,
    anon_gens: Vec<AnonGen>,
    plain_gens: Vec<PlainGen>,
    bad_gens: Vec<BadGen>,
    dup_gens: Vec<DupGen>,
    stragglers: bool,
) -> Vec<String> {
    let mut specs: Vec<Spec> = Vec::new();
    let mut prev_ts = T0;
    for (customer, ids, ts, body, jitter) in link_gens {
        let ts = ts.map_or(prev_ts, |o| T0 + o);
        prev_ts = ts;
        specs.push(Spec { ts, customer: Some(customer), null_customer: false, ids: Ids::Some(ids), body, jitter });
    }
    let link_count = specs.len();
    for (anchor, which, delta, extra, null_customer, body, jitter) in anon_gens {
        let link = specs[anchor.index(link_count)].clone();
        let Ids::Some(link_ids) = &link.ids else { unreachable!("links carry identities") };
        let mut ids = extra;
        ids.push(link_ids[which.index(link_ids.len())]);
        ids.sort_unstable();
        ids.dedup();
        specs.push(Spec {
            // ts + WAIT_MS = link.ts - 1, link.ts, link.ts + 1, or anywhere.
            ts: link.ts + delta,
            customer: None,
            null_customer,
            ids: Ids::Some(ids),
            body,
            jitter,
        });
    }
    for (customer, ts, null_ids, body, jitter) in plain_gens {
        specs.push(Spec {
            ts: T0 + ts,
            customer: Some(customer),
            null_customer: false,
            ids: if null_ids { Ids::Null } else { Ids::None },
            body,
            jitter,
        });
    }
    for (variant, customer, ts, body, jitter) in bad_gens {
        specs.push(Spec { ts: T0 + ts, customer, null_customer: false, ids: Ids::Malformed(variant), body, jitter });
    }

    // (arrival, line) of every event, then the repeated event_ids.
    let delay = |(small, big, straggler): (i64, i64, bool)| {
        if stragglers && straggler { big } else { small }
    };
    let mut out: Vec<(i64, String)> = Vec::new();
    let mut rendered: Vec<(Spec, String)> = Vec::new();
    for (n, spec) in specs.into_iter().enumerate() {
        let event_id = format!("{:04x}{n:03}", spec.body.salt);
        let line = render(&spec, &event_id);
        out.push((spec.ts + delay(spec.jitter), line.clone()));
        rendered.push((spec, event_id));
    }
    for (source, exact, later, jitter) in dup_gens {
        let i = source.index(rendered.len());
        if exact {
            let line = out[i].1.clone();
            out.push((rendered[i].0.ts + delay(jitter), line));
        } else {
            let (spec, event_id) = &rendered[i];
            let copy = Spec { ts: spec.ts + later, jitter, ..spec.clone() };
            out.push((copy.ts + delay(jitter), render(&copy, event_id)));
        }
    }
    // Stable: equal arrivals keep generation order.
    out.sort_by_key(|(arrival, _)| *arrival);
    out.into_iter().map(|(_, line)| line).collect()
}

fn malformed_identities(variant: u8) -> Value {
    match variant {
        0 => json!([]),
        1 => json!({}),
        2 => json!({ "phone": 5 }),
        3 => json!({ "Phone": "+34600000001" }),
        4 => json!({ "phone": "" }),
        5 => Value::Object((0..9).map(|i| (format!("t{i}"), json!("v"))).collect()),
        6 => json!({ "cookie": "q".repeat(257) }),
        7 => json!({ "a".repeat(33): "x" }),
        8 => json!("ck-1"),
        _ => json!({ "1cookie": "x" }),
    }
}

fn render(spec: &Spec, event_id: &str) -> String {
    let b = &spec.body;
    let mut obj = Map::new();
    obj.insert("event_id".into(), json!(event_id));
    obj.insert("ts".into(), render_ts(spec.ts, b.ts_style, b.salt));
    match spec.customer {
        Some(c) => {
            obj.insert("customer_id".into(), json!(CUSTOMERS[c]));
        }
        None if spec.null_customer => {
            obj.insert("customer_id".into(), Value::Null);
        }
        None => {}
    }
    match &spec.ids {
        Ids::None => {}
        Ids::Null => {
            obj.insert("identities".into(), Value::Null);
        }
        Ids::Some(ids) => {
            let map: Map<String, Value> =
                ids.iter().map(|&i| (IDENTITIES[i].0.to_owned(), json!(IDENTITIES[i].1))).collect();
            obj.insert("identities".into(), Value::Object(map));
        }
        Ids::Malformed(v) => {
            obj.insert("identities".into(), malformed_identities(*v));
        }
    }
    obj.insert("channel".into(), json!(CHANNELS[b.channel]));
    obj.insert("type".into(), json!(TYPES[b.kind]));
    if let Some(j) = b.journey {
        obj.insert("journey_id".into(), json!(JOURNEYS[j]));
    }
    if let Some(s) = b.step {
        obj.insert("step".into(), json!(STEPS[s]));
    }
    if let Some(v) = b.value {
        // Mostly on conversions, as money; an integer or a float.
        if TYPES[b.kind] == "conversion" || v % 5 == 0 {
            let value = if v % 2 == 0 { json!(v) } else { json!(f64::from(v) / 4.0) };
            obj.insert("value".into(), value);
        }
    }
    Value::Object(obj).to_string()
}

/// `ts` as integer epoch ms (styles 0–6), RFC 3339 `Z` (7), `+02:00` (8), or
/// `Z` with 6 fraction digits that truncate to the same millisecond (9).
fn render_ts(ts: i64, style: u8, salt: u16) -> Value {
    match style {
        7 => json!(rfc3339(ts, 0, None)),
        8 => json!(rfc3339(ts, 120, None)),
        9 => json!(rfc3339(ts, 0, Some(salt % 1000))),
        _ => json!(ts),
    }
}

/// Epoch ms to RFC 3339 at a UTC offset of `offset_min` minutes.
fn rfc3339(ts: i64, offset_min: i64, micros: Option<u16>) -> String {
    let local = ts + offset_min * 60_000;
    let days = local.div_euclid(86_400_000);
    let in_day = local.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, mi, s, ms) = (in_day / 3_600_000, in_day / 60_000 % 60, in_day / 1000 % 60, in_day % 1000);
    let frac = match micros {
        Some(extra) => format!("{ms:03}{extra:03}"),
        None => format!("{ms:03}"),
    };
    let offset = if offset_min == 0 {
        "Z".to_owned()
    } else {
        let sign = if offset_min < 0 { '-' } else { '+' };
        let a = offset_min.abs();
        format!("{sign}{:02}:{:02}", a / 60, a % 60)
    };
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac}{offset}")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
