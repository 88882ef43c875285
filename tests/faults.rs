//! Faults, end to end against a real broker (`tansu`) on loopback: workers killed
//! at random, the broker down for half a minute, the output disk full. Every test
//! ends by comparing all tables with file mode on the same events (one run per
//! partition): nothing lost, nothing doubled. docs/reliability.md reports the
//! long versions' figures.

#![allow(clippy::unwrap_used)]

mod util;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use util::kafka::{
    Broker, TOPIC, checkpoints, compare, file_mode_per_partition, generated, log_of, sigterm, spawn_logged, until_end,
    worker,
};

/// A knob of the long runs. Not `OMNIMETER_*`: the workers inherit the environment
/// and refuse `OMNIMETER_` variables that are not settings.
fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// About `n` generated lines (1 % malformed, 2 % duplicates): whole days of
/// traffic cut at `n`, so the stories in flight at the cut stay open.
fn about(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut lines = generated(n as u64 / 11 + 1, seed);
    lines.truncate(n);
    lines
}

/// A small deterministic generator for the chaos schedule (no new dependency).
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Kafka Streams-style chaos: three workers of one group share six partitions
/// while events are produced; every few seconds one of them, picked at random, is
/// killed with SIGKILL (no flush, no commit, maybe mid-write) and started again.
/// Then three `--until-end` workers finish the topic. CI runs a short version;
/// `CHAOS_EVENTS=500000 CHAOS_KILLS=10 cargo test --release
/// --test faults chaos` is the long one.
#[test]
fn chaos_three_workers_killed_at_random_lose_and_double_nothing() {
    let events = env_number("CHAOS_EVENTS", 60_000) as usize;
    let kills = env_number("CHAOS_KILLS", 4);
    let seed = env_number("CHAOS_SEED", 7);
    let started = Instant::now();
    let broker = Broker::start();
    broker.create_topic(TOPIC, 6);
    let lines = about(events, seed);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("kafka-out");
    let log = |name: String| dir.path().join(format!("{name}.log"));

    let mut workers: Vec<Child> = (0..3).map(|i| spawn_logged(&broker, &out, &log(format!("w{i}-0")), &[])).collect();
    let mut dice = Dice(seed);
    let chunks = (kills as usize + 2).max(4);
    let chunk = lines.len().div_ceil(chunks);
    let mut placed = Vec::with_capacity(lines.len());
    let mut killed = 0;
    std::thread::scope(|s| {
        let producer = s.spawn(|| {
            let mut placed = Vec::with_capacity(lines.len());
            for part in lines.chunks(chunk) {
                placed.extend(broker.produce(TOPIC, part));
                std::thread::sleep(Duration::from_millis(500));
            }
            placed
        });
        util::wait_until("a first checkpoint", Duration::from_secs(90), || checkpoints(&out) > 0);
        for round in 1..=kills {
            std::thread::sleep(Duration::from_millis(1500 + dice.below(2500)));
            let victim = dice.below(3) as usize;
            workers[victim].kill().unwrap(); // SIGKILL
            workers[victim].wait().unwrap();
            killed += 1;
            workers[victim] = spawn_logged(&broker, &out, &log(format!("w{victim}-{round}")), &[]);
        }
        placed = producer.join().unwrap();
    });
    // Let the group settle on the last restarts, then stop gracefully.
    std::thread::sleep(Duration::from_secs(3));
    for w in &workers {
        sigterm(w);
    }
    for w in workers {
        let status = w.wait_with_output().unwrap().status;
        assert!(status.success(), "a graceful stop after the chaos exits 0 ({status})");
    }
    let finishers: Vec<Child> = (0..3)
        .map(|i| {
            worker(&broker, &out, &["--until-end"])
                .stderr(std::fs::File::create(log(format!("end{i}"))).unwrap())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, f) in finishers.into_iter().enumerate() {
        let out = f.wait_with_output().unwrap();
        assert!(out.status.success(), "until-end worker {i} failed:\n{}", log_of(&log(format!("end{i}"))));
    }
    let resumed: usize = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| log_of(&e.unwrap().path()).matches("resuming partition from checkpoint").count())
        .sum();
    assert!(resumed >= kills as usize, "partitions moved and resumed from checkpoints ({resumed})");
    compare(&out, &file_mode_per_partition(&lines, &placed, dir.path()));
    eprintln!(
        "chaos: {} events, 6 partitions, 3 workers, {killed} SIGKILLs, {resumed} partition resumes, {:.1}s: tables equal file mode",
        lines.len(),
        started.elapsed().as_secs_f64()
    );
}

fn readiness(addr: &str) -> Option<(u16, String)> {
    util::http_get(addr, "/readyz")
}

fn metric(addr: &str, name: &str) -> f64 {
    util::http_get(addr, "/metrics").map_or(-1.0, |(_, text)| util::metric_sum(&text, name))
}

/// The broker (persistent storage) is killed for 30 s while a worker runs: the
/// worker stays up, `/readyz` says 503 and why, then 200 once the broker is back;
/// the events produced after the outage are processed and nothing is lost or doubled.
/// `OUTAGE_SECS` changes the outage's length.
#[test]
fn a_broker_outage_turns_readiness_to_503_and_back_and_loses_nothing() {
    let outage = Duration::from_secs(env_number("OUTAGE_SECS", 30));
    let mut broker = Broker::start_persistent();
    broker.create_topic(TOPIC, 3);
    let lines = generated(300, 31);
    let half = lines.len() / 2;
    let mut placed = broker.produce(TOPIC, &lines[..half]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("kafka-out");
    let wlog = dir.path().join("worker.log");
    let addr = format!("127.0.0.1:{}", util::free_port());
    let mut w = util::KillOnDrop(spawn_logged(&broker, &out, &wlog, &["--metrics-addr", &addr]));
    util::wait_until("the worker to be ready and checkpoint", Duration::from_secs(60), || {
        readiness(&addr).is_some_and(|(code, _)| code == 200) && checkpoints(&out) >= 3
    });

    let down = Instant::now();
    broker.stop();
    let body = util::wait_for(30, "readiness to report the outage", || {
        readiness(&addr).filter(|(code, _)| *code == 503).map(|(_, body)| body)
    });
    assert!(body.contains("no Kafka broker reachable"), "{body}");
    let to_503 = down.elapsed();
    std::thread::sleep(outage.saturating_sub(down.elapsed()));
    assert!(w.0.try_wait().unwrap().is_none(), "the worker rides out the outage:\n{}", log_of(&wlog));
    broker.restart();
    let up = Instant::now();
    util::wait_until("readiness to recover", Duration::from_secs(60), || {
        readiness(&addr).is_some_and(|(code, _)| code == 200)
    });
    let to_200 = up.elapsed();
    placed.extend(broker.produce(TOPIC, &lines[half..]));
    util::wait_until("the events produced after the outage to be processed", Duration::from_secs(60), || {
        metric(&addr, "omnimeter_input_events_total") >= lines.len() as f64
    });
    let text = log_of(&wlog);
    assert_eq!(text.matches("no Kafka broker reachable").count(), 1, "the outage is reported once:\n{text}");
    assert!(text.contains("Kafka broker reachable again"), "{text}");
    sigterm(&w.0);
    assert!(w.0.wait().unwrap().success(), "{}", log_of(&wlog));

    until_end(&broker, &out, &dir.path().join("final.log"));
    compare(&out, &file_mode_per_partition(&lines, &placed, dir.path()));
    eprintln!(
        "broker outage: {:.0}s down, /readyz 503 after {:.1}s, 200 again {:.1}s after the restart, {} events: tables equal file mode",
        outage.as_secs_f64(),
        to_503.as_secs_f64(),
        to_200.as_secs_f64(),
        lines.len()
    );
}

/// A small tmpfs, so the output can really run out of space; unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs (this test fills a real file system; it needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(at.to_path_buf())
    }

    /// Writes a file until the file system is full.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The output file system fills up while a worker runs: it says why in one log
/// line and in `/readyz`, stops committing offsets and pauses consumption; once
/// space is back it resumes by itself, and the tables equal file mode's.
#[test]
fn a_full_output_stops_commits_says_why_and_resumes_when_space_is_back() {
    let broker = Broker::start();
    broker.create_topic(TOPIC, 3);
    let lines = generated(600, 41);
    let third = lines.len() / 3;
    let mut placed = broker.produce(TOPIC, &lines[..third]);
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("disk"), "32m");
    let out = disk.0.join("out");
    let wlog = dir.path().join("worker.log");
    let addr = format!("127.0.0.1:{}", util::free_port());
    let mut w = util::KillOnDrop(spawn_logged(&broker, &out, &wlog, &["--metrics-addr", &addr]));
    util::wait_until("the worker to catch up and checkpoint", Duration::from_secs(60), || {
        readiness(&addr).is_some_and(|(code, body)| code == 200 && body.contains("lag 0")) && checkpoints(&out) >= 3
    });

    let filler = disk.fill();
    placed.extend(broker.produce(TOPIC, &lines[third..2 * third]));
    let body = util::wait_for(30, "readiness to report the full output", || {
        readiness(&addr).filter(|(code, _)| *code == 503).map(|(_, body)| body)
    });
    assert!(body.contains("output failing") && body.contains("No space left on device"), "{body}");
    // Commits run ahead of cuts (SPEC §4) until a cut fails to publish; from then on, none.
    std::thread::sleep(Duration::from_secs(1));
    let committed_before = metric(&addr, "omnimeter_committed_offset");
    // Events keep arriving while the output is full: they wait in Kafka, not in memory.
    placed.extend(broker.produce(TOPIC, &lines[2 * third..]));
    util::wait_until("retries", Duration::from_secs(30), || metric(&addr, "omnimeter_sink_errors_total") >= 3.0);
    let consumed = metric(&addr, "omnimeter_input_events_total");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(metric(&addr, "omnimeter_committed_offset"), committed_before, "no commit while the output is full");
    assert_eq!(metric(&addr, "omnimeter_input_events_total"), consumed, "consumption is paused");
    assert!(consumed <= (2 * third) as f64, "the last third waits in Kafka ({consumed} consumed)");
    let text = log_of(&wlog);
    assert_eq!(text.matches("output failing").count(), 1, "one log line for the fault:\n{text}");

    std::fs::remove_file(filler).unwrap();
    let freed = Instant::now();
    util::wait_until("the worker to resume and catch up", Duration::from_secs(60), || {
        readiness(&addr).is_some_and(|(code, body)| code == 200 && body.contains("lag 0"))
            && metric(&addr, "omnimeter_input_events_total") >= lines.len() as f64
    });
    assert!(metric(&addr, "omnimeter_committed_offset") > committed_before, "commits resumed");
    assert!(log_of(&wlog).contains("output writable again"), "{}", log_of(&wlog));
    sigterm(&w.0);
    assert!(w.0.wait().unwrap().success(), "{}", log_of(&wlog));

    let resumed_after = freed.elapsed();
    until_end(&broker, &out, &dir.path().join("final.log"));
    compare(&out, &file_mode_per_partition(&lines, &placed, dir.path()));
    eprintln!(
        "full output: paused with {consumed} of {} events consumed, caught up {:.1}s after space was freed: tables equal file mode",
        lines.len(),
        resumed_after.as_secs_f64()
    );
}
