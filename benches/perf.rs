//! Every performance figure of the README in one command, side by side:
//!
//!     cargo bench --bench perf                        # 1,000,000 events
//!     cargo bench --bench perf -- 5000000             # any count
//!     cargo bench --bench perf -- 1000000 decode file # only some sections
//!
//! Sections (all by default): `decode` (decoding alone), `engine` (the engine alone
//! on pre-decoded events), `file` (file mode end to end, and pinned to one core),
//! `scale-file` (two file-mode processes on two cores vs one), `duckdb` (the same
//! `journeys` table in DuckDB SQL), `journeys` (memory per open journey), `kafka`
//! (a worker next to a raw consume on a local tansu broker, then two workers vs one),
//! `identity` (memory per identity; the resolve stage's state machine next to the
//! engine on identity traffic), `identity-kafka` (`omnimeter resolve` next to `run` on
//! the same broker and events, and the hold's latency on live traffic), `ts-forms`
//! (decoding alone and file mode on one core, for each form of `ts` alone and for the
//! mix real producers send: `generate --timestamps producers`), `sparse` (file mode
//! on the same number of events spread over 100 days: a cut per hour, many small files).
//!
//! In-process sections run in a child process (this binary again, with `--section`)
//! so that the peak RSS each reports (VmHWM) is its own. Wall-clock figures are the
//! best of `RUNS` runs (3), as other work on the machine only ever slows a run down.
//! A benchmark, not a test: it asserts nothing about speed, it measures.

#![allow(clippy::unwrap_used)]

#[path = "../tests/util/mod.rs"]
mod util;

use std::fmt::Write as _;
use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use omnimeter_engine::{EngineConfig, Event, PartitionEngine, RejectReason, decode};
use omnimeter_generate::{GenConfig, Generator, Timestamps};

const RUNS: usize = 3;
const OMNIMETER: &str = env!("CARGO_BIN_EXE_omnimeter");
const SECTIONS: [&str; 12] = [
    "decode",
    "engine",
    "file",
    "scale-file",
    "duckdb",
    "journeys",
    "kafka",
    "files",
    "identity",
    "identity-kafka",
    "ts-forms",
    "sparse",
];

/// One line of the final table.
struct Figure {
    what: String,
    events: u64,
    secs: f64,
    rss: Option<u64>,
    note: String,
}

impl Figure {
    fn new(what: impl Into<String>, events: u64, secs: f64, rss: Option<u64>, note: impl Into<String>) -> Self {
        Figure { what: what.into(), events, secs, rss, note: note.into() }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if let Some(i) = args.iter().position(|a| a == "--section") {
        // Child mode: one in-process section, its figure on stdout as one `FIGURE` line.
        child(&args[i + 1], Path::new(&args[i + 2]), args[i + 3].parse().unwrap());
        return;
    }
    let events: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    // The main input's `ts` form: `ts=producers` (default: the mix real producers send),
    // `ts=generator` (the generator's default, as in figures before 2026-12), or one form.
    let form = match args.iter().find_map(|a| a.strip_prefix("ts=")).unwrap_or("producers") {
        "producers" => Timestamps::Producers,
        "generator" => Timestamps::Generator,
        "z" => Timestamps::Zulu,
        "offset" => Timestamps::Offsets,
        "epoch" => Timestamps::Epoch,
        "seconds" => Timestamps::WholeSeconds,
        other => panic!("ts={other}: expected producers, generator, z, offset, epoch or seconds"),
    };
    let chosen: Vec<&str> = SECTIONS.into_iter().filter(|s| args.iter().any(|a| a == s)).collect();
    let run = |s: &str| chosen.is_empty() || chosen.contains(&s);

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.ndjson");
    let bytes = generate_with(&input, events, form);
    eprintln!("bench: {events} events ({form:?} timestamps), {:.1} MiB of NDJSON in {}", mib(bytes), input.display());

    let mut table: Vec<Figure> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    if run("decode") {
        table.push(in_child("decode", &input, events));
        table.push(in_child("serde-decode", &input, events));
    }
    if run("engine") {
        table.push(in_child("engine", &input, events));
    }
    let mut file_secs = None;
    if run("file") || run("duckdb") {
        let f = file_mode(&input, dir.path(), None, events);
        file_secs = Some(f.secs);
        table.push(f);
        if run("file") {
            table.push(file_mode(&input, dir.path(), Some("0"), events));
        }
    }
    if run("scale-file") {
        let (one, two, note) = scale_file(&input, dir.path());
        table.push(one);
        table.push(two);
        notes.push(note);
    }
    if run("duckdb") {
        let (fig, note) = duckdb(&input, dir.path(), events, file_secs.unwrap_or(f64::NAN));
        table.push(fig);
        notes.push(note);
    }
    if run("journeys") {
        table.push(in_child("journeys", &input, events));
    }
    if run("kafka") {
        // `days=N` spreads the topic's events over N days of event time (default 1).
        let days = args.iter().find_map(|a| a.strip_prefix("days=")).map_or(1, |d| d.parse().expect("days=N"));
        let (figs, kafka_notes) = kafka(events as usize, days);
        table.extend(figs);
        notes.extend(kafka_notes);
    }
    if run("files") {
        notes.extend(live_files());
    }
    if run("identity") {
        table.push(in_child("identity-book", &input, events));
        table.push(in_child("identity-resolver", &input, events));
        table.push(in_child("identity-engine", &input, events));
    }
    if run("ts-forms") {
        let forms = [
            ("z", Timestamps::Zulu),
            ("offsets", Timestamps::Offsets),
            ("epoch ms", Timestamps::Epoch),
            ("whole seconds", Timestamps::WholeSeconds),
            ("producers' mix", Timestamps::Producers),
            ("generator (before 2026-12)", Timestamps::Generator),
        ];
        for (name, form) in forms {
            let path = dir.path().join(format!("events-{}.ndjson", name.replace([' ', '\'', '(', ')'], "-")));
            generate_with(&path, events, form);
            let mut dec = in_child("decode", &path, events);
            dec.what = format!("decode alone, ts {name}");
            let mut one = file_mode(&path, dir.path(), Some("0"), events);
            one.what = format!("file mode one core, ts {name}");
            let ratio = one.secs / dec.secs;
            one.note = format!("{:.2}x decoding alone", ratio);
            table.push(dec);
            table.push(one);
        }
    }
    if run("sparse") {
        // The same number of events over a hundred days: a cut per hour, and about 50,000
        // small files for 1M events (SPEC §4: a file per table, hour and cut).
        let sub = dir.path().join("sparse");
        std::fs::create_dir_all(&sub).unwrap();
        let path = sub.join("events.ndjson");
        generate_sparse(&path, events);
        for core in [None, Some("0")] {
            let mut f = file_mode(&path, &sub, core, events);
            f.what = format!("{}, sparse: 100 days", f.what);
            f.note = format!(
                "{}; {} files",
                f.note,
                count_files(&sub.join(format!("file-out-{}-0", core.unwrap_or("all"))))
            );
            table.push(f);
        }
    }
    if run("identity-kafka") {
        let (figs, id_notes) = identity_kafka(events as usize);
        table.extend(figs);
        notes.extend(id_notes);
    }

    println!();
    println!("omnimeter performance, {events} generated events ({form:?} timestamps, {:.1} MiB NDJSON)", mib(bytes));
    println!("machine: {} cores, {}; load average at the end: {}", cores(), cpu_model(), load());
    println!();
    println!("| what | events/s | ns/event | wall | peak RSS | |");
    println!("|---|---:|---:|---:|---:|---|");
    for f in &table {
        let rate = if f.secs > 0.0 { format!("{:.0}", f.events as f64 / f.secs) } else { "–".into() };
        let ns = if f.events > 0 { format!("{:.0}", f.secs * 1e9 / f.events as f64) } else { "–".into() };
        let rss = f.rss.map_or("–".to_owned(), |b| format!("{:.0} MiB", mib(b)));
        println!("| {} | {rate} | {ns} | {:.2} s | {rss} | {} |", f.what, f.secs, f.note);
    }
    let by = |name: &str| table.iter().find(|f| f.what.starts_with(name)).map(|f| f.secs);
    println!();
    if let (Some(file), Some(dec)) = (by("file mode end to end"), by("decode alone")) {
        println!("file mode (two cores) / decoding alone: {:.2}x the time", file / dec);
    }
    if let Some(one) = by("file mode, one core") {
        if let Some(dec) = by("decode alone") {
            println!("file mode one core / omnimeter's decoding alone: {:.2}x the time", one / dec);
        }
        if let Some(serde) = by("serde_json") {
            println!("file mode one core / serde_json into borrowed structs: {:.2}x the time", one / serde);
        }
    }
    for n in notes {
        println!("{n}");
    }
}

// ---------------------------------------------------------------- input

fn generate_with(path: &Path, events: u64, timestamps: Timestamps) -> u64 {
    // About 8 events per customer over one day: realistic journey sizes and open-journey counts.
    // 1 % of events sent twice, as at-least-once producers do.
    let cfg = GenConfig {
        customers: (events / 8).max(1),
        days: 1,
        seed: 7,
        timestamps,
        duplicate_rate: 0.01,
        ..GenConfig::default()
    };
    write_generated(path, events, cfg)
}

/// Writes `events` events of `cfg` to `path`; returns the file's size.
fn write_generated(path: &Path, events: u64, cfg: GenConfig) -> u64 {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    Generator::new(cfg).write_to(&mut out, Some(events)).unwrap();
    out.flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

/// `events` events of `events / 1000` customers over 100 days (the producers' `ts` mix).
fn generate_sparse(path: &Path, events: u64) {
    let cfg = GenConfig {
        customers: (events / 1000).max(1),
        days: 100,
        seed: 7,
        timestamps: Timestamps::Producers,
        duplicate_rate: 0.01,
        ..GenConfig::default()
    };
    write_generated(path, events, cfg);
}

/// Parquet files under `dir`.
fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() { count_files(&p) } else { usize::from(p.extension().is_some_and(|x| x == "parquet")) }
        })
        .sum()
}

fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|&b| b == b'\n').filter(|l| !l.is_empty())
}

// ---------------------------------------------------------------- in-process sections (children)

fn in_child(section: &str, input: &Path, events: u64) -> Figure {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--section", section, input.to_str().unwrap(), &events.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "section {section} failed");
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.lines().find_map(|l| l.strip_prefix("FIGURE\t")).unwrap_or_else(|| panic!("{text}"));
    let f: Vec<&str> = line.split('\t').collect();
    Figure::new(f[0], f[1].parse().unwrap(), f[2].parse().unwrap(), f[3].parse().ok(), f[4])
}

fn child(section: &str, input: &Path, events: u64) {
    let f = match section {
        "decode" => decode_alone(input),
        "serde-decode" => serde_decode(input),
        "engine" => engine_alone(input),
        "journeys" => open_journeys(events),
        "identity-book" => identity_book(events),
        "identity-resolver" => identity_stage(events, true),
        "identity-engine" => identity_stage(events, false),
        other => panic!("unknown section {other}"),
    };
    println!("FIGURE\t{}\t{}\t{}\t{}\t{}", f.what, f.events, f.secs, f.rss.map_or(-1, |b| b as i64), f.note);
}

/// `VmHWM` of this process: its peak resident memory.
fn peak_rss() -> u64 {
    status_kib(&std::fs::read_to_string("/proc/self/status").unwrap(), "VmHWM:").unwrap() * 1024
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|l| l.strip_prefix(key)?.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// (a) `omnimeter_engine::decode` over every line of the file, held in memory.
fn decode_alone(input: &Path) -> Figure {
    let text = std::fs::read(input).unwrap();
    let lines: Vec<&[u8]> = lines(&text).collect();
    let mut best = f64::INFINITY;
    for _ in 0..RUNS {
        let t = Instant::now();
        let mut ok = 0u64;
        for line in &lines {
            ok += u64::from(black_box(decode(black_box(line))).is_ok());
        }
        best = best.min(t.elapsed().as_secs_f64());
        assert_eq!(ok, lines.len() as u64, "generated events all decode");
    }
    let n = lines.len() as u64;
    Figure::new("decode alone (in memory)", n, best, Some(peak_rss()), "`decode` over each line; file held in memory")
}

/// The same lines deserialized with serde_json into structs that borrow from the
/// line (timestamps left as text, `attrs` skipped): the reference "decoding" of a
/// Rust program that reads such events, to compare file mode with.
fn serde_decode(input: &Path) -> Figure {
    use std::borrow::Cow;

    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    #[allow(dead_code)]
    enum RawTs<'a> {
        Millis(i64),
        Text(#[serde(borrow)] Cow<'a, str>),
    }
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct RawEvent<'a> {
        #[serde(borrow)]
        event_id: Cow<'a, str>,
        #[serde(borrow)]
        ts: RawTs<'a>,
        #[serde(borrow, default)]
        customer_id: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        journey_id: Option<Cow<'a, str>>,
        #[serde(borrow)]
        channel: Cow<'a, str>,
        #[serde(borrow, rename = "type")]
        kind: Cow<'a, str>,
        #[serde(borrow, default)]
        step: Option<Cow<'a, str>>,
        #[serde(default)]
        value: Option<f64>,
        #[serde(default)]
        attrs: Option<serde::de::IgnoredAny>,
        #[serde(default)]
        identities: Option<serde::de::IgnoredAny>,
    }
    let text = std::fs::read(input).unwrap();
    let lines: Vec<&[u8]> = lines(&text).collect();
    let mut best = f64::INFINITY;
    for _ in 0..RUNS {
        let t = Instant::now();
        let mut ok = 0u64;
        for line in &lines {
            ok += u64::from(black_box(serde_json::from_slice::<RawEvent<'_>>(black_box(line))).is_ok());
        }
        best = best.min(t.elapsed().as_secs_f64());
        assert_eq!(ok, lines.len() as u64, "generated events all deserialize");
    }
    let n = lines.len() as u64;
    Figure::new(
        "serde_json into borrowed structs",
        n,
        best,
        Some(peak_rss()),
        "`serde_json::from_slice` per line; file held in memory",
    )
}

/// (b) The engine alone: every line decoded beforehand, then pushed, finished and drained.
fn engine_alone(input: &Path) -> Figure {
    let text = std::fs::read(input).unwrap();
    let mut best = f64::INFINITY;
    let mut n = 0u64;
    for _ in 0..RUNS {
        let decoded: Vec<(&[u8], Result<Event<'_>, RejectReason>)> = lines(&text).map(|l| (l, decode(l))).collect();
        n = decoded.len() as u64;
        let mut engine = PartitionEngine::new(EngineConfig::default(), 0);
        let t = Instant::now();
        let mut rows = Vec::new();
        for (offset, (raw, event)) in decoded.into_iter().enumerate() {
            engine.push_decoded(raw, event, offset as i64);
            if offset % 1_000_000 == 999_999 {
                rows.push(engine.take_rows()); // as file mode flushes, by default every 1M lines
            }
        }
        engine.finish();
        rows.push(engine.take_rows());
        best = best.min(t.elapsed().as_secs_f64());
        black_box(rows);
    }
    let note = "`push_decoded` + `finish` + `take_rows`, events decoded beforehand";
    Figure::new("engine alone (pre-decoded)", n, best, Some(peak_rss()), note)
}

/// (e) Memory per open journey: N customers with one or two events each, none closed yet.
fn open_journeys(journeys: u64) -> Figure {
    const T0: i64 = 1_793_606_400_000; // 2026-11-02T08:00:00Z
    const CHANNELS: [&str; 7] = ["web", "app", "phone", "chat", "whatsapp", "email", "store"];
    const TYPES: [&str; 3] = ["touch", "contact", "request_opened"];
    let rss = || status_kib(&std::fs::read_to_string("/proc/self/status").unwrap(), "VmRSS:").unwrap() * 1024;
    // As a `run` worker has it (no identity hold: that is measured by `identity`).
    let mut engine = PartitionEngine::new(EngineConfig { resolve_identities: false, ..EngineConfig::default() }, 0);
    // All events within 20 minutes of event time, less than the 30-minute gap: no journey
    // closes; the last 5 s (allowed lateness) stay in the reorder buffer.
    let span_ms = 20 * 60_000;
    let before = rss();
    let started = Instant::now();
    let (mut raw, mut events) = (String::with_capacity(256), 0u64);
    let mut distinct_strings = 0u64;
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
        distinct_strings += "cust-00000000".len() as u64;
    }
    let rows = engine.take_rows();
    assert!(rows.journeys.is_empty(), "no journey may close before the measurement");
    drop(rows);
    let secs = started.elapsed().as_secs_f64();
    let grown = rss().saturating_sub(before);
    let held = (engine.open_journeys() + engine.buffered_events()) as u64;
    let estimate = engine.estimated_state_bytes() as u64;
    let note = format!(
        "{journeys} open journeys, {events} events: {:.0} B RSS per journey ({:.0} B beyond its {} B customer id); engine estimate {:.0} B",
        grown as f64 / journeys as f64,
        (grown - distinct_strings) as f64 / journeys as f64,
        distinct_strings / journeys,
        estimate as f64 / held.max(1) as f64
    );
    Figure::new("open journeys (memory)", events, secs, Some(peak_rss()), note)
}

/// Identity traffic (SPEC §6 stories: cookies, phones, loyalty cards, shared phones).
fn identity_lines(events: u64, seed: u64) -> Vec<Vec<u8>> {
    let cfg = GenConfig { customers: (events / 8).max(1), days: 1, seed, identities: true, ..GenConfig::default() };
    let mut g = Generator::new(cfg);
    let mut out = Vec::with_capacity(events as usize);
    let mut line = Vec::new();
    while (out.len() as u64) < events && g.next_event(&mut line).is_some() {
        out.push(std::mem::take(&mut line));
    }
    out
}

/// Memory per owned identity: `n` links of distinct identities learned by an
/// [`IdentityBook`] (what every resolver, and file mode, holds for good).
fn identity_book(n: u64) -> Figure {
    use omnimeter_engine::identity::{IdentityBook, PendingLink};
    const T0: i64 = 1_793_606_400_000;
    let rss = || status_kib(&std::fs::read_to_string("/proc/self/status").unwrap(), "VmRSS:").unwrap() * 1024;
    let before = rss();
    let started = Instant::now();
    let mut book = IdentityBook::default();
    let mut rows = Vec::new();
    for i in 0..n {
        // 16-byte values like "ck-00000000a3f1" and 12-byte customer ids: inline strings.
        let link = PendingLink {
            ts: T0 + i as i64,
            event_id: format!("e{i:011}").into(),
            customer_id: format!("cust-{:07}", i / 3).into(),
            identities: vec![("cookie".into(), format!("ck-{i:012x}").into())],
        };
        book.add_link(link);
        if i % 10_000 == 9_999 {
            book.learn_all(0, &mut rows);
            rows.clear();
        }
    }
    book.learn_all(0, &mut rows);
    drop(rows);
    let secs = started.elapsed().as_secs_f64();
    let grown = rss().saturating_sub(before);
    let note = format!(
        "{} owned identities: {:.0} B RSS per identity; estimate {:.0} B",
        book.owned(),
        grown as f64 / n as f64,
        book.estimated_bytes() as f64 / n as f64
    );
    Figure::new("identity owners (memory)", n, secs, Some(peak_rss()), note)
}

/// One raw partition of identity traffic through the resolve stage's state machine
/// (`resolver`: push, link log, release with the partition's own watermark as the global
/// one) or through the file-mode engine, which resolves and folds journeys too.
fn identity_stage(events: u64, resolver: bool) -> Figure {
    use omnimeter_engine::PartitionResolver;
    use omnimeter_engine::identity::IdentityBook;
    let lines = identity_lines(events, 9);
    let n = lines.len() as u64;
    let mut best = f64::INFINITY;
    let mut held_peak = 0usize;
    for _ in 0..RUNS {
        let t = Instant::now();
        if resolver {
            let mut r = PartitionResolver::new(0, 6, 5_000, 30 * 60_000);
            let mut book = IdentityBook::default();
            let mut out = Vec::new();
            let mut sent = 0u64;
            for (offset, line) in lines.iter().enumerate() {
                let (link, pass) = r.push(line, offset as i64);
                if let Some(l) = link {
                    book.add_link(l);
                }
                sent += u64::from(pass.is_some());
                if offset % 1_000 == 999 {
                    let g = r.watermark().unwrap_or(i64::MIN);
                    book.learn_below(g, 0, &mut Vec::new());
                    r.release(g, false, &book, 1, &mut out);
                    held_peak = held_peak.max(r.held());
                    sent += out.len() as u64;
                    out.clear();
                }
            }
            book.learn_below(i64::MAX, 0, &mut Vec::new());
            r.release(i64::MAX, true, &book, 1, &mut out);
            black_box((sent, out.len()));
        } else {
            let mut e = PartitionEngine::new(EngineConfig::default(), 0);
            for (offset, line) in lines.iter().enumerate() {
                e.push(line, offset as i64);
                if offset % 1_000_000 == 999_999 {
                    black_box(e.take_rows());
                }
            }
            e.finish();
            black_box(e.take_rows());
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    if resolver {
        let note = format!("`PartitionResolver` push + release every 1,000 events; up to {held_peak} events held");
        Figure::new("resolve stage alone (identity traffic)", n, best, Some(peak_rss()), note)
    } else {
        let note = "file-mode engine on the same identity traffic: resolves and folds journeys";
        Figure::new("engine alone (identity traffic)", n, best, Some(peak_rss()), note)
    }
}

// ---------------------------------------------------------------- subprocess sections

/// Runs `cmd` to completion; wall time and its peak RSS (VmHWM polled from /proc while it runs).
fn timed(cmd: &mut Command) -> (f64, Option<u64>, String) {
    let t = Instant::now();
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (out, rss) = wait_polling(child);
    let secs = t.elapsed().as_secs_f64();
    assert!(out.status.success(), "{:?} failed:\n{}", cmd, String::from_utf8_lossy(&out.stderr));
    (secs, rss, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn wait_polling(mut child: Child) -> (std::process::Output, Option<u64>) {
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = None;
    // Reading stdout/stderr on threads keeps a chatty child from blocking on a full pipe.
    let (mut so, mut se) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let outs = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut so, &mut v).unwrap();
        v
    });
    let errs = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut se, &mut v).unwrap();
        v
    });
    let status = loop {
        if let Some(kib) = std::fs::read_to_string(&status_path).ok().and_then(|s| status_kib(&s, "VmHWM:")) {
            peak = peak.max(Some(kib * 1024));
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (std::process::Output { status, stdout: outs.join().unwrap(), stderr: errs.join().unwrap() }, peak)
}

fn file_cmd(input: &Path, out: &Path, core: Option<&str>) -> Command {
    let mut cmd = match core {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", c, OMNIMETER]);
            cmd
        }
        None => Command::new(OMNIMETER),
    };
    cmd.args(["run", "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap()]);
    cmd
}

/// CPU seconds (user + system) the command's process used, as `sh`'s `times` reports
/// its children (10 ms resolution): how much of the cores a wall-clock figure kept busy.
fn cpu_seconds(cmd: &Command) -> f64 {
    let out = Command::new("sh")
        .args(["-c", "\"$@\" >/dev/null 2>&1 || exit 1; times", "sh"])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .output()
        .unwrap();
    assert!(out.status.success(), "{cmd:?} failed");
    // `times`: the shell's user and system time, then its children's: `0m0.920000s 0m0.140000s`.
    let text = String::from_utf8_lossy(&out.stdout);
    let children = text.lines().nth(1).expect("`times` prints two lines");
    children
        .split_whitespace()
        .map(|t| {
            let (m, s) = t.trim_end_matches('s').split_once('m').expect("`times` prints 0m0.00s");
            m.parse::<f64>().unwrap() * 60.0 + s.parse::<f64>().unwrap()
        })
        .sum()
}

/// The summary's own peak RSS figure (`peak RSS 105.3 MiB`), exact where polling may miss the peak.
fn summary_rss(summary: &str) -> Option<u64> {
    let mib: f64 = summary.split("peak RSS ").nth(1)?.split_whitespace().next()?.parse().ok()?;
    Some((mib * 1_048_576.0) as u64)
}

/// (c) File mode end to end: NDJSON file → Parquet, the binary as a subprocess, best of RUNS.
fn file_mode(input: &Path, dir: &Path, core: Option<&str>, events: u64) -> Figure {
    let mut best = (f64::INFINITY, None);
    for i in 0..RUNS {
        // Outputs stay until the bench's temporary folder goes, at the end: ext4 makes
        // creating files right after deleting many slow (`recently_deleted` scans took a
        // fifth of a one-core run), a cost of the benchmark's loop, not of a run.
        let out = dir.join(format!("file-out-{}-{i}", core.unwrap_or("all")));
        let (secs, polled, summary) = timed(&mut file_cmd(input, &out, core));
        if secs < best.0 {
            best = (secs, summary_rss(&summary).or(polled));
        }
    }
    match core {
        None => {
            Figure::new("file mode end to end", events, best.0, best.1, "NDJSON file → Parquet, process start to exit")
        }
        Some(c) => Figure::new("file mode, one core", events, best.0, best.1, format!("same, `taskset -c {c}`")),
    }
}

/// (f) Two file-mode processes over the two halves of the input's customers (as two
/// workers would hold two halves of a topic's partitions), each pinned to its own
/// core, against one process doing both halves one after the other on one core.
fn scale_file(input: &Path, dir: &Path) -> (Figure, Figure, String) {
    let text = std::fs::read(input).unwrap();
    let mut halves = [Vec::new(), Vec::new()];
    let mut counts = [0u64; 2];
    for line in lines(&text) {
        let h =
            decode(line).map_or(0, |e| e.routing_key().bytes().fold(0u32, |h, b| h.wrapping_mul(31) + u32::from(b)));
        let half = (h % 2) as usize;
        halves[half].extend_from_slice(line);
        halves[half].push(b'\n');
        counts[half] += 1;
    }
    let paths: Vec<PathBuf> = (0..2).map(|i| dir.join(format!("half-{i}.ndjson"))).collect();
    for (p, h) in paths.iter().zip(&halves) {
        std::fs::write(p, h).unwrap();
    }
    drop((text, halves));
    let total = counts[0] + counts[1];
    let (mut one, mut two) = (f64::INFINITY, f64::INFINITY);
    for i in 0..RUNS {
        let t = Instant::now();
        for (h, p) in paths.iter().enumerate() {
            timed(&mut file_cmd(p, &dir.join(format!("seq-{i}-{h}")), Some("0")));
        }
        one = one.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let children: Vec<Child> = paths
            .iter()
            .enumerate()
            .map(|(h, p)| {
                let core = h.to_string();
                file_cmd(p, &dir.join(format!("par-{i}-{h}")), Some(&core))
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        two = two.min(t.elapsed().as_secs_f64());
    }
    let note = format!(
        "two file-mode processes on two cores: {:.2}x one process on one core ({} + {} events)",
        one / two,
        counts[0],
        counts[1]
    );
    (
        Figure::new("file mode, 1 process, halves in turn", total, one, None, "`taskset -c 0`, half A then half B"),
        Figure::new("file mode, 2 processes in parallel", total, two, None, "half A on core 0, half B on core 1"),
        note,
    )
}

/// The `journeys` table as a data team would compute it instead: DuckDB SQL
/// (`benches/duckdb_journeys.sql`) over the same NDJSON file, written to Parquet.
fn duckdb(input: &Path, dir: &Path, events: u64, file_secs: f64) -> (Figure, String) {
    let sql_path = util::repo().join("benches/duckdb_journeys.sql");
    let out = dir.join("duckdb-journeys.parquet");
    let script = r#"
import sys, time, duckdb
sql = open(sys.argv[1]).read().replace("$INPUT", sys.argv[2]).replace("$OUTPUT", sys.argv[3])
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
t = time.perf_counter()
con.execute(sql)
secs = time.perf_counter() - t
rows = con.execute(f"select count(*) from read_parquet('{sys.argv[3]}')").fetchone()[0]
# Row by row against omnimeter's own journeys table (every SPEC column but the partition).
cols = "customer_id, journey_id, start_ts, end_ts, duration_ms, events, path, hops, channels, first_channel, last_channel, outcome, round(conversion_value, 6), resolution_ms, first_contact_resolution, repeat_contacts, unanswered_contacts, errors"
ours = f"select {cols} from read_parquet('{sys.argv[4]}/journeys/*/*/*.parquet')"
theirs = f"select {cols} from read_parquet('{sys.argv[3]}')"
differ = con.execute(f"select (select count(*) from ({ours} except all {theirs})) + (select count(*) from ({theirs} except all {ours}))").fetchone()[0]
print(f"{secs} {rows} {differ}")
"#;
    let ours = dir.join("duckdb-reference");
    timed(&mut file_cmd(input, &ours, None));
    let mut best = (f64::INFINITY, None, 0u64, 0u64);
    for _ in 0..RUNS {
        let (_, rss, stdout) = timed(Command::new(util::python()).args([
            "-c",
            script,
            sql_path.to_str().unwrap(),
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            ours.to_str().unwrap(),
        ]));
        let last = stdout.lines().last().unwrap_or_default();
        let mut it = last.split_whitespace().map(|w| w.parse::<f64>().unwrap());
        let (secs, rows, differ) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        if secs < best.0 {
            best = (secs, rss, rows as u64, differ as u64);
        }
    }
    // What the cores allow: file mode's CPU time spread perfectly over them bounds its wall time.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = cpu_seconds(&file_cmd(input, &dir.join("file-out-cpu"), None));
    let note = format!(
        "DuckDB SQL takes {:.2}x the time of omnimeter's file mode (SQL: journeys table only, query time without Python start-up; omnimeter: all {} tables, process start to exit); {} rows, {} differ from omnimeter's journeys\n\
         file mode used {cpu:.2} s of CPU (user + system): spread perfectly over {cores} cores, {:.2} s, at most {:.2}x DuckDB's time",
        best.0 / file_secs,
        omnimeter_engine::TABLES.len(),
        best.2,
        best.3,
        cpu / cores as f64,
        best.0 / (cpu / cores as f64),
    );
    (
        Figure::new("DuckDB SQL, journeys only", events, best.0, best.1, "benches/duckdb_journeys.sql, python duckdb"),
        note,
    )
}

// ---------------------------------------------------------------- Kafka

const PARTITIONS: i32 = 6;

/// (d) Kafka end to end next to a raw consume of the same topic on the same broker,
/// and (f) two workers in one group against one.
fn kafka(events: usize, days: u32) -> (Vec<Figure>, Vec<String>) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};

    let broker = util::kafka::Broker::start();
    broker.create_topic(util::kafka::TOPIC, PARTITIONS as u32);
    let mut g = Generator::new(GenConfig {
        // About 8 events per customer a day, as in the other sections.
        customers: (events / 8 / days as usize).max(1) as u64,
        days,
        seed: 3,
        timestamps: Timestamps::Producers,
        ..GenConfig::default()
    });
    let mut lines = Vec::with_capacity(events);
    let mut line = Vec::new();
    while lines.len() < events && g.next_event(&mut line).is_some() {
        lines.push(std::mem::take(&mut line));
    }
    let t = Instant::now();
    broker.produce(util::kafka::TOPIC, &lines);
    eprintln!("bench: produced {} events in {:.1}s", lines.len(), t.elapsed().as_secs_f64());
    let n = lines.len() as u64;
    drop(lines);

    // Raw consume: every partition from the beginning to its end, only counting,
    // with the worker's fetch settings; measured before and after the workers, best kept.
    let raw_consume = |group: &str, tuned: bool| {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", broker.addr())
            .set("group.id", group)
            .set("enable.partition.eof", "true")
            .set("fetch.wait.max.ms", "100");
        if tuned {
            for (k, v) in TUNED {
                cfg.set(*k, *v);
            }
        }
        let consumer: BaseConsumer = cfg.create().unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition_offset(util::kafka::TOPIC, p, Offset::Beginning).unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let t = Instant::now();
        let (mut count, mut eofs) = (0u64, 0);
        while eofs < PARTITIONS {
            match consumer.poll(Duration::from_millis(500)) {
                Some(Ok(_)) => count += 1,
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => eofs += 1,
                _ => {}
            }
        }
        assert_eq!(count, n);
        t.elapsed().as_secs_f64()
    };
    let raw_before = raw_consume("bench-raw-1", false);
    let tuned_before = raw_consume("bench-raw-t1", true);

    let dir = tempfile::tempdir().unwrap();
    let worker = |group: &str, out: &str| {
        let mut cmd = Command::new(OMNIMETER);
        cmd.args(["run", "--brokers", &broker.addr(), "--topic", util::kafka::TOPIC, "--group", group])
            .args(["--until-end", "--output"])
            .arg(dir.path().join(out))
            .env("OMNIMETER_LOG", "warn");
        cmd
    };
    let (one, one_rss, summary) = timed(&mut worker("bench-one", "one"));
    // The worker with the raw consumer's tuned settings, through `kafka.properties`.
    let mut tuned_worker = worker("bench-one-tuned", "one-tuned");
    for (k, v) in TUNED {
        tuned_worker.env(format!("OMNIMETER_KAFKA_PROPERTIES_{}", k.replace('.', "_").to_uppercase()), v);
    }
    let (one_tuned, _, _) = timed(&mut tuned_worker);
    // Two workers in one group share the six partitions; timed until both have exited.
    let t = Instant::now();
    // They share one output root, as workers of one group must: the checkpoints live there.
    let pair: Vec<Child> = (0..2)
        .map(|_| worker("bench-two", "two").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap())
        .collect();
    let outs: Vec<(std::process::Output, Option<u64>)> = pair.into_iter().map(wait_polling).collect();
    let two = t.elapsed().as_secs_f64();
    let mut shares = Vec::new();
    for (o, _) in &outs {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let summary = String::from_utf8_lossy(&o.stdout);
        shares.push(summary.split_whitespace().nth(1).unwrap_or("?").to_owned());
    }
    let raw = raw_before.min(raw_consume("bench-raw-2", false));
    let raw_tuned = tuned_before.min(raw_consume("bench-raw-t2", true));
    let tuned_note = TUNED.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
    let figs = vec![
        Figure::new("Kafka raw consume (count only)", n, raw, None, "rdkafka consumer, same broker and topic"),
        Figure::new("Kafka raw consume, tuned", n, raw_tuned, None, tuned_note.clone()),
        Figure::new("Kafka worker → Parquet", n, one, one_rss, "one `omnimeter run --until-end`, start to exit"),
        Figure::new("Kafka worker → Parquet, tuned", n, one_tuned, None, "the same settings via kafka.properties"),
        Figure::new("Kafka, 2 workers in one group", n, two, None, "both started together, until both exit"),
    ];
    let notes = vec![
        format!("Kafka worker: {:.2}x the raw consume rate ({PARTITIONS} partitions, tansu on loopback)", raw / one),
        format!(
            "Kafka, tuned ({tuned_note}): raw consume {:.0} events/s, worker {:.0} events/s = {:.2}x the tuned ceiling",
            n as f64 / raw_tuned,
            n as f64 / one_tuned,
            raw_tuned / one_tuned
        ),
        format!(
            "Kafka: two workers {:.2}x one (events per worker: {}; the broker runs on the same two cores)",
            one / two,
            shares.join(" + ")
        ),
        format!("worker summary: {}", summary.trim()),
    ];
    (figs, notes)
}

/// Consumer settings for the broker's ceiling: bigger fetches and a deeper local queue
/// than librdkafka's defaults (1 MiB per partition and fetch).
const TUNED: &[(&str, &str)] =
    &[("max.partition.fetch.bytes", "16777216"), ("fetch.max.bytes", "67108864"), ("queued.min.messages", "500000")];

/// Files written by live traffic (SPEC §4 cuts): 3 days of event time (~90k events)
/// produced in 100 paced chunks over ~100 s into 6 partitions while one worker
/// consumes, committing every 100 ms; then an `--until-end` worker closes the rest.
/// Reports files per table and the most per (table, partition, hour), and DuckDB's
/// time for a `journeys` query over them against the same rows in one file.
fn live_files() -> Vec<String> {
    let broker = util::kafka::Broker::start();
    broker.create_topic(util::kafka::TOPIC, PARTITIONS as u32);
    let mut g = Generator::new(GenConfig { customers: 2_600, days: 3, seed: 5, ..GenConfig::default() });
    let mut lines = Vec::new();
    let mut line = Vec::new();
    while g.next_event(&mut line).is_some() {
        lines.push(std::mem::take(&mut line));
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("live");
    let worker = |extra: &[&str]| {
        let mut cmd = Command::new(OMNIMETER);
        cmd.args(["run", "--brokers", &broker.addr(), "--topic", util::kafka::TOPIC, "--group", "bench-live"])
            .args(extra)
            .arg("--output")
            .arg(&out)
            .env("OMNIMETER_KAFKA_COMMIT_INTERVAL", "100ms")
            .env("OMNIMETER_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    let mut live = worker(&[]).spawn().unwrap();
    let t = Instant::now();
    for (i, chunk) in lines.chunks(lines.len().div_ceil(100)).enumerate() {
        broker.produce(util::kafka::TOPIC, chunk);
        let due = Duration::from_secs(i as u64 + 1);
        std::thread::sleep(due.saturating_sub(t.elapsed()));
    }
    std::thread::sleep(Duration::from_secs(3));
    let _ = Command::new("kill").args(["-TERM", &live.id().to_string()]).status();
    assert!(live.wait().unwrap().success());
    assert!(worker(&["--until-end"]).status().unwrap().success());
    let paced = t.elapsed().as_secs_f64();

    let mut per_table: std::collections::BTreeMap<String, usize> = Default::default();
    let mut per_slot: std::collections::BTreeMap<(String, String, String), usize> = Default::default();
    for file in util::parquet_files(&out) {
        let rel = file.strip_prefix(&out).unwrap().to_string_lossy().into_owned();
        let parts: Vec<&str> = rel.split('/').collect();
        let [table, date, hour, name] = parts.as_slice() else { continue };
        *per_table.entry((*table).to_owned()).or_default() += 1;
        let partition = name.split('-').next().unwrap_or_default().to_owned();
        *per_slot.entry(((*table).to_owned(), format!("{date}/{hour}"), partition)).or_default() += 1;
    }
    let most: std::collections::BTreeMap<&str, usize> =
        per_slot.iter().fold(Default::default(), |mut m, ((t, _, _), &n)| {
            let e = m.entry(t.as_str()).or_default();
            *e = (*e).max(n);
            m
        });
    let over_two: usize = per_slot.values().filter(|&&n| n > 2).count();
    let total: usize = per_table.values().sum();
    let glob = out.join("journeys/**/*.parquet");
    let single = dir.path().join("journeys-one.parquet");
    let script = format!(
        "import duckdb, time\n\
         c = duckdb.connect()\n\
         c.execute(\"SET enable_progress_bar = false\")\n\
         q = \"SELECT path, count(*) AS n, sum(conversion_value) FROM read_parquet('{{}}', hive_partitioning=true) GROUP BY path ORDER BY n DESC LIMIT 10\"\n\
         c.execute(\"COPY (SELECT * FROM read_parquet('{glob}', hive_partitioning=true)) TO '{single}' (FORMAT parquet)\")\n\
         def best(src):\n    b = 1e9\n    for _ in range(5):\n        t = time.perf_counter(); c.execute(q.format(src)).fetchall(); b = min(b, time.perf_counter() - t)\n    return b\n\
         print('%.1f %.1f' % (best('{glob}') * 1000, best('{single}') * 1000))\n",
        glob = glob.display(),
        single = single.display()
    );
    let timing = Command::new(util::python()).args(["-c", &script]).output().unwrap();
    let timing = String::from_utf8_lossy(&timing.stdout).trim().to_owned();
    let (many_ms, one_ms) = timing.split_once(' ').unwrap_or(("?", "?"));
    vec![
        format!(
            "live traffic: {} events over 3 days of event time, produced in 100 chunks over {paced:.0} s, worker committing every 100 ms: {total} Parquet files",
            lines.len()
        ),
        format!(
            "files per table: {}",
            per_table.iter().map(|(t, n)| format!("{t} {n}")).collect::<Vec<_>>().join(", ")
        ),
        format!(
            "most files per table, partition and hour: {}; slots with more than 2: {over_two} of {}",
            most.iter().map(|(t, n)| format!("{t} {n}")).collect::<Vec<_>>().join(", "),
            per_slot.len()
        ),
        format!(
            "DuckDB journeys query (best of 5): {many_ms} ms over {} journeys files, {one_ms} ms over the same rows in one file",
            per_table.get("journeys").copied().unwrap_or(0)
        ),
    ]
}

// ---------------------------------------------------------------- machine

fn mib(b: u64) -> f64 {
    b as f64 / 1_048_576.0
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1).map(|m| m.trim().to_owned()))
        .unwrap_or_else(|| "unknown CPU".into())
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map_or("?".into(), |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// `omnimeter resolve` next to `omnimeter run` on the same broker and the same identity
/// events (6 raw partitions), then `run` on the resolved topic; and the hold's latency
/// on live traffic (event time = wall time) with a short `identify_wait`.
fn identity_kafka(events: usize) -> (Vec<Figure>, Vec<String>) {
    let broker = util::kafka::Broker::start();
    broker.create_topic("raw", PARTITIONS as u32);
    let lines = identity_lines(events as u64, 4);
    let n = lines.len() as u64;
    broker.produce("raw", &lines);
    drop(lines);
    let dir = tempfile::tempdir().unwrap();
    let resolve = |raw: &str, out: &str, extra: &[&str]| {
        let mut cmd = Command::new(OMNIMETER);
        cmd.args(["resolve", "--brokers", &broker.addr(), "--topic", raw, "--output-topic", out, "--output"])
            .arg(dir.path().join(format!("ckpt-{out}")))
            .args(extra)
            .env("OMNIMETER_RESOLVE_LOG_TOPIC", format!("{out}-log"))
            .env("OMNIMETER_RESOLVE_GROUP", format!("{out}-resolvers"))
            .env("OMNIMETER_LOG", "warn");
        cmd
    };
    let run = |topic: &str, input: &str, out: &str| {
        let mut cmd = Command::new(OMNIMETER);
        cmd.args(["run", "--brokers", &broker.addr(), "--topic", topic, "--group", out, "--until-end", "--output"])
            .arg(dir.path().join(out))
            .env("OMNIMETER_KAFKA_INPUT", input)
            .env("OMNIMETER_LOG", "warn");
        cmd
    };
    // The broker's ceiling for a stage that reads a topic and writes another: every
    // message consumed and produced again (key, payload), nothing else; a member of a
    // consumer group like the resolver (the join counts: a stage that scales out must
    // join one) and the resolver's producer settings (idempotent, linger 5 ms).
    let pipe = |out: &str| {
        use rdkafka::ClientConfig;
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::message::Message;
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        broker.create_topic(out, PARTITIONS as u32);
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker.addr())
            .set("group.id", format!("{out}-pipe"))
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "100")
            .create()
            .unwrap();
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", broker.addr())
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()
            .unwrap();
        let t = Instant::now();
        consumer.subscribe(&["raw"]).unwrap();
        let (mut count, mut eofs) = (0u64, 0);
        while eofs < PARTITIONS || count < n {
            match consumer.poll(Duration::from_millis(500)) {
                Some(Ok(m)) => {
                    let mut record =
                        BaseRecord::to(out).payload(m.payload().unwrap_or_default()).partition(m.partition());
                    if let Some(k) = m.key() {
                        record = record.key(k);
                    }
                    while let Err((e, r)) = producer.send(record) {
                        assert!(
                            matches!(e.rdkafka_error_code(), Some(rdkafka::types::RDKafkaErrorCode::QueueFull)),
                            "{e}"
                        );
                        producer.poll(Duration::from_millis(10));
                        record = r;
                    }
                    producer.poll(Duration::ZERO);
                    count += 1;
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => eofs += 1,
                _ => {}
            }
        }
        producer.flush(Duration::from_secs(60)).unwrap();
        assert_eq!(count, n);
        t.elapsed().as_secs_f64()
    };
    let pipe_secs = pipe("piped");
    let (res_secs, res_rss, _) = timed(&mut resolve("raw", "resolved", &["--until-end"]));
    let (raw_secs, raw_rss, _) = timed(&mut run("raw", "raw", "run-raw"));
    let (run_secs, run_rss, _) = timed(&mut run("resolved", "resolved", "run-resolved"));
    let figs = vec![
        Figure::new(
            "Kafka raw pipe: consume + produce",
            n,
            pipe_secs,
            None,
            "rdkafka group member, no processing: the ceiling",
        ),
        Figure::new("Kafka `resolve` (1 resolver)", n, res_secs, res_rss, "raw → resolved topic, `--until-end`"),
        Figure::new("Kafka `run` on the raw topic", n, raw_secs, raw_rss, "same events, no resolve stage"),
        Figure::new("Kafka `run` on the resolved topic", n, run_secs, run_rss, "after `resolve`; markers drive it"),
    ];
    let mut notes = vec![format!(
        "identity on Kafka: resolve {:.2}x the time of run on the raw topic; resolve + run {:.2}x; \
         resolve {:.2}x the time of the raw pipe (consume + produce, no processing)",
        res_secs / raw_secs,
        (res_secs + run_secs) / raw_secs,
        res_secs / pipe_secs
    )];
    notes.push(hold_latency(&broker, &dir));
    (figs, notes)
}

/// Live traffic stamped with the wall clock (1,000 events/s for 15 s: anonymous web
/// visits under a cookie, each cookie logged in 100 ms later) through a resolver with
/// `identify_wait` = 2 s: how long after its event time each message reaches the
/// resolved topic. The wait itself is `identify_wait` + `allowed_lateness`; the rest is
/// the stage's own delay (progress interval, the log, produce and fetch).
fn hold_latency(broker: &util::kafka::Broker, dir: &tempfile::TempDir) -> String {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    const WAIT_MS: i64 = 2_000;
    const LATENESS_MS: i64 = 1_000;
    broker.create_topic("live-raw", PARTITIONS as u32);
    broker.create_topic("live-resolved", PARTITIONS as u32);
    broker.create_topic("live-resolved-log", 1);
    let mut resolver = Command::new(OMNIMETER)
        .args(["resolve", "--brokers", &broker.addr(), "--topic", "live-raw", "--output-topic", "live-resolved"])
        .args(["--identify-wait", "2s", "--allowed-lateness", "1s", "--output"])
        .arg(dir.path().join("ckpt-live"))
        .env("OMNIMETER_RESOLVE_LOG_TOPIC", "live-resolved-log")
        .env("OMNIMETER_RESOLVE_GROUP", "live-resolvers")
        .env("OMNIMETER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let now_ms = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let addr = broker.addr();
    let producer = std::thread::spawn(move || {
        let p: BaseProducer =
            ClientConfig::new().set("bootstrap.servers", &addr).set("linger.ms", "5").create().unwrap();
        let start = Instant::now();
        let mut i = 0u64;
        while start.elapsed() < Duration::from_secs(15) {
            let ts = now_ms();
            let anon = format!(
                r#"{{"event_id":"a{i}","ts":{ts},"identities":{{"cookie":"ck-{i}"}},"channel":"web","type":"touch"}}"#
            );
            let key = format!("cookie:ck-{i}");
            let _ = p.send(BaseRecord::to("live-raw").key(&key).payload(&anon));
            if i >= 100 {
                let j = i - 100;
                let link = format!(
                    r#"{{"event_id":"l{j}","ts":{ts},"customer_id":"c{j}","identities":{{"cookie":"ck-{j}"}},"channel":"web","type":"touch","step":"login"}}"#
                );
                let c = format!("c{j}");
                let _ = p.send(BaseRecord::to("live-raw").key(&c).payload(&link));
            }
            p.poll(Duration::ZERO);
            i += 1;
            // About 1,000 events a second (two messages per step once logins start).
            std::thread::sleep(Duration::from_micros(1_900));
        }
        p.flush(Duration::from_secs(10)).unwrap();
    });
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.addr())
        .set("group.id", "bench-latency")
        .set("fetch.wait.max.ms", "20")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset("live-resolved", p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let (mut held, mut passed, mut linked) = (Vec::new(), Vec::new(), 0usize);
    let until = Instant::now() + Duration::from_secs(25);
    while Instant::now() < until {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) else { continue };
        let header = m.headers().and_then(|h| h.iter().find(|h| h.key == "omnimeter-fwd").and_then(|h| h.value));
        let Some(fwd) = header.and_then(omnimeter_engine::Forwarded::parse) else { continue };
        let Ok(event) = decode(m.payload().unwrap_or_default()) else { continue };
        let delay = now_ms() - event.ts;
        match fwd {
            omnimeter_engine::Forwarded::Event { stream: 1, customer, .. } => {
                linked += usize::from(customer.is_some_and(|c| !c.starts_with("anon:")));
                held.push(delay);
            }
            omnimeter_engine::Forwarded::Event { .. } => passed.push(delay),
            _ => {}
        }
    }
    producer.join().unwrap();
    let _ = resolver.kill();
    let _ = resolver.wait();
    let pct = |v: &mut Vec<i64>, p: f64| {
        v.sort_unstable();
        v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1))).copied().unwrap_or(-1)
    };
    let (h50, h99) = (pct(&mut held, 0.5), pct(&mut held, 0.99));
    format!(
        "hold latency (live, ts = wall clock, identify_wait 2 s, allowed_lateness 1 s): anonymous events reach the resolved topic p50 {h50} ms / p99 {h99} ms after their event time, the stage's own share p50 {} ms / p99 {} ms beyond the {} ms wait ({} events, {linked} stitched to their login); events with a customer pass through in p50 {} ms / p99 {} ms ({})",
        h50 - WAIT_MS - LATENESS_MS,
        h99 - WAIT_MS - LATENESS_MS,
        WAIT_MS + LATENESS_MS,
        held.len(),
        pct(&mut passed, 0.5),
        pct(&mut passed, 0.99),
        passed.len()
    )
}
