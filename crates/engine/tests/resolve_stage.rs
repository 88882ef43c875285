//! The resolve stage of SPEC §6 as the Kafka adapters run it, simulated without
//! Kafka: raw partitions keyed by customer (or smallest identity), one
//! [`PartitionResolver`] each, links shared through a log, the global watermark as the
//! smallest published one, and `run` engines on the resolved partitions. Whatever the
//! partition counts and the interleaving of reads, every table must equal file mode's
//! on the same events; replayed messages (a resolver restarted from an older
//! checkpoint) must change nothing.

#![allow(clippy::unwrap_used)]

#[path = "identity/stories.rs"]
mod stories;

use std::collections::BTreeMap;

use omnimeter_engine::identity::IdentityBook;
use omnimeter_engine::resolve::{Outgoing, output_partition};
use omnimeter_engine::{DurationMs, EngineConfig, PartitionEngine, PartitionResolver, Rows, decode};
use proptest::prelude::*;

const LATENESS_MS: i64 = 5_000;

fn cfg() -> EngineConfig {
    EngineConfig {
        window: DurationMs(60_000),
        gap: DurationMs(300_000),
        thread_gap: DurationMs(900_000),
        allowed_lateness: DurationMs(LATENESS_MS),
        identify_wait: DurationMs(stories::WAIT_MS),
        ..EngineConfig::default()
    }
}

/// Tables as sums per key (rows of one key from several partitions add up, SPEC §3);
/// journeys, rejects (by payload) and identities as multisets.
fn tables(rows: &Rows) -> BTreeMap<String, Vec<f64>> {
    let mut t: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut add = |k: String, m: Vec<f64>| {
        let e = t.entry(k).or_insert_with(|| vec![0.0; m.len()]);
        e.iter_mut().zip(m).for_each(|(a, b)| *a += b);
    };
    for j in &rows.journeys {
        let mut j = j.clone();
        j.partition = 0;
        add(format!("journeys {j:?}"), vec![1.0]);
    }
    for r in &rows.activity {
        add(format!("activity {} {} {:?}", r.window_start, r.channel, r.event_type), vec![r.events as f64]);
    }
    for r in &rows.transitions {
        add(format!("transitions {} {} {}", r.window_start, r.from_channel, r.to_channel), vec![r.hops as f64]);
    }
    for r in &rows.journey_windows {
        let m = vec![
            r.journeys as f64,
            r.hops as f64,
            r.conversion_value,
            r.resolved as f64,
            r.resolution_ms_sum as f64,
            r.fcr as f64,
        ];
        add(format!("journey_windows {} {} {:?}", r.window_start, r.first_channel, r.outcome), m);
    }
    for r in &rows.paths {
        let m = vec![r.journeys as f64, r.conversions as f64, r.conversion_value];
        add(format!("paths {} {}", r.window_start, r.path), m);
    }
    for r in &rows.friction {
        add(format!("friction {} {:?} {} {:?}", r.window_start, r.kind, r.channel, r.step), vec![r.occurrences as f64]);
    }
    for r in &rows.attribution {
        add(format!("attribution {} {:?} {}", r.window_start, r.model, r.channel), vec![r.conversions, r.value]);
    }
    for r in &rows.rejected {
        add(format!("rejected {:?} {}", r.reason, String::from_utf8_lossy(&r.raw)), vec![1.0]);
    }
    for r in &rows.identities {
        let k = (&r.identity_type, &r.identity_value, &r.customer_id, r.linked_ts, r.conflict);
        add(format!("identities {k:?}"), vec![1.0]);
    }
    for v in t.values_mut() {
        v.iter_mut().for_each(|x| *x = (*x * 1e6).round() / 1e6);
    }
    t.retain(|_, v| v.iter().any(|x| *x != 0.0));
    t
}

fn file_mode(lines: &[String]) -> Rows {
    let mut e = PartitionEngine::new(cfg(), 0);
    for (i, l) in lines.iter().enumerate() {
        e.push(l.as_bytes(), i as i64);
    }
    e.finish();
    e.take_rows()
}

/// How the simulated cluster reads: partition counts and a stream of choices that
/// decide which raw partition, resolver step or run worker goes next.
#[derive(Debug, Clone)]
struct Cluster {
    raw: i32,
    out: i32,
    choices: Vec<u8>,
    /// Replay one raw partition from its start after this many steps (a resolver
    /// that crashed before its first checkpoint: its messages come twice).
    replay_at: Option<usize>,
}

fn cluster() -> impl Strategy<Value = Cluster> {
    (1..7i32, 1..5i32, prop::collection::vec(any::<u8>(), 64..256), prop::option::of(0..200usize))
        .prop_map(|(raw, out, choices, replay_at)| Cluster { raw, out, choices, replay_at })
}

fn resolve_stage(lines: &[String], c: &Cluster) -> Rows {
    let wait = stories::WAIT_MS;
    // Raw events keyed by customer_id, else smallest identity (SPEC §6); unreadable lines by themselves.
    let mut raw: Vec<Vec<&[u8]>> = vec![Vec::new(); c.raw as usize];
    for l in lines {
        let key = decode(l.as_bytes()).map(|e| e.routing_key().into_owned()).unwrap_or_else(|_| l.clone());
        raw[output_partition(&key, c.raw) as usize].push(l.as_bytes());
    }
    let mut resolvers: Vec<PartitionResolver> =
        (0..c.raw).map(|p| PartitionResolver::new(p, c.out, LATENESS_MS, wait)).collect();
    let mut read = vec![0usize; c.raw as usize];
    let mut book = IdentityBook::default();
    let mut queues: Vec<Vec<Outgoing>> = vec![Vec::new(); c.out as usize];
    let mut taken = vec![0usize; c.out as usize];
    let mut runs: Vec<PartitionEngine> = (0..c.out)
        .map(|q| PartitionEngine::new(EngineConfig { resolve_identities: false, resolved_input: true, ..cfg() }, q))
        .collect();
    let mut global = i64::MIN;
    let mut replay = c.replay_at;
    let mut choices = c.choices.iter();
    let mut step = 0usize;
    loop {
        step += 1;
        let all_read = read.iter().zip(&raw).all(|(n, r)| *n == r.len());
        // The generated schedule first, then round robin so that every step comes round.
        let choice = match choices.next() {
            Some(&c) => c as usize,
            None => (step % 3) + 3 * (step / 3),
        };
        if replay.is_some_and(|at| step >= at) {
            replay = None;
            // The resolver of one partition starts over from nothing: it re-reads and re-sends.
            let p = choice % c.raw as usize;
            resolvers[p] = PartitionResolver::new(p as i32, c.out, LATENESS_MS, wait);
            read[p] = 0;
            continue;
        }
        match choice % 3 {
            0 if !all_read => {
                // A resolver reads a few messages of one of its partitions.
                let p = (choice / 3) % c.raw as usize;
                for _ in 0..(choice % 5 + 1) {
                    let Some(line) = raw[p].get(read[p]) else { break };
                    let (link, pass) = resolvers[p].push(line, read[p] as i64);
                    if let Some(link) = link {
                        book.add_link(link);
                    }
                    if let Some(m) = pass {
                        queues[m.partition as usize].push(m);
                    }
                    read[p] += 1;
                }
            }
            1 => {
                // Progress: a caught-up partition holds nobody back (idle at its end).
                let g = resolvers
                    .iter()
                    .zip(read.iter().zip(&raw))
                    .map(|(r, (n, lines))| if *n == lines.len() { i64::MAX } else { r.watermark().unwrap_or(i64::MIN) })
                    .min()
                    .unwrap_or(i64::MAX);
                global = global.max(g);
                book.learn_below(global, 0, &mut Vec::new());
                let p = (choice / 3) % c.raw as usize;
                let mut out = Vec::new();
                let idle = read[p] == raw[p].len();
                resolvers[p].release(global, idle, &book, c.raw, &mut out);
                for m in out {
                    queues[m.partition as usize].push(m);
                }
            }
            _ => {
                // A run worker reads what its partition has.
                let q = (choice / 3) % c.out as usize;
                while let Some(m) = queues[q].get(taken[q]) {
                    let late = runs[q].push_forwarded(&m.value, &m.header, taken[q] as i64);
                    assert!(late.is_none_or(|r| r.as_str() != "late"), "the hold made an event late: {:?}", m.header);
                    taken[q] += 1;
                }
            }
        }
        let drained = queues.iter().zip(&taken).all(|(q, t)| q.len() == *t);
        let released = resolvers.iter().all(|r| r.held() == 0 && r.released_below() >= i64::MAX - wait);
        if all_read && drained && released && replay.is_none() {
            break;
        }
        assert!(
            step < 1_000_000,
            "the simulation does not end: read {read:?} of {:?}, held {:?}, released {:?}, global {global}",
            raw.iter().map(Vec::len).collect::<Vec<_>>(),
            resolvers.iter().map(PartitionResolver::held).collect::<Vec<_>>(),
            resolvers.iter().map(PartitionResolver::released_below).collect::<Vec<_>>()
        );
    }
    let mut rows = Rows::default();
    for mut e in runs {
        e.finish();
        rows.append(&mut e.take_rows());
    }
    rows
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn the_resolve_stage_gives_file_mode_tables_whatever_the_partitions_and_reads(
        lines in stories::identity_input(),
        c in cluster(),
    ) {
        let want = tables(&file_mode(&lines));
        let got = tables(&resolve_stage(&lines, &c));
        let diff: Vec<_> = want
            .iter()
            .filter(|(k, v)| got.get(*k) != Some(v))
            .map(|(k, v)| format!("want {k} {v:?}, got {:?}", got.get(k)))
            .chain(got.iter().filter(|(k, _)| !want.contains_key(*k)).map(|(k, v)| format!("extra {k} {v:?}")))
            .take(6)
            .collect();
        prop_assert!(diff.is_empty(), "{}", diff.join("\n"));
    }
}
