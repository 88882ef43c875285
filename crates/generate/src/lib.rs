//! Seeded, reproducible synthetic omnichannel events as NDJSON lines (SPEC §1): customers live
//! weighted stories (call-backs, chat-to-email cases, failed WhatsApp payments, abandoned carts,
//! multi-day case threads, browsing) in near time order, with optional malformed and duplicate lines.
//! With [`GenConfig::identities`], stories also show customers known by other identifiers
//! (SPEC §6): anonymous web visits under a cookie that log in soon, late or never, calls and
//! WhatsApp messages by phone number linked by the customer's app profile, store visits by
//! loyalty card, and household landlines linked by two customers (conflicts).

mod render;
mod rng;
mod story;
#[cfg(test)]
mod tests;

use std::collections::BinaryHeap;
use std::io::{self, Write};

pub use render::{BadKind, Identity};
use render::{Line, TsStyle, push_line};
use rng::{Rng, mix64};
use story::Cursor;

const HOUR_MS: i64 = 3_600_000;
/// Customers' first journeys start spread over this span from `start_ms`.
const ARRIVAL_SPAN_MS: i64 = 12 * HOUR_MS;
/// Pause between two journeys of one customer: well above the default 30 m session gap.
const JOURNEY_PAUSE_MS: (i64, i64) = (HOUR_MS, 14 * HOUR_MS);

/// What to generate. Two generators with equal configs produce the same bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct GenConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Number of distinct customers (`cust-0000000` …).
    pub customers: u64,
    /// Journeys start during this many days after `start_ms` (a journey under way at the end
    /// is finished, so a case thread may run past it).
    pub days: u32,
    /// Event time of the beginning, epoch milliseconds.
    pub start_ms: i64,
    /// Bound on the arrival disorder: every event's `ts` is at least the highest `ts` emitted
    /// before it minus `disorder_ms`. 0 gives nondecreasing `ts`.
    pub disorder_ms: i64,
    /// Probability that a line is replaced by a malformed one (see [`BadKind`]).
    pub bad_rate: f64,
    /// Probability that an event is emitted a second time, byte for byte, shortly after.
    pub duplicate_rate: f64,
    /// Adds the identity stories (SPEC §6): events with `identities`, some without
    /// `customer_id`. Off, the output is what it was before identities existed.
    pub identities: bool,
    /// How `ts` is written.
    pub timestamps: Timestamps,
}

/// The forms of `ts` a generator writes (SPEC §1 accepts them all).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Timestamps {
    /// Mostly `…T08:00:00.123Z`, some `+01:00`, some epoch milliseconds (88/4/8 %):
    /// what this generator wrote before 2026-12 (the bytes of earlier seeds).
    Generator,
    /// As producers write them: 60 % `…123Z`, 10 % whole seconds `…00Z`, 15 % with an
    /// offset (`+02:00`, `-03:30`, `+05:30`, `+01:00`, `-05:00`), 15 % epoch milliseconds.
    #[default]
    Producers,
    /// All `…T08:00:00.123Z`.
    Zulu,
    /// All with an offset, as in `Producers`.
    Offsets,
    /// All epoch milliseconds.
    Epoch,
    /// All whole seconds `…T08:00:00Z` (the instant truncated to its second).
    WholeSeconds,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 42,
            customers: 1_000,
            days: 1,
            start_ms: 1_793_606_400_000, // 2026-11-02T08:00:00Z
            disorder_ms: 2_000,
            bad_rate: 0.0,
            duplicate_rate: 0.0,
            identities: false,
            timestamps: Timestamps::Producers,
        }
    }
}

impl GenConfig {
    /// No journey starts at or after this instant.
    pub fn end_ms(&self) -> i64 {
        self.start_ms.saturating_add(i64::from(self.days) * 24 * HOUR_MS)
    }
}

/// What a line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    /// A valid event, seen for the first time.
    Event,
    /// The exact bytes of an earlier [`LineKind::Event`] line again.
    Duplicate,
    /// A malformed line standing in for an event; the engine should reject it with
    /// [`BadKind::expected_reason`].
    Malformed(BadKind),
}

/// About the line [`Generator::next_event`] just wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenMeta {
    /// Event time of the event (of the event a malformed line stands in for).
    pub ts: i64,
    /// Customer number of the story, also for an event without `customer_id`.
    pub customer: u64,
    /// Event, duplicate or malformed stand-in.
    pub kind: LineKind,
    /// `Some` for an event without `customer_id` (identity stories): its smallest identity.
    pub anonymous: Option<Identity>,
}

impl GenMeta {
    /// The Kafka key of the event (SPEC §6): its `customer_id`, or `type:value` of its
    /// smallest identity when it has none.
    pub fn key(&self) -> String {
        match self.anonymous {
            Some(identity) => identity.to_string(),
            None => customer_id(self.customer),
        }
    }
}

/// The `customer_id` of customer number `n`: `cust-0000042`.
pub fn customer_id(n: u64) -> String {
    let mut out = Vec::with_capacity(16);
    render::push_customer_id(&mut out, n);
    String::from_utf8(out).unwrap_or_default()
}

enum Item {
    /// A customer's next story event.
    Story(Cursor),
    /// The second copy of an emitted line.
    Copy { customer: u64, anonymous: Option<Identity>, bytes: Box<[u8]> },
}

/// A scheduled line, emitted in `(key, seq)` order; `key` lies in `[ts, ts + disorder_ms]`.
struct Pending {
    key: i64,
    seq: u64,
    ts: i64,
    item: Item,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.key, self.seq) == (other.key, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    /// Reversed, so that `BinaryHeap` pops the smallest key first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.key, other.seq).cmp(&(self.key, self.seq))
    }
}

/// A bijection on `0..n` (an affine map and a xorshift on the enclosing power of two, cycle-walked),
/// so that customer numbers are not in order of first appearance.
struct Permutation {
    n: u64,
    mask: u64,
    mul: u64,
    add: u64,
    shift: u32,
}

impl Permutation {
    fn new(n: u64, seed: u64) -> Self {
        let mask = n.checked_next_power_of_two().map_or(u64::MAX, |m| m - 1);
        Permutation {
            n,
            mask,
            mul: mix64(seed ^ 0x5eed) | 1,
            add: mix64(seed ^ 0xadd),
            shift: mask.count_ones() / 2 + 1,
        }
    }

    fn apply(&self, mut x: u64) -> u64 {
        loop {
            x = x.wrapping_mul(self.mul).wrapping_add(self.add) & self.mask;
            x ^= x >> self.shift;
            if x < self.n {
                return x;
            }
        }
    }
}

/// The event source. Holds one scheduled event per active customer, plus pending duplicates.
pub struct Generator {
    cfg: GenConfig,
    disorder: i64,
    end_ms: i64,
    /// Drives stories, timing and `ts` styles.
    rng: Rng,
    /// Drives fault injection only, so the stories are the same whatever the fault rates.
    faults: Rng,
    heap: BinaryHeap<Pending>,
    seq: u64,
    /// Key of the last emitted line; keys are emitted in nondecreasing order.
    last_key: i64,
    customers: Permutation,
    /// Customers whose first journey has been scheduled.
    arrived: u64,
    /// First event time of customer `arrived` (in arrival order).
    next_arrival_ts: i64,
    next_case: u32,
    events: u64,
    id_key: u64,
    bad_lines: u64,
}

impl Generator {
    /// A generator at the start of `cfg`'s event stream. Negative `disorder_ms` counts as 0.
    pub fn new(cfg: GenConfig) -> Self {
        let mut g = Generator {
            disorder: cfg.disorder_ms.max(0),
            end_ms: cfg.end_ms(),
            rng: Rng::new(cfg.seed),
            faults: Rng::new(mix64(cfg.seed ^ 0xfa17)),
            heap: BinaryHeap::new(),
            seq: 0,
            last_key: i64::MIN,
            customers: Permutation::new(cfg.customers, cfg.seed),
            arrived: 0,
            next_arrival_ts: 0,
            next_case: 1,
            events: 0,
            id_key: mix64(cfg.seed ^ 0x1d5),
            bad_lines: 0,
            cfg,
        };
        if g.cfg.days == 0 {
            g.arrived = g.cfg.customers; // nothing to generate
        }
        g.next_arrival_ts = g.arrival_ts(0);
        g
    }

    /// The configuration this generator runs.
    pub fn config(&self) -> &GenConfig {
        &self.cfg
    }

    /// Appends the next line (one JSON object, or a malformed stand-in; no newline) to `line`.
    /// Lines come in nearly time order (see [`GenConfig::disorder_ms`]); `None` once every
    /// customer's journeys are done.
    pub fn next_event(&mut self, line: &mut Vec<u8>) -> Option<GenMeta> {
        self.admit_arrivals();
        let pending = self.heap.pop()?;
        self.last_key = pending.key;
        let ts = pending.ts;
        let cursor = match pending.item {
            Item::Copy { customer, anonymous, bytes } => {
                line.extend_from_slice(&bytes);
                return Some(GenMeta { ts, customer, kind: LineKind::Duplicate, anonymous });
            }
            Item::Story(cursor) => cursor,
        };

        let event_id = mix64(self.events.wrapping_add(self.id_key));
        self.events += 1;
        const OFFSETS: [i16; 5] = [120, -210, 330, 60, -300];
        let offset = |rng: &mut Rng| TsStyle::Offset(OFFSETS[rng.weighted(&[1, 1, 1, 1, 1])]);
        let ts_style = match self.cfg.timestamps {
            Timestamps::Generator => match self.rng.weighted(&[88, 4, 8]) {
                0 => TsStyle::Utc,
                1 => TsStyle::PlusOne,
                _ => TsStyle::EpochMs,
            },
            Timestamps::Producers => match self.rng.weighted(&[60, 10, 15, 15]) {
                0 => TsStyle::Utc,
                1 => TsStyle::UtcSeconds,
                2 => offset(&mut self.rng),
                _ => TsStyle::EpochMs,
            },
            Timestamps::Zulu => TsStyle::Utc,
            Timestamps::Offsets => offset(&mut self.rng),
            Timestamps::Epoch => TsStyle::EpochMs,
            Timestamps::WholeSeconds => TsStyle::UtcSeconds,
        };
        let bad = if self.faults.chance(self.cfg.bad_rate) {
            let kind = BadKind::ALL[(self.bad_lines % BadKind::ALL.len() as u64) as usize];
            self.bad_lines += 1;
            Some(kind)
        } else {
            None
        };
        let start = line.len();
        let rendered = Line {
            event_id,
            ts,
            ts_style,
            customer: cursor.customer,
            case: cursor.case,
            cookie: cursor.cookie,
            ev: &cursor.ev,
        };
        push_line(line, &rendered, bad);
        let anonymous = if cursor.ev.anonymous {
            render::identities(cursor.ev.ids, cursor.customer, cursor.cookie)[0]
        } else {
            None
        };
        if bad.is_none() && self.faults.chance(self.cfg.duplicate_rate) {
            // Anywhere from right after to the latest key that keeps the disorder bound.
            let key = self.faults.range(self.last_key, ts.saturating_add(self.disorder));
            let bytes = line[start..].into();
            self.push(key, ts, Item::Copy { customer: cursor.customer, anonymous, bytes });
        }
        self.continue_customer(cursor, ts);
        let kind = bad.map_or(LineKind::Event, LineKind::Malformed);
        Some(GenMeta { ts, customer: cursor.customer, kind, anonymous })
    }

    /// Writes up to `max_lines` lines (all when `None`), each ended by `\n`, in 64 KiB chunks.
    /// Returns the number of lines written; call again to go on.
    pub fn write_to<W: Write>(&mut self, out: &mut W, max_lines: Option<u64>) -> io::Result<u64> {
        const CHUNK: usize = 64 * 1024;
        let mut buf = Vec::with_capacity(CHUNK + 1024);
        let mut lines = 0;
        while max_lines.is_none_or(|max| lines < max) {
            if self.next_event(&mut buf).is_none() {
                break;
            }
            buf.push(b'\n');
            lines += 1;
            if buf.len() >= CHUNK {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
        out.write_all(&buf)?;
        Ok(lines)
    }

    /// First event time of the `i`-th arriving customer: arrivals are spread evenly over
    /// [`ARRIVAL_SPAN_MS`], jittered within their slot, so they come in time order.
    fn arrival_ts(&mut self, i: u64) -> i64 {
        let n = i128::from(self.cfg.customers.max(1));
        let span = i128::from(ARRIVAL_SPAN_MS);
        let base = (i128::from(i) * span / n) as i64;
        let slot = (span / n) as i64;
        self.cfg.start_ms.saturating_add(base).saturating_add(self.rng.range(0, slot - 1))
    }

    /// Schedules the first journey of every customer due no later than the next pending key,
    /// so no event is ever scheduled behind one already emitted.
    fn admit_arrivals(&mut self) {
        while self.arrived < self.cfg.customers {
            if self.heap.peek().is_some_and(|top| top.key < self.next_arrival_ts) {
                return;
            }
            let customer = self.customers.apply(self.arrived);
            let ts = self.next_arrival_ts;
            let cursor = Cursor::start(&mut self.rng, customer, &mut self.next_case, self.cfg.identities);
            self.schedule(ts, Item::Story(cursor));
            self.arrived += 1;
            if self.arrived < self.cfg.customers {
                self.next_arrival_ts = self.arrival_ts(self.arrived);
            }
        }
    }

    /// After `cursor`'s event at `ts`: its next event, or its next journey after a pause.
    fn continue_customer(&mut self, mut cursor: Cursor, ts: i64) {
        if let Some(delay) = cursor.advance(&mut self.rng) {
            self.schedule(ts + delay, Item::Story(cursor));
            return;
        }
        let next = ts + self.rng.range(JOURNEY_PAUSE_MS.0, JOURNEY_PAUSE_MS.1);
        if next < self.end_ms {
            let cursor = Cursor::start(&mut self.rng, cursor.customer, &mut self.next_case, self.cfg.identities);
            self.schedule(next, Item::Story(cursor));
        }
    }

    /// Queues an event at `ts` with a jittered emission key in `[ts, ts + disorder]`, never
    /// below the last emitted key (which is itself at most `ts + disorder`, as `ts` never
    /// goes backwards for a customer).
    fn schedule(&mut self, ts: i64, item: Item) {
        let jitter = self.rng.range(0, self.disorder);
        let key = ts.saturating_add(jitter).max(self.last_key);
        self.push(key, ts, item);
    }

    fn push(&mut self, key: i64, ts: i64, item: Item) {
        self.seq += 1;
        self.heap.push(Pending { key, seq: self.seq, ts, item });
    }
}
