//! Hostile inputs, one test each, asserting what the engine does with them and
//! that its memory stays within the documented bounds: a journey of a million
//! events, a journey through a hundred thousand channels, a million distinct
//! channel names, payloads at and over 64 KiB, deeply nested JSON, timestamps at
//! the ends of the representable range, and a reorder buffer under a frozen clock.
//!
//! Sizes are cut in debug builds so that `cargo test` stays fast; the full sizes:
//!
//!     cargo test --release -p omnimeter-engine --test hostile

#![allow(clippy::unwrap_used)]

use std::time::Instant;

use omnimeter_engine::time::{MAX_TS_MS, MIN_TS_MS};
use omnimeter_engine::{
    DurationMs, EngineConfig, MAX_PAYLOAD_BYTES, Outcome, PartitionEngine, RejectReason, Rows, decode,
};

/// The engine as a `run` worker behind a resolve stage has it: the journey stage
/// follows the watermark. The identity hold (file mode) adds up to `identify_wait` of
/// event time behind a waiting anonymous event; `identity.rs` and the identity tests bound that part.
fn no_identity_hold() -> EngineConfig {
    EngineConfig { resolve_identities: false, ..EngineConfig::default() }
}

const T0: i64 = 1_793_606_400_000; // 2026-11-02T08:00:00Z

/// `full` in release builds, `full / cut` in debug builds.
fn size(full: usize, cut: usize) -> usize {
    if cfg!(debug_assertions) { full / cut } else { full }
}

fn event(id: &str, ts: i64, customer: &str, channel: &str, ty: &str) -> String {
    format!(r#"{{"event_id":"{id}","ts":{ts},"customer_id":"{customer}","channel":"{channel}","type":"{ty}"}}"#)
}

fn thread_event(id: &str, ts: &str, thread: &str, ty: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","ts":{ts},"customer_id":"c","journey_id":"{thread}","channel":"web","type":"{ty}"}}"#
    )
}

/// Drains rows and live counts as an adapter does, keeping what the test checks.
fn drain(e: &mut PartitionEngine, keep: &mut Rows) {
    let mut rows = e.take_rows();
    keep.journeys.append(&mut rows.journeys);
    keep.rejected.append(&mut rows.rejected);
    keep.journey_windows.append(&mut rows.journey_windows);
    keep.friction.append(&mut rows.friction);
    keep.activity.extend(rows.activity.drain(..).filter(|a| a.events > 0));
    e.take_tally();
}

/// One customer, one million events, never `gap` apart: a single journey. The
/// journey keeps one 8-byte hash per distinct event id (SPEC: a repeated id
/// anywhere in an open journey is a duplicate, so every id must be remembered);
/// everything else it holds is bounded by `max_path`, its distinct channels and
/// the contacts still within `reply_sla`.
#[test]
fn a_journey_of_a_million_events_keeps_only_its_event_ids() {
    let n = size(1_000_000, 10);
    let channels = ["web", "app", "phone", "chat", "store"];
    let mut e = PartitionEngine::new(no_identity_hold(), 0);
    let empty = e.estimated_state_bytes();
    let mut rows = Rows::default();
    let mut at_half = 0;
    for i in 0..n {
        // A contact every 10th event, a reply every 50th: contacts age out of the SLA
        // or are answered, so the awaiting-reply queue stays short.
        let ty = match i % 50 {
            0 => "reply",
            x if x % 10 == 5 => "contact",
            7 => "error",
            _ => "touch",
        };
        let raw = event(&format!("e{i}"), T0 + i as i64, "c", channels[i % channels.len()], ty);
        assert_eq!(e.push(raw.as_bytes(), i as i64), None);
        if i % 10_000 == 0 {
            drain(&mut e, &mut rows);
        }
        if i == n / 2 {
            at_half = e.estimated_state_bytes();
        }
    }
    drain(&mut e, &mut rows);
    assert_eq!(e.open_journeys(), 1);
    let full = e.estimated_state_bytes();
    let per_event = (full - empty) as f64 / n as f64;
    let growth = (full - at_half) as f64 / (n / 2) as f64;
    eprintln!("one journey, {n} events: {per_event:.1} B/event overall, {growth:.1} B/event in the second half");
    // A u64 set at hashbrown's load factor: 9 bytes a bucket, up to twice the buckets needed.
    assert!(per_event < 32.0, "{per_event:.1} bytes per event");

    e.finish();
    drain(&mut e, &mut rows);
    assert_eq!(rows.journeys.len(), 1);
    let j = &rows.journeys[0];
    assert_eq!((j.events, j.hops, j.channels), (n as i64, n as i64 - 1, 5));
    assert_eq!(j.path, "web>app>phone>chat>store>web>app>phone>chat>store>web>app>…");
    assert_eq!(j.outcome, Outcome::Unresolved);
    assert_eq!(j.repeat_contacts, (n / 10) as i64 - 1);
    assert_eq!(j.errors, (n / 50) as i64);
    // Contacts at x5..x45 of every 50 are answered by the reply at the next x00 (well
    // within 15 minutes), except the last five: no reply follows them.
    assert_eq!(j.unanswered_contacts, 5);
    assert_eq!(rows.activity.iter().map(|a| a.events).sum::<i64>(), n as i64);
    // What remains is spare capacity, mostly the reorder buffer's: the 5,000 events
    // of one lateness window (5 s at 1,000 events/s) at 64 bytes each.
    let after = e.estimated_state_bytes();
    assert!(after < empty + (1 << 20), "a closed journey leaves {after} bytes behind");
}

/// Regression: a journey looked its channel up in a list at every hop, O(n²) in
/// its distinct channels (a hostile stream of 1M channels took hours). With the
/// index it is linear: 200,000 channels take about a second in a debug build.
#[test]
fn a_journey_through_two_hundred_thousand_channels_is_linear() {
    let n = size(200_000, 1);
    let mut e = PartitionEngine::new(no_identity_hold(), 0);
    let mut rows = Rows::default();
    let started = Instant::now();
    for i in 0..n {
        let raw = event(&format!("e{i}"), T0 + i as i64, "c", &format!("ch{i}"), "touch");
        e.push(raw.as_bytes(), i as i64);
        if i % 10_000 == 0 {
            drain(&mut e, &mut rows);
        }
    }
    e.finish();
    drain(&mut e, &mut rows);
    let took = started.elapsed();
    let j = &rows.journeys[0];
    assert_eq!((j.events, j.channels, j.hops), (n as i64, n as i64, n as i64 - 1));
    assert!(j.path.ends_with("ch11>…"), "{}", j.path);
    // Quadratic took about two minutes here in debug; linear takes seconds.
    assert!(took.as_secs() < 30, "{took:?} for {n} channels");
}

/// A million distinct channel names, each in its own short journey. Names are
/// interned per partition engine and kept for its lifetime (they also travel in
/// checkpoints): about 100 bytes per distinct name. That is bounded by what the
/// input contains, not by time, and documented here; metrics fold label values
/// past their limit, so Prometheus never sees the million (see omnimeter-metrics).
#[test]
fn a_million_channel_names_cost_about_a_hundred_bytes_each() {
    let n = size(1_000_000, 10);
    let mut e = PartitionEngine::new(no_identity_hold(), 0);
    let empty = e.estimated_state_bytes();
    let mut rows = Rows::default();
    for i in 0..n {
        // One ms apart: journeys close 30 min (the gap) of event time after their event.
        let raw = event(&format!("e{i}"), T0 + i as i64 * 10, &format!("c{}", i % 1000), &format!("ch_{i}"), "touch");
        e.push(raw.as_bytes(), i as i64);
        if i % 10_000 == 0 {
            drain(&mut e, &mut rows);
        }
    }
    e.finish();
    drain(&mut e, &mut rows);
    assert_eq!(rows.activity.len(), n, "one activity row per channel");
    assert_eq!(e.open_journeys(), 0);
    let per_name = (e.estimated_state_bytes() - empty) as f64 / n as f64;
    eprintln!("{n} channel names: {per_name:.0} B per name kept by the engine");
    assert!((20.0..160.0).contains(&per_name), "{per_name:.0} bytes per name");
    let ckpt = e.checkpoint().unwrap();
    assert!(ckpt.len() < n * 16, "checkpoint of {} bytes", ckpt.len());
}

/// SPEC §1: a payload over 65,536 bytes is `too_large`; exactly 65,536 is fine.
#[test]
fn payloads_at_and_over_sixty_four_kib() {
    let body = |pad: usize| {
        format!(
            r#"{{"event_id":"e","ts":{T0},"customer_id":"c","channel":"web","type":"touch","attrs":{{"p":"{}"}}}}"#,
            "x".repeat(pad)
        )
    };
    let short = body(0).len();
    let exact = body(MAX_PAYLOAD_BYTES - short);
    let over = body(MAX_PAYLOAD_BYTES - short + 1);
    assert_eq!((exact.len(), over.len()), (MAX_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES + 1));

    let mut e = PartitionEngine::new(no_identity_hold(), 0);
    assert_eq!(e.push(exact.as_bytes(), 0), None);
    assert_eq!(e.push(over.as_bytes(), 1), Some(RejectReason::TooLarge));
    // 16 MiB: refused on its length alone, before any parsing.
    let huge = vec![b'{'; 16 << 20];
    let started = Instant::now();
    assert_eq!(e.push(&huge, 2), Some(RejectReason::TooLarge));
    assert!(started.elapsed().as_millis() < 1_000);
    // Exactly at the limit but broken: the content decides, not the size.
    let mut broken = exact.clone().into_bytes();
    broken[MAX_PAYLOAD_BYTES - 1] = b' ';
    assert_eq!(e.push(&broken, 3), Some(RejectReason::InvalidJson));
    e.finish();
    let rows = e.take_rows();
    assert_eq!(rows.journeys.len(), 1);
    let reasons: Vec<_> = rows.rejected.iter().map(|r| (r.offset, r.reason, r.raw.len())).collect();
    assert_eq!(
        reasons,
        vec![
            (1, RejectReason::TooLarge, MAX_PAYLOAD_BYTES + 1),
            (2, RejectReason::TooLarge, 16 << 20),
            (3, RejectReason::InvalidJson, MAX_PAYLOAD_BYTES),
        ],
        "dead letters keep their raw bytes"
    );
}

/// Nesting deeper than serde_json's recursion limit (128), up to what fits in
/// 64 KiB. The decoder skips nested values with a stack of open brackets instead of
/// recursion, so depth costs no stack: this runs on a 64 KiB thread stack.
#[test]
fn deeply_nested_json_is_skipped_without_recursion() {
    let arrays = |d: usize| format!("{}1{}", "[".repeat(d), "]".repeat(d));
    let objects = |d: usize| format!("{}1{}", "{\"a\":".repeat(d), "}".repeat(d));
    let with_attrs = |attrs: &str| {
        format!(r#"{{"event_id":"e","ts":{T0},"customer_id":"c","channel":"web","type":"touch","attrs":{attrs}}}"#)
    };
    let cases: Vec<(String, Result<(), RejectReason>)> = vec![
        (with_attrs(&format!("{{\"n\":{}}}", arrays(32_000))), Ok(())),
        (with_attrs(&objects(10_000)), Ok(())),
        (with_attrs(&arrays(32_000)), Err(RejectReason::WrongType)),
        (with_attrs(&format!("{{\"n\":{}}}", arrays(100_000))), Err(RejectReason::TooLarge)),
        (with_attrs(&format!("{{\"n\":{}", "[".repeat(60_000))), Err(RejectReason::InvalidJson)),
        (format!(r#"{{"extra":{},{}"#, arrays(30_000), &with_attrs("{}")[1..]), Ok(())),
        (
            with_attrs("{}").replace(&format!("\"ts\":{T0}"), &format!("\"ts\":{}", arrays(30_000))),
            Err(RejectReason::WrongType),
        ),
        (arrays(32_000), Err(RejectReason::NotObject)),
        ("[".repeat(65_000), Err(RejectReason::InvalidJson)),
    ];
    let worker = std::thread::Builder::new().stack_size(64 * 1024).spawn(move || {
        let mut e = PartitionEngine::new(no_identity_hold(), 0);
        let mut fates = Vec::new();
        for (i, (raw, _)) in cases.iter().enumerate() {
            assert!(raw.len() <= MAX_PAYLOAD_BYTES || cases[i].1.is_err(), "case {i} expects too_large");
            let fate = decode(raw.as_bytes()).map(|_| ());
            assert_eq!(e.push(raw.as_bytes(), i as i64), fate.err());
            fates.push(fate);
        }
        e.finish();
        (fates, e.take_rows().journeys.len(), cases.into_iter().map(|c| c.1).collect::<Vec<_>>())
    });
    let (fates, journeys, expected) = worker.unwrap().join().unwrap();
    assert_eq!(fates, expected);
    assert_eq!(journeys, 1, "the accepted events share one journey");
}

/// Event times at both ends of 0001-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999Z, just
/// outside, leap seconds and extreme offsets, through window arithmetic with tiny
/// and huge settings. Debug builds check every integer operation for overflow.
#[test]
fn timestamps_at_the_ends_of_the_range() {
    let inside = [
        r#""0001-01-01T00:00:00Z""#,
        r#""0001-01-01T23:59:00+23:59""#,
        r#""9999-12-31T23:59:59.999Z""#,
        r#""9999-12-31T00:00:59.999-23:59""#,
    ];
    let outside = [
        r#""0000-12-31T23:59:59.999Z""#,
        r#""0001-01-01T00:00:00+00:01""#,
        r#""9999-12-31T23:59:59.999-00:01""#,
        r#""10000-01-01T00:00:00Z""#,
        r#""2016-12-31T23:59:60Z""#,
        r#""2026-11-02T08:00:00+24:00""#,
        "-62135596800001",
        "253402300800000",
        "-9223372036854775808",
        "9223372036854775807",
    ];
    for ts in inside {
        let raw = thread_event("e", ts, "t", "touch");
        let ev = decode(raw.as_bytes()).unwrap();
        assert!(ev.ts == MIN_TS_MS || ev.ts == MAX_TS_MS, "{ts} -> {}", ev.ts);
    }
    for ts in outside {
        assert_eq!(decode(thread_event("e", ts, "t", "touch").as_bytes()).err(), Some(RejectReason::BadTs), "{ts}");
    }

    let huge = DurationMs(i64::MAX);
    let configs = [
        EngineConfig::default(),
        EngineConfig {
            window: DurationMs(1),
            gap: DurationMs(1),
            allowed_lateness: DurationMs(0),
            ..EngineConfig::default()
        },
        EngineConfig {
            window: huge,
            gap: huge,
            thread_gap: huge,
            allowed_lateness: huge,
            reply_sla: huge,
            max_path: 1024,
            ..EngineConfig::default()
        },
        EngineConfig { window: DurationMs(7), thread_gap: huge, allowed_lateness: huge, ..EngineConfig::default() },
    ];
    for cfg in configs {
        cfg.validate().unwrap();
        let mut e = PartitionEngine::new(cfg, 0);
        let lines = [
            thread_event("a", &MIN_TS_MS.to_string(), "t", "request_opened"),
            thread_event("b", r#""0001-01-01T00:00:00.001Z""#, "t", "contact"),
            thread_event("c", r#""9999-12-31T23:59:59.998Z""#, "t", "reply"),
            thread_event("d", &MAX_TS_MS.to_string(), "t", "request_resolved"),
            thread_event("e", &MIN_TS_MS.to_string(), "u", "touch"),
            thread_event("f", &MAX_TS_MS.to_string(), "u", "touch"),
        ];
        let mut rows = Rows::default();
        for (i, l) in lines.iter().enumerate() {
            e.push(l.as_bytes(), i as i64);
            rows.append(&mut e.take_rows());
            let bytes = e.checkpoint().unwrap();
            e = PartitionEngine::restore(cfg, 0, &bytes).unwrap();
        }
        e.finish();
        rows.append(&mut e.take_rows());
        let t = rows.journeys.iter().find(|j| j.journey_id.as_deref() == Some("t"));
        let late = rows.rejected.iter().filter(|r| r.reason == RejectReason::Late).count();
        if cfg.allowed_lateness == huge {
            // Nothing is ever late: one thread spanning the whole range (if the gap allows).
            assert_eq!(late, 0);
            if cfg.thread_gap == huge {
                let t = t.unwrap();
                assert_eq!((t.start_ts, t.end_ts, t.duration_ms), (MIN_TS_MS, MAX_TS_MS, MAX_TS_MS - MIN_TS_MS));
                assert_eq!(t.resolution_ms, Some(MAX_TS_MS - MIN_TS_MS));
            }
        } else {
            // After the jump to year 9999 the early events of "u" are late.
            assert!(late >= 1, "{cfg:?}");
        }
        for w in &rows.journey_windows {
            assert!(w.window_start <= MAX_TS_MS && w.window_start >= MIN_TS_MS.saturating_sub(cfg.window.0));
        }
    }
}

/// Regression: `resolution_ms_sum` overflowed i64 (a panic in debug builds) when
/// enough millennia-long resolutions shared one window: 30,000 threads resolved
/// over the whole range, with a thread gap long enough to allow it.
#[test]
fn resolution_sums_saturate_instead_of_overflowing() {
    let n = 30_000;
    let cfg = EngineConfig { thread_gap: DurationMs(i64::MAX), ..EngineConfig::default() };
    let mut e = PartitionEngine::new(cfg, 0);
    for (ts, ty) in [(MIN_TS_MS, "request_opened"), (MAX_TS_MS, "request_resolved")] {
        for i in 0..n {
            e.push(thread_event(&format!("{ty}{i}"), &ts.to_string(), &format!("t{i}"), ty).as_bytes(), 0);
        }
    }
    e.finish();
    let rows = e.take_rows();
    assert_eq!(rows.journeys.len(), n);
    assert_eq!(rows.journey_windows.len(), 1);
    let w = &rows.journey_windows[0];
    assert_eq!((w.resolved, w.resolution_ms_sum), (n as i64, i64::MAX));
    assert_eq!(w.resolution_ms_p50, Some(MAX_TS_MS - MIN_TS_MS));
}

/// The reorder buffer holds accepted events until the watermark (highest ts minus
/// `allowed_lateness`) passes them: bounded by event time, not by count. Events
/// within the lateness window of the newest one are all held; a frozen clock
/// (many events with one ts) holds them all until time moves on.
#[test]
fn the_reorder_buffer_is_bounded_by_the_lateness_window() {
    let lateness = 5_000;
    let mut e = PartitionEngine::new(no_identity_hold(), 0);
    let mut accepted: Vec<i64> = Vec::new();
    for i in 0..20_000i64 {
        // 100 events a second, arriving up to 2 s out of order.
        let ts = T0 + i * 10 - (i * 7919 % 2_000);
        if e.push(event(&format!("e{i}"), ts, &format!("c{}", i % 50), "web", "touch").as_bytes(), i).is_none() {
            accepted.push(ts);
        }
        let wm = e.watermark().unwrap();
        let waiting = accepted.iter().filter(|&&t| t >= wm).count();
        assert_eq!(e.buffered_events(), waiting, "only events not below the watermark wait");
        assert!(e.buffered_events() <= (lateness as usize / 10) + 2 * 200 + 1);
        e.take_rows();
    }

    let frozen = size(100_000, 5);
    let mut e = PartitionEngine::new(no_identity_hold(), 0);
    for i in 0..frozen {
        e.push(event(&format!("e{i}"), T0, &format!("c{i}"), "web", "touch").as_bytes(), i as i64);
    }
    assert_eq!(e.buffered_events(), frozen, "one ts: nothing can be folded yet");
    e.push(event("next", T0 + lateness + 1, "c", "web", "touch").as_bytes(), frozen as i64);
    assert_eq!(e.buffered_events(), 1, "the watermark passed them all");
    assert_eq!(e.open_journeys(), frozen);
}
