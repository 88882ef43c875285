//! Kafka end to end next to a raw consume of the same topic on the same broker:
//! a local `tansu` broker, N generated events produced into 6 partitions by a
//! batching producer, then (1) a plain rdkafka consumer that only counts messages
//! and (2) one `omnimeter run --until-end` worker writing Parquet.
//!
//!     cargo bench --bench kafka              # 500,000 events
//!     cargo bench --bench kafka -- 2000000

#![allow(clippy::unwrap_used)]

#[path = "../tests/util/kafka.rs"]
mod kafka_util;

use std::process::Command;
use std::time::{Duration, Instant};

use omnimeter_generate::{GenConfig, Generator};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const PARTITIONS: i32 = 6;

fn main() {
    let events: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(500_000);
    let broker = kafka_util::Broker::start();
    broker.create_topic("events", PARTITIONS as u32);
    let mut g = Generator::new(GenConfig { customers: (events / 8).max(1) as u64, seed: 3, ..GenConfig::default() });
    let mut lines = Vec::with_capacity(events);
    let mut line = Vec::new();
    while lines.len() < events && g.next_event(&mut line).is_some() {
        lines.push(std::mem::take(&mut line));
    }
    let t = Instant::now();
    broker.produce("events", &lines);
    eprintln!("bench: produced {} events in {:.1}s", lines.len(), t.elapsed().as_secs_f64());

    // Raw consume, measured before and after the worker (the faster counts): every
    // partition from the beginning to its end, only counting, same fetch settings as the worker.
    let raw_consume = |group: &str| {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker.addr())
            .set("group.id", group)
            .set("enable.partition.eof", "true")
            .set("fetch.wait.max.ms", "100")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition_offset("events", p, Offset::Beginning).unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let t = Instant::now();
        let (mut count, mut eofs) = (0usize, 0);
        while eofs < PARTITIONS {
            match consumer.poll(Duration::from_millis(500)) {
                Some(Ok(_)) => count += 1,
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => eofs += 1,
                _ => {}
            }
        }
        assert_eq!(count, lines.len());
        t.elapsed().as_secs_f64()
    };
    let raw_before = raw_consume("bench-raw-1");

    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let run = Command::new(env!("CARGO_BIN_EXE_omnimeter"))
        .args(["run", "--brokers", &broker.addr(), "--topic", "events", "--group", "bench", "--until-end", "--output"])
        .arg(dir.path().join("out"))
        .env("OMNIMETER_LOG", "warn")
        .output()
        .unwrap();
    let worker = t.elapsed().as_secs_f64();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let raw = raw_before.min(raw_consume("bench-raw-2"));
    let n = lines.len() as f64;
    println!("Kafka end to end, {} events in {PARTITIONS} partitions, one worker, tansu on loopback", lines.len());
    println!("  raw consume (count only)   {raw:.2} s  {:.0} events/s", n / raw);
    println!(
        "  omnimeter worker → Parquet {worker:.2} s  {:.0} events/s (process start to exit, incl. group join)",
        n / worker
    );
    println!("  ratio                      {:.2}x of raw", raw / worker);
    println!("  summary                    {}", String::from_utf8_lossy(&run.stdout).trim());
}
