//! End-to-end tests: the engine turns the public sample into rows, the Parquet sink
//! writes them, and the report must agree with figures computed here, independently,
//! from the sample's expected CSVs.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use omnimeter_engine::{
    AttributionModel, AttributionRow, EngineConfig, FrictionKind, FrictionRow, IdentityRow, JourneyRow, Outcome,
    PartitionEngine, PathRow, Rows, TransitionRow,
};
use omnimeter_parquet::ParquetSink;

use super::*;

fn data(rel: &str) -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")), std::path::PathBuf::from)
        .join("../../tests/data")
        .join(rel)
}

/// Rows of one engine run over NDJSON text, offsets being line numbers.
fn run_engine(text: &[u8]) -> Rows {
    let mut engine = PartitionEngine::new(EngineConfig::default(), 0);
    for (offset, line) in text.split(|&b| b == b'\n').enumerate() {
        if !line.iter().all(u8::is_ascii_whitespace) {
            engine.push(line, offset as i64);
        }
    }
    engine.finish();
    engine.take_rows()
}

fn sample_rows() -> Rows {
    run_engine(&fs::read(data("public-sample.ndjson")).unwrap())
}

/// Splits every table in two halves, so each half lands in its own files.
fn halves(rows: &Rows) -> (Rows, Rows) {
    fn split<T: Clone>(v: &[T]) -> (Vec<T>, Vec<T>) {
        let (a, b) = v.split_at(v.len() / 2);
        (a.to_vec(), b.to_vec())
    }
    let (j0, j1) = split(&rows.journeys);
    let (t0, t1) = split(&rows.transitions);
    let (p0, p1) = split(&rows.paths);
    let (f0, f1) = split(&rows.friction);
    let (a0, a1) = split(&rows.attribution);
    let (w0, w1) = split(&rows.journey_windows);
    let first = Rows {
        journeys: j0,
        transitions: t0,
        paths: p0,
        friction: f0,
        attribution: a0,
        journey_windows: w0,
        activity: rows.activity.clone(),
        rejected: rows.rejected.clone(),
        identities: rows.identities.clone(),
    };
    let second = Rows {
        journeys: j1,
        transitions: t1,
        paths: p1,
        friction: f1,
        attribution: a1,
        journey_windows: w1,
        ..Rows::default()
    };
    (first, second)
}

fn set_partition(rows: &mut Rows, p: i32) {
    rows.journeys.iter_mut().for_each(|r| r.partition = p);
    rows.transitions.iter_mut().for_each(|r| r.partition = p);
    rows.paths.iter_mut().for_each(|r| r.partition = p);
    rows.friction.iter_mut().for_each(|r| r.partition = p);
    rows.attribution.iter_mut().for_each(|r| r.partition = p);
    rows.journey_windows.iter_mut().for_each(|r| r.partition = p);
}

/// The expected CSVs as maps from column name to value, one per row.
fn csv_rows(name: &str) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(data("public-sample.expected").join(name)).unwrap();
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| headers.iter().map(String::from).zip(r.unwrap().iter().map(String::from)).collect())
        .collect()
}

fn int(row: &BTreeMap<String, String>, col: &str) -> i64 {
    row[col].parse().unwrap()
}

fn float(row: &BTreeMap<String, String>, col: &str) -> f64 {
    row[col].parse().unwrap()
}

/// `2026-11-02T08:15:12.938Z` → epoch milliseconds, written out independently of the crate.
fn rfc3339_ms(s: &str) -> i64 {
    let num = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (num(0, 4), num(5, 7), num(8, 10));
    let (hh, mm, ss, ms) = (num(11, 13), num(14, 16), num(17, 19), num(20, 23));
    let before_month = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334][(m - 1) as usize];
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mut days = (1970..y).map(|y| if leap(y) { 366 } else { 365 }).sum::<i64>() + before_month + d - 1;
    if m > 2 && leap(y) {
        days += 1;
    }
    ((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank - 1]
}

fn assert_close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() < 1e-6, "{what}: {a} != {b}");
}

/// Checks every aggregate against the expected CSVs, multiplied by `times`
/// (the number of copies of the sample that were written).
fn assert_matches_expected(report: &Report, times: u64) {
    let journeys = csv_rows("journeys.csv");
    let n = journeys.len() as u64;
    let converted = journeys.iter().filter(|j| j["outcome"] == "converted").count() as u64;
    let with_resolution = journeys.iter().filter(|j| !j["resolution_ms"].is_empty()).count();
    let fcr = journeys.iter().filter(|j| j["first_contact_resolution"] == "true").count();
    let hops: i64 = journeys.iter().map(|j| int(j, "hops")).sum();
    let unanswered: i64 = journeys.iter().map(|j| int(j, "unanswered_contacts")).sum();
    let events: i64 = journeys.iter().map(|j| int(j, "events")).sum();
    let start = journeys.iter().map(|j| rfc3339_ms(&j["start_ts"])).min();
    let end = journeys.iter().map(|j| rfc3339_ms(&j["end_ts"])).max();

    let h = report.headline();
    assert_eq!(h.journeys, n * times);
    assert_eq!(h.converted, converted * times);
    assert_eq!(h.events, events as u64 * times);
    assert_eq!(h.unanswered_contacts, unanswered as u64 * times);
    assert_close(h.conversion_rate.unwrap(), converted as f64 / n as f64, "conversion rate");
    assert_close(h.fcr_rate.unwrap(), fcr as f64 / with_resolution as f64, "fcr rate");
    assert_close(h.mean_hops.unwrap(), hops as f64 / n as f64, "mean hops");
    assert_eq!((h.start_ms, h.end_ms), (start, end));

    let mut resolution: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for j in journeys.iter().filter(|j| !j["resolution_ms"].is_empty()) {
        for _ in 0..times {
            resolution.entry(j["first_channel"].clone()).or_default().push(int(j, "resolution_ms"));
        }
    }
    assert_eq!(report.resolution.len(), resolution.len());
    for c in &report.resolution {
        let mut v = resolution[&c.channel].clone();
        v.sort_unstable();
        assert_eq!(c.resolved, v.len() as u64, "{}", c.channel);
        assert_eq!((c.p50_ms, c.p90_ms), (percentile(&v, 50.0), percentile(&v, 90.0)), "{}", c.channel);
        assert_eq!(c.buckets.iter().sum::<u64>(), c.resolved);
    }

    let mut transitions: BTreeMap<(String, String), u64> = BTreeMap::new();
    for t in csv_rows("transitions.csv") {
        *transitions.entry((t["from_channel"].clone(), t["to_channel"].clone())).or_default() +=
            int(&t, "hops") as u64 * times;
    }
    let got: BTreeMap<_, _> = report.transitions.iter().map(|t| ((t.from.clone(), t.to.clone()), t.hops)).collect();
    assert_eq!(got, transitions);

    let mut paths: BTreeMap<String, (u64, u64, f64)> = BTreeMap::new();
    for p in csv_rows("paths.csv") {
        let e = paths.entry(p["path"].clone()).or_default();
        e.0 += int(&p, "journeys") as u64 * times;
        e.1 += int(&p, "conversions") as u64 * times;
        e.2 += float(&p, "conversion_value") * times as f64;
    }
    assert_eq!(report.paths.len(), paths.len());
    for p in &report.paths {
        let e = paths[&p.path];
        assert_eq!((p.journeys, p.conversions), (e.0, e.1), "{}", p.path);
        assert_close(p.value, e.2, &p.path);
    }
    let mut ranked: Vec<(&String, &(u64, u64, f64))> = paths.iter().collect();
    ranked.sort_by(|a, b| b.1.1.cmp(&a.1.1).then(b.1.0.cmp(&a.1.0)).then(a.0.cmp(b.0)));
    let top: Vec<&str> = report.paths.iter().take(10).map(|p| p.path.as_str()).collect();
    assert_eq!(top, ranked.iter().take(10).map(|r| r.0.as_str()).collect::<Vec<_>>());

    let mut friction: BTreeMap<(String, String, Option<String>), u64> = BTreeMap::new();
    for f in csv_rows("friction.csv") {
        let step = Some(f["step"].clone()).filter(|s| !s.is_empty());
        *friction.entry((f["kind"].clone(), f["channel"].clone(), step)).or_default() +=
            int(&f, "occurrences") as u64 * times;
    }
    let got: BTreeMap<_, _> =
        report.friction.iter().map(|f| ((f.kind.clone(), f.channel.clone(), f.step.clone()), f.occurrences)).collect();
    assert_eq!(got, friction);
    assert!(report.friction.windows(2).all(|w| w[0].occurrences >= w[1].occurrences));
    assert!(report.friction.iter().any(|f| f.step.is_none()), "the sample has friction without a step");

    let mut attribution: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
    for a in csv_rows("attribution.csv") {
        let e = attribution.entry((a["model"].clone(), a["channel"].clone())).or_default();
        e.0 += float(&a, "conversions") * times as f64;
        e.1 += float(&a, "value") * times as f64;
    }
    assert_eq!(report.attribution.len(), attribution.len());
    for a in &report.attribution {
        let e = attribution[&(a.model.clone(), a.channel.clone())];
        assert_close(a.conversions, e.0, &a.channel);
        assert_close(a.value, e.1, &a.channel);
    }
}

const IDS: [&str; 7] = [
    "headline",
    "chart-flow",
    "chart-resolution",
    "chart-resolution-distribution",
    "chart-friction",
    "chart-paths",
    "chart-attribution",
];

/// Self-contained: nothing that a browser would fetch, no scripts, every SVG labelled.
fn assert_self_contained(html: &str) {
    for id in IDS {
        assert!(html.contains(&format!("id=\"{id}\"")), "missing id {id}");
    }
    let lower = html.to_lowercase();
    for banned in ["http://", "https://", "<script", "<link", "src=", "url(", "@import", "<iframe", "<img"] {
        assert!(!lower.contains(banned), "found {banned:?} in the report");
    }
    for (i, _) in html.match_indices("href=") {
        assert!(html[i..].starts_with("href=\"#"), "non-anchor link at {}", &html[i..i + 40]);
    }
    let svgs = html.matches("<svg").count();
    assert_eq!(html.matches("role=\"img\"").count(), svgs);
    assert_eq!(html.matches("<svg class=\"chart\" role=\"img\" aria-label=\"").count(), svgs);
    assert_eq!(html.matches("</svg>").count(), svgs);
}

fn write(dir: &Path, rows: &Rows, partition: i32, first_offset: i64) {
    let sink = ParquetSink::new(dir).unwrap();
    sink.write_batch(rows, partition, first_offset).unwrap();
}

#[test]
fn public_sample_split_over_files_and_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let (first, mut second) = halves(&sample_rows());
    set_partition(&mut second, 1);
    write(dir.path(), &first, 0, 0);
    write(dir.path(), &second, 1, 0);
    // Litter the sink may leave or share the folder with: none of it is data.
    let hour = fs::read_dir(dir.path().join("journeys")).unwrap().next().unwrap().unwrap().path();
    let hour = fs::read_dir(hour).unwrap().next().unwrap().unwrap().path();
    fs::write(hour.join(".p00000-o00000000000000000099.parquet.tmp"), b"half-written").unwrap();
    fs::write(hour.join("_SUCCESS"), b"").unwrap();
    fs::create_dir_all(dir.path().join("_checkpoints/p0")).unwrap();
    fs::write(dir.path().join("_checkpoints/p0/state.parquet"), b"not parquet").unwrap();

    let report = Report::from_dir(dir.path()).unwrap();
    assert_matches_expected(&report, 1);
    assert!(report.files_read > 2);

    let html = report.to_html().unwrap();
    assert_self_contained(&html);
    assert!(html.matches("<svg").count() >= 5);
    assert!(!html.to_lowercase().contains("no data"), "every section of the sample has data");
    let h = report.headline();
    let rate = format!("{:.1}%", h.conversion_rate.unwrap() * 100.0);
    assert!(html.contains(&format!(">{rate}<")), "conversion rate {rate} shown");
    assert!(html.contains(&format!(">{}<", h.journeys)));
}

/// Issue 15 item 9: each figure says what it counts where it stands, so "resolved"
/// (an outcome) and "with a resolution time" no longer read as one contradictory number.
#[test]
fn captions_say_what_each_figure_counts_and_that_dates_are_event_time() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &sample_rows(), 0, 0);
    let report = Report::from_dir(dir.path()).unwrap();
    let html = report.to_html().unwrap();
    let with_time: u64 = report.resolution.iter().map(|c| c.resolved).sum();
    let outcome_resolved = report.outcomes.iter().find(|o| o.outcome == "resolved").unwrap().journeys;
    assert!(with_time > 0 && outcome_resolved > 0);

    // The outcomes bar: "Resolved" is the outcome, and a different set from the resolution figures.
    assert!(html.contains("Resolved counts journeys whose outcome is resolved."), "outcomes caption");
    assert!(html.contains("a converted journey can have one"), "outcomes caption says why the sets differ");
    // The first-contact card, the resolution chart, histogram and table: journeys with a resolution time.
    assert!(html.contains(&format!(
        "resolved at the first contact, of the {} journeys with a resolution time (any outcome)",
        thousands(with_time)
    )));
    assert!(html.contains("This counts journeys with a resolution time, whatever their outcome"));
    assert!(html.contains(&format!(
        "{} journeys with a resolution time over all channels (any outcome)",
        thousands(with_time)
    )));
    assert!(html.contains("<th class=\"num\">With resolution time</th>"));
    assert!(!html.contains("resolved journeys over all channels") && !html.contains("<th class=\"num\">Resolved</th>"));
    // Dates are event time.
    assert!(html.contains("(event time)"), "header range");
    assert!(html.contains("Dates are event time: the timestamps the events carry"));
    assert!(html.contains("Times are UTC event time;"));
    assert!(!html.contains("simulated"));
    // Linear attribution's fractions are explained.
    assert!(
        report.attribution.iter().any(|a| a.model == "linear" && a.conversions.fract() != 0.0),
        "sample has fractions"
    );
    assert!(html.contains(render::LINEAR_FRACTIONS));
    assert!(html.contains("so channels get fractions of conversions"));

    // The demo's report says its clock is simulated.
    let demo = report.to_html_simulated().unwrap();
    assert!(demo.contains("(simulated event time)"));
    assert!(demo.contains("Dates are simulated event time: the clock of the generated demo traffic"));
    assert!(demo.contains("Times are UTC simulated event time;"));
}

#[test]
fn same_keys_in_several_files_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let rows = sample_rows();
    let mut copy = rows.clone();
    set_partition(&mut copy, 1);
    write(dir.path(), &rows, 0, 0);
    write(dir.path(), &copy, 1, 0);
    let report = Report::from_dir(dir.path()).unwrap();
    assert_matches_expected(&report, 2);
}

#[test]
fn thousands_are_grouped_in_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let rows = sample_rows();
    // Twelve copies of 101 journeys: 1,212.
    for p in 0..12 {
        let mut copy = rows.clone();
        set_partition(&mut copy, p);
        write(dir.path(), &copy, p, 0);
    }
    let report = Report::from_dir(dir.path()).unwrap();
    assert_eq!(report.headline().journeys, 1212);
    let html = report.to_html().unwrap();
    assert!(html.contains(">1,212<"));
}

const HOSTILE: &str = "<script>alert(1)</script>";

fn hostile_rows() -> Rows {
    let name: Arc<str> = Arc::from(HOSTILE);
    let web: Arc<str> = Arc::from("web");
    let t = rfc3339_ms("2026-11-02T08:00:00.000Z");
    Rows {
        journeys: vec![JourneyRow {
            partition: 0,
            customer_id: "c1".into(),
            journey_id: None,
            start_ts: t,
            end_ts: t + 60_000,
            duration_ms: 60_000,
            events: 2,
            path: format!("{HOSTILE}>web").into(),
            hops: 1,
            channels: 2,
            first_channel: name.clone(),
            last_channel: web.clone(),
            outcome: Outcome::Converted,
            conversion_value: 10.0,
            resolution_ms: Some(30_000),
            first_contact_resolution: Some(false),
            repeat_contacts: 0,
            unanswered_contacts: 0,
            errors: 0,
            anonymous_events: 0,
        }],
        transitions: vec![TransitionRow {
            partition: 0,
            window_start: t,
            from_channel: name.clone(),
            to_channel: web.clone(),
            hops: 1,
        }],
        paths: vec![PathRow {
            partition: 0,
            window_start: t,
            path: format!("{HOSTILE}>web"),
            journeys: 1,
            conversions: 1,
            conversion_value: 10.0,
        }],
        friction: vec![FrictionRow {
            partition: 0,
            window_start: t,
            kind: FrictionKind::Error,
            channel: name.clone(),
            step: Some(name.clone()),
            occurrences: 1,
        }],
        attribution: vec![AttributionRow {
            partition: 0,
            window_start: t,
            model: AttributionModel::FirstTouch,
            channel: name,
            conversions: 1.0,
            value: 10.0,
        }],
        ..Rows::default()
    }
}

#[test]
fn hostile_names_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    // Channels are validated by the engine, so a hostile channel can only come from
    // another writer; steps are free text and do come through the engine.
    write(dir.path(), &hostile_rows(), 0, 0);
    let events = [
        r#"{"event_id":"e1","ts":"2026-11-02T09:00:00Z","customer_id":"c2","channel":"web","type":"touch"}"#,
        r#"{"event_id":"e2","ts":"2026-11-02T09:01:00Z","customer_id":"c2","channel":"app","type":"error","step":"<b>x</b>&\"'"}"#,
    ];
    write(dir.path(), &run_engine(events.join("\n").as_bytes()), 1, 0);
    let report = Report::from_dir(dir.path()).unwrap();
    assert!(report.friction.iter().any(|f| f.step.as_deref() == Some("<b>x</b>&\"'")));
    assert!(report.transitions.iter().any(|t| t.from == HOSTILE));

    let html = report.to_html().unwrap();
    assert_self_contained(&html);
    assert!(!html.contains(HOSTILE));
    assert!(!html.contains("<b>x</b>"));
    assert!(html.contains("&lt;script&gt;alert(1)"));
    assert!(html.contains("&lt;b&gt;x&lt;"));
}

#[test]
fn empty_output_says_no_data() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("journeys/date=2026-11-02/hour=08")).unwrap();
    let report = Report::from_dir(dir.path()).unwrap();
    assert_eq!(report.headline(), &Headline::default());
    assert_eq!(report.files_read, 0);
    let html = report.to_html().unwrap();
    assert_self_contained(&html);
    assert!(html.to_lowercase().contains("no data"));
    assert_eq!(html.matches("<svg").count(), 0);
}

#[test]
fn only_some_tables_present() {
    let dir = tempfile::tempdir().unwrap();
    let rows = Rows { friction: sample_rows().friction, ..Rows::default() };
    write(dir.path(), &rows, 0, 0);
    let report = Report::from_dir(dir.path()).unwrap();
    assert_eq!(report.headline().journeys, 0);
    assert!(!report.friction.is_empty());
    let html = report.to_html().unwrap();
    assert_self_contained(&html);
    assert!(html.contains("There is no data yet"));
    assert_eq!(html.matches("<svg").count(), 1);
}

#[test]
fn missing_or_file_dir_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let err = Report::from_dir(&missing).unwrap_err();
    assert!(matches!(err, Error::NoOutput { .. }));
    assert_eq!(err.to_string(), format!("no omnimeter output at {}", missing.display()));
    assert!(std::error::Error::source(&err).is_some());

    let file = dir.path().join("file");
    fs::write(&file, b"x").unwrap();
    let err = Report::from_dir(&file).unwrap_err();
    assert!(err.to_string().contains(&file.display().to_string()));
    assert_eq!(std::error::Error::source(&err).map(|e| e.to_string()).as_deref(), Some("not a directory"));
}

#[test]
fn bad_files_are_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let hour = dir.path().join("paths/date=2026-11-02/hour=08");
    fs::create_dir_all(&hour).unwrap();
    let bad = hour.join("p00000-o00000000000000000000.parquet");
    fs::write(&bad, b"not parquet at all").unwrap();
    let err = Report::from_dir(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Parquet { .. }), "{err:?}");
    assert!(err.to_string().contains(&bad.display().to_string()));

    // A parquet file of another shape: the error names table, column and file.
    fs::remove_file(&bad).unwrap();
    let other = tempfile::tempdir().unwrap();
    write(other.path(), &Rows { friction: sample_rows().friction, ..Rows::default() }, 0, 0);
    let friction_file = walk_files(&other.path().join("friction")).remove(0);
    let wrong = hour.join("p00000-o00000000000000000001.parquet");
    fs::copy(friction_file, &wrong).unwrap();
    let err = Report::from_dir(dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::MissingColumn { table: "paths", column: "path", .. }), "{msg}");
    assert!(
        msg.contains("paths") && msg.contains("column path") && msg.contains(&wrong.display().to_string()),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { out.extend(walk_files(&path)) } else { out.push(path) }
    }
    out.sort();
    out
}

#[test]
fn many_channels_fold_into_other() {
    let dir = tempfile::tempdir().unwrap();
    let t = rfc3339_ms("2026-11-02T08:00:00.000Z");
    let names: Vec<Arc<str>> = (0..20).map(|i| Arc::from(format!("ch{i:02}"))).collect();
    let transitions = names
        .windows(2)
        .map(|w| TransitionRow {
            partition: 0,
            window_start: t,
            from_channel: w[0].clone(),
            to_channel: w[1].clone(),
            hops: 1,
        })
        .collect();
    write(dir.path(), &Rows { transitions, ..Rows::default() }, 0, 0);
    let report = Report::from_dir(dir.path()).unwrap();
    assert_eq!(report.transitions.len(), 19);
    let html = report.to_html().unwrap();
    assert!(html.contains("(other)"));
    assert!(html.contains("folded into (other)"));
}

fn identity_rows() -> Rows {
    run_engine(&fs::read(data("public-identity.ndjson")).unwrap())
}

/// Identity figures computed here from the rows the engine gave.
fn expected_identity(rows: &[&Rows]) -> IdentityFigures {
    let journeys: Vec<&JourneyRow> = rows.iter().flat_map(|r| &r.journeys).collect();
    let identities: Vec<&IdentityRow> = rows.iter().flat_map(|r| &r.identities).collect();
    let known = |j: &&&JourneyRow| !j.customer_id.starts_with("anon:");
    let stitched = journeys.iter().filter(|j| j.anonymous_events > 0).filter(known).count() as u64;
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    for r in identities.iter().filter(|r| !r.conflict) {
        *by_type.entry(r.identity_type.to_string()).or_default() += 1;
    }
    let mut links_by_type: Vec<(String, u64)> = by_type.into_iter().collect();
    links_by_type.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    IdentityFigures {
        stitched_journeys: stitched,
        stitched_share: Some(stitched as f64 / journeys.len() as f64),
        anonymous_journeys: journeys.iter().filter(|j| j.customer_id.starts_with("anon:")).count() as u64,
        anonymous_events: journeys.iter().map(|j| j.anonymous_events as u64).sum(),
        resolved_events: journeys.iter().filter(known).map(|j| j.anonymous_events as u64).sum(),
        links: identities.iter().filter(|r| !r.conflict).count() as u64,
        conflicts: identities.iter().filter(|r| r.conflict).count() as u64,
        links_by_type,
    }
}

#[test]
fn identity_sample_shows_stitching_links_and_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let rows = identity_rows();
    let (mut first, mut second) = halves(&rows);
    // The identities table split over two partitions' files too.
    let half = rows.identities.len() / 2;
    second.identities = first.identities.split_off(half);
    set_partition(&mut second, 1);
    write(dir.path(), &first, 0, 0);
    write(dir.path(), &second, 1, 0);

    let report = Report::from_dir(dir.path()).unwrap();
    let expected = expected_identity(&[&rows]);
    assert!(expected.stitched_journeys > 0 && expected.anonymous_journeys > 0, "{expected:?}");
    assert!(expected.links > 0 && expected.conflicts > 0, "{expected:?}");
    assert_eq!(report.identity.as_ref(), Some(&expected));
    assert_eq!(report.headline().journeys, rows.journeys.len() as u64);

    let html = report.to_html().unwrap();
    assert_self_contained(&html);
    assert!(html.contains("id=\"identity\"") && html.contains("Identity resolution"));
    let share = format!("{:.1}%", expected.stitched_share.unwrap() * 100.0);
    for value in
        [share, thousands(expected.anonymous_journeys), thousands(expected.links), thousands(expected.conflicts)]
    {
        assert!(html.contains(&format!("<div class=\"value\">{value}</div>")), "{value} shown");
    }
    let (top_type, top_links) = &expected.links_by_type[0];
    assert!(html.contains(&format!("identities that got an owner: {} {top_type}", thousands(*top_links))));
}

fn journey(customer: &str, events: i64, anonymous_events: i64) -> JourneyRow {
    let mut j = hostile_rows().journeys.remove(0);
    j.customer_id = customer.into();
    j.first_channel = Arc::from("web");
    j.path = "web".into();
    j.events = events;
    j.anonymous_events = anonymous_events;
    j
}

fn link(kind: &str, value: &str, customer: &str, conflict: bool) -> IdentityRow {
    IdentityRow {
        partition: 0,
        identity_type: kind.into(),
        identity_value: value.into(),
        customer_id: customer.into(),
        linked_ts: rfc3339_ms("2026-11-02T08:00:00.000Z"),
        conflict,
    }
}

#[test]
fn identity_figures_count_by_the_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let rows = Rows {
        journeys: vec![
            journey("cust-1", 5, 2),                  // stitched
            journey("anon:cookie:ck-1", 3, 3),        // an anonymous customer
            journey("anon:phone:+34600000000", 1, 1), // another
            journey("cust-2", 4, 0),                  // no anonymous events
            journey("cust-3", 2, 0),
            journey("cust-4", 7, 1), // stitched
            journey("cust-5", 1, 0),
            journey("cust-6", 1, 0),
        ],
        identities: vec![
            link("cookie", "ck-2", "cust-1", false),
            link("phone", "+34600000001", "cust-4", false),
            link("phone", "+34910000000", "cust-5", false),
            link("phone", "+34910000000", "cust-6", true),
        ],
        ..Rows::default()
    };
    write(dir.path(), &rows, 0, 0);
    let report = Report::from_dir(dir.path()).unwrap();
    let expected = IdentityFigures {
        stitched_journeys: 2,
        stitched_share: Some(0.25),
        anonymous_journeys: 2,
        anonymous_events: 7,
        resolved_events: 3,
        links: 3,
        conflicts: 1,
        links_by_type: vec![("phone".into(), 2), ("cookie".into(), 1)],
    };
    assert_eq!(report.identity.as_ref(), Some(&expected));
    assert_eq!(expected_identity(&[&rows]), expected);
    let html = report.to_html().unwrap();
    assert_self_contained(&html);
    for shown in [
        "<div class=\"label\">Journeys stitched</div><div class=\"value\">25.0%</div>",
        "2 of 8 journeys joined events without a customer_id to a known customer",
        "<div class=\"label\">Journeys of anonymous customers</div><div class=\"value\">2</div>",
        "4 of 7 anonymous events stayed anonymous",
        "<div class=\"label\">Identity links</div><div class=\"value\">3</div>",
        "identities that got an owner: 2 phone, 1 cookie",
        "<div class=\"label\">Identity conflicts</div><div class=\"value\">1</div>",
    ] {
        assert!(html.contains(shown), "{shown} not in the page");
    }

    // Only an identities table (journeys not closed yet): figures without a share.
    let only = tempfile::tempdir().unwrap();
    write(only.path(), &Rows { identities: rows.identities.clone(), ..Rows::default() }, 0, 0);
    let report = Report::from_dir(only.path()).unwrap();
    let identity = report.identity.clone().unwrap();
    assert_eq!((identity.links, identity.conflicts, identity.stitched_share), (3, 1, None));
    let html = report.to_html().unwrap();
    assert!(html.contains("There is no data yet") && html.contains("Identity resolution"));
    assert!(html.contains("<div class=\"value\">—</div>"));
}

/// Rewrites every `journeys` file under `dir` without its `anonymous_events` column, as
/// versions before SPEC §6 wrote them.
fn drop_anonymous_events(dir: &Path) {
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    for file in walk_files(&dir.join("journeys")) {
        let reader = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(&file).unwrap()).unwrap().build().unwrap();
        let batches: Vec<_> = reader.map(Result::unwrap).collect();
        let schema = batches[0].schema();
        let keep: Vec<usize> =
            (0..schema.fields().len()).filter(|&i| schema.field(i).name() != "anonymous_events").collect();
        let batches: Vec<_> = batches.iter().map(|b| b.project(&keep).unwrap()).collect();
        let mut writer = ArrowWriter::try_new(fs::File::create(&file).unwrap(), batches[0].schema(), None).unwrap();
        for b in &batches {
            writer.write(b).unwrap();
        }
        writer.close().unwrap();
    }
}

#[test]
fn outputs_without_identity_data_render_as_before() {
    // An output of this version from input without identities: the column is there, all zero.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &sample_rows(), 0, 0);
    let report = Report::from_dir(dir.path()).unwrap();
    assert_eq!(report.identity, None);
    let html = report.to_html().unwrap();
    assert!(!html.contains("Identity resolution") && !html.contains("id=\"identity\""));

    // An older output: no `anonymous_events` column, no `identities` table.
    let old = tempfile::tempdir().unwrap();
    write(old.path(), &sample_rows(), 0, 0);
    drop_anonymous_events(old.path());
    assert!(!old.path().join("identities").exists());
    let report = Report::from_dir(old.path()).unwrap();
    assert_matches_expected(&report, 1);
    assert_eq!(report.identity, None);
    let html = report.to_html().unwrap();
    assert_self_contained(&html);
    assert!(!html.contains("Identity resolution"));

    // Older and newer files side by side: only the newer ones tell about identities.
    let rows = identity_rows();
    let mut newer = rows.clone();
    set_partition(&mut newer, 1);
    write(old.path(), &newer, 1, 0);
    let report = Report::from_dir(old.path()).unwrap();
    let identity = report.identity.clone().unwrap();
    let expected = expected_identity(&[&rows]);
    assert_eq!(identity.stitched_journeys, expected.stitched_journeys);
    assert_eq!((identity.links, identity.conflicts), (expected.links, expected.conflicts));
    let all = report.headline().journeys;
    assert_eq!(all, (csv_rows("journeys.csv").len() + rows.journeys.len()) as u64);
    assert_eq!(identity.stitched_share, Some(expected.stitched_journeys as f64 / all as f64));
}
