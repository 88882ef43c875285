//! State per open journey: opens N journeys in one partition engine (N distinct
//! customers, one or two events each, all still open when measured) and reports
//! the resident memory they add, per journey, beside the engine's own estimate.
//!
//!     cargo bench --bench open_journeys                # 1,000,000 journeys
//!     cargo bench --bench open_journeys -- 200000      # any count
//!
//! A benchmark, not a test: it asserts nothing about size, it measures. RSS comes
//! from /proc/self/status (Linux), so it includes the allocator's overhead.

#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::time::Instant;

use omnimeter_engine::{EngineConfig, PartitionEngine};

const T0: i64 = 1_793_606_400_000; // 2026-11-02T08:00:00Z
const CHANNELS: [&str; 7] = ["web", "app", "phone", "chat", "whatsapp", "email", "store"];
const TYPES: [&str; 3] = ["touch", "contact", "request_opened"];

/// `(VmRSS, VmHWM)` of this process in bytes.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib = |key: &str| {
        status.lines().find_map(|l| l.strip_prefix(key)?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
    };
    (kib("VmRSS:").unwrap() * 1024, kib("VmHWM:").unwrap() * 1024)
}

fn mib(b: u64) -> f64 {
    b as f64 / 1_048_576.0
}

fn main() {
    let journeys: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let cfg = EngineConfig::default();
    let mut engine = PartitionEngine::new(cfg, 0);
    // All events fit in 20 minutes of event time: less than the 30-minute gap, so
    // no journey can close; the last 5 s (allowed lateness) stay in the reorder buffer.
    let span_ms = 20 * 60_000;
    let (rss_before, hwm_before) = rss();
    let started = Instant::now();
    let mut raw = String::with_capacity(256);
    let mut events = 0u64;
    for i in 0..journeys {
        let ts = T0 + (i as i64 * span_ms) / journeys as i64;
        // Every other customer has a second event on another channel: a hop.
        for e in 0..=(i % 2) {
            raw.clear();
            let ch = CHANNELS[(i as usize + e as usize * 3) % CHANNELS.len()];
            let ty = TYPES[(i as usize / 2 + e as usize) % TYPES.len()];
            let step = if i % 3 == 0 { r#","step":"login""# } else { "" };
            write!(
                raw,
                r#"{{"event_id":"evt-{i:09}-{e}","ts":{},"customer_id":"cust-{i:08}","channel":"{ch}","type":"{ty}"{step}}}"#,
                ts + e as i64 * 500
            )
            .unwrap();
            assert!(engine.push(raw.as_bytes(), events as i64).is_none());
            events += 1;
        }
    }
    // Activity rows of windows the watermark passed are handed out, as a worker would.
    let rows = engine.take_rows();
    assert!(rows.journeys.is_empty(), "no journey may close before the measurement");
    drop(rows);
    let elapsed = started.elapsed().as_secs_f64();
    let (rss_after, hwm_after) = rss();
    let open = engine.open_journeys() as u64;
    let buffered = engine.buffered_events() as u64;
    let estimate = engine.estimated_state_bytes() as u64;
    let held = open + buffered; // journeys still in the reorder buffer are held too, as pending events
    let delta = rss_after.saturating_sub(rss_before);

    println!("open journeys: {journeys} customers, {events} events, all in one partition engine");
    println!("  open journeys     {open} (+ {buffered} events still in the reorder buffer)");
    println!(
        "  RSS before/after  {:.1} MiB -> {:.1} MiB (peak {:.1} -> {:.1} MiB)",
        mib(rss_before),
        mib(rss_after),
        mib(hwm_before),
        mib(hwm_after)
    );
    println!("  RSS delta         {:.1} MiB = {:.0} bytes per journey", mib(delta), delta as f64 / journeys as f64);
    println!(
        "  peak RSS delta    {:.1} MiB = {:.0} bytes per journey",
        mib(hwm_after.saturating_sub(hwm_before)),
        hwm_after.saturating_sub(hwm_before) as f64 / journeys as f64
    );
    println!(
        "  engine estimate   {:.1} MiB = {:.0} bytes per journey",
        mib(estimate),
        estimate as f64 / held.max(1) as f64
    );
    println!("  time              {elapsed:.2} s ({:.0} events/s)", events as f64 / elapsed);
}
