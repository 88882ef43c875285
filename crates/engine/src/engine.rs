//! [`PartitionEngine`]: one source partition's watermark, reorder buffer, open
//! journeys and windows. Feed it raw events with [`push`](PartitionEngine::push),
//! end a finite input with [`finish`](PartitionEngine::finish), and collect
//! finalized rows with [`take_rows`](PartitionEngine::take_rows).
//!
//! Accepted events wait in a reorder buffer until the watermark passes their `ts`:
//! from then on no event can sort before them, so they are folded into their
//! journey in exact `(ts, event_id)` order, and a journey whose next event is `gap`
//! or more later is known to be complete.
//!
//! What the state is bounded by (measured by `cargo bench --bench perf -- journeys` and the
//! `hostile` tests; [`PartitionEngine::estimated_state_bytes`] adds it up):
//! - open journeys: about 220 bytes each (a 192-byte key slot holding the journey
//!   state and key strings up to 24 bytes, a 16-byte deadline, the index), plus
//!   8–18 bytes per distinct event id of the journey past two; they close at
//!   `last ts + gap` of event time, so their number is the customers active within
//!   one `gap` (`thread_gap` for threads);
//! - the reorder buffer: by event time, not count (see `reorder.rs`);
//! - deadlines (`deadlines.rs`): one per open journey, plus stale ones that leave by `gap`;
//! - activity windows: those the watermark has not passed; journey-derived
//!   aggregates, finalized rows and live counts: until the adapter drains them
//!   with [`take_rows`](PartitionEngine::take_rows) and
//!   [`take_tally`](PartitionEngine::take_tally), which it should do
//!   regularly (live counts hold one entry per channel pair and friction key);
//! - interned channel and step names: for the engine's lifetime (see `names.rs`).

use std::cmp::Ordering;
use std::hash::BuildHasher;

use compact_str::CompactString;
use hashbrown::{DefaultHashBuilder, HashTable};

use crate::deadlines::{Deadline, Deadlines};
use crate::decode::decode;
use crate::event::{Event, EventType};
use crate::identity::{self, Identity, IdentityBook, IdentityCounts, PendingLink};
use crate::journey::{JourneyState, Step};
use crate::names::{NO_NAME, NameId, Names};
use crate::reorder::ReorderBuffer;
use crate::resolve::{Forwarded, LinkRows};
use crate::rows::*;
use crate::stats::Stats;
use crate::tally::{Effects, LiveCounts, Tally};
use crate::time::DurationMs;
use crate::windows::WindowAggregates;

mod checkpoint;
pub use checkpoint::CheckpointError;

/// Engine settings (SPEC §5 defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    pub window: DurationMs,
    pub gap: DurationMs,
    pub thread_gap: DurationMs,
    pub allowed_lateness: DurationMs,
    pub reply_sla: DurationMs,
    pub max_path: usize,
    /// SPEC §6: how long after an anonymous event a link still claims it.
    pub identify_wait: DurationMs,
    /// Whether this engine resolves identities itself (file mode: one partition holds
    /// every link). Off, an event without `customer_id` is its anonymous customer at
    /// once and links are not learned: a resolve stage upstream does that work.
    pub resolve_identities: bool,
    /// The input is a resolve stage's output ([`Forwarded`] messages through
    /// [`PartitionEngine::push_forwarded`]): the watermark is what every raw partition
    /// has released, as its markers say, not the highest `ts` seen.
    pub resolved_input: bool,
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
            identify_wait: DurationMs(30 * 60_000),
            resolve_identities: true,
            resolved_input: false,
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
        let non_negative = [
            ("allowed_lateness", self.allowed_lateness),
            ("reply_sla", self.reply_sla),
            ("identify_wait", self.identify_wait),
        ];
        for (key, d) in non_negative {
            if d.0 < 0 {
                return Err(ConfigError { key, value: d.to_string(), expected: "a duration of zero or more, like 5s" });
            }
        }
        if self.resolve_identities && self.resolved_input {
            return Err(ConfigError {
                key: "resolve_identities",
                value: "true".into(),
                expected: "false when the input comes resolved from `omnimeter resolve`",
            });
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
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Pending {
    ts: i64,
    event_id: CompactString,
    /// Hash of the raw payload: orders two different events with the same
    /// `(ts, event_id)` the same way whatever their arrival order (the SPEC leaves
    /// such ties open; exact copies hash alike and are interchangeable).
    tie: u64,
    key: u32,
    channel: NameId,
    step: NameId,
    event_type: EventType,
    value: f64,
}

/// `Pending::key` with this bit set indexes [`PartitionEngine::anonymous`]: an event
/// whose customer is decided when it leaves the reorder buffer.
const UNRESOLVED: u32 = 1 << 31;
/// `Pending::key` bit of an event that came without a `customer_id` and was resolved
/// upstream (`anonymous_events`). Flags in the key keep `Pending` as checkpoint format 2 had it.
const ANONYMOUS: u32 = 1 << 30;
/// Key slots and the anonymous slab stay below the flag bits.
const MAX_KEYS: usize = 1 << 30;

/// An event known only by its identities, waiting for its customer.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct AnonymousEvent {
    journey_id: Option<CompactString>,
    identities: smallvec::SmallVec<[Identity; 1]>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    /// `(ts, event_id bytewise, tie)`. Written out so that the common case, different
    /// `ts`, decides without touching the ids (the reorder heap compares at every level).
    fn cmp(&self, other: &Self) -> Ordering {
        self.ts
            .cmp(&other.ts)
            .then_with(|| self.event_id.as_bytes().cmp(other.event_id.as_bytes()))
            .then_with(|| self.tie.cmp(&other.tie))
    }
}

/// The tie-breaker of a payload: a fixed seed, so that the order is the same in
/// every run and after a restore by the same build. foldhash rather than xxh3: this
/// hashes every whole payload, and foldhash does it in a third of the instructions.
/// foldhash promises no stable output across its versions, so a build with another
/// foldhash may order differently two events of equal `(ts, event_id)` and different
/// payloads that a checkpoint still buffers: an order the SPEC leaves open anyway.
///
/// Public so that an adapter can hash on the thread that decodes
/// ([`PartitionEngine::push_decoded_tied`]), where the payload's bytes are still in cache.
pub fn tie_hash(raw: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x6f6d_6e69_6d65_7465).hash_one(raw)
}

/// A journey key `(customer_id, journey_id)`: both strings in one, inline up to
/// 24 bytes (most ids are shorter), and where the customer id ends.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
struct JourneyKey {
    text: CompactString,
    /// Length of the customer id in `text`, or [`NO_THREAD`] when there is no journey id.
    thread_at: u32,
}

const NO_THREAD: u32 = u32::MAX;

impl JourneyKey {
    fn new(customer: &str, thread: Option<&str>) -> Self {
        match thread {
            None => JourneyKey { text: customer.into(), thread_at: NO_THREAD },
            Some(t) => {
                let mut text = CompactString::with_capacity(customer.len() + t.len());
                text.push_str(customer);
                text.push_str(t);
                // `decode` allows customer ids of at most 128 bytes, so the length fits.
                JourneyKey { text, thread_at: customer.len() as u32 }
            }
        }
    }

    fn customer_id(&self) -> &str {
        if self.thread_at == NO_THREAD { &self.text } else { self.text.get(..self.thread_at as usize).unwrap_or("") }
    }

    fn journey_id(&self) -> Option<&str> {
        (self.thread_at != NO_THREAD).then(|| self.text.get(self.thread_at as usize..).unwrap_or(""))
    }

    fn is(&self, customer: &str, thread: Option<&str>) -> bool {
        self.customer_id() == customer && self.journey_id() == thread
    }

    /// A restored key must split on a character boundary.
    fn is_valid(&self) -> bool {
        self.thread_at == NO_THREAD || self.text.is_char_boundary(self.thread_at as usize)
    }
}

/// A journey key with its open journey, if any (192 bytes, journey inline).
#[derive(serde::Serialize, serde::Deserialize, Debug)]
struct KeySlot {
    key: JourneyKey,
    /// Events of this key still in the reorder buffer: the slot lives while any wait.
    pending: u32,
    /// Tells the open journey's deadline from stale ones of journeys closed before
    /// (the low bits of the engine's journey serial; a stale match only costs a re-check).
    serial: u32,
    journey: Option<JourneyState>,
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

    fn hash_key(hasher: &DefaultHashBuilder, key: &JourneyKey) -> u64 {
        Self::hash(hasher, key.customer_id(), key.journey_id())
    }

    fn find_or_insert(&mut self, customer: &str, thread: Option<&str>) -> u32 {
        let h = Self::hash(&self.hasher, customer, thread);
        let slots = &self.slots;
        let eq = |&i: &u32| slots[i as usize].as_ref().is_some_and(|s| s.key.is(customer, thread));
        if let Some(&i) = self.index.find(h, eq) {
            return i;
        }
        let slot = KeySlot { key: JourneyKey::new(customer, thread), pending: 0, serial: 0, journey: None };
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
            Self::hash_key(hasher, &slots[j as usize].as_ref().expect("indexed slots are occupied").key)
        });
        i
    }

    fn slot(&self, i: u32) -> Option<&KeySlot> {
        self.slots.get(i as usize).and_then(Option::as_ref)
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
            let h = Self::hash_key(&self.hasher, &s.key);
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
    reorder: ReorderBuffer<Pending>,
    /// `(earliest possible close, key, journey serial)`, re-checked when popped.
    deadlines: Deadlines,
    journey_serial: u64,
    windows: WindowAggregates,
    ready: Rows,
    stats: Stats,
    live: LiveCounts,
    /// Raw bytes of the `rejected` rows in `ready`: they bound a batch as rows do.
    ready_raw_bytes: usize,
    /// Journeys of `ready` already handed out by [`PartitionEngine::newly_closed`].
    journeys_seen: usize,
    identities: IdentityBook,
    /// Events waiting in the reorder buffer for their customer (slab; `None` = free).
    anonymous: Vec<Option<AnonymousEvent>>,
    anonymous_free: Vec<u32>,
    /// Identity counts already handed out by [`PartitionEngine::take_tally`].
    identity_taken: IdentityCounts,
    /// Anonymous events of open journeys, by key slot: kept beside the journeys
    /// (only those that have some) so that journey state stays as small as it was.
    anonymous_in_journey: hashbrown::HashMap<u32, u32>,
    upstream: Upstream,
}

/// What a `run` worker knows of the resolve stage upstream (resolved input).
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Upstream {
    /// Raw partitions, from the markers; 0 before the first.
    sources: i32,
    /// Per raw partition: everything about events before this has been written.
    marks: std::collections::BTreeMap<i32, i64>,
    /// Per (raw partition, stream): the last message number taken.
    last_seq: std::collections::BTreeMap<(i32, u8), u64>,
    /// Messages seen again (a resolver's replay or a stale resolver) and skipped.
    pub(crate) repeated: u64,
    /// Numbers skipped over: messages that never came (a resolver lost them).
    pub(crate) missing: u64,
}

impl Upstream {
    fn watermark(&self) -> Option<i64> {
        if self.sources <= 0 || self.marks.len() < self.sources as usize {
            return None;
        }
        self.marks.values().copied().min()
    }
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
            reorder: ReorderBuffer::default(),
            deadlines: Deadlines::default(),
            journey_serial: 0,
            windows: WindowAggregates::new(cfg.window.0.max(1)),
            ready: Rows::default(),
            stats: Stats::default(),
            live: LiveCounts::default(),
            ready_raw_bytes: 0,
            journeys_seen: 0,
            identities: IdentityBook::default(),
            anonymous: Vec::new(),
            anonymous_free: Vec::new(),
            identity_taken: IdentityCounts::default(),
            anonymous_in_journey: hashbrown::HashMap::new(),
            upstream: Upstream::default(),
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
        if self.cfg.resolved_input {
            return self.upstream.watermark();
        }
        self.max_ts.map(|m| m.saturating_sub(self.cfg.allowed_lateness.0))
    }

    /// Resolved input: messages seen twice and skipped, and numbers that never came.
    pub fn upstream_repeats_and_missing(&self) -> (u64, u64) {
        (self.upstream.repeated, self.upstream.missing)
    }

    /// Takes one message of a resolve stage's output (SPEC §6) found at `offset`:
    /// an event with its customer, a raw partition's reject, `identities` rows, or a
    /// marker that moves the watermark. A number already taken is skipped, so a
    /// resolver's replay cannot count anything twice.
    pub fn push_forwarded(&mut self, raw: &[u8], fwd: &Forwarded, offset: i64) -> Option<RejectReason> {
        if let Forwarded::Marker { source, sources, released_below } = *fwd {
            let before = self.watermark();
            self.upstream.sources = self.upstream.sources.max(sources);
            let mark = self.upstream.marks.entry(source).or_insert(i64::MIN);
            *mark = (*mark).max(released_below);
            if self.watermark() > before {
                self.advance();
            }
            return None;
        }
        let (source, stream, seq) = fwd.numbered()?;
        let last = self.upstream.last_seq.entry((source, stream)).or_insert(0);
        if seq <= *last {
            self.upstream.repeated += 1;
            return None;
        }
        self.upstream.missing += seq - *last - 1;
        *last = seq;
        match fwd {
            Forwarded::Rejected { source_offset, reason, placed_ts, .. } => {
                self.stats.inputs += 1;
                self.live.inputs += 1;
                Some(self.reject_from(source, raw, *source_offset, *reason, *placed_ts))
            }
            Forwarded::Links { .. } => {
                let Ok(links) = serde_json::from_slice::<LinkRows>(raw) else { return None };
                for (identity_type, identity_value, conflict) in links.rows {
                    self.ready.identities.push(IdentityRow {
                        partition: source,
                        identity_type,
                        identity_value,
                        customer_id: links.customer_id.clone(),
                        linked_ts: links.linked_ts,
                        conflict,
                    });
                }
                None
            }
            Forwarded::Event { customer, .. } => {
                let decoded = decode(raw).map(|mut e| {
                    if let Some(c) = customer {
                        e.customer_id = Some(std::borrow::Cow::Owned(c.to_string()));
                        e.anonymous = true;
                    }
                    e.identities.clear();
                    e
                });
                self.push_decoded(raw, decoded, offset)
            }
            Forwarded::Marker { .. } => None,
        }
    }

    /// The watermark of the journey stage: every event before it is folded, and
    /// journeys that end `gap` before it are closed. It is the watermark, except behind
    /// an event without `customer_id` that waits for its customer (SPEC §6: until the
    /// watermark passes its `ts` + `identify_wait`, when every link that can claim it is
    /// known): events after it wait too, so that each customer's events still fold in
    /// `(ts, event_id)` order. Inputs without such events never wait.
    pub fn journey_watermark(&self) -> Option<i64> {
        // After `advance`, the buffer's head is at or past the watermark unless it is a
        // waiting anonymous event, and an arrival is never before the watermark (or it is late).
        self.watermark().map(|wm| self.journey_watermark_at(wm))
    }

    fn journey_watermark_at(&self, source_wm: i64) -> i64 {
        self.reorder.peek().map_or(source_wm, |p| p.ts.min(source_wm))
    }

    /// Whether the buffer's head may fold below the watermark `wm`: an event that waits
    /// for its customer may only once `wm` has passed its `ts` + `identify_wait`.
    fn may_fold(&self, p: &Pending, wm: i64) -> bool {
        p.ts < wm && (p.key & UNRESOLVED == 0 || p.ts < wm.saturating_sub(self.cfg.identify_wait.0))
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Journeys started and not yet closed.
    pub fn open_journeys(&self) -> usize {
        // Both counters travel in checkpoints, so this holds across restores.
        (self.stats.journeys_opened - self.stats.journeys_closed_total()) as usize
    }

    /// Events accepted but not yet folded into a journey.
    pub fn buffered_events(&self) -> usize {
        self.reorder.len()
    }

    /// Takes one raw event found at `offset` of this partition.
    /// Returns the reason when the input was dead-lettered (malformed or late), for
    /// adapters that forward rejects elsewhere; the `rejected` row is produced either way.
    pub fn push(&mut self, raw: &[u8], offset: i64) -> Option<RejectReason> {
        self.push_decoded(raw, decode(raw), offset)
    }

    /// [`push`](Self::push) of an event decoded already: `push_decoded(raw, decode(raw), offset)`
    /// is `push(raw, offset)`. Lets an adapter decode on another thread while this one folds;
    /// `decoded` must be what [`decode`](crate::decode) gives for `raw`.
    pub fn push_decoded(
        &mut self,
        raw: &[u8],
        decoded: Result<Event<'_>, RejectReason>,
        offset: i64,
    ) -> Option<RejectReason> {
        let tie = if decoded.is_ok() { tie_hash(raw) } else { 0 };
        self.push_decoded_tied(raw, decoded, tie, offset)
    }

    /// [`push_decoded`](Self::push_decoded) with `tie` = [`tie_hash`]`(raw)` computed
    /// already, by the thread that decoded `raw` (any value when `decoded` is an error).
    pub fn push_decoded_tied(
        &mut self,
        raw: &[u8],
        decoded: Result<Event<'_>, RejectReason>,
        tie: u64,
        offset: i64,
    ) -> Option<RejectReason> {
        self.stats.inputs += 1;
        self.live.inputs += 1;
        let event = match decoded {
            Ok(e) => e,
            Err(reason) => {
                let placed_ts = self.max_ts.unwrap_or(0);
                return Some(self.reject(raw, offset, reason, placed_ts));
            }
        };
        if self.watermark().is_some_and(|w| event.ts < w) {
            return Some(self.reject(raw, offset, RejectReason::Late, event.ts));
        }
        self.accept(event, tie);
        None
    }

    fn reject(&mut self, raw: &[u8], offset: i64, reason: RejectReason, placed_ts: i64) -> RejectReason {
        self.reject_from(self.partition, raw, offset, reason, placed_ts)
    }

    /// A `rejected` row at `offset` of source `partition` (a raw partition, for resolved input).
    fn reject_from(
        &mut self,
        partition: i32,
        raw: &[u8],
        offset: i64,
        reason: RejectReason,
        placed_ts: i64,
    ) -> RejectReason {
        self.stats.rejected[reason.index()] += 1;
        self.ready_raw_bytes += raw.len();
        self.live.rejected[reason.index()] += 1;
        self.ready.rejected.push(RejectedRow { partition, offset, reason, raw: raw.to_vec(), placed_ts });
        reason
    }

    fn accept(&mut self, e: Event<'_>, tie: u64) {
        self.stats.accepted += 1;
        let key = match &e.customer_id {
            Some(customer) => {
                if self.cfg.resolve_identities && !e.identities.is_empty() {
                    self.identities.add_link(PendingLink {
                        ts: e.ts,
                        event_id: CompactString::from(e.event_id.as_ref()),
                        customer_id: CompactString::from(customer.as_ref()),
                        identities: identity::owned(&e.identities),
                    });
                }
                let key = self.keys.find_or_insert(customer, e.journey_id.as_deref());
                self.keys.get_mut(key).pending += 1;
                if e.anonymous { key | ANONYMOUS } else { key }
            }
            None if self.cfg.resolve_identities => {
                let waiting = AnonymousEvent {
                    journey_id: e.journey_id.as_deref().map(CompactString::from),
                    identities: identity::owned(&e.identities).into(),
                };
                let i = match self.anonymous_free.pop() {
                    Some(i) => {
                        self.anonymous[i as usize] = Some(waiting);
                        i
                    }
                    None => {
                        self.anonymous.push(Some(waiting));
                        (self.anonymous.len() - 1) as u32
                    }
                };
                i | UNRESOLVED
            }
            None => {
                // No links here: the anonymous customer of the smallest identity.
                let ids = e.identities.iter().map(|(t, v)| (t.as_ref(), v.as_ref()));
                let customer = self.identities.resolve(e.ts, 0, ids).customer_id;
                let key = self.keys.find_or_insert(&customer, e.journey_id.as_deref());
                self.keys.get_mut(key).pending += 1;
                key | ANONYMOUS
            }
        };
        let pending = Pending {
            ts: e.ts,
            event_id: CompactString::from(e.event_id.as_ref()),
            tie,
            key,
            channel: self.names.intern(&e.channel),
            step: e.step.as_deref().map_or(NO_NAME, |s| self.names.intern(s)),
            event_type: e.event_type,
            value: e.value.unwrap_or(0.0),
        };
        self.reorder.push(pending);
        if self.max_ts.is_none_or(|m| e.ts > m) {
            self.max_ts = Some(e.ts);
            self.advance();
        }
    }

    /// Folds every buffered event the watermark has passed, closes journeys that
    /// can no longer grow, and writes activity windows that are complete.
    fn advance(&mut self) {
        let Some(source_wm) = self.watermark() else { return };
        if self.cfg.resolve_identities {
            self.identities.learn_below(source_wm, self.partition, &mut self.ready.identities);
        }
        while self.reorder.peek().is_some_and(|p| self.may_fold(p, source_wm)) {
            if let Some(p) = self.reorder.pop() {
                self.fold(p);
            }
        }
        let wm = self.journey_watermark_at(source_wm);
        while let Some(&(deadline, key, serial)) = self.deadlines.peek() {
            if deadline > wm {
                break;
            }
            self.deadlines.pop();
            let (gap, thread) = self.gap_of(key);
            // The serial tells a stale entry (its journey already closed) from the live one.
            let Some(j) = self.keys.slot(key).filter(|s| s.serial == serial).and_then(|s| s.journey.as_ref()) else {
                continue;
            };
            let now = j.last_ts.saturating_add(gap);
            if now <= wm {
                self.close(key);
                self.keys.release_if_idle(key);
            } else {
                self.deadlines.push(thread, (now, key, serial));
            }
        }
        self.windows.emit_activity(Some(wm), &self.names, self.partition, &mut self.ready);
    }

    /// The key's gap, and whether it is a thread's.
    fn gap_of(&self, key: u32) -> (i64, bool) {
        if self.keys.slot(key).is_some_and(|s| s.key.thread_at != NO_THREAD) {
            (self.cfg.thread_gap.0, true)
        } else {
            (self.cfg.gap.0, false)
        }
    }

    /// The journey key of a buffered event: an anonymous one gets its customer now,
    /// when every link that can claim it is known.
    fn resolve_key(&mut self, p: &Pending) -> u32 {
        if p.key & UNRESOLVED == 0 {
            let key = p.key & !ANONYMOUS;
            self.keys.get_mut(key).pending -= 1;
            return key;
        }
        let i = (p.key & !UNRESOLVED) as usize;
        let Some(waiting) = self.anonymous.get_mut(i).and_then(Option::take) else {
            // Unreachable: every unresolved key was pushed with its slab entry.
            return self.keys.find_or_insert("anon:", None);
        };
        self.anonymous_free.push(i as u32);
        let ids = waiting.identities.iter().map(|(t, v)| (t.as_str(), v.as_str()));
        let customer = self.identities.resolve(p.ts, self.cfg.identify_wait.0, ids).customer_id;
        self.keys.find_or_insert(&customer, waiting.journey_id.as_deref())
    }

    fn fold(&mut self, mut p: Pending) {
        let anonymous = p.key & (UNRESOLVED | ANONYMOUS) != 0;
        p.key = self.resolve_key(&p);
        let (gap, thread) = self.gap_of(p.key);
        let step = Step {
            ts: p.ts,
            id_hash: xxhash_rust::xxh3::xxh3_64(p.event_id.as_bytes()),
            channel: p.channel,
            step: p.step,
            event_type: p.event_type,
            value: p.value,
        };
        let slot = self.keys.get_mut(p.key);
        if slot.journey.as_ref().is_some_and(|j| p.ts - j.last_ts >= gap) {
            self.close(p.key);
        }
        let slot = self.keys.get_mut(p.key);
        if slot.journey.is_none() {
            self.journey_serial += 1;
            slot.serial = self.journey_serial as u32;
            slot.journey = Some(JourneyState::new(&step));
            self.deadlines.push(thread, (p.ts.saturating_add(gap), p.key, slot.serial));
            self.stats.journeys_opened += 1;
        }
        let j = slot.journey.as_mut().expect("just opened");
        let mut fx = Effects { windows: &mut self.windows, live: &mut self.live };
        if j.apply(&step, self.cfg.max_path, self.cfg.reply_sla.0, &mut fx) {
            self.stats.processed += 1;
            if anonymous {
                *self.anonymous_in_journey.entry(p.key).or_default() += 1;
            }
        } else {
            self.stats.duplicates += 1;
            self.live.duplicates += 1;
        }
    }

    /// Closes the key's open journey and writes its rows.
    fn close(&mut self, key: u32) {
        let slot = self.keys.get_mut(key);
        let Some(open) = slot.journey.take() else { return };
        let customer_id = CompactString::from(slot.key.customer_id());
        let journey_id = slot.key.journey_id().map(CompactString::from);
        let j = open.close(self.cfg.max_path, &mut Effects { windows: &mut self.windows, live: &mut self.live });
        let mut path =
            CompactString::with_capacity(j.path_prefix.iter().map(|&c| self.names.get(c).len() + 1).sum::<usize>() + 4);
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
            // Most inputs have no anonymous events: no hash lookup per close for them.
            anonymous_events: if self.anonymous_in_journey.is_empty() {
                0
            } else {
                self.anonymous_in_journey.remove(&key).map_or(0, i64::from)
            },
        });
    }

    /// The input is finite and over: folds every buffered event, closes every
    /// journey and writes every window.
    pub fn finish(&mut self) {
        if self.cfg.resolve_identities {
            self.identities.learn_all(self.partition, &mut self.ready.identities);
        }
        while let Some(p) = self.reorder.pop() {
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
    ///
    /// When it is called shapes the rows (a window's journey-derived rows come in one
    /// piece per call), so adapters that promise deterministic files call it only at
    /// cuts decided by the data ([`crate::CutRule`]).
    pub fn take_rows(&mut self) -> Rows {
        self.windows.drain_journey_tables(&self.names, self.partition, &mut self.ready);
        self.ready_raw_bytes = 0;
        self.journeys_seen = 0;
        std::mem::take(&mut self.ready)
    }

    /// How many rows [`take_rows`](Self::take_rows) would hand out now, and the raw
    /// bytes of its `rejected` rows. Cheap: a few lengths.
    pub fn pending_rows(&self) -> (usize, usize) {
        let ready = self.ready.counts().iter().sum::<usize>();
        (ready + self.windows.pending_journey_rows(), self.ready_raw_bytes)
    }

    /// The journeys closed since the last call, in close order (they stay in the
    /// rows [`take_rows`](Self::take_rows) hands out): metrics follow closes without
    /// taking, and so reshaping, the rows.
    pub fn newly_closed(&mut self) -> &[JourneyRow] {
        let from = self.journeys_seen.min(self.ready.journeys.len());
        self.journeys_seen = self.ready.journeys.len();
        &self.ready.journeys[from..]
    }

    /// Live counts since the last call, for metrics (not part of checkpoints).
    pub fn take_tally(&mut self) -> Tally {
        let mut t = self.live.take(&self.names);
        let now = self.identities.counts();
        let was = std::mem::replace(&mut self.identity_taken, now);
        t.identity = IdentityCounts {
            links: now.links - was.links,
            conflicts: now.conflicts - was.conflicts,
            resolved: now.resolved - was.resolved,
            unresolved: now.unresolved - was.unresolved,
        };
        t
    }

    /// SPEC §6 counts since this partition began (checkpoints carry them).
    pub fn identity_counts(&self) -> IdentityCounts {
        self.identities.counts()
    }

    /// Activity windows that are not yet complete.
    pub fn open_windows(&self) -> usize {
        self.windows.open_windows()
    }

    /// Bytes this engine's state takes, estimated from its collections' sizes and
    /// capacities (allocator overhead and rows waiting in [`take_rows`](Self::take_rows)
    /// not included). Walks every key slot, so it is for diagnostics and benchmarks,
    /// not for every event.
    pub fn estimated_state_bytes(&self) -> usize {
        use std::mem::size_of;
        let k = &self.keys;
        let slots = k.slots.capacity() * size_of::<Option<KeySlot>>()
            + k.slots.iter().flatten().map(KeySlot::heap_bytes).sum::<usize>()
            + k.free.capacity() * size_of::<u32>()
            + hash_table_bytes(k.index.capacity(), size_of::<u32>());
        let deadlines = self.deadlines.capacity() * size_of::<Deadline>();
        let reorder = self.reorder.capacity() * size_of::<Pending>()
            + self
                .reorder
                .iter()
                .map(|p| if p.event_id.is_heap_allocated() { p.event_id.capacity() } else { 0 })
                .sum::<usize>();
        size_of::<Self>() + slots + deadlines + reorder + self.names.estimated_bytes() + self.windows.estimated_bytes()
    }
}

/// Bytes of a hashbrown table holding up to `capacity` items of `item` bytes: at
/// most 7/8 of the buckets are used, and each bucket has one control byte.
pub(crate) fn hash_table_bytes(capacity: usize, item: usize) -> usize {
    if capacity == 0 { 0 } else { (capacity * 8 / 7).next_power_of_two() * (item + 1) }
}

impl KeySlot {
    fn heap_bytes(&self) -> usize {
        (if self.key.text.is_heap_allocated() { self.key.text.capacity() } else { 0 })
            + self.journey.as_ref().map_or(0, JourneyState::heap_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_793_606_400_000; // 2026-11-02T08:00:00Z
    const MIN: i64 = 60_000;

    fn ev(id: &str, ts: i64, cust: &str, channel: &str, t: &str) -> String {
        format!(r#"{{"event_id":"{id}","ts":{ts},"customer_id":"{cust}","channel":"{channel}","type":"{t}"}}"#)
    }

    fn thread_ev(id: &str, ts: i64, cust: &str, thread: &str, t: &str) -> String {
        format!(
            r#"{{"event_id":"{id}","ts":{ts},"customer_id":"{cust}","journey_id":"{thread}","channel":"web","type":"{t}"}}"#
        )
    }

    /// Without identity resolution the journey stage follows the watermark itself,
    /// which is what these tests time against (the identity tests hold it back).
    fn engine() -> PartitionEngine {
        PartitionEngine::new(EngineConfig { resolve_identities: false, ..EngineConfig::default() }, 7)
    }

    fn feed(e: &mut PartitionEngine, lines: &[String]) {
        for (i, l) in lines.iter().enumerate() {
            e.push(l.as_bytes(), i as i64);
        }
    }

    fn all_rows(lines: &[String]) -> (Rows, Stats) {
        let mut e = engine();
        feed(&mut e, lines);
        e.finish();
        (e.take_rows(), e.stats().clone())
    }

    #[test]
    fn events_exactly_gap_apart_start_a_new_journey() {
        let gap = 30 * MIN;
        let (rows, _) = all_rows(&[ev("a", T0, "c", "web", "touch"), ev("b", T0 + gap - 1, "c", "web", "touch")]);
        assert_eq!(rows.journeys.len(), 1, "gap - 1 ms apart: one journey");
        let (rows, _) = all_rows(&[ev("a", T0, "c", "web", "touch"), ev("b", T0 + gap, "c", "web", "touch")]);
        assert_eq!(rows.journeys.len(), 2, "exactly gap apart: two journeys");
    }

    #[test]
    fn threads_use_thread_gap_and_are_separate_from_sessions() {
        let lines = [
            thread_ev("a", T0, "c", "case-1", "request_opened"),
            ev("s", T0 + 1, "c", "web", "touch"),
            thread_ev("b", T0 + 20 * 3_600_000, "c", "case-1", "request_resolved"),
        ];
        let (rows, _) = all_rows(&lines);
        assert_eq!(rows.journeys.len(), 2);
        let thread = rows.journeys.iter().find(|j| j.journey_id.is_some()).unwrap();
        assert_eq!((thread.events, thread.resolution_ms), (2, Some(20 * 3_600_000)));
        let (rows, _) = all_rows(&[
            thread_ev("a", T0, "c", "case-1", "touch"),
            thread_ev("b", T0 + 24 * 3_600_000, "c", "case-1", "touch"),
        ]);
        assert_eq!(rows.journeys.len(), 2, "exactly thread_gap apart");
    }

    #[test]
    fn late_is_strictly_below_the_watermark() {
        // max ts T0+10s, lateness 5s: watermark T0+5s.
        let lines = [
            ev("a", T0 + 10_000, "c", "web", "touch"),
            ev("b", T0 + 5_000, "c", "web", "touch"),
            ev("c", T0 + 4_999, "c", "web", "touch"),
        ];
        let (rows, stats) = all_rows(&lines);
        assert_eq!(stats.late(), 1);
        assert_eq!(rows.rejected.len(), 1);
        assert_eq!(
            (rows.rejected[0].reason, rows.rejected[0].offset, rows.rejected[0].placed_ts),
            (RejectReason::Late, 2, T0 + 4_999)
        );
        assert_eq!(rows.journeys[0].events, 2, "the late event changes no metric");
        assert_eq!(rows.journeys[0].start_ts, T0 + 5_000);
    }

    #[test]
    fn late_events_do_not_move_the_watermark_but_rejected_ones_are_placed_at_it() {
        let lines =
            [ev("a", T0 + 60_000, "c", "web", "touch"), "not json".to_owned(), ev("b", T0, "c", "web", "touch")];
        let (rows, stats) = all_rows(&lines);
        assert_eq!((stats.late(), stats.malformed()), (1, 1));
        let bad = rows.rejected.iter().find(|r| r.reason == RejectReason::InvalidJson).unwrap();
        assert_eq!((bad.offset, bad.placed_ts, bad.partition), (1, T0 + 60_000, 7));
    }

    #[test]
    fn journeys_fold_in_ts_then_event_id_order_whatever_the_arrival() {
        // Same ts: "a-phone" sorts before "b-web" bytewise, so the path is phone>web.
        let lines = [
            ev("b-web", T0, "c", "web", "touch"),
            ev("a-phone", T0, "c", "phone", "contact"),
            ev("x", T0 - 1000, "c", "app", "touch"),
        ];
        let (rows, _) = all_rows(&lines);
        assert_eq!(rows.journeys.len(), 1);
        assert_eq!(rows.journeys[0].path, "app>phone>web");
        assert_eq!(rows.journeys[0].start_ts, T0 - 1000);
    }

    #[test]
    fn duplicates_are_counted_not_processed() {
        let a = ev("a", T0, "c", "web", "touch");
        let (rows, stats) = all_rows(&[a.clone(), ev("b", T0 + 1000, "c", "app", "touch"), a.clone()]);
        assert_eq!((stats.duplicates, stats.processed, stats.accepted), (1, 2, 3));
        assert_eq!(rows.journeys[0].events, 2);
        assert_eq!(rows.activity.iter().map(|r| r.events).sum::<i64>(), 2);
        // A repeated id with a later ts inside the journey extends nothing.
        let (rows, stats) = all_rows(&[a.clone(), ev("a", T0 + 10 * MIN, "c", "app", "conversion")]);
        assert_eq!(stats.duplicates, 1);
        assert_eq!((rows.journeys[0].end_ts, rows.journeys[0].outcome), (T0, Outcome::Browsed));
        // The same id after the journey ended (gap or more later) starts a new journey.
        let (rows, stats) = all_rows(&[a, ev("a", T0 + 31 * MIN, "c", "web", "touch")]);
        assert_eq!((stats.duplicates, rows.journeys.len()), (0, 2));
    }

    #[test]
    fn journeys_close_when_the_watermark_reaches_last_ts_plus_gap() {
        let mut e = engine();
        let lateness = 5_000;
        feed(&mut e, &[ev("a", T0, "c", "web", "touch")]);
        e.push(ev("z", T0 + 30 * MIN + lateness - 1, "other", "web", "touch").as_bytes(), 1);
        assert!(e.take_rows().journeys.is_empty(), "watermark one ms short of last_ts + gap");
        assert_eq!(e.open_journeys(), 1, "c's journey is open");
        e.push(ev("y", T0 + 30 * MIN + lateness, "other", "web", "touch").as_bytes(), 2);
        let rows = e.take_rows();
        assert_eq!(rows.journeys.len(), 1, "watermark reached last_ts + gap");
        assert_eq!(rows.journeys[0].customer_id, "c");
        assert_eq!((e.open_journeys(), e.buffered_events()), (0, 2), "the other key still waits in the reorder buffer");
    }

    #[test]
    fn events_with_a_customer_wait_for_identities_only_behind_an_anonymous_event() {
        const WAIT: i64 = 30 * MIN; // identify_wait
        let lateness = 5_000;
        let line = |id: &str, ts: i64, customer: Option<&str>, cookie: Option<&str>| {
            let c = customer.map(|c| format!(r#","customer_id":"{c}""#)).unwrap_or_default();
            let k = cookie.map(|k| format!(r#","identities":{{"cookie":"{k}"}}"#)).unwrap_or_default();
            format!(r#"{{"event_id":"{id}","ts":{ts}{c}{k},"channel":"web","type":"touch"}}"#)
        };
        let mut e = PartitionEngine::new(EngineConfig::default(), 0);
        assert!(e.config().resolve_identities && e.config().identify_wait.0 == WAIT);
        e.push(line("a", T0, Some("c"), None).as_bytes(), 0);
        e.push(line("z1", T0 + 30 * MIN + lateness, Some("other"), None).as_bytes(), 1);
        let rows = e.take_rows();
        assert_eq!(rows.journeys.len(), 1, "nothing anonymous waits: c's journey closes at last ts + gap");
        assert_eq!(e.journey_watermark(), e.watermark());

        // An anonymous visit at t1, a login 10 minutes later claims it; d's event comes between.
        let t1 = T0 + 40 * MIN;
        e.push(line("v", t1, None, Some("K")).as_bytes(), 2);
        e.push(line("d1", t1 + MIN, Some("d"), None).as_bytes(), 3);
        e.push(line("login", t1 + 10 * MIN, Some("e"), Some("K")).as_bytes(), 4);
        e.push(line("z2", t1 + 20 * MIN + lateness, Some("other"), None).as_bytes(), 5);
        assert_eq!(e.journey_watermark(), Some(t1), "the visit waits for links until t1 + identify_wait");
        assert_eq!(e.open_journeys(), 1, "d's event waits behind the visit (other's journey is open)");
        e.push(line("z3", t1 + WAIT + 32 * MIN + lateness, Some("other"), None).as_bytes(), 6);
        let rows = e.take_rows();
        let of = |c: &str| rows.journeys.iter().find(|j| j.customer_id == c);
        let visit = of("e").expect("the visit and the login: e's journey");
        assert_eq!((visit.events, visit.anonymous_events, visit.start_ts), (2, 1, t1));
        assert_eq!(of("d").map(|j| j.end_ts), Some(t1 + MIN), "d's journey closed once the visit was folded");
    }

    #[test]
    fn activity_rows_wait_for_the_watermark_to_pass_the_window_end() {
        let mut e = engine();
        feed(&mut e, &[ev("a", T0 + 30_000, "c", "web", "touch")]);
        e.push(ev("b", T0 + MIN + 4_999, "d", "web", "touch").as_bytes(), 1);
        assert!(e.take_rows().activity.is_empty());
        e.push(ev("c", T0 + MIN + 5_000, "d", "web", "touch").as_bytes(), 2);
        let rows = e.take_rows();
        assert_eq!(rows.activity.len(), 1);
        assert_eq!((rows.activity[0].window_start, rows.activity[0].events, rows.activity[0].partition), (T0, 1, 7));
    }

    #[test]
    fn a_journey_belongs_to_the_window_of_its_end_and_hops_to_the_window_of_the_change() {
        let (rows, _) =
            all_rows(&[ev("a", T0 + 10, "c", "web", "touch"), ev("b", T0 + 2 * MIN + 10, "c", "phone", "contact")]);
        assert_eq!(rows.journey_windows[0].window_start, T0 + 2 * MIN);
        assert_eq!(rows.paths[0].window_start, T0 + 2 * MIN);
        assert_eq!(rows.transitions[0].window_start, T0 + 2 * MIN);
        let first_contact_friction = rows.friction.iter().find(|f| f.kind == FrictionKind::UnansweredContact).unwrap();
        assert_eq!(first_contact_friction.window_start, T0 + 2 * MIN);
        let drop_off = rows.friction.iter().find(|f| f.kind == FrictionKind::DropOff).unwrap();
        assert_eq!((drop_off.window_start, &*drop_off.channel), (T0 + 2 * MIN, "phone"));
    }

    #[test]
    fn attribution_splits_linear_credit_per_segment() {
        let lines = [
            ev("1", T0, "c", "web", "touch"),
            ev("2", T0 + 1, "c", "app", "touch"),
            ev("3", T0 + 2, "c", "web", "touch"),
            format!(
                r#"{{"event_id":"4","ts":{},"customer_id":"c","channel":"store","type":"conversion","value":100}}"#,
                T0 + 3
            ),
            format!(
                r#"{{"event_id":"5","ts":{},"customer_id":"c","channel":"store","type":"conversion","value":20}}"#,
                T0 + 4
            ),
        ];
        let (rows, _) = all_rows(&lines);
        let get = |m: AttributionModel, ch: &str| {
            rows.attribution.iter().find(|a| a.model == m && &*a.channel == ch).map(|a| (a.conversions, a.value))
        };
        assert_eq!(get(AttributionModel::FirstTouch, "web"), Some((1.0, 120.0)));
        assert_eq!(get(AttributionModel::LastTouch, "store"), Some((1.0, 120.0)));
        assert_eq!(get(AttributionModel::Linear, "web"), Some((0.5, 60.0)), "two of four segments");
        assert_eq!(get(AttributionModel::Linear, "app"), Some((0.25, 30.0)));
        assert_eq!(rows.paths[0].conversions, 1, "two conversion events, one converted journey");
    }

    #[test]
    fn config_validation_names_the_key() {
        let bad = EngineConfig { gap: DurationMs(0), ..EngineConfig::default() };
        let err = bad.validate().unwrap_err();
        assert_eq!(err.key, "gap");
        assert!(err.to_string().starts_with("gap = 0ms: expected"), "{err}");
        assert_eq!(EngineConfig { max_path: 0, ..EngineConfig::default() }.validate().unwrap_err().key, "max_path");
        assert!(EngineConfig::default().validate().is_ok());
    }

    #[test]
    fn the_state_estimate_counts_open_journeys_and_their_strings() {
        let mut e = engine();
        let empty = e.estimated_state_bytes();
        let lines: Vec<String> =
            (0..1000).map(|i| ev(&format!("e{i}"), T0, &format!("customer-{i:020}"), "web", "touch")).collect();
        feed(&mut e, &lines);
        e.push(ev("z", T0 + 10_000, "z", "web", "touch").as_bytes(), 1000);
        assert_eq!(e.open_journeys(), 1000);
        let open = e.estimated_state_bytes() - empty;
        let floor = 1000 * (std::mem::size_of::<Option<KeySlot>>() + "customer-".len() + 20);
        assert!((floor..3 * floor).contains(&open), "{open} bytes for 1000 journeys, expected at least {floor}");
    }

    #[test]
    fn a_key_slot_holds_its_journey_in_192_bytes() {
        let size = std::mem::size_of::<Option<KeySlot>>();
        assert!(size <= 192, "a key slot grew to {size} bytes; update the module docs");
    }

    #[test]
    fn journey_keys_split_back_into_customer_and_thread() {
        for (c, t) in [("c", None), ("c", Some("t")), ("", Some("")), ("ü", Some("ß-long-thread-id-past-24-bytes"))] {
            let k = JourneyKey::new(c, t);
            assert_eq!((k.customer_id(), k.journey_id()), (c, t));
            assert!(k.is(c, t) && k.is_valid());
        }
        assert!(!JourneyKey::new("ab", None).is("a", Some("b")), "customer ab is not customer a, thread b");
        assert!(!JourneyKey::new("a", Some("b")).is("ab", None));
    }

    #[test]
    fn finish_closes_everything_and_frees_every_key() {
        let mut e = engine();
        feed(&mut e, &[ev("a", T0, "c", "web", "touch"), thread_ev("b", T0, "c", "t", "touch")]);
        assert_eq!(e.buffered_events(), 2);
        e.finish();
        assert_eq!((e.open_journeys(), e.buffered_events(), e.keys.index.len()), (0, 0, 0));
        assert_eq!(e.keys.slots.iter().flatten().filter(|s| s.journey.is_some()).count(), 0);
        assert_eq!(e.take_rows().journeys.len(), 2);
    }
}
