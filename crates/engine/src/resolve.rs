//! The resolve stage of SPEC §6 for one raw partition, as a pure state machine, and
//! the messages it sends to `run` workers. Events with a `customer_id` and rejects
//! pass through at once; events known only by identities wait until the slowest raw
//! partition's watermark has passed `ts + identify_wait`, then leave in `(ts, event_id)`
//! order with their customer. Every message is numbered per (raw partition, output
//! partition, stream), so that a replay after a crash, or a stale resolver, can only
//! repeat numbers a `run` worker has already taken (docs/identity.md).

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};

use compact_str::CompactString;

use crate::decode::decode;
use crate::identity::{Identity, IdentityBook, IdentityCounts, PendingLink};
use crate::rows::RejectReason;

/// Messages that pass through in arrival order (events with a customer, rejects).
pub const STREAM_PASS: u8 = 0;
/// Messages released by the hold in `(ts, event_id)` order (anonymous events, identity rows).
pub const STREAM_HELD: u8 = 1;

/// What a resolved-topic message is, carried in its `omnimeter-fwd` header; the value
/// is the raw event (events, rejects), the identity rows as JSON, or empty (markers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forwarded {
    /// An accepted event; `customer` is set when it came without one (anonymous).
    Event { source: i32, stream: u8, seq: u64, customer: Option<CompactString> },
    /// A rejected or late event of the raw partition, at its raw position.
    Rejected { source: i32, stream: u8, seq: u64, source_offset: i64, reason: RejectReason, placed_ts: i64 },
    /// The `identities` rows of one link event (value: [`LinkRows`] as JSON).
    Links { source: i32, stream: u8, seq: u64 },
    /// Every message of raw partition `source` about events before `released_below`
    /// has been written; `sources` raw partitions exist.
    Marker { source: i32, sources: i32, released_below: i64 },
}

/// The header that carries [`Forwarded`].
pub const FORWARDED_HEADER: &str = "omnimeter-fwd";

impl Forwarded {
    /// `e;source;stream;seq[;customer]`, `r;source;stream;seq;offset;reason;placed_ts`,
    /// `l;source;stream;seq`, `m;source;sources;released_below`: the customer, the only
    /// free text, comes last.
    pub fn to_header(&self) -> String {
        match self {
            Forwarded::Event { source, stream, seq, customer: None } => format!("e;{source};{stream};{seq}"),
            Forwarded::Event { source, stream, seq, customer: Some(c) } => format!("e;{source};{stream};{seq};{c}"),
            Forwarded::Rejected { source, stream, seq, source_offset, reason, placed_ts } => {
                format!("r;{source};{stream};{seq};{source_offset};{};{placed_ts}", reason.as_str())
            }
            Forwarded::Links { source, stream, seq } => format!("l;{source};{stream};{seq}"),
            Forwarded::Marker { source, sources, released_below } => format!("m;{source};{sources};{released_below}"),
        }
    }

    pub fn parse(header: &[u8]) -> Option<Forwarded> {
        let text = std::str::from_utf8(header).ok()?;
        let mut parts = text.splitn(5, ';');
        let kind = parts.next()?;
        let source: i32 = parts.next()?.parse().ok()?;
        match kind {
            "m" => {
                let sources = parts.next()?.parse().ok()?;
                let released_below = parts.next()?.parse().ok()?;
                Some(Forwarded::Marker { source, sources, released_below })
            }
            _ => {
                let stream: u8 = parts.next()?.parse().ok()?;
                let seq: u64 = parts.next()?.parse().ok()?;
                let rest = parts.next();
                match kind {
                    "e" => Some(Forwarded::Event { source, stream, seq, customer: rest.map(CompactString::from) }),
                    "l" => Some(Forwarded::Links { source, stream, seq }),
                    "r" => {
                        let mut f = rest?.splitn(3, ';');
                        let source_offset = f.next()?.parse().ok()?;
                        let reason = f.next()?;
                        let reason = RejectReason::ALL.into_iter().find(|r| r.as_str() == reason)?;
                        let placed_ts = f.next()?.parse().ok()?;
                        Some(Forwarded::Rejected { source, stream, seq, source_offset, reason, placed_ts })
                    }
                    _ => None,
                }
            }
        }
    }

    /// `(source, stream, seq)` of a numbered message (all but markers).
    pub fn numbered(&self) -> Option<(i32, u8, u64)> {
        match *self {
            Forwarded::Event { source, stream, seq, .. }
            | Forwarded::Rejected { source, stream, seq, .. }
            | Forwarded::Links { source, stream, seq } => Some((source, stream, seq)),
            Forwarded::Marker { .. } => None,
        }
    }
}

/// The `identities` rows of one link event, decided when the hold releases it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LinkRows {
    pub customer_id: CompactString,
    pub linked_ts: i64,
    /// `(type, value, conflict)`.
    pub rows: Vec<(CompactString, CompactString, bool)>,
}

/// A raw partition's progress, published on the identity log after its links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    pub partition: i32,
    /// Its watermark; every link of it before this is on the log already.
    pub watermark: Option<i64>,
    /// Caught up and quiet: it holds nobody back (docs/identity.md, "idle partitions").
    pub idle: bool,
}

/// One message of the identity log: a link event's links, or a partition's progress.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum LogEntry {
    Link(PendingLink),
    Progress(Progress),
}

/// The output partition of a customer: the same in every resolver and run.
pub fn output_partition(customer: &str, partitions: i32) -> i32 {
    (xxhash_rust::xxh3::xxh3_64(customer.as_bytes()) % partitions.max(1) as u64) as i32
}

fn yes() -> bool {
    true
}

/// A message to produce.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub partition: i32,
    /// The Kafka key: the customer (rejects: none).
    pub key: Option<CompactString>,
    pub header: Forwarded,
    pub value: Vec<u8>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum HeldKind {
    /// An anonymous event: its raw bytes leave with it.
    Anonymous { raw: Vec<u8>, identities: Vec<Identity> },
    /// A link event (it already passed through): its `identities` rows wait.
    Link { customer_id: CompactString, identities: Vec<Identity> },
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Held {
    ts: i64,
    event_id: CompactString,
    offset: i64,
    kind: HeldKind,
}

impl Held {
    fn order(&self) -> (i64, &[u8], &[u8], i64) {
        let customer = match &self.kind {
            HeldKind::Anonymous { .. } => &b""[..],
            HeldKind::Link { customer_id, .. } => customer_id.as_bytes(),
        };
        (self.ts, self.event_id.as_bytes(), customer, self.offset)
    }
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.order() == other.order()
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> Ordering {
        self.order().cmp(&other.order())
    }
}

/// The resolve stage of one raw partition. Checkpoint it with serde (postcard) together
/// with the offset after the last message pushed.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct PartitionResolver {
    partition: i32,
    outputs: i32,
    allowed_lateness: i64,
    identify_wait: i64,
    max_ts: Option<i64>,
    held: BinaryHeap<Reverse<Held>>,
    /// Held messages before this were released (markers say so downstream).
    released_below: i64,
    next_seq: BTreeMap<(i32, u8), u64>,
    /// The last link released: a re-delivered copy (equal `(ts, event_id, customer)`,
    /// released right after it) writes no second row.
    last_link: Option<(i64, CompactString, CompactString)>,
    /// A new or restored state tells the output partitions where it stands first.
    #[serde(skip, default = "yes")]
    marker_due: bool,
    counts: IdentityCounts,
    inputs: u64,
}

impl PartitionResolver {
    pub fn new(partition: i32, outputs: i32, allowed_lateness: i64, identify_wait: i64) -> Self {
        PartitionResolver {
            partition,
            outputs: outputs.max(1),
            allowed_lateness,
            identify_wait,
            max_ts: None,
            held: BinaryHeap::new(),
            released_below: i64::MIN,
            next_seq: BTreeMap::new(),
            last_link: None,
            marker_due: true,
            counts: IdentityCounts::default(),
            inputs: 0,
        }
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Settings a restored state must have been made with (`outputs` moves every seq).
    pub fn settings(&self) -> (i32, i64, i64) {
        (self.outputs, self.allowed_lateness, self.identify_wait)
    }

    pub fn watermark(&self) -> Option<i64> {
        self.max_ts.map(|m| m.saturating_sub(self.allowed_lateness))
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }

    pub fn released_below(&self) -> i64 {
        self.released_below
    }

    pub fn inputs(&self) -> u64 {
        self.inputs
    }

    /// Links, conflicts and anonymous events this partition released.
    pub fn counts(&self) -> IdentityCounts {
        self.counts
    }

    fn seq(&mut self, partition: i32, stream: u8) -> u64 {
        let n = self.next_seq.entry((partition, stream)).or_insert(0);
        *n += 1;
        *n
    }

    /// Takes one raw message at `offset`. Returns the link to publish on the identity
    /// log (before this partition's next progress), and the message to pass through.
    pub fn push(&mut self, raw: &[u8], offset: i64) -> (Option<PendingLink>, Option<Outgoing>) {
        self.inputs += 1;
        let placed = self.max_ts.unwrap_or(0);
        let event = match decode(raw) {
            Ok(e) => e,
            Err(reason) => return (None, Some(self.reject(raw, offset, reason, placed))),
        };
        if self.watermark().is_some_and(|w| event.ts < w) {
            return (None, Some(self.reject(raw, offset, RejectReason::Late, event.ts)));
        }
        if self.max_ts.is_none_or(|m| event.ts > m) {
            self.max_ts = Some(event.ts);
        }
        let identities = crate::identity::owned(&event.identities);
        let event_id = CompactString::from(event.event_id.as_ref());
        let Some(customer) = event.customer_id.as_deref() else {
            let kind = HeldKind::Anonymous { raw: raw.to_vec(), identities };
            self.held.push(Reverse(Held { ts: event.ts, event_id, offset, kind }));
            return (None, None);
        };
        let customer = CompactString::from(customer);
        let q = output_partition(&customer, self.outputs);
        let seq = self.seq(q, STREAM_PASS);
        let pass = Outgoing {
            partition: q,
            key: Some(customer.clone()),
            header: Forwarded::Event { source: self.partition, stream: STREAM_PASS, seq, customer: None },
            value: raw.to_vec(),
        };
        if identities.is_empty() {
            return (None, Some(pass));
        }
        let link = PendingLink {
            ts: event.ts,
            event_id: event_id.clone(),
            customer_id: customer.clone(),
            identities: identities.clone(),
        };
        let kind = HeldKind::Link { customer_id: customer, identities };
        self.held.push(Reverse(Held { ts: event.ts, event_id, offset, kind }));
        (Some(link), Some(pass))
    }

    fn reject(&mut self, raw: &[u8], offset: i64, reason: RejectReason, placed_ts: i64) -> Outgoing {
        let q = self.partition.rem_euclid(self.outputs);
        let seq = self.seq(q, STREAM_PASS);
        Outgoing {
            partition: q,
            key: None,
            header: Forwarded::Rejected {
                source: self.partition,
                stream: STREAM_PASS,
                seq,
                source_offset: offset,
                reason,
                placed_ts,
            },
            value: raw.to_vec(),
        }
    }

    /// Releases, in `(ts, event_id)` order, what waited for `global` (the smallest
    /// watermark of every raw partition; links before it are all in `book`): messages
    /// about events with `ts + identify_wait < global`. Then, when that moved the bound
    /// (or at the first release of this state), one marker per output partition.
    ///
    /// Never past this partition's own watermark, unless it is `idle` (caught up and
    /// quiet, or at the end of a finite input): what arrives later is at or after it, so
    /// the released sequence is the same however reads and releases interleave — which
    /// is what lets a replay repeat the same numbers.
    pub fn release(&mut self, global: i64, idle: bool, book: &IdentityBook, sources: i32, out: &mut Vec<Outgoing>) {
        let bound = if idle { global } else { global.min(self.watermark().unwrap_or(i64::MIN)) };
        let below = bound.saturating_sub(self.identify_wait);
        while self.held.peek().is_some_and(|Reverse(h)| h.ts < below) {
            let Some(Reverse(h)) = self.held.pop() else { break };
            match h.kind {
                HeldKind::Anonymous { raw, identities } => {
                    let ids = identities.iter().map(|(t, v)| (t.as_str(), v.as_str()));
                    let (customer, owned) = book.customer_of(h.ts, self.identify_wait, ids);
                    if owned {
                        self.counts.resolved += 1;
                    } else {
                        self.counts.unresolved += 1;
                    }
                    let q = output_partition(&customer, self.outputs);
                    let seq = self.seq(q, STREAM_HELD);
                    out.push(Outgoing {
                        partition: q,
                        key: Some(customer.clone()),
                        header: Forwarded::Event {
                            source: self.partition,
                            stream: STREAM_HELD,
                            seq,
                            customer: Some(customer),
                        },
                        value: raw,
                    });
                }
                HeldKind::Link { customer_id, identities } => {
                    let this = (h.ts, h.event_id.clone(), customer_id.clone());
                    if self.last_link.as_ref() == Some(&this) {
                        continue;
                    }
                    self.last_link = Some(this);
                    let mut rows = Vec::new();
                    for (t, v) in identities {
                        let Some(owner) = book.owner(&t, &v) else { continue };
                        let owns = owner.ts == h.ts && owner.event_id == h.event_id && owner.customer_id == customer_id;
                        if owns {
                            self.counts.links += 1;
                            rows.push((t, v, false));
                        } else if owner.customer_id != customer_id {
                            self.counts.conflicts += 1;
                            rows.push((t, v, true));
                        }
                    }
                    if rows.is_empty() {
                        continue;
                    }
                    let q = output_partition(&customer_id, self.outputs);
                    let seq = self.seq(q, STREAM_HELD);
                    let value = LinkRows { customer_id: customer_id.clone(), linked_ts: h.ts, rows };
                    out.push(Outgoing {
                        partition: q,
                        key: Some(customer_id),
                        header: Forwarded::Links { source: self.partition, stream: STREAM_HELD, seq },
                        value: serde_json::to_vec(&value).unwrap_or_default(),
                    });
                }
            }
        }
        if below <= self.released_below && !self.marker_due {
            return;
        }
        self.marker_due = false;
        self.released_below = self.released_below.max(below);
        for q in 0..self.outputs {
            out.push(Outgoing {
                partition: q,
                key: None,
                header: Forwarded::Marker { source: self.partition, sources, released_below: self.released_below },
                value: Vec::new(),
            });
        }
    }

    /// Bytes held, roughly (raw payloads of anonymous events dominate).
    pub fn estimated_bytes(&self) -> usize {
        self.held
            .iter()
            .map(|Reverse(h)| {
                std::mem::size_of::<Held>()
                    + match &h.kind {
                        HeldKind::Anonymous { raw, identities } => raw.capacity() + identities.len() * 48,
                        HeldKind::Link { identities, .. } => identities.len() * 48,
                    }
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        let all = [
            Forwarded::Event { source: 3, stream: STREAM_PASS, seq: 9, customer: None },
            Forwarded::Event { source: 3, stream: STREAM_HELD, seq: 1, customer: Some("anon:phone:+34;6".into()) },
            Forwarded::Rejected {
                source: 0,
                stream: STREAM_PASS,
                seq: 2,
                source_offset: 77,
                reason: RejectReason::Late,
                placed_ts: -5,
            },
            Forwarded::Links { source: 1, stream: STREAM_HELD, seq: 4 },
            Forwarded::Marker { source: 5, sources: 6, released_below: i64::MIN },
        ];
        for f in all {
            assert_eq!(Forwarded::parse(f.to_header().as_bytes()), Some(f.clone()), "{f:?}");
        }
        assert_eq!(Forwarded::parse(b"x;1;2;3"), None);
    }

    fn ev(id: &str, ts: i64, customer: Option<&str>, ids: &str) -> Vec<u8> {
        let c = customer.map(|c| format!(r#""customer_id":"{c}","#)).unwrap_or_default();
        format!(r#"{{"event_id":"{id}","ts":{ts},{c}"identities":{ids},"channel":"web","type":"touch"}}"#).into_bytes()
    }

    #[test]
    fn anonymous_events_wait_for_the_global_watermark_and_leave_in_event_time_order() {
        let mut r = PartitionResolver::new(0, 2, 200, 100);
        let mut book = IdentityBook::default();
        let (link, pass) = r.push(&ev("l", 1_000, Some("c"), r#"{"cookie":"k"}"#), 0);
        assert!(pass.is_some(), "a link event passes through at once");
        book.add_link(link.unwrap());
        assert_eq!(r.push(&ev("b", 950, None, r#"{"cookie":"k"}"#), 1), (None, None));
        assert_eq!(r.push(&ev("a", 899, None, r#"{"cookie":"k"}"#), 2), (None, None));
        let mut out = Vec::new();
        book.learn_below(1_050, 0, &mut Vec::new());
        r.release(1_050, true, &book, 1, &mut out);
        let events: Vec<_> = out.iter().filter(|o| matches!(o.header, Forwarded::Event { .. })).collect();
        assert_eq!(events.len(), 1, "only ts + wait < global leaves: {out:?}");
        assert_eq!(events[0].key.as_deref(), Some("anon:cookie:k"), "899 + 100 < 1000: the link is too late for it");
        out.clear();
        book.learn_below(i64::MAX, 0, &mut Vec::new());
        r.release(i64::MAX, true, &book, 1, &mut out);
        let keys: Vec<_> = out.iter().filter_map(|o| o.key.as_deref()).collect();
        assert_eq!(keys, ["c", "c"], "950 + 100 ≥ 1000: linked; then the link's identities row");
        assert!(matches!(out[1].header, Forwarded::Links { .. }));
        assert_eq!(r.counts(), IdentityCounts { links: 1, conflicts: 0, resolved: 1, unresolved: 1 });
    }
}
