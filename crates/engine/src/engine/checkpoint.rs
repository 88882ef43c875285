//! Checkpoints: a partition engine's whole state as bytes (open journeys, reorder
//! buffer, watermark, unwritten windows), so that a restarted or moved partition
//! goes on exactly where the last checkpoint left it. Encoded with postcard;
//! a version and the engine settings are checked on restore.

use serde::{Deserialize, Serialize};

use super::*;
use crate::names::Names;
use crate::time;

/// 2: journeys inline in their key slot (one resolution tracker, keys as one string,
/// 32-bit journey serials in slots and deadlines), activity windows as a list of
/// per-channel count arrays. Builds between 1 and this one were never released.
/// 3: version 2 followed by the identity part (SPEC §6: its two settings, the
/// identity book, anonymous events waiting for their customer). Version 2 still
/// restores, as an engine that does not resolve identities.
const VERSION: u32 = 3;

/// Why a checkpoint could not be taken or restored.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("finalized rows are still waiting: take_rows() before checkpointing")]
    RowsPending,
    #[error("checkpoint format version {found}, this build reads versions 2 and {VERSION}")]
    Version { found: u32 },
    #[error("checkpoint was written with {setting} = {then}, now {now}: keep the setting or delete the checkpoint")]
    Settings { setting: &'static str, then: String, now: String },
    #[error("checkpoint is for partition {found}, not {expected}")]
    Partition { found: i32, expected: i32 },
    #[error("checkpoint is inconsistent ({0}): damaged, or not written by this engine")]
    Inconsistent(&'static str),
    #[error("checkpoint encoding: {0}")]
    Encoding(#[from] postcard::Error),
}

fn settings(cfg: &EngineConfig) -> [(&'static str, i64); 6] {
    [
        ("window", cfg.window.0),
        ("gap", cfg.gap.0),
        ("thread_gap", cfg.thread_gap.0),
        ("allowed_lateness", cfg.allowed_lateness.0),
        ("reply_sla", cfg.reply_sla.0),
        ("max_path", cfg.max_path as i64),
    ]
}

#[derive(Serialize)]
struct SnapshotRef<'a> {
    version: u32,
    settings: [i64; 6],
    partition: i32,
    max_ts: Option<i64>,
    names: &'a [Name],
    slots: &'a [Option<KeySlot>],
    free: &'a [u32],
    reorder: &'a ReorderBuffer<Pending>,
    deadlines: &'a Deadlines,
    journey_serial: u64,
    windows: &'a WindowAggregates,
    stats: &'a Stats,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct Snapshot {
    version: u32,
    settings: [i64; 6],
    partition: i32,
    max_ts: Option<i64>,
    names: Vec<Name>,
    slots: Vec<Option<KeySlot>>,
    free: Vec<u32>,
    reorder: ReorderBuffer<Pending>,
    deadlines: Deadlines,
    journey_serial: u64,
    windows: WindowAggregates,
    stats: Stats,
}

/// What version 3 adds after the version 2 fields.
#[derive(Serialize)]
struct IdentityPartRef<'a> {
    identify_wait: i64,
    resolve_identities: bool,
    book: &'a IdentityBook,
    anonymous: &'a [Option<AnonymousEvent>],
    anonymous_free: &'a [u32],
    anonymous_in_journey: &'a hashbrown::HashMap<u32, u32>,
    resolved_input: bool,
    upstream: &'a Upstream,
}

#[derive(Deserialize, Default)]
struct IdentityPart {
    identify_wait: i64,
    resolve_identities: bool,
    book: IdentityBook,
    anonymous: Vec<Option<AnonymousEvent>>,
    anonymous_free: Vec<u32>,
    anonymous_in_journey: hashbrown::HashMap<u32, u32>,
    resolved_input: bool,
    upstream: Upstream,
}

impl PartitionEngine {
    /// Encodes the engine's state. Rows already finalized are not part of it:
    /// write them out with [`take_rows`](Self::take_rows) first.
    pub fn checkpoint(&self) -> Result<Vec<u8>, CheckpointError> {
        if !self.ready.is_empty() {
            return Err(CheckpointError::RowsPending);
        }
        let snap = SnapshotRef {
            version: VERSION,
            settings: settings(&self.cfg).map(|(_, v)| v),
            partition: self.partition,
            max_ts: self.max_ts,
            names: self.names.list(),
            slots: &self.keys.slots,
            free: &self.keys.free,
            reorder: &self.reorder,
            deadlines: &self.deadlines,
            journey_serial: self.journey_serial,
            windows: &self.windows,
            stats: &self.stats,
        };
        let identity = IdentityPartRef {
            identify_wait: self.cfg.identify_wait.0,
            resolve_identities: self.cfg.resolve_identities,
            book: &self.identities,
            anonymous: &self.anonymous,
            anonymous_free: &self.anonymous_free,
            anonymous_in_journey: &self.anonymous_in_journey,
            resolved_input: self.cfg.resolved_input,
            upstream: &self.upstream,
        };
        Ok(postcard::to_allocvec(&(snap, identity))?)
    }

    /// Rebuilds an engine from [`checkpoint`](Self::checkpoint) bytes. The settings
    /// must equal those the checkpoint was taken with: journeys and windows already
    /// cut one way cannot be re-cut another.
    pub fn restore(cfg: EngineConfig, partition: i32, bytes: &[u8]) -> Result<Self, CheckpointError> {
        let (snap, rest): (Snapshot, _) = postcard::take_from_bytes(bytes)?;
        let identity = match snap.version {
            2 if rest.is_empty() => IdentityPart { identify_wait: cfg.identify_wait.0, ..IdentityPart::default() },
            VERSION => postcard::from_bytes(rest)?,
            found => return Err(CheckpointError::Version { found }),
        };
        if snap.partition != partition {
            return Err(CheckpointError::Partition { found: snap.partition, expected: partition });
        }
        for ((setting, now), then) in settings(&cfg).into_iter().zip(snap.settings) {
            if now != then {
                let show = |v: i64| if setting == "max_path" { v.to_string() } else { DurationMs(v).to_string() };
                return Err(CheckpointError::Settings { setting, then: show(then), now: show(now) });
            }
        }
        if identity.resolve_identities != cfg.resolve_identities {
            let show = |on: bool| if on { "on" } else { "off" }.to_string();
            return Err(CheckpointError::Settings {
                setting: "identity resolution",
                then: show(identity.resolve_identities),
                now: show(cfg.resolve_identities),
            });
        }
        if identity.resolved_input != cfg.resolved_input {
            let show = |on: bool| if on { "resolved" } else { "raw" }.to_string();
            return Err(CheckpointError::Settings {
                setting: "input (raw or resolved by `omnimeter resolve`)",
                then: show(identity.resolved_input),
                now: show(cfg.resolved_input),
            });
        }
        if cfg.resolve_identities && identity.identify_wait != cfg.identify_wait.0 {
            return Err(CheckpointError::Settings {
                setting: "identify_wait",
                then: DurationMs(identity.identify_wait).to_string(),
                now: cfg.identify_wait.to_string(),
            });
        }
        snap.check(&cfg, &identity)?;
        let mut keys = KeyTable { slots: snap.slots, free: snap.free, ..KeyTable::default() };
        keys.reindex();
        let mut engine = PartitionEngine::new(cfg, partition);
        engine.max_ts = snap.max_ts;
        engine.names = Names::from_list(snap.names);
        engine.keys = keys;
        engine.reorder = snap.reorder;
        engine.deadlines = snap.deadlines;
        engine.journey_serial = snap.journey_serial;
        engine.windows = snap.windows;
        engine.stats = snap.stats;
        engine.identity_taken = identity.book.counts();
        engine.identities = identity.book;
        engine.anonymous = identity.anonymous;
        engine.anonymous_free = identity.anonymous_free;
        engine.anonymous_in_journey = identity.anonymous_in_journey;
        engine.upstream = identity.upstream;
        Ok(engine)
    }
}

/// Counters of a restored engine must be below this, far from `u64::MAX`.
const COUNTER_LIMIT: u64 = 1 << 62;

impl Snapshot {
    /// Checks what the engine relies on without re-checking at run time: every
    /// reference (slot, name id) resolves, counts agree, instants and counters are
    /// in range. A checkpoint that passes restores an engine that cannot panic on
    /// it later; the store's checksum already catches storage damage, so this
    /// guards against bugs and hand-made bytes.
    fn check(&self, cfg: &EngineConfig, identity: &IdentityPart) -> Result<(), CheckpointError> {
        let bad = |what| Err(CheckpointError::Inconsistent(what));
        let names = self.names.len();
        if names >= NO_NAME as usize {
            return bad("too many names");
        }
        if self.max_ts.is_some_and(|t| !(time::MIN_TS_MS..=time::MAX_TS_MS).contains(&t)) {
            return bad("watermark out of range");
        }
        let mut pending = vec![0u32; self.slots.len()];
        let mut waiting = vec![false; identity.anonymous.len()];
        for p in self.reorder.iter() {
            if p.key & UNRESOLVED != 0 {
                match waiting.get_mut((p.key & !UNRESOLVED) as usize) {
                    Some(seen) if !*seen && identity.anonymous[(p.key & !UNRESOLVED) as usize].is_some() => {
                        *seen = true
                    }
                    _ => return bad("buffered anonymous event without its identities"),
                }
            } else {
                let key = (p.key & !ANONYMOUS) as usize;
                let Some(n) = pending.get_mut(key).filter(|_| self.slots[key].is_some()) else {
                    return bad("buffered event of a free key slot");
                };
                *n += 1;
            }
            let step_ok = p.step == NO_NAME || (p.step as usize) < names;
            if (p.channel as usize) >= names || !step_ok {
                return bad("buffered event refers to an unknown name");
            }
            let in_range = (time::MIN_TS_MS..=time::MAX_TS_MS).contains(&p.ts);
            if !(in_range && p.value >= 0.0 && p.value.is_finite()) {
                return bad("buffered event out of range");
            }
        }
        if !self.reorder.run_is_sorted() {
            return bad("reorder buffer out of order");
        }
        let mut open = 0u64;
        for (slot, &waiting) in self.slots.iter().zip(&pending) {
            let Some(slot) = slot else { continue };
            if slot.pending != waiting {
                return bad("key slot miscounts its buffered events");
            }
            if !slot.key.is_valid() {
                return bad("journey key splits inside a character");
            }
            if let Some(j) = &slot.journey {
                open += 1;
                j.check(names, cfg.max_path).map_err(CheckpointError::Inconsistent)?;
            }
        }
        let mut free = vec![false; self.slots.len()];
        for &i in &self.free {
            match free.get_mut(i as usize) {
                Some(seen) if !*seen && self.slots[i as usize].is_none() => *seen = true,
                _ => return bad("free list names an occupied, repeated or missing slot"),
            }
        }
        let open_journey =
            |k: &u32| self.slots.get(*k as usize).and_then(Option::as_ref).is_some_and(|s| s.journey.is_some());
        if !identity.anonymous_in_journey.keys().all(open_journey) {
            return bad("anonymous event count of a journey that is not open");
        }
        if waiting.iter().zip(&identity.anonymous).any(|(seen, a)| *seen != a.is_some()) {
            return bad("anonymous event slab disagrees with the reorder buffer");
        }
        let mut free_anon = vec![false; identity.anonymous.len()];
        for &i in &identity.anonymous_free {
            match free_anon.get_mut(i as usize) {
                Some(seen) if !*seen && identity.anonymous[i as usize].is_none() => *seen = true,
                _ => return bad("anonymous free list names an occupied, repeated or missing entry"),
            }
        }
        if self.slots.len() > MAX_KEYS || identity.anonymous.len() > MAX_KEYS {
            return bad("too many key slots");
        }
        // Deadlines may outlive their journey (they are re-checked by serial), not the table.
        if self.deadlines.iter().any(|(_, key, _)| *key as usize >= self.slots.len()) {
            return bad("deadline of a missing key slot");
        }
        self.windows.check(cfg.window.0, names).map_err(CheckpointError::Inconsistent)?;
        let s = &self.stats;
        let counters = [s.inputs, s.accepted, s.processed, s.duplicates, s.journeys_opened, self.journey_serial];
        if !counters.iter().chain(&s.rejected).chain(&s.journeys_closed).all(|&n| n < COUNTER_LIMIT) {
            return bad("counter out of range");
        }
        if s.journeys_closed_total() > s.journeys_opened || s.journeys_opened - s.journeys_closed_total() != open {
            return bad("open journeys disagree with the counters");
        }
        Ok(())
    }
}

impl KeyTable {
    /// Rebuilds the hash index over the occupied slots.
    fn reindex(&mut self) {
        let (slots, hasher) = (&self.slots, &self.hasher);
        let mut index = HashTable::with_capacity(slots.len());
        for (i, slot) in slots.iter().enumerate() {
            if let Some(s) = slot {
                index.insert_unique(Self::hash_key(hasher, &s.key), i as u32, |&j| {
                    Self::hash_key(hasher, &slots[j as usize].as_ref().expect("indexed slots are occupied").key)
                });
            }
        }
        self.index = index;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                let ts = 1_793_606_400_000i64 + (i as i64 * 7919) % 3_600_000 + i as i64 * 1000;
                let ch = ["web", "app", "phone", "store"][i % 4];
                let t = ["touch", "contact", "reply", "conversion", "request_opened", "request_resolved", "error"][i % 7];
                let thread = if i % 5 == 0 { r#","journey_id":"case-7""# } else { "" };
                format!(r#"{{"event_id":"e{i}","ts":{ts},"customer_id":"c{}"{thread},"channel":"{ch}","type":"{t}","value":1.5}}"#, i % 13)
            })
            .collect()
    }

    fn canonical(mut r: Rows) -> String {
        r.journeys.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        r.activity.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        r.transitions.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        format!("{:?}\n{:?}\n{:?}", r.journeys, r.activity, r.transitions)
    }

    #[test]
    fn a_restored_engine_continues_exactly_like_an_uninterrupted_one() {
        let input = lines(400);
        for cut in [0, 1, 57, 200, 399] {
            let mut whole = PartitionEngine::new(EngineConfig::default(), 2);
            let mut a = PartitionEngine::new(EngineConfig::default(), 2);
            let mut rows_whole = Rows::default();
            let mut rows_split = Rows::default();
            for (i, l) in input.iter().enumerate() {
                whole.push(l.as_bytes(), i as i64);
                if i < cut {
                    a.push(l.as_bytes(), i as i64);
                }
            }
            rows_split.append(&mut a.take_rows());
            let bytes = a.checkpoint().unwrap();
            drop(a);
            let mut b = PartitionEngine::restore(EngineConfig::default(), 2, &bytes).unwrap();
            for (i, l) in input.iter().enumerate().skip(cut) {
                b.push(l.as_bytes(), i as i64);
            }
            b.finish();
            whole.finish();
            rows_split.append(&mut b.take_rows());
            rows_whole.append(&mut whole.take_rows());
            assert_eq!(canonical(rows_whole.clone()), canonical(rows_split.clone()), "cut at {cut}");
            let sum = |r: &Rows| r.friction.iter().map(|f| f.occurrences).sum::<i64>();
            assert_eq!(sum(&rows_whole), sum(&rows_split));
            assert_eq!(whole.stats(), b.stats(), "counters carry over");
        }
    }

    #[test]
    fn restore_refuses_inconsistent_state_that_would_panic_later() {
        // Regression: restore trusted the bytes, so an unknown name id, a miscounted
        // key slot or counters that disagree panicked later in push/finish/open_journeys.
        let cfg = EngineConfig { resolve_identities: false, ..EngineConfig::default() };
        let mut e = PartitionEngine::new(cfg, 4);
        for (i, l) in lines(60).iter().enumerate() {
            e.push(l.as_bytes(), i as i64);
        }
        e.take_rows();
        assert!(e.open_journeys() > 0 && e.buffered_events() > 0);
        let bytes = e.checkpoint().unwrap();
        let edit = |f: &dyn Fn(&mut Snapshot)| {
            let (mut snap, identity): (Snapshot, _) = postcard::take_from_bytes(&bytes).unwrap();
            f(&mut snap);
            let mut edited = postcard::to_allocvec(&snap).unwrap();
            edited.extend_from_slice(identity);
            PartitionEngine::restore(cfg, 4, &edited)
        };
        let inconsistent = |r: Result<PartitionEngine, CheckpointError>| match r {
            Err(CheckpointError::Inconsistent(what)) => what,
            other => panic!("expected Inconsistent, got {:?}", other.map(|_| ())),
        };
        assert!(inconsistent(edit(&|s| s.names.truncate(1))).contains("unknown name"));
        assert!(inconsistent(edit(&|s| s.stats.journeys_opened = 0)).contains("open journeys"));
        let miscount = |s: &mut Snapshot| s.slots.iter_mut().flatten().for_each(|k| k.pending = 0);
        assert!(inconsistent(edit(&miscount)).contains("miscounts"));
        let free_taken = |s: &mut Snapshot| s.free.push(0);
        assert!(inconsistent(edit(&free_taken)).contains("free list"));
        let late_ts = |s: &mut Snapshot| s.max_ts = Some(i64::MAX);
        assert!(inconsistent(edit(&late_ts)).contains("watermark"));

        let mut untouched = edit(&|_| {}).unwrap();
        untouched.finish();
        e.finish();
        assert_eq!(canonical(untouched.take_rows()), canonical(e.take_rows()));
    }

    #[test]
    fn checkpoint_refuses_pending_rows_and_restore_checks_settings_and_partition() {
        let mut e = PartitionEngine::new(EngineConfig::default(), 1);
        e.push(b"garbage", 0);
        assert!(matches!(e.checkpoint(), Err(CheckpointError::RowsPending)));
        e.take_rows();
        let bytes = e.checkpoint().unwrap();
        let other = EngineConfig { gap: DurationMs(60_000), ..EngineConfig::default() };
        let err = PartitionEngine::restore(other, 1, &bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "checkpoint was written with gap = 30m, now 1m: keep the setting or delete the checkpoint"
        );
        assert!(matches!(
            PartitionEngine::restore(EngineConfig::default(), 2, &bytes),
            Err(CheckpointError::Partition { .. })
        ));
        assert!(matches!(
            PartitionEngine::restore(EngineConfig::default(), 1, &bytes[..bytes.len() / 2]),
            Err(CheckpointError::Encoding(_))
        ));
    }
}
