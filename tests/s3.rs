//! Workers that share nothing but Kafka and a bucket: a real broker (`tansu`) and a
//! real S3-compatible server (`moto`) on loopback, two `omnimeter run` processes per
//! phase, each in its own empty working directory, writing tables and checkpoints to
//! one bucket while one of them is SIGKILLed mid-upload and restarted. The bucket is
//! then read back with pyarrow and compared with file mode on the same events.

#![allow(clippy::unwrap_used)]

mod util;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use util::kafka::{Broker, TOPIC, generated, log_of, partition_slices, sigterm, wait_log, worker};
use util::{KillOnDrop, python_check, repo};

const BUCKET: &str = "omnimeter-test";
const PARTITIONS: u32 = 4;

/// moto's S3 in server mode on a free loopback port, with one empty bucket.
struct Moto {
    _child: KillOnDrop,
    endpoint: String,
    addr: String,
}

impl Moto {
    fn start() -> Moto {
        let port = util::free_port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(util::python())
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with moto[server] is needed: run deploy/local/setup.sh --test");
        let moto = Moto { _child: KillOnDrop(child), endpoint: format!("http://{addr}"), addr };
        util::wait_until("moto to listen", Duration::from_secs(30), || {
            std::net::TcpStream::connect(&moto.addr).is_ok()
        });
        python_check(&["tests/tools/s3_bucket.py", "create", &moto.endpoint, BUCKET]);
        moto
    }

    /// Keys under `prefix` (moto answers unsigned listings; one page is plenty here).
    fn keys(&self, prefix: &str) -> Vec<String> {
        let Some((200, xml)) = util::http_get(&self.addr, &format!("/{BUCKET}?list-type=2&prefix={prefix}")) else {
            return Vec::new();
        };
        xml.split("<Key>").skip(1).filter_map(|s| s.split_once("</Key>")).map(|(k, _)| k.to_owned()).collect()
    }

    /// The standard AWS variables pointing at this server: how the workers get credentials.
    fn env<'a>(&'a self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ALLOW_HTTP", "true")
    }
}

/// One host's worker: its own new, empty working directory (`home`), the bucket as
/// its only output, uploads every 250 ms so a kill is likely to hit one.
fn spawn_worker(broker: &Broker, moto: &Moto, url: &str, home: &Path, log: &Path, extra: &[&str]) -> Child {
    std::fs::create_dir_all(home).unwrap();
    let mut cmd = worker(broker, Path::new(url), extra);
    moto.env(&mut cmd)
        .env("OMNIMETER_KAFKA_COMMIT_INTERVAL", "250ms")
        .env("OMNIMETER_OUTPUT_FILE_PERIOD", "15m")
        // A dead worker's partitions move after 3 s; members hear of a rebalance within 0.5 s.
        .env("OMNIMETER_KAFKA_SESSION_TIMEOUT", "3s")
        .env("OMNIMETER_KAFKA_DRAIN_TIMEOUT", "2s")
        .env("OMNIMETER_KAFKA_PROPERTIES_HEARTBEAT_INTERVAL_MS", "500")
        .current_dir(home)
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(log).unwrap()));
    cmd.spawn().unwrap()
}

/// The test's folder: in memory when the machine has /dev/shm, because the
/// file-mode reference fsyncs every file and that durability is not under test.
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("omnimeter-s3-").tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).unwrap()
}

#[test]
fn two_workers_on_separate_disks_share_one_bucket_survive_sigkill_and_match_file_mode() {
    let started = Instant::now();
    let dir = scratch();
    let path = |name: &str| dir.path().join(name);
    let (broker, moto) = std::thread::scope(|s| {
        let moto = s.spawn(Moto::start);
        (Broker::start(), moto.join().unwrap())
    });
    broker.create_topic(TOPIC, PARTITIONS);
    let lines = generated(1200, 21);
    let chunks: Vec<&[Vec<u8>]> = lines.chunks(lines.len() / 4 + 1).collect();
    assert_eq!(chunks.len(), 4);
    let url = format!("s3://{BUCKET}/run");
    // Partitions with a checkpoint (one file per cut: `pNNNNN-o…ckpt`).
    let checkpoints = || {
        let keys = moto.keys(&format!("run/_checkpoints/{TOPIC}/p"));
        let mut partitions: Vec<String> =
            keys.iter().filter_map(|k| k.rsplit('/').next()?.split('-').next().map(str::to_owned)).collect();
        partitions.dedup();
        partitions.len()
    };

    // Two hosts: every process gets a fresh working directory, so nothing local carries over.
    let mut homes: Vec<PathBuf> = Vec::new();
    let mut start = |name: &str, extra: &[&str]| {
        let home = path(&format!("host-{name}"));
        homes.push(home.clone());
        KillOnDrop(spawn_worker(&broker, &moto, &url, &home, &path(&format!("{name}.log")), extra))
    };
    let mut placed = broker.produce(TOPIC, chunks[0]);
    let mut workers = [start("a0", &[]), start("b0", &[])];
    let mut names = ["a0".to_owned(), "b0".to_owned()];
    util::wait_until("every partition checkpointed in the bucket", Duration::from_secs(60), || {
        checkpoints() == PARTITIONS as usize
    });

    // kill -9 while uploading: new events keep every partition flushing every 250 ms.
    // Both hosts crash, then come back one after the other. (tansu 0.6 is unreliable
    // with a live member beside a dead one when a third joins: it can hand one
    // partition to two members, or stall the group. A lone joiner next to dead
    // members, and joins next to live members, it handles.)
    let all = format!("partitions assigned partitions={:?}", (0..PARTITIONS).collect::<Vec<_>>());
    let rounds = 2;
    for (round, chunk) in (1..).zip(&chunks[1..=rounds]) {
        placed.extend(broker.produce(TOPIC, chunk));
        for (i, pause) in [(0, 250 + 100 * round as u64), (1, 150)] {
            std::thread::sleep(Duration::from_millis(pause));
            workers[i].0.kill().unwrap(); // SIGKILL
            workers[i].0.wait().unwrap();
        }
        // The dead members' sessions (3 s) end before anyone joins.
        std::thread::sleep(Duration::from_millis(3500));
        for (i, until) in [(0, all.as_str()), (1, "resuming partition from checkpoint")] {
            let name = format!("{}{round}", ["a", "b"][i]);
            workers[i] = start(&name, &[]);
            wait_log(&path(&format!("{name}.log")), until);
            names[i] = name;
        }
    }
    let kills = 2 * rounds;
    placed.extend(broker.produce(TOPIC, chunks[3]));
    std::thread::sleep(Duration::from_millis(500));
    // Graceful stops, one at a time, for the same reason.
    let held_all = |name: &str| log_of(&path(&format!("{name}.log"))).matches(&all).count();
    let [mut a, mut b] = workers;
    let before = held_all(&names[0]);
    sigterm(&b.0);
    assert!(b.0.wait().unwrap().success(), "graceful stop exits 0:\n{}", log_of(&path(&format!("{}.log", names[1]))));
    util::wait_until("the other worker to hold every partition", Duration::from_secs(60), || {
        held_all(&names[0]) > before
    });
    sigterm(&a.0);
    assert!(a.0.wait().unwrap().success(), "graceful stop exits 0:\n{}", log_of(&path(&format!("{}.log", names[0]))));

    // Finish on a third host: catch up, close every journey, write, exit.
    let mut last = start("c-final", &["--until-end"]);
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = last.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the final worker did not finish:\n{}", log_of(&path("c-final.log")));
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = log_of(&path("c-final.log"));
    assert!(status.success() && log.contains("caught up"), "final worker ({status}):\n{log}");
    assert_eq!(log.matches("resuming partition from checkpoint").count(), PARTITIONS as usize, "{log}");
    assert_eq!(checkpoints(), PARTITIONS as usize, "every partition checkpointed, in the bucket");
    for home in &homes {
        let left: Vec<_> = std::fs::read_dir(home).unwrap().collect();
        assert!(left.is_empty(), "{} holds {left:?}: workers keep nothing durable on their host", home.display());
    }

    // The reference: file mode per partition; partition 0's run writes to the bucket too.
    let slices = partition_slices(&lines, &placed, dir.path());
    assert_eq!(slices.len(), PARTITIONS as usize, "events on every partition");
    let reference: Vec<PathBuf> = (0..slices.len()).map(|i| path(&format!("file-mode-{i}"))).collect();
    let runs: Vec<_> = slices
        .iter()
        .zip(&reference)
        .enumerate()
        .map(|(i, (slice, local))| {
            let output = if i == 0 { format!("s3://{BUCKET}/file-mode-0") } else { local.display().to_string() };
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_omnimeter"));
            cmd.args(["run", "--input", slice.to_str().unwrap(), "--output", &output]).current_dir(dir.path());
            (output, moto.env(&mut cmd).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap())
        })
        .collect();
    for (output, run) in runs {
        let out = run.wait_with_output().unwrap();
        assert!(out.status.success(), "file mode to {output}: {}", String::from_utf8_lossy(&out.stderr));
    }
    download(&moto, "file-mode-0", &reference[0]);
    let reference: Vec<String> = reference.iter().map(|p| p.display().to_string()).collect();

    // Read the bucket back from outside: only complete Parquet files, nothing hidden or
    // temporary, and every table equal to file mode's (no row lost or doubled).
    let kafka_out = path("from-bucket");
    download(&moto, "run", &kafka_out);
    assert!(!util::parquet_files(&kafka_out).is_empty());
    python_check(&["tests/tools/compare_outputs.py", kafka_out.to_str().unwrap(), &reference.join(",")]);
    // How many published files of never-checkpointed batches the restarts found and removed.
    let removed: usize = (1..=rounds)
        .flat_map(|r| ["a", "b"].map(|w| log_of(&path(&format!("{w}{r}.log")))))
        .flat_map(|log| {
            log.split("removed_uncommitted_files=")
                .skip(1)
                .filter_map(|s| s.split_whitespace().next()?.parse().ok())
                .collect::<Vec<usize>>()
        })
        .sum();
    eprintln!(
        "s3 test: {} events over {PARTITIONS} partitions, {kills} SIGKILLs ({removed} uncommitted files removed on \
         restart), {} Parquet files in the bucket, {:.1}s",
        lines.len(),
        util::parquet_files(&kafka_out).len(),
        started.elapsed().as_secs_f64()
    );
}

/// Checks everything under `s3://BUCKET/prefix` with pyarrow and copies it to `dest`.
fn download(moto: &Moto, prefix: &str, dest: &Path) {
    let mut cmd = Command::new(util::python());
    cmd.args(["tests/tools/s3_bucket.py", "download", &moto.endpoint, BUCKET, prefix]).arg(dest).current_dir(repo());
    let out = moto.env(&mut cmd).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "s3://{BUCKET}/{prefix} read back with pyarrow:\n{text}");
    eprintln!("s3://{BUCKET}/{prefix}: {}", text.trim());
}

#[test]
fn bad_output_urls_and_missing_buckets_fail_at_start_on_one_line() {
    let moto = Moto::start();
    let dir = scratch();
    let input = dir.path().join("events.ndjson");
    std::fs::write(&input, util::omnimeter(&["generate", "--customers", "20"]).stdout).unwrap();
    let run = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_omnimeter"));
        cmd.args(args).current_dir(dir.path());
        let out = moto.env(&mut cmd).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).trim().to_owned())
    };
    let input = input.to_str().unwrap();

    let (code, err) = run(&["run", "--input", input, "--output", "gs://b/x"]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(
        err,
        "omnimeter: output.url = \"gs://b/x\": expected a directory path like \"./omnimeter-out\", file:///absolute/path or s3://bucket/prefix"
    );
    // A worker refuses it before connecting to anything.
    let (code, err) = run(&["run", "--brokers", "127.0.0.1:9", "--output", "s3://Bad_Bucket/x"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.starts_with("omnimeter: output.url = \"s3://Bad_Bucket/x\": expected s3://bucket/prefix"), "{err}");
    assert!(!err.contains('\n'), "{err}");

    // A bucket that does not exist: the start-up probe names the URL.
    let (code, err) = run(&["run", "--input", input, "--output", "s3://omnimeter-missing/x"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with(
            "omnimeter: cannot write output s3://omnimeter-missing/x: cannot write s3://omnimeter-missing/x/.omnimeter-write-probe-"
        ),
        "{err}"
    );
    assert!(!err.contains('\n') && !err.contains("testing"), "one line, no credentials: {err}");

    // The same run into the real bucket works, and file:// URLs are directories.
    let (code, err) = run(&["run", "--input", input, "--output", &format!("s3://{BUCKET}/small")]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        moto.keys("small/journeys/").iter().all(|k| k.ends_with(".parquet"))
            && !moto.keys("small/journeys/").is_empty()
    );
    let local = dir.path().join("as url");
    let (code, err) =
        run(&["run", "--input", input, "--output", &format!("file://{}", local.display()).replace(' ', "%20")]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!util::parquet_files(&local).is_empty());
}
