#![allow(clippy::unwrap_used)]

use omnimeter_engine::{EngineConfig, PartitionEngine};

use super::*;

fn settings(label_limit: usize) -> MetricsSettings {
    let c = EngineConfig::default();
    MetricsSettings { label_limit, window_ms: c.window.0, gap_ms: c.gap.0, thread_gap_ms: c.thread_gap.0 }
}

/// The value of one sample line `name{labels} value` of the text format.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn feed(m: &Metrics, lines: &[String]) {
    let mut e = PartitionEngine::new(EngineConfig::default(), 0);
    for (i, l) in lines.iter().enumerate() {
        e.push(l.as_bytes(), i as i64);
    }
    e.finish();
    m.record_tally(&e.take_tally());
    m.record_journeys(&e.take_rows().journeys);
    m.finish_windows();
}

fn ev(id: u32, ts_s: i64, cust: &str, channel: &str, ty: &str) -> String {
    let ts = 1_793_606_400_000i64 + ts_s * 1000;
    format!(r#"{{"event_id":"e{id}","ts":{ts},"customer_id":"{cust}","channel":"{channel}","type":"{ty}"}}"#)
}

#[test]
fn engine_output_becomes_the_spec_metrics() {
    let m = Metrics::new(settings(64));
    let lines = vec![
        ev(1, 0, "a", "web", "request_opened"),
        ev(4, 10, "b", "app", "touch"),
        ev(5, 20, "b", "app", "error"),
        ev(6, 30, "b", "store", "conversion"),
        ev(6, 30, "b", "store", "conversion"),
        ev(2, 60, "a", "phone", "contact"),
        ev(3, 120, "a", "phone", "request_resolved"),
        ev(7, 100, "z", "web", "touch"), // 20 s behind the watermark: late
        "{broken".to_owned(),
    ];
    feed(&m, &lines);
    let t = m.encode();
    assert_eq!(sample(&t, "omnimeter_input_events_total"), Some(9.0));
    assert_eq!(sample(&t, "omnimeter_late_events_total"), Some(1.0));
    assert_eq!(sample(&t, r#"omnimeter_rejected_total{reason="invalid_json"}"#), Some(1.0));
    assert_eq!(sample(&t, "omnimeter_duplicates_total"), Some(1.0));
    assert_eq!(sample(&t, r#"omnimeter_events_total{channel="phone",type="contact"}"#), Some(1.0));
    assert_eq!(sum(&t, "omnimeter_events_total"), 6.0);
    assert_eq!(sample(&t, r#"omnimeter_channel_hops_total{from="web",to="phone"}"#), Some(1.0));
    assert_eq!(sample(&t, r#"omnimeter_journeys_closed_total{outcome="converted"}"#), Some(1.0));
    assert_eq!(sample(&t, r#"omnimeter_journeys_closed_total{outcome="resolved"}"#), Some(1.0));
    assert_eq!(sample(&t, r#"omnimeter_journeys_closed_total{outcome="browsed"}"#), Some(0.0));
    assert_eq!(sample(&t, r#"omnimeter_resolution_seconds_count{first_channel="web"}"#), Some(1.0));
    assert_eq!(sample(&t, r#"omnimeter_resolution_seconds_sum{first_channel="web"}"#), Some(120.0));
    assert_eq!(sample(&t, r#"omnimeter_resolution_seconds_bucket{first_channel="web",le="120"}"#), Some(1.0));
    assert_eq!(sample(&t, r#"omnimeter_resolution_seconds_bucket{first_channel="web",le="60"}"#), Some(0.0));
    assert_eq!(sample(&t, r#"omnimeter_friction_total{channel="app",kind="error"}"#), Some(1.0));
    assert_eq!(sample(&t, r#"omnimeter_friction_steps_total{channel="app",kind="error",step="none"}"#), Some(1.0));
    assert_eq!(sample(&t, r#"omnimeter_conversions_total{last_channel="store"}"#), Some(1.0));
    // Journey a ends at +120s (window 2m), b at +30s (window 0m): the last final window holds a.
    assert_eq!(sample(&t, "omnimeter_window_start_seconds"), Some(1_793_606_520.0));
    assert_eq!(sample(&t, "omnimeter_window_conversion_rate"), Some(0.0));
    assert_eq!(sample(&t, "omnimeter_window_mean_hops"), Some(1.0));
    let p90 = sample(&t, "omnimeter_window_resolution_p90_seconds").unwrap();
    assert!((p90 - 120.0).abs() < 1.2, "{p90}");
    assert_eq!(m.top_friction(), Some(("error".to_owned(), "app".to_owned(), 1)));
    assert!(!t.contains("customer_id") && !t.contains("\"a\""), "ids never become labels");
}

#[test]
fn channel_labels_beyond_the_limit_fold_into_other() {
    let m = Metrics::new(settings(3));
    let lines: Vec<String> =
        (0..10).map(|i| ev(i, i64::from(i), &format!("c{i}"), &format!("ch{i}"), "touch")).collect();
    feed(&m, &lines);
    let t = m.encode();
    let series = t.lines().filter(|l| l.starts_with("omnimeter_events_total{")).count();
    assert_eq!(series, 4, "{t}");
    assert_eq!(sample(&t, r#"omnimeter_events_total{channel="other",type="touch"}"#), Some(7.0));
    assert_eq!(sum(&t, "omnimeter_events_total"), 10.0);
    assert_eq!(sample(&t, "omnimeter_label_values_folded_total"), Some(7.0));
}

#[test]
fn partition_gauges_follow_the_partitions_held() {
    let m = Metrics::new(settings(8));
    let p = |partition| PartitionHealth {
        partition,
        lag: Some(5),
        committed: Some(100),
        watermark_ms: Some(1_000_000),
        checkpoint_age_seconds: Some(1.5),
    };
    m.set_partitions("events", &[p(0), p(3)]);
    let t = m.encode();
    assert_eq!(sample(&t, r#"omnimeter_consumer_lag{partition="3",topic="events"}"#), Some(5.0));
    assert_eq!(sample(&t, r#"omnimeter_committed_offset{partition="0",topic="events"}"#), Some(100.0));
    assert_eq!(sample(&t, r#"omnimeter_watermark_seconds{partition="0"}"#), Some(1000.0));
    m.set_partitions("events", &[p(0)]);
    let t = m.encode();
    assert_eq!(sample(&t, r#"omnimeter_consumer_lag{partition="3",topic="events"}"#), None);
}

fn series(text: &str, name: &str) -> usize {
    text.lines().filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{')).count()
}

/// A hostile input with a million channel and step names: every label value past
/// `label_limit` folds into `other`, so the exposition stays small and the
/// guard's memory stays at `label_limit` names, while every count is kept.
#[test]
fn a_million_channel_names_fold_into_a_small_exposition() {
    use omnimeter_engine::{EventType, FrictionKind, Name};
    let (n, limit) = (1_000_000, 64);
    let m = Metrics::new(settings(limit));
    let names: Vec<Name> = (0..n).map(|i| Name::from(format!("ch_{i}"))).collect();
    let tally = Tally {
        inputs: n as u64,
        events: names.iter().map(|c| (c.clone(), EventType::Touch, 1)).collect(),
        hops: names.windows(2).map(|w| (w[0].clone(), w[1].clone(), 1)).collect(),
        friction: names.iter().map(|c| (FrictionKind::Error, c.clone(), Some(c.clone()), 1)).collect(),
        ..Tally::default()
    };
    m.record_tally(&tally);
    let journeys: Vec<JourneyRow> = names[..n / 10]
        .iter()
        .map(|c| JourneyRow {
            partition: 0,
            customer_id: "c".into(),
            journey_id: None,
            start_ts: 0,
            end_ts: 1000,
            duration_ms: 1000,
            events: 2,
            path: format!("{c}>web").into(),
            hops: 1,
            channels: 2,
            first_channel: c.clone(),
            last_channel: c.clone(),
            outcome: Outcome::Converted,
            conversion_value: 1.0,
            resolution_ms: Some(1000),
            first_contact_resolution: Some(true),
            repeat_contacts: 0,
            unanswered_contacts: 0,
            errors: 0,
            anonymous_events: 0,
        })
        .collect();
    m.record_journeys(&journeys);
    m.finish_windows();

    let t = m.encode();
    // About 128 KiB, mostly the 65 resolution histograms (22 lines each); a million
    // unfolded names would be hundreds of MB.
    assert!(t.len() < 256 * 1024, "/metrics grew to {} bytes", t.len());
    assert_eq!(series(&t, "omnimeter_events_total"), limit + 1);
    assert_eq!(sample(&t, r#"omnimeter_events_total{channel="other",type="touch"}"#), Some((n - limit) as f64));
    assert_eq!(sum(&t, "omnimeter_events_total"), n as f64, "folding keeps every count");
    // Hops between admitted names, one into `other`, and the rest other → other.
    assert_eq!(series(&t, "omnimeter_channel_hops_total"), limit + 1);
    assert_eq!(sum(&t, "omnimeter_channel_hops_total"), (n - 1) as f64);
    assert_eq!(series(&t, "omnimeter_friction_steps_total"), limit + 1);
    assert_eq!(series(&t, "omnimeter_conversions_total"), limit + 1);
    assert_eq!(sum(&t, "omnimeter_conversions_total"), (n / 10) as f64);
    assert_eq!(series(&t, "omnimeter_resolution_seconds_count"), limit + 1);
    let g = lock(&m.guard);
    assert_eq!(g.admitted(), (limit, limit), "the guard remembers only admitted names");
}

/// The bound for label pairs: `channel_hops_total{from,to}` can hold at most
/// (label_limit + 1)² series, however hops between a million names are arranged.
#[test]
fn label_pairs_are_bounded_by_the_square_of_the_limit() {
    use omnimeter_engine::{EventType, Name};
    let limit = 8;
    let m = Metrics::new(settings(limit));
    let names: Vec<Name> = (0..1000).map(|i| Name::from(format!("ch_{i}"))).collect();
    // Every ordered pair among the first 30 names, after the first `limit` were admitted.
    let tally = Tally {
        events: names.iter().map(|c| (c.clone(), EventType::Touch, 1)).collect(),
        hops: names[..30].iter().flat_map(|a| names[..30].iter().map(|b| (a.clone(), b.clone(), 1))).collect(),
        ..Tally::default()
    };
    m.record_tally(&tally);
    let t = m.encode();
    assert_eq!(series(&t, "omnimeter_channel_hops_total"), (limit + 1) * (limit + 1));
    assert_eq!(sum(&t, "omnimeter_channel_hops_total"), 900.0);
}
