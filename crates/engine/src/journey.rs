//! One open journey, folded event by event in `(ts, event_id)` order.
//!
//! Events reach a journey only once the watermark guarantees nothing can sort
//! before them any more, so every column of SPEC §2 is computed incrementally and
//! no event is kept. What one open journey costs: this struct (152 bytes, see the
//! `size_of_journey_state` test), inline in its key slot, and heap only once it
//! outgrows the inline storage of its lists: the path prefix past 4 segments (4
//! bytes a segment, at most `max_path`), contacts awaiting a reply past one (16
//! bytes each, only those within `reply_sla`), event-id hashes past 2 events (8
//! bytes an event, a hash set of about 9–18 bytes an event past 32), and segment
//! counts per channel once the path is truncated (8 bytes a distinct channel). The
//! id hashes are the only state that grows with every event: the SPEC's duplicate
//! rule needs every id of an open journey. `cargo bench --bench perf -- journeys`
//! measures the whole engine per open journey of one or two events.

use hashbrown::{HashMap, HashSet};
use smallvec::SmallVec;

use crate::event::EventType;
use crate::names::{NO_NAME, NameId};
use crate::rows::{FrictionKind, Outcome};
use crate::time::{MAX_TS_MS, MIN_TS_MS};

/// A processed event as a journey sees it: interned names, no strings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Step {
    pub(crate) ts: i64,
    pub(crate) id_hash: u64,
    pub(crate) channel: NameId,
    pub(crate) step: NameId,
    pub(crate) event_type: EventType,
    pub(crate) value: f64,
}

/// Where a journey's side effects go while it folds events (activity, hops, friction).
pub(crate) trait JourneyEffects {
    fn activity(&mut self, ts: i64, channel: NameId, event_type: EventType);
    fn hop(&mut self, ts: i64, from: NameId, to: NameId);
    fn friction(&mut self, ts: i64, kind: FrictionKind, channel: NameId, step: NameId);
}

/// Resolution as seen from one candidate opener: the first `request_opened`, or
/// while there is none, the first `contact` (SPEC §2: a request opener wins over a
/// contact opener whenever one exists, so one tracker is enough: a first
/// `request_opened` replaces a contact tracker and nothing replaces it). 16 bytes.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, Default)]
struct Resolution {
    /// The opener's `ts` until the first resolver, then the resolution time in ms.
    ms: i64,
    opener_channel: NameId,
    opener: Opener,
    resolved: bool,
    /// Events from the opener so far all on the opener's channel.
    same_channel: bool,
    /// Contacts from the opener, counted up to 2 (first-contact resolution needs ≤ 1).
    contacts: u8,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Opener {
    #[default]
    None,
    Contact,
    Request,
}

impl Resolution {
    fn open(s: &Step, opener: Opener) -> Self {
        Resolution {
            ms: s.ts,
            opener_channel: s.channel,
            opener,
            resolved: false,
            same_channel: true,
            contacts: u8::from(s.event_type == EventType::Contact),
        }
    }

    /// Feeds an event after the opener; stops at the first resolver.
    fn feed(&mut self, s: &Step) {
        if self.opener == Opener::None || self.resolved {
            return;
        }
        self.same_channel &= s.channel == self.opener_channel;
        self.contacts = (self.contacts + u8::from(s.event_type == EventType::Contact)).min(2);
        if s.event_type == EventType::RequestResolved {
            self.resolved = true;
            self.ms = s.ts - self.ms;
        }
    }

    fn resolution_ms(&self) -> Option<i64> {
        self.resolved.then_some(self.ms)
    }

    fn first_contact_resolution(&self) -> Option<bool> {
        self.resolved.then_some(self.same_channel && self.contacts <= 1)
    }
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy)]
struct PendingContact {
    ts: i64,
    channel: NameId,
    step: NameId,
}

/// Counters of a restored journey must be below this: far above anything a
/// journey reaches (its event-id set would need tens of GiB first), and far
/// enough from `u32::MAX` that increments cannot overflow.
const COUNTER_LIMIT: u32 = 1 << 31;

/// Distinct channels a journey looks up by scanning; past this it keeps an index.
const SEGMENT_SCAN: usize = 16;

/// Event-id hashes a journey keeps in a list; past this, in a hash set.
const FEW_IDS: usize = 32;

const CONVERTED: u8 = 1;
const RESOLVED: u8 = 2;
const ABANDONED: u8 = 4;
const OPENED: u8 = 8;

/// Segments per distinct channel, in order of first appearance, for `channels`
/// and linear attribution.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Default)]
pub(crate) struct SegmentCounts {
    /// Room for 8 channels inline: it lives boxed in `RareState`, or briefly at close.
    pub(crate) counts: SmallVec<[(NameId, u32); 8]>,
    /// Positions in `counts` by channel, once it is longer than [`SEGMENT_SCAN`]:
    /// a journey through thousands of channels (hostile input) would otherwise
    /// scan the list at every hop, quadratic in its channels. Derived, so not
    /// checkpointed: rebuilt on the next hop after a restore.
    #[serde(skip)]
    index: Option<Box<HashMap<NameId, u32>>>,
}

impl SegmentCounts {
    fn add(&mut self, channel: NameId) {
        let counts = &mut self.counts;
        if counts.len() <= SEGMENT_SCAN {
            match counts.iter_mut().find(|(c, _)| *c == channel) {
                Some((_, n)) => *n += 1,
                None => counts.push((channel, 1)),
            }
            return;
        }
        let index = self
            .index
            .get_or_insert_with(|| Box::new(counts.iter().enumerate().map(|(i, &(c, _))| (c, i as u32)).collect()));
        match index.get(&channel) {
            Some(&i) => counts[i as usize].1 += 1,
            None => {
                index.insert(channel, counts.len() as u32);
                counts.push((channel, 1));
            }
        }
    }

    fn of_path(path: &[NameId]) -> Self {
        let mut counts = SegmentCounts::default();
        for &c in path {
            counts.add(c);
        }
        counts
    }

    fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let table = crate::engine::hash_table_bytes;
        (if self.counts.spilled() { self.counts.capacity() * size_of::<(NameId, u32)>() } else { 0 })
            + self.index.as_ref().map_or(0, |m| size_of::<HashMap<NameId, u32>>() + table(m.capacity(), 8))
    }
}

/// The parts of a journey most never need, boxed so that they cost one pointer
/// until then.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Default)]
struct RareState {
    /// Segment counts once the path is truncated; before, the path prefix holds
    /// every segment and the counts are derived from it at close.
    segments: Option<SegmentCounts>,
    /// Event-id hashes past [`FEW_IDS`] (then the journey's inline list is empty).
    seen: Option<HashSet<u64>>,
}

/// The running state of one open journey (152 bytes, see the `size_of_journey_state` test).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub(crate) struct JourneyState {
    pub(crate) start_ts: i64,
    pub(crate) last_ts: i64,
    conversion_value: f64,
    events: u32,
    contacts: u32,
    errors: u32,
    unanswered: u32,
    /// Channel segments so far; `hops` is this minus one.
    segments: u32,
    last_channel: NameId,
    last_step: NameId,
    outcome_flags: u8,
    resolution: Resolution,
    /// The first `max_path` segments' channels; the first is the first channel.
    path_prefix: SmallVec<[NameId; 4]>,
    /// Contacts not yet answered whose reply SLA had not ended at the last event, oldest first.
    awaiting_reply: SmallVec<[PendingContact; 1]>,
    /// Event ids seen so far, as 64-bit hashes, while there are at most [`FEW_IDS`].
    seen: SmallVec<[u64; 2]>,
    rare: Option<Box<RareState>>,
}

/// The values a closed journey contributes to its rows.
#[derive(Debug, Clone)]
pub(crate) struct ClosedJourney {
    pub(crate) start_ts: i64,
    pub(crate) end_ts: i64,
    pub(crate) events: i64,
    pub(crate) path_prefix: SmallVec<[NameId; 4]>,
    pub(crate) truncated: bool,
    pub(crate) hops: i64,
    pub(crate) segment_counts: SmallVec<[(NameId, u32); 8]>,
    pub(crate) first_channel: NameId,
    pub(crate) last_channel: NameId,
    pub(crate) outcome: Outcome,
    pub(crate) conversion_value: f64,
    pub(crate) resolution_ms: Option<i64>,
    pub(crate) first_contact_resolution: Option<bool>,
    pub(crate) repeat_contacts: i64,
    pub(crate) unanswered_contacts: i64,
    pub(crate) errors: i64,
}

impl JourneyState {
    /// Starts a journey with its first event (which the caller then [`apply`](Self::apply)s).
    pub(crate) fn new(first: &Step) -> Self {
        JourneyState {
            start_ts: first.ts,
            last_ts: first.ts,
            conversion_value: 0.0,
            events: 0,
            contacts: 0,
            errors: 0,
            unanswered: 0,
            segments: 0,
            last_channel: first.channel,
            last_step: NO_NAME,
            outcome_flags: 0,
            resolution: Resolution::default(),
            path_prefix: SmallVec::new(),
            awaiting_reply: SmallVec::new(),
            seen: SmallVec::new(),
            rare: None,
        }
    }

    /// Records `h`; false when it was already there.
    fn see(&mut self, h: u64) -> bool {
        if let Some(set) = self.rare.as_mut().and_then(|r| r.seen.as_mut()) {
            return set.insert(h);
        }
        if self.seen.contains(&h) {
            return false;
        }
        if self.seen.len() < FEW_IDS {
            if self.seen.len() == self.seen.inline_size() {
                // Leaving the inline list: room for 8 at once rather than growing 4, 8.
                self.seen.reserve_exact(8 - self.seen.len());
            }
            self.seen.push(h);
            return true;
        }
        let mut set: HashSet<u64> = self.seen.drain(..).collect();
        self.seen = SmallVec::new();
        set.insert(h);
        self.rare.get_or_insert_with(Box::default).seen = Some(set);
        true
    }

    /// Folds the next event in `(ts, event_id)` order. Returns false, changing
    /// nothing, when its id was already seen in this journey (a duplicate).
    pub(crate) fn apply(&mut self, s: &Step, max_path: usize, reply_sla_ms: i64, fx: &mut impl JourneyEffects) -> bool {
        if !self.see(s.id_hash) {
            return false;
        }
        fx.activity(s.ts, s.channel, s.event_type);
        if self.events == 0 || s.channel != self.last_channel {
            if self.events > 0 {
                fx.hop(s.ts, self.last_channel, s.channel);
            }
            self.add_segment(s.channel, max_path);
        }
        self.events += 1;
        self.last_ts = s.ts;
        self.last_channel = s.channel;
        self.last_step = s.step;

        // Contacts whose SLA ended before this event can no longer be answered in time.
        if !self.awaiting_reply.is_empty() {
            let expired = self.awaiting_reply.iter().take_while(|c| c.ts.saturating_add(reply_sla_ms) < s.ts).count();
            for c in self.awaiting_reply.drain(..expired) {
                self.unanswered += 1;
                fx.friction(c.ts, FrictionKind::UnansweredContact, c.channel, c.step);
            }
        }

        self.resolution.feed(s);
        match s.event_type {
            EventType::Contact => {
                self.contacts += 1;
                self.outcome_flags |= OPENED;
                if self.contacts > 1 {
                    fx.friction(s.ts, FrictionKind::RepeatContact, s.channel, s.step);
                }
                if self.resolution.opener == Opener::None {
                    self.resolution = Resolution::open(s, Opener::Contact);
                }
                self.awaiting_reply.push(PendingContact { ts: s.ts, channel: s.channel, step: s.step });
            }
            EventType::Reply => self.awaiting_reply.clear(),
            EventType::RequestOpened => {
                self.outcome_flags |= OPENED;
                if self.resolution.opener != Opener::Request {
                    self.resolution = Resolution::open(s, Opener::Request);
                }
            }
            EventType::RequestResolved => {
                self.outcome_flags |= RESOLVED;
                self.awaiting_reply.clear();
            }
            EventType::Conversion => {
                self.outcome_flags |= CONVERTED;
                self.conversion_value += s.value;
            }
            EventType::Error => {
                self.errors += 1;
                fx.friction(s.ts, FrictionKind::Error, s.channel, s.step);
            }
            EventType::Abandon => {
                self.outcome_flags |= ABANDONED;
                fx.friction(s.ts, FrictionKind::Abandon, s.channel, s.step);
            }
            EventType::Touch => {}
        }
        true
    }

    /// Counts a new segment of `channel`: in the path prefix while it has room,
    /// and from the first segment past it in explicit counts.
    fn add_segment(&mut self, channel: NameId, max_path: usize) {
        self.segments += 1;
        if self.path_prefix.len() < max_path {
            if self.path_prefix.len() == self.path_prefix.inline_size() {
                // Grows once to the usual `max_path` (12) rather than 8, then 16.
                self.path_prefix.reserve_exact(max_path.min(16) - self.path_prefix.len());
            }
            self.path_prefix.push(channel);
            return;
        }
        let rare = self.rare.get_or_insert_with(Box::default);
        rare.segments.get_or_insert_with(|| SegmentCounts::of_path(&self.path_prefix)).add(channel);
    }

    /// Checks a restored journey against what folding can produce, so that an
    /// inconsistent checkpoint is refused at restore instead of panicking (an
    /// unknown name id) or overflowing (a counter near its maximum) later.
    pub(crate) fn check(&self, names: usize, max_path: usize) -> Result<(), &'static str> {
        let name = |id: NameId| (id as usize) < names;
        let step = |id: NameId| id == NO_NAME || name(id);
        let instant = |ts: i64| (MIN_TS_MS..=MAX_TS_MS).contains(&ts);
        let counter = |n: u32| n < COUNTER_LIMIT;
        if !instant(self.start_ts) || !instant(self.last_ts) || self.start_ts > self.last_ts {
            return Err("journey timestamps out of range");
        }
        let counts = self.rare.as_ref().and_then(|r| r.segments.as_ref());
        let r = &self.resolution;
        let channels_ok = name(self.last_channel)
            && step(self.last_step)
            && self.path_prefix.iter().all(|&c| name(c))
            && counts.is_none_or(|s| s.counts.iter().all(|&(c, n)| name(c) && counter(n)))
            && (r.opener == Opener::None || name(r.opener_channel))
            && self.awaiting_reply.iter().all(|c| name(c.channel) && step(c.step));
        if !channels_ok {
            return Err("journey refers to an unknown name");
        }
        let counters = [self.events, self.contacts, self.errors, self.unanswered, self.segments];
        if !counters.into_iter().all(counter) {
            return Err("journey counter out of range");
        }
        // The path holds the first `max_path` segments, counts exist exactly past them.
        let segments = self.segments as usize;
        if self.events == 0
            || segments == 0
            || self.path_prefix.len() != segments.min(max_path)
            || counts.is_some() != (segments > max_path)
        {
            return Err("journey path disagrees with its segments");
        }
        let resolution_ok = match (r.opener, r.resolved) {
            (Opener::None, _) => !r.resolved,
            (_, false) => instant(r.ms),
            (_, true) => (0..=MAX_TS_MS - MIN_TS_MS).contains(&r.ms),
        };
        if !resolution_ok || !self.awaiting_reply.iter().all(|c| instant(c.ts)) {
            return Err("journey timestamps out of range");
        }
        // NaN is not a valid value either: folding sums finite values ≥ 0 (or overflows to +∞).
        if self.conversion_value.is_nan() || self.conversion_value < 0.0 {
            return Err("journey conversion value is negative or NaN");
        }
        Ok(())
    }

    /// Bytes this journey holds on the heap (its vectors and sets), for
    /// [`crate::PartitionEngine::estimated_state_bytes`].
    pub(crate) fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let table = crate::engine::hash_table_bytes;
        let spilled = |heap: bool, bytes: usize| if heap { bytes } else { 0 };
        spilled(self.path_prefix.spilled(), self.path_prefix.capacity() * size_of::<NameId>())
            + spilled(self.awaiting_reply.spilled(), self.awaiting_reply.capacity() * size_of::<PendingContact>())
            + spilled(self.seen.spilled(), self.seen.capacity() * size_of::<u64>())
            + self.rare.as_ref().map_or(0, |r| {
                size_of::<RareState>()
                    + r.segments.as_ref().map_or(0, SegmentCounts::heap_bytes)
                    + r.seen.as_ref().map_or(0, |s| table(s.capacity(), size_of::<u64>()))
            })
    }

    pub(crate) fn outcome(&self) -> Outcome {
        let f = self.outcome_flags;
        if f & CONVERTED != 0 {
            Outcome::Converted
        } else if f & RESOLVED != 0 {
            Outcome::Resolved
        } else if f & ABANDONED != 0 {
            Outcome::Abandoned
        } else if f & OPENED != 0 {
            Outcome::Unresolved
        } else {
            Outcome::Browsed
        }
    }

    /// Ends the journey: remaining contacts are unanswered, an unresolved journey
    /// drops off at its last event.
    pub(crate) fn close(mut self, max_path: usize, fx: &mut impl JourneyEffects) -> ClosedJourney {
        for c in self.awaiting_reply.drain(..) {
            self.unanswered += 1;
            fx.friction(c.ts, FrictionKind::UnansweredContact, c.channel, c.step);
        }
        let outcome = self.outcome();
        if outcome == Outcome::Unresolved {
            fx.friction(self.last_ts, FrictionKind::DropOff, self.last_channel, self.last_step);
        }
        let segment_counts = match self.rare.and_then(|r| r.segments) {
            Some(s) => s.counts,
            None => SegmentCounts::of_path(&self.path_prefix).counts,
        };
        ClosedJourney {
            start_ts: self.start_ts,
            end_ts: self.last_ts,
            events: i64::from(self.events),
            truncated: self.segments as usize > max_path,
            first_channel: self.path_prefix.first().copied().unwrap_or(self.last_channel),
            path_prefix: self.path_prefix,
            hops: i64::from(self.segments.saturating_sub(1)),
            segment_counts,
            last_channel: self.last_channel,
            outcome,
            conversion_value: self.conversion_value,
            resolution_ms: self.resolution.resolution_ms(),
            first_contact_resolution: self.resolution.first_contact_resolution(),
            repeat_contacts: i64::from(self.contacts.saturating_sub(1)),
            unanswered_contacts: i64::from(self.unanswered),
            errors: i64::from(self.errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorded {
        activity: Vec<(i64, NameId, EventType)>,
        hops: Vec<(i64, NameId, NameId)>,
        friction: Vec<(i64, FrictionKind, NameId, NameId)>,
    }

    impl JourneyEffects for Recorded {
        fn activity(&mut self, ts: i64, channel: NameId, t: EventType) {
            self.activity.push((ts, channel, t));
        }
        fn hop(&mut self, ts: i64, from: NameId, to: NameId) {
            self.hops.push((ts, from, to));
        }
        fn friction(&mut self, ts: i64, kind: FrictionKind, channel: NameId, step: NameId) {
            self.friction.push((ts, kind, channel, step));
        }
    }

    const WEB: NameId = 0;
    const PHONE: NameId = 1;
    const APP: NameId = 2;
    const STORE: NameId = 3;
    const EMAIL: NameId = 4;
    const CHAT: NameId = 5;
    const SLA: i64 = 900_000;

    fn ev(ts: i64, channel: NameId, t: EventType) -> Step {
        Step {
            ts,
            id_hash: ts as u64 * 31 + channel as u64 * 7 + t as u64,
            channel,
            step: NO_NAME,
            event_type: t,
            value: 0.0,
        }
    }

    fn fold(events: &[Step], max_path: usize) -> (ClosedJourney, Recorded) {
        let mut fx = Recorded::default();
        let mut j = JourneyState::new(&events[0]);
        for e in events {
            j.apply(e, max_path, SLA, &mut fx);
        }
        (j.close(max_path, &mut fx), fx)
    }

    use EventType::*;

    #[test]
    fn path_hops_channels_and_ends() {
        let evs = [
            ev(0, WEB, Touch),
            ev(1, WEB, RequestOpened),
            ev(2, PHONE, Contact),
            ev(3, APP, Touch),
            ev(4, WEB, Touch),
            ev(5, STORE, Conversion),
        ];
        let (j, fx) = fold(&evs, 12);
        assert_eq!(j.path_prefix[..], [WEB, PHONE, APP, WEB, STORE]);
        assert!(!j.truncated);
        assert_eq!((j.hops, j.events, j.start_ts, j.end_ts), (4, 6, 0, 5));
        assert_eq!(j.segment_counts[..], [(WEB, 2), (PHONE, 1), (APP, 1), (STORE, 1)]);
        assert_eq!((j.first_channel, j.last_channel), (WEB, STORE));
        assert_eq!(fx.hops, vec![(2, WEB, PHONE), (3, PHONE, APP), (4, APP, WEB), (5, WEB, STORE)]);
        assert_eq!(fx.activity.len(), 6);
    }

    #[test]
    fn path_truncates_after_max_path_segments_but_hops_do_not() {
        let evs: Vec<Step> = (0..5).map(|i| ev(i, if i % 2 == 0 { WEB } else { APP }, Touch)).collect();
        let (j, _) = fold(&evs, 3);
        assert_eq!(j.path_prefix[..], [WEB, APP, WEB]);
        assert!(j.truncated);
        assert_eq!(j.hops, 4);
        assert_eq!(j.segment_counts[..], [(WEB, 3), (APP, 2)], "segments past the path still count");
        let (j, _) = fold(&evs, 5);
        assert!(!j.truncated, "exactly max_path segments is not truncated");
    }

    #[test]
    fn outcome_precedence() {
        let cases: [(&[EventType], Outcome); 6] = [
            (&[Touch, Abandon, RequestResolved, Conversion], Outcome::Converted),
            (&[Contact, Abandon, RequestResolved], Outcome::Resolved),
            (&[RequestOpened, Abandon], Outcome::Abandoned),
            (&[Touch, RequestOpened], Outcome::Unresolved),
            (&[Contact, Reply], Outcome::Unresolved),
            (&[Touch, Reply, Error], Outcome::Browsed),
        ];
        for (types, want) in cases {
            let evs: Vec<Step> = types.iter().enumerate().map(|(i, &t)| ev(i as i64, WEB, t)).collect();
            assert_eq!(fold(&evs, 12).0.outcome, want, "{types:?}");
        }
    }

    #[test]
    fn resolution_prefers_request_opened_over_an_earlier_contact() {
        let evs = [ev(100, WEB, Contact), ev(300, WEB, RequestOpened), ev(1000, WEB, RequestResolved)];
        let (j, _) = fold(&evs, 12);
        assert_eq!(j.resolution_ms, Some(700));
        assert_eq!(j.first_contact_resolution, Some(true));
    }

    #[test]
    fn resolution_falls_back_to_first_contact_and_needs_a_resolver_after_the_opener() {
        let (j, _) = fold(&[ev(100, PHONE, Contact), ev(250, PHONE, RequestResolved)], 12);
        assert_eq!((j.resolution_ms, j.first_contact_resolution), (Some(150), Some(true)));
        let (j, _) = fold(&[ev(50, WEB, RequestResolved), ev(100, WEB, RequestOpened)], 12);
        assert_eq!((j.resolution_ms, j.first_contact_resolution), (None, None), "resolver before opener");
        let (j, _) = fold(&[ev(1, WEB, Touch), ev(2, WEB, Touch)], 12);
        assert_eq!(j.resolution_ms, None);
    }

    #[test]
    fn fcr_needs_one_channel_and_at_most_one_contact_between_opener_and_resolver() {
        let (j, _) = fold(&[ev(0, WEB, RequestOpened), ev(1, PHONE, Touch), ev(2, WEB, RequestResolved)], 12);
        assert_eq!(j.first_contact_resolution, Some(false), "other channel in between");
        let (j, _) = fold(&[ev(0, WEB, RequestOpened), ev(1, WEB, Contact), ev(2, WEB, RequestResolved)], 12);
        assert_eq!(j.first_contact_resolution, Some(true), "one contact");
        let (j, _) = fold(&[ev(0, WEB, Contact), ev(1, WEB, Contact), ev(2, WEB, RequestResolved)], 12);
        assert_eq!(j.first_contact_resolution, Some(false), "opener contact + another");
        let (j, _) = fold(&[ev(0, WEB, RequestOpened), ev(1, WEB, RequestResolved), ev(2, PHONE, Contact)], 12);
        assert_eq!(j.first_contact_resolution, Some(true), "events after the resolver do not count");
        let (j, _) = fold(&[ev(0, WEB, RequestOpened), ev(1, PHONE, RequestResolved)], 12);
        assert_eq!(j.first_contact_resolution, Some(false), "resolver on another channel");
    }

    #[test]
    fn unanswered_contacts_and_the_sla_boundary() {
        // Reply exactly at contact + SLA answers it; one ms later does not.
        let unanswered = |fx: &Recorded| {
            fx.friction.iter().filter(|f| f.1 == FrictionKind::UnansweredContact).copied().collect::<Vec<_>>()
        };
        let (j, fx) = fold(&[ev(0, PHONE, Contact), ev(SLA, PHONE, Reply)], 12);
        assert_eq!(j.unanswered_contacts, 0);
        assert!(unanswered(&fx).is_empty());
        let (j, fx) = fold(&[ev(0, PHONE, Contact), ev(SLA + 1, PHONE, Reply)], 12);
        assert_eq!(j.unanswered_contacts, 1);
        assert_eq!(unanswered(&fx), vec![(0, FrictionKind::UnansweredContact, PHONE, NO_NAME)]);
        // A resolution on any channel answers; a reply before the contact does not.
        let (j, _) = fold(&[ev(0, WEB, Reply), ev(10, PHONE, Contact), ev(20, EMAIL, RequestResolved)], 12);
        assert_eq!(j.unanswered_contacts, 0);
        let (j, _) = fold(&[ev(0, WEB, Reply), ev(10, PHONE, Contact)], 12);
        assert_eq!(j.unanswered_contacts, 1, "no later reply");
        // One reply answers every contact still within its SLA.
        let (j, _) = fold(
            &[ev(0, PHONE, Contact), ev(5, CHAT, Contact), ev(SLA + 2, PHONE, Contact), ev(SLA + 3, PHONE, Reply)],
            12,
        );
        assert_eq!((j.unanswered_contacts, j.repeat_contacts), (1, 2), "only the contact at 0 expired");
    }

    #[test]
    fn friction_points() {
        let evs =
            [ev(0, WEB, Error), ev(1, WEB, Contact), ev(2, PHONE, Contact), ev(3, PHONE, Abandon), ev(4, APP, Contact)];
        let (j, fx) = fold(&evs, 12);
        let kinds: Vec<_> = fx.friction.iter().map(|f| (f.0, f.1)).collect();
        assert_eq!(
            kinds,
            vec![
                (0, FrictionKind::Error),
                (2, FrictionKind::RepeatContact),
                (3, FrictionKind::Abandon),
                (4, FrictionKind::RepeatContact),
                (1, FrictionKind::UnansweredContact),
                (2, FrictionKind::UnansweredContact),
                (4, FrictionKind::UnansweredContact),
            ]
        );
        assert_eq!(j.outcome, Outcome::Abandoned, "no drop-off for an abandoned journey");
        let (j, fx) = fold(&[ev(0, WEB, RequestOpened), ev(7, APP, Touch)], 12);
        assert_eq!(j.outcome, Outcome::Unresolved);
        assert_eq!(fx.friction, vec![(7, FrictionKind::DropOff, APP, NO_NAME)], "drop-off at the last event");
    }

    #[test]
    fn duplicates_change_nothing() {
        let a = ev(0, WEB, Touch);
        let mut fx = Recorded::default();
        let mut j = JourneyState::new(&a);
        assert!(j.apply(&a, 12, SLA, &mut fx));
        let mut dup = ev(50, PHONE, Conversion);
        dup.id_hash = a.id_hash;
        assert!(!j.apply(&dup, 12, SLA, &mut fx));
        let c = j.close(12, &mut fx);
        assert_eq!((c.events, c.end_ts, c.outcome, c.hops), (1, 0, Outcome::Browsed, 0));
    }

    #[test]
    fn seen_ids_switch_to_a_set_and_keep_answering() {
        let mut j = JourneyState::new(&ev(0, WEB, Touch));
        for h in 0..100u64 {
            assert!(j.see(h));
        }
        assert!(j.seen.is_empty() && j.rare.as_ref().is_some_and(|r| r.seen.is_some()));
        for h in 0..100u64 {
            assert!(!j.see(h));
        }
    }

    #[test]
    fn many_channels_are_counted_through_an_index_with_the_same_result() {
        // Regression: the per-channel segment list was scanned at every hop, so a
        // journey through n channels cost O(n²) (20,000 channels took seconds).
        let n = 3 * SEGMENT_SCAN as u32;
        let evs: Vec<Step> =
            (0..2 * n).map(|i| ev(i64::from(i), i % n, if i % 7 == 0 { Conversion } else { Touch })).collect();
        let (j, fx) = fold(&evs, 12);
        assert_eq!(j.segment_counts.len(), n as usize);
        assert!(j.segment_counts.iter().enumerate().all(|(i, &(c, k))| c == i as NameId && k == 2));
        assert_eq!((j.hops, fx.hops.len()), (i64::from(2 * n - 1), 2 * n as usize - 1));

        // Restored state has no index yet: the next hop rebuilds it from the list.
        let mut state = JourneyState::new(&evs[0]);
        let mut fx = Recorded::default();
        for e in &evs[..n as usize + 3] {
            state.apply(e, 12, SLA, &mut fx);
        }
        assert!(state.rare.as_ref().and_then(|r| r.segments.as_ref()).is_some_and(|s| s.index.is_some()));
        let mut restored: JourneyState = postcard::from_bytes(&postcard::to_allocvec(&state).unwrap()).unwrap();
        assert!(restored.rare.as_ref().and_then(|r| r.segments.as_ref()).is_some_and(|s| s.index.is_none()));
        for e in &evs[n as usize + 3..] {
            restored.apply(e, 12, SLA, &mut fx);
        }
        assert_eq!(restored.close(12, &mut fx).segment_counts, j.segment_counts);
    }

    #[test]
    fn size_of_journey_state() {
        let size = std::mem::size_of::<JourneyState>();
        assert!(size <= 152, "JourneyState grew to {size} bytes; update the module doc");
    }

    #[test]
    fn conversion_values_add_up() {
        let mut a = ev(0, WEB, Conversion);
        a.value = 10.5;
        let mut b = ev(1, WEB, Conversion);
        b.value = 2.0;
        let (j, _) = fold(&[a, b, ev(2, WEB, Conversion)], 12);
        assert_eq!(j.conversion_value, 12.5);
    }
}
