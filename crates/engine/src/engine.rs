//! [`PartitionEngine`]: one source partition's watermark, reorder buffer, open
//! journeys and windows. Feed it raw events with [`push`](PartitionEngine::push),
//! end a finite input with [`finish`](PartitionEngine::finish), and collect
//! finalized rows with [`take_rows`](PartitionEngine::take_rows).
//!
//! Accepted events wait in a reorder buffer until the watermark passes their `ts`:
//! from then on no event can sort before them, so they are folded into their
//! journey in exact `(ts, event_id)` order, and a journey whose next event is `gap`
//! or more later is known to be complete.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::hash::BuildHasher;

use compact_str::CompactString;
use hashbrown::{DefaultHashBuilder, HashTable};

use crate::decode::decode;
use crate::event::{Event, EventType};
use crate::journey::{JourneyState, Step};
use crate::names::{NO_NAME, NameId, Names};
use crate::rows::*;
use crate::stats::Stats;
use crate::time::DurationMs;
use crate::windows::WindowAggregates;

/// Engine settings (SPEC §5 defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    pub window: DurationMs,
    pub gap: DurationMs,
    pub thread_gap: DurationMs,
    pub allowed_lateness: DurationMs,
    pub reply_sla: DurationMs,
    pub max_path: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            window: DurationMs(60_000),
            gap: DurationMs(30 * 60_000),
            thread_gap: DurationMs(24 * 3_600_000),
            allowed_lateness: DurationMs(5_000),
            reply_sla: DurationMs(15 * 60_000),
            max_path: 12,
        }
    }
}

/// An engine setting out of its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} = {value}: expected {expected}")]
pub struct ConfigError {
    pub key: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl EngineConfig {
    /// Checks every value is usable; the error names the key and the expected form.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [("window", self.window), ("gap", self.gap), ("thread_gap", self.thread_gap)];
        for (key, d) in positive {
            if d.0 <= 0 {
                return Err(ConfigError { key, value: d.to_string(), expected: "a duration above zero, like 1m" });
            }
        }
        for (key, d) in [("allowed_lateness", self.allowed_lateness), ("reply_sla", self.reply_sla)] {
            if d.0 < 0 {
                return Err(ConfigError { key, value: d.to_string(), expected: "a duration of zero or more, like 5s" });
            }
        }
        if self.max_path == 0 || self.max_path > 1024 {
            return Err(ConfigError {
                key: "max_path",
                value: self.max_path.to_string(),
                expected: "an integer from 1 to 1024",
            });
        }
        Ok(())
    }
}

/// An accepted event waiting for the watermark to pass its `ts`.
#[derive(Debug)]
struct Pending {
    ts: i64,
    event_id: CompactString,
    /// Arrival order, so exact repeats of `(ts, event_id)` leave the buffer in a stable order.
    seq: u64,
    key: u32,
    channel: NameId,
    step: NameId,
    event_type: EventType,
    value: f64,
}

impl Pending {
    fn order(&self) -> (i64, &[u8], u64) {
        (self.ts, self.event_id.as_bytes(), self.seq)
    }
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.order() == other.order()
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        self.order().cmp(&other.order())
    }
}

/// A journey key `(customer_id, journey_id)` with its open journey, if any.
#[derive(Debug)]
struct KeySlot {
    customer_id: Box<str>,
    journey_id: Option<Box<str>>,
    /// Events of this key still in the reorder buffer: the slot lives while any wait.
    pending: u32,
    journey: Option<OpenJourney>,
}

#[derive(Debug)]
struct OpenJourney {
    serial: u64,
    state: JourneyState,
}

/// Journey keys in a slab, found through a hash table of slab indexes: one copy
/// of each key's strings, and 4-byte references from the buffers.
#[derive(Debug, Default)]
struct KeyTable {
    slots: Vec<Option<KeySlot>>,
    free: Vec<u32>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl KeyTable {
    fn hash(hasher: &DefaultHashBuilder, customer: &str, thread: Option<&str>) -> u64 {
        hasher.hash_one((customer, thread))
    }

    fn find_or_insert(&mut self, customer: &str, thread: Option<&str>) -> u32 {
        let h = Self::hash(&self.hasher, customer, thread);
        let slots = &self.slots;
        let eq = |&i: &u32| {
            slots[i as usize]
                .as_ref()
                .is_some_and(|s| &*s.customer_id == customer && s.journey_id.as_deref() == thread)
        };
        if let Some(&i) = self.index.find(h, eq) {
            return i;
        }
        let slot = KeySlot {
            customer_id: customer.into(),
            journey_id: thread.map(Into::into),
            pending: 0,
            journey: None,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(slot);
                i
            }
            None => {
                self.slots.push(Some(slot));
                (self.slots.len() - 1) as u32
            }
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(h, i, |&j| {
            let s = slots[j as usize].as_ref().expect("indexed slots are occupied");
            Self::hash(hasher, &s.customer_id, s.journey_id.as_deref())
        });
        i
    }

    fn get_mut(&mut self, i: u32) -> &mut KeySlot {
        self.slots[i as usize].as_mut().expect("buffered events keep their slot")
    }

    /// Frees the slot when nothing refers to it any more.
    fn release_if_idle(&mut self, i: u32) {
        let idle = matches!(&self.slots[i as usize], Some(s) if s.pending == 0 && s.journey.is_none());
        if !idle {
            return;
        }
        if let Some(s) = self.slots[i as usize].take() {
            let h = Self::hash(&self.hasher, &s.customer_id, s.journey_id.as_deref());
            if let Ok(entry) = self.index.find_entry(h, |&j| j == i) {
                entry.remove();
            }
            self.free.push(i);
        }
    }
}

/// The journey engine of one source partition (a Kafka partition, or a file = partition 0).
#[derive(Debug)]
pub struct PartitionEngine {
    cfg: EngineConfig,
    partition: i32,
    /// Highest `ts` of the accepted events so far.
    max_ts: Option<i64>,
    names: Names,
    keys: KeyTable,
    reorder: BinaryHeap<Reverse<Pending>>,
    arrivals: u64,
    /// `(earliest possible close, key, journey serial)`, re-checked when popped.
    deadlines: BinaryHeap<Reverse<(i64, u32, u64)>>,
    journey_serial: u64,
    windows: WindowAggregates,
    ready: Rows,
    stats: Stats,
}

impl PartitionEngine {
    /// A new engine for `partition`. `cfg` should have passed [`EngineConfig::validate`].
    pub fn new(cfg: EngineConfig, partition: i32) -> Self {
        PartitionEngine {
            cfg,
            partition,
            max_ts: None,
            names: Names::default(),
            keys: KeyTable::default(),
            reorder: BinaryHeap::new(),
            arrivals: 0,
            deadlines: BinaryHeap::new(),
            journey_serial: 0,
            windows: WindowAggregates::new(cfg.window.0.max(1)),
            ready: Rows::default(),
            stats: Stats::default(),
        }
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Highest accepted `ts` minus `allowed_lateness`; `None` before the first event.
    pub fn watermark(&self) -> Option<i64> {
        self.max_ts.map(|m| m.saturating_sub(self.cfg.allowed_lateness.0))
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Journeys started and not yet closed.
    pub fn open_journeys(&self) -> usize {
        self.keys.slots.iter().flatten().filter(|s| s.journey.is_some()).count()
    }

    /// Events accepted but not yet folded into a journey.
    pub fn buffered_events(&self) -> usize {
        self.reorder.len()
    }

    /// Takes one raw event found at `offset` of this partition.
    pub fn push(&mut self, raw: &[u8], offset: i64) {
        self.stats.inputs += 1;
        let event = match decode(raw) {
            Ok(e) => e,
            Err(reason) => {
                let placed_ts = self.max_ts.unwrap_or(0);
                return self.reject(raw, offset, reason, placed_ts);
            }
        };
        if self.watermark().is_some_and(|w| event.ts < w) {
            return self.reject(raw, offset, RejectReason::Late, event.ts);
        }
        self.accept(event);
    }

    fn reject(&mut self, raw: &[u8], offset: i64, reason: RejectReason, placed_ts: i64) {
        self.stats.rejected[reason.index()] += 1;
        self.ready.rejected.push(RejectedRow { partition: self.partition, offset, reason, raw: raw.to_vec(), placed_ts });
    }

    fn accept(&mut self, e: Event<'_>) {
        self.stats.accepted += 1;
        let key = self.keys.find_or_insert(&e.customer_id, e.journey_id.as_deref());
        self.keys.get_mut(key).pending += 1;
        let pending = Pending {
            ts: e.ts,
            event_id: CompactString::from(e.event_id.as_ref()),
            seq: self.arrivals,
            key,
            channel: self.names.intern(&e.channel),
            step: e.step.as_deref().map_or(NO_NAME, |s| self.names.intern(s)),
            event_type: e.event_type,
            value: e.value.unwrap_or(0.0),
        };
        self.arrivals += 1;
        self.reorder.push(Reverse(pending));
        if self.max_ts.is_none_or(|m| e.ts > m) {
            self.max_ts = Some(e.ts);
            self.advance();
        }
    }

    /// Folds every buffered event the watermark has passed, closes journeys that
    /// can no longer grow, and writes activity windows that are complete.
    fn advance(&mut self) {
        let Some(wm) = self.watermark() else { return };
        while self.reorder.peek().is_some_and(|p| p.0.ts < wm) {
            if let Some(Reverse(p)) = self.reorder.pop() {
                self.fold(p);
            }
        }
        while let Some(&Reverse((deadline, key, serial))) = self.deadlines.peek() {
            if deadline > wm {
                break;
            }
            self.deadlines.pop();
            let gap = self.gap_of(key);
            let slot = self.keys.get_mut(key);
            let Some(j) = slot.journey.as_ref().filter(|j| j.serial == serial) else { continue };
            let now = j.state.last_ts.saturating_add(gap);
            if now <= wm {
                self.close(key);
                self.keys.release_if_idle(key);
            } else {
                self.deadlines.push(Reverse((now, key, serial)));
            }
        }
        self.windows.emit_activity(Some(wm), &self.names, self.partition, &mut self.ready);
    }

    fn gap_of(&mut self, key: u32) -> i64 {
        if self.keys.get_mut(key).journey_id.is_some() { self.cfg.thread_gap.0 } else { self.cfg.gap.0 }
    }

    fn fold(&mut self, p: Pending) {
        let gap = self.gap_of(p.key);
        let step = Step {
            ts: p.ts,
            id_hash: xxhash_rust::xxh3::xxh3_64(p.event_id.as_bytes()),
            channel: p.channel,
            step: p.step,
            event_type: p.event_type,
            value: p.value,
        };
        let slot = self.keys.get_mut(p.key);
        slot.pending -= 1;
        if slot.journey.as_ref().is_some_and(|j| p.ts - j.state.last_ts >= gap) {
            self.close(p.key);
        }
        let slot = self.keys.get_mut(p.key);
        if slot.journey.is_none() {
            self.journey_serial += 1;
            slot.journey = Some(OpenJourney { serial: self.journey_serial, state: JourneyState::new(&step) });
            self.deadlines.push(Reverse((p.ts.saturating_add(gap), p.key, self.journey_serial)));
            self.stats.journeys_opened += 1;
        }
        let j = slot.journey.as_mut().expect("just opened");
        if j.state.apply(&step, self.cfg.max_path, self.cfg.reply_sla.0, &mut self.windows) {
            self.stats.processed += 1;
        } else {
            self.stats.duplicates += 1;
        }
    }

    /// Closes the key's open journey and writes its rows.
    fn close(&mut self, key: u32) {
        let slot = self.keys.get_mut(key);
        let Some(open) = slot.journey.take() else { return };
        let customer_id = slot.customer_id.to_string();
        let journey_id = slot.journey_id.as_deref().map(str::to_owned);
        let j = open.state.close(self.cfg.max_path, &mut self.windows);
        let mut path = String::new();
        for (i, &c) in j.path_prefix.iter().enumerate() {
            if i > 0 {
                path.push('>');
            }
            path.push_str(self.names.get(c));
        }
        if j.truncated {
            path.push_str(">…");
        }
        self.windows.add_journey(&j, &path);
        self.stats.journeys_closed[j.outcome as usize] += 1;
        self.ready.journeys.push(JourneyRow {
            partition: self.partition,
            customer_id,
            journey_id,
            start_ts: j.start_ts,
            end_ts: j.end_ts,
            duration_ms: j.end_ts - j.start_ts,
            events: j.events,
            path,
            hops: j.hops,
            channels: j.segment_counts.len() as i64,
            first_channel: self.names.get(j.first_channel).clone(),
            last_channel: self.names.get(j.last_channel).clone(),
            outcome: j.outcome,
            conversion_value: j.conversion_value,
            resolution_ms: j.resolution_ms,
            first_contact_resolution: j.first_contact_resolution,
            repeat_contacts: j.repeat_contacts,
            unanswered_contacts: j.unanswered_contacts,
            errors: j.errors,
        });
    }

    /// The input is finite and over: folds every buffered event, closes every
    /// journey and writes every window.
    pub fn finish(&mut self) {
        while let Some(Reverse(p)) = self.reorder.pop() {
            self.fold(p);
        }
        for key in 0..self.keys.slots.len() as u32 {
            if self.keys.slots[key as usize].is_some() {
                self.close(key);
                self.keys.release_if_idle(key);
            }
        }
        self.deadlines.clear();
        self.windows.emit_activity(None, &self.names, self.partition, &mut self.ready);
    }

    /// Hands out every row finalized so far. Journey-derived aggregates are
    /// included; later contributions to the same window come as further rows.
    pub fn take_rows(&mut self) -> Rows {
        self.windows.drain_journey_tables(&self.names, self.partition, &mut self.ready);
        std::mem::take(&mut self.ready)
    }

    /// Activity windows that are not yet complete.
    pub fn open_windows(&self) -> usize {
        self.windows.open_windows()
    }
}
