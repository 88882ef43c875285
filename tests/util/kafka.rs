//! A real Kafka-protocol broker for the tests: `tansu` on a free loopback port
//! with in-memory storage, one per test, plus a batching producer that reports
//! where each message landed.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use omnimeter_generate::{GenConfig, Generator};

use super::{python_check, repo};

use rdkafka::ClientConfig;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

pub(crate) struct Broker {
    child: Option<Child>,
    pub(crate) port: u16,
    /// The port clients are told to use (a relay's, or `port`).
    advertised: u16,
    storage: String,
    dir: tempfile::TempDir,
}

impl Broker {
    /// Starts a broker with in-memory storage; panics with a clear message when
    /// `tansu` is not installed (`deploy/local/setup.sh --test` installs it).
    pub(crate) fn start() -> Broker {
        Broker::start_with("memory://tansu/")
    }

    /// Starts a broker whose topics and offsets live in an SQLite file (tansu's
    /// libsql storage), so it can be stopped and started again with its data.
    pub(crate) fn start_persistent() -> Broker {
        Broker::start_with("sqlite://tansu.db")
    }

    fn start_with(storage: &str) -> Broker {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut broker = Broker {
            child: None,
            port,
            advertised: port,
            storage: storage.to_owned(),
            dir: tempfile::tempdir().unwrap(),
        };
        broker.restart();
        broker
    }

    /// A broker that every client reaches through `relay` (its advertised address),
    /// so the test can cut a client's connections as a network would.
    pub(crate) fn start_behind(relay: &Relay) -> Broker {
        let mut broker = Broker {
            child: None,
            port: relay.upstream,
            advertised: relay.port,
            storage: "memory://tansu/".to_owned(),
            dir: tempfile::tempdir().unwrap(),
        };
        broker.restart();
        broker
    }

    /// Kills the broker process (as a crash or a lost host would).
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker (again) on the same port and storage; returns once it listens.
    pub(crate) fn restart(&mut self) {
        self.stop();
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("tansu.log")).unwrap();
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = format!("tcp://127.0.0.1:{}", self.advertised);
        let child = Command::new("tansu")
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised,
                "--storage-engine",
                &self.storage,
            ])
            .current_dir(self.dir.path())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("tansu (a Kafka-compatible broker) must be installed: run deploy/local/setup.sh --test");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "broker did not start listening on {}", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.advertised)
    }

    pub(crate) fn create_topic(&self, name: &str, partitions: u32) {
        let out = Command::new("tansu")
            .args([
                "topic",
                "create",
                name,
                "--broker",
                &format!("tcp://127.0.0.1:{}", self.port),
                "--partitions",
                &partitions.to_string(),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "topic create failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub(crate) fn delete_topic(&self, name: &str) {
        let out = Command::new("tansu")
            .args(["topic", "delete", name, "--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .output()
            .unwrap();
        assert!(out.status.success(), "topic delete failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Produces `lines` in order, keyed by their `customer_id` when they have one,
    /// through a batching producer (linger 5 ms, as real producers run). Returns
    /// each line's (partition, offset).
    pub(crate) fn produce(&self, topic: &str, lines: &[Vec<u8>]) -> Vec<(i32, i64)> {
        produce_to(&self.addr(), topic, lines)
    }
}

/// [`Broker::produce`] to a broker at `addr` (from another thread).
pub(crate) fn produce_to(addr: &str, topic: &str, lines: &[Vec<u8>]) -> Vec<(i32, i64)> {
    {
        let ctx = Deliveries(Arc::new(Mutex::new(vec![None; lines.len()])));
        let producer: BaseProducer<Deliveries> = ClientConfig::new()
            .set("bootstrap.servers", addr)
            .set("linger.ms", "5")
            .set("message.max.bytes", "2000000")
            .create_with_context(ctx.clone())
            .unwrap();
        for (i, line) in lines.iter().enumerate() {
            let key = customer_key(line);
            let mut record = BaseRecord::<[u8], [u8], usize>::with_opaque_to(topic, i).payload(line.as_slice());
            if let Some(k) = key.as_deref() {
                record = record.key(k);
            }
            let mut pending = Some(record);
            while let Some(r) = pending.take() {
                if let Err((_, r)) = producer.send(r) {
                    producer.poll(Duration::from_millis(20));
                    pending = Some(r);
                }
            }
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(60)).unwrap();
        let got = ctx.0.lock().unwrap().clone();
        got.into_iter().enumerate().map(|(i, d)| d.unwrap_or_else(|| panic!("line {i} not delivered"))).collect()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The key SPEC §6 asks of producers: `customer_id`, else the smallest identity as `type:value`.
fn customer_key(line: &[u8]) -> Option<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    if let Some(c) = v.get("customer_id").and_then(|c| c.as_str()) {
        return Some(c.as_bytes().to_vec());
    }
    let ids = v.get("identities")?.as_object()?;
    let (t, value) = ids.iter().filter_map(|(t, v)| Some((t.as_str(), v.as_str()?))).min()?;
    Some(format!("{t}:{value}").into_bytes())
}

type Placed = Arc<Mutex<Vec<Option<(i32, i64)>>>>;

#[derive(Clone)]
struct Deliveries(Placed);

impl rdkafka::ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;
    fn delivery(&self, result: &DeliveryResult<'_>, i: usize) {
        let m = result.as_ref().unwrap_or_else(|(e, _)| panic!("delivery failed: {e}"));
        self.0.lock().unwrap()[i] = Some((m.partition(), m.offset()));
    }
}

/// Splits `lines` into per-partition NDJSON files in offset order, the input a
/// file-mode run needs to reproduce exactly what each partition's engine saw.
pub(crate) fn partition_slices(
    lines: &[Vec<u8>],
    placed: &[(i32, i64)],
    dir: &std::path::Path,
) -> Vec<std::path::PathBuf> {
    let mut by_partition: std::collections::BTreeMap<i32, Vec<(i64, &[u8])>> = Default::default();
    for (line, &(p, o)) in lines.iter().zip(placed) {
        by_partition.entry(p).or_default().push((o, line));
    }
    by_partition
        .into_iter()
        .map(|(p, mut msgs)| {
            msgs.sort_by_key(|m| m.0);
            let path = dir.join(format!("partition-{p}.ndjson"));
            let mut text = Vec::new();
            for (_, m) in msgs {
                text.extend_from_slice(m);
                text.push(b'\n');
            }
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect()
}

/// Every message of `topic` with its `omnimeter-reason` header, read from the beginning to the end.
pub(crate) fn consume_all(broker: &Broker, topic: &str) -> Vec<(String, Vec<u8>)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Headers;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.addr())
        .set("group.id", "test-reader")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut eof = false;
    while !eof && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let reason = m
                    .headers()
                    .and_then(|h| {
                        h.iter()
                            .find(|h| h.key == "omnimeter-reason")
                            .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
                    })
                    .unwrap_or_default();
                got.push((reason, m.payload().unwrap_or_default().to_vec()));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => eof = true,
            _ => {}
        }
    }
    got
}

// Worker processes and the file-mode reference they are compared with.

pub(crate) const TOPIC: &str = "events";

/// A worker process; `extra` adds flags such as `--until-end`.
pub(crate) fn worker(broker: &Broker, out: &Path, extra: &[&str]) -> Command {
    worker_in("omnimeter-test", broker, out, extra)
}

/// [`worker`] in consumer group `group`.
pub(crate) fn worker_in(group: &str, broker: &Broker, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_omnimeter"));
    cmd.args(["run", "--brokers", &broker.addr(), "--topic", TOPIC, "--group", group, "--output"])
        .arg(out)
        .args(extra)
        .env("OMNIMETER_KAFKA_COMMIT_INTERVAL", "300ms")
        // Many cuts (a checkpoint each) in a day of generated traffic: more places to resume from.
        .env("OMNIMETER_OUTPUT_FILE_PERIOD", "15m")
        .env("OMNIMETER_KAFKA_SESSION_TIMEOUT", "6s")
        .env("OMNIMETER_KAFKA_DRAIN_TIMEOUT", "3s")
        // Bounds how long a rebalance waits for a member that left mid-rebalance (the poll loop polls every 100 ms).
        .env("OMNIMETER_KAFKA_PROPERTIES_MAX_POLL_INTERVAL_MS", "10000")
        .env("OMNIMETER_LOG", "info")
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Waits for a worker that should end by itself (`--until-end`) and fails unless it
/// exits 0. One that is still running after 5 minutes is killed and the test fails
/// with what it wrote, rather than hanging the suite.
pub(crate) fn wait_ok(mut child: Child, what: &str) -> Output {
    fn drain(pipe: Option<impl std::io::Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    }
    let (stdout, stderr) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let status = super::exit_within(&mut child, Duration::from_secs(300));
    let out = Output {
        status: status.unwrap_or_else(|| std::os::unix::process::ExitStatusExt::from_raw(9)),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(status.is_some(), "{what} still running after 300 s, killed:\n{stderr}");
    assert!(out.status.success(), "{what} failed ({}):\n{stderr}", out.status);
    out
}

pub(crate) fn read_lines(path: &Path) -> Vec<Vec<u8>> {
    std::fs::read(path)
        .unwrap()
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(<[u8]>::to_vec)
        .collect()
}

/// File mode over each partition's messages, in offset order: the reference output.
pub(crate) fn file_mode_per_partition(lines: &[Vec<u8>], placed: &[(i32, i64)], dir: &Path) -> String {
    let slices = partition_slices(lines, placed, dir);
    let mut roots = Vec::new();
    for (i, slice) in slices.iter().enumerate() {
        let root = dir.join(format!("file-mode-{i}"));
        let out = Command::new(env!("CARGO_BIN_EXE_omnimeter"))
            .args(["run", "--input", slice.to_str().unwrap(), "--output", root.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        roots.push(root.display().to_string());
    }
    roots.join(",")
}

pub(crate) fn compare(kafka_out: &Path, reference: &str) {
    python_check(&["tests/tools/compare_outputs.py", kafka_out.to_str().unwrap(), reference]);
}

/// Generated traffic with malformed lines and duplicates, as NDJSON lines.
pub(crate) fn generated(customers: u64, seed: u64) -> Vec<Vec<u8>> {
    let mut g =
        Generator::new(GenConfig { customers, seed, bad_rate: 0.01, duplicate_rate: 0.02, ..GenConfig::default() });
    let mut lines = Vec::new();
    let mut line = Vec::new();
    while g.next_event(&mut line).is_some() {
        lines.push(std::mem::take(&mut line));
    }
    lines
}

/// A worker whose log goes to `log` (so a running worker's progress can be read).
pub(crate) fn spawn_logged(broker: &Broker, out: &Path, log: &Path, extra: &[&str]) -> Child {
    let file = std::fs::File::create(log).unwrap();
    worker(broker, out, extra).stderr(Stdio::from(file)).stdout(Stdio::null()).spawn().unwrap()
}

pub(crate) fn checkpoints(out: &Path) -> usize {
    std::fs::read_dir(out.join("_checkpoints").join(TOPIC)).map_or(0, |d| {
        d.filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".ckpt"))).count()
    })
}

pub(crate) fn sigterm(child: &Child) {
    let ok = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill -TERM failed");
}

/// Runs an `--until-end` worker to completion (bounded), failing with its log.
pub(crate) fn until_end(broker: &Broker, out: &Path, log: &Path) {
    until_end_in("omnimeter-test", broker, out, log)
}

/// [`until_end`] in consumer group `group`: where a partition resumes is the
/// checkpoint's business, so any group finishes the same output.
pub(crate) fn until_end_in(group: &str, broker: &Broker, out: &Path, log: &Path) {
    let file = std::fs::File::create(log).unwrap();
    let mut child = worker_in(group, broker, out, &["--until-end"])
        .stderr(Stdio::from(file))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let Some(status) = super::exit_within(&mut child, Duration::from_secs(120)) else {
        panic!("until-end worker did not finish in 120 s:\n{}", log_of(log));
    };
    assert!(status.success(), "until-end worker failed ({status}):\n{}", log_of(log));
    assert!(log_of(log).contains("caught up"), "{}", log_of(log));
}

pub(crate) fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits (60 s at most) until a worker's log says `needle`; fails showing the log.
pub(crate) fn wait_log(log: &Path, needle: &str) {
    wait_showing(&format!("{} to say {needle:?}", log.display()), Duration::from_secs(60), &[log], || {
        log_of(log).contains(needle)
    });
}

/// Polls `cond` every 100 ms until it holds; after `timeout` fails with the last 40
/// lines of each of `logs` (group joins on tansu stall now and then: the logs say
/// which worker waited for what).
pub(crate) fn wait_showing(what: &str, timeout: Duration, logs: &[&Path], mut cond: impl FnMut() -> bool) {
    super::poll(
        timeout,
        || cond().then_some(()),
        || {
            let tails: Vec<String> = logs
                .iter()
                .map(|l| {
                    let text = log_of(l);
                    let lines: Vec<&str> = text.lines().collect();
                    format!("--- {} ends:\n{}", l.display(), lines[lines.len().saturating_sub(40)..].join("\n"))
                })
                .collect();
            format!("timed out after {} s waiting for {what}\n{}", timeout.as_secs(), tails.join("\n"))
        },
    )
}

/// A TCP relay on loopback in front of the broker. [`Relay::cut_existing`] turns
/// every connection open at that moment into a black hole (bytes are swallowed,
/// nothing answers, nothing is reset: a network partition as a client sees it),
/// while new connections pass: the clients connected then are cut off, later ones
/// are not.
pub(crate) struct Relay {
    pub(crate) port: u16,
    upstream: u16,
    cuts: Arc<Mutex<Vec<Arc<std::sync::atomic::AtomicBool>>>>,
}

impl Relay {
    pub(crate) fn start() -> Relay {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cuts: Arc<Mutex<Vec<Arc<AtomicBool>>>> = Arc::default();
        let registry = Arc::clone(&cuts);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                let cut = Arc::new(AtomicBool::new(false));
                registry.lock().unwrap().push(Arc::clone(&cut));
                for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                {
                    let cut = Arc::clone(&cut);
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if cut.load(Ordering::Relaxed) {
                                continue; // swallowed: the partition drops packets
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        if !cut.load(Ordering::Relaxed) {
                            let _ = to.shutdown(std::net::Shutdown::Both);
                        }
                    });
                }
            }
        });
        Relay { port, upstream, cuts }
    }

    /// Cuts every connection open now; returns how many.
    pub(crate) fn cut_existing(&self) -> usize {
        let cuts = self.cuts.lock().unwrap();
        for c in cuts.iter() {
            c.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        cuts.len()
    }
}
