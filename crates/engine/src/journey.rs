//! One open journey, folded event by event in `(ts, event_id)` order.
//!
//! Events reach a journey only once the watermark guarantees nothing can sort
//! before them any more, so every column of SPEC §2 is computed incrementally and
//! no event is kept. What one open journey costs: this struct (248 bytes, see the
//! `size_of_journey_state` test), boxed in its key slot, and heap only once it
//! outgrows the inline storage of its lists: the path prefix past 4 segments (4
//! bytes a segment, at most `max_path`), segment counts past 2 distinct channels
//! (8 bytes each, plus an index past 16), contacts awaiting a reply (16 bytes each,
//! only those within `reply_sla`), and event-id hashes past 2 events (8 bytes an
//! event, a hash set of about 9–18 bytes an event past 32). The id hashes are the
//! only state that grows with every event: the SPEC's duplicate rule needs every
//! id of an open journey. `cargo bench --bench perf -- journeys` measures the engine at
//! about 400 bytes of RSS per open journey of one or two events.

use std::collections::VecDeque;

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

const NOT_RESOLVED: i64 = i64::MIN;

/// Resolution as seen from one candidate opener (first `request_opened`, or first `contact`).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy)]
struct Resolution {
    opener_ts: i64,
    /// `NOT_RESOLVED` until the first resolver (a sentinel keeps the struct at 32 bytes).
    resolved_ts: i64,
    opener_channel: NameId,
    /// Events from the opener so far: all on the opener's channel, and at most one contact.
    same_channel: bool,
    contacts: u32,
}

impl Resolution {
    fn open(s: &Step) -> Self {
        Resolution {
            opener_ts: s.ts,
            opener_channel: s.channel,
            resolved_ts: NOT_RESOLVED,
            same_channel: true,
            contacts: u32::from(s.event_type == EventType::Contact),
        }
    }

    /// Feeds an event after the opener; stops at the first resolver.
    fn feed(&mut self, s: &Step) {
        if self.resolved_ts != NOT_RESOLVED {
            return;
        }
        self.same_channel &= s.channel == self.opener_channel;
        self.contacts += u32::from(s.event_type == EventType::Contact);
        if s.event_type == EventType::RequestResolved {
            self.resolved_ts = s.ts;
        }
    }

    fn resolution_ms(&self) -> Option<i64> {
        (self.resolved_ts != NOT_RESOLVED).then(|| self.resolved_ts - self.opener_ts)
    }

    fn first_contact_resolution(&self) -> Option<bool> {
        (self.resolved_ts != NOT_RESOLVED).then_some(self.same_channel && self.contacts <= 1)
    }
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy)]
struct PendingContact {
    ts: i64,
    channel: NameId,
    step: NameId,
}

/// Event ids seen in a journey, as 64-bit hashes: a list while small, a set after.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
enum SeenIds {
    Few(SmallVec<[u64; 2]>),
    Many(Box<HashSet<u64>>),
}

impl SeenIds {
    const FEW: usize = 32;

    /// Records `h`; false when it was already there.
    fn insert(&mut self, h: u64) -> bool {
        match self {
            SeenIds::Few(v) if v.contains(&h) => false,
            SeenIds::Few(v) if v.len() < Self::FEW => {
                v.push(h);
                true
            }
            SeenIds::Few(v) => {
                let mut set: HashSet<u64> = v.drain(..).collect();
                set.insert(h);
                *self = SeenIds::Many(Box::new(set));
                true
            }
            SeenIds::Many(set) => set.insert(h),
        }
    }
}

/// Counters of a restored journey must be below this: far above anything a
/// journey reaches (its event-id set would need tens of GiB first), and far
/// enough from `u32::MAX` that increments cannot overflow.
const COUNTER_LIMIT: u32 = 1 << 31;

/// Distinct channels a journey looks up by scanning; past this it keeps an index.
const SEGMENT_SCAN: usize = 16;

const CONVERTED: u8 = 1;
const RESOLVED: u8 = 2;
const ABANDONED: u8 = 4;
const OPENED: u8 = 8;

/// The running state of one open journey.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub(crate) struct JourneyState {
    pub(crate) start_ts: i64,
    pub(crate) last_ts: i64,
    pub(crate) events: u32,
    pub(crate) first_channel: NameId,
    pub(crate) last_channel: NameId,
    last_step: NameId,
    outcome_flags: u8,
    contacts: u32,
    errors: u32,
    unanswered: u32,
    /// Channel segments so far; `hops` is this minus one.
    segments: u32,
    /// The first `max_path` segments' channels.
    path_prefix: SmallVec<[NameId; 4]>,
    /// Segments per distinct channel, for `channels` and linear attribution.
    segment_counts: SmallVec<[(NameId, u32); 2]>,
    /// Positions in `segment_counts` by channel, once it is longer than
    /// [`SEGMENT_SCAN`]: a journey through thousands of channels (hostile input)
    /// would otherwise scan the list at every hop, quadratic in its channels.
    /// Derived, so not checkpointed: rebuilt on the next hop after a restore.
    #[serde(skip)]
    segment_index: Option<Box<HashMap<NameId, u32>>>,
    conversion_value: f64,
    by_request: Option<Resolution>,
    by_contact: Option<Resolution>,
    awaiting_reply: VecDeque<PendingContact>,
    seen: SeenIds,
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
    pub(crate) segment_counts: SmallVec<[(NameId, u32); 2]>,
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
            events: 0,
            first_channel: first.channel,
            last_channel: first.channel,
            last_step: NO_NAME,
            outcome_flags: 0,
            contacts: 0,
            errors: 0,
            unanswered: 0,
            segments: 0,
            path_prefix: SmallVec::new(),
            segment_counts: SmallVec::new(),
            segment_index: None,
            conversion_value: 0.0,
            by_request: None,
            by_contact: None,
            awaiting_reply: VecDeque::new(),
            seen: SeenIds::Few(SmallVec::new()),
        }
    }

    /// Folds the next event in `(ts, event_id)` order. Returns false, changing
    /// nothing, when its id was already seen in this journey (a duplicate).
    pub(crate) fn apply(&mut self, s: &Step, max_path: usize, reply_sla_ms: i64, fx: &mut impl JourneyEffects) -> bool {
        if !self.seen.insert(s.id_hash) {
            return false;
        }
        fx.activity(s.ts, s.channel, s.event_type);
        if self.events == 0 || s.channel != self.last_channel {
            if self.events > 0 {
                fx.hop(s.ts, self.last_channel, s.channel);
            }
            self.segments += 1;
            if self.path_prefix.len() < max_path {
                self.path_prefix.push(s.channel);
            }
            self.count_segment(s.channel);
        }
        self.events += 1;
        self.last_ts = s.ts;
        self.last_channel = s.channel;
        self.last_step = s.step;

        // Contacts whose SLA ended before this event can no longer be answered in time.
        while let Some(c) = self.awaiting_reply.front().copied() {
            if c.ts.saturating_add(reply_sla_ms) >= s.ts {
                break;
            }
            self.awaiting_reply.pop_front();
            self.unanswered += 1;
            fx.friction(c.ts, FrictionKind::UnansweredContact, c.channel, c.step);
        }

        for r in [&mut self.by_request, &mut self.by_contact].into_iter().flatten() {
            r.feed(s);
        }
        match s.event_type {
            EventType::Contact => {
                self.contacts += 1;
                self.outcome_flags |= OPENED;
                if self.contacts > 1 {
                    fx.friction(s.ts, FrictionKind::RepeatContact, s.channel, s.step);
                }
                if self.by_contact.is_none() {
                    self.by_contact = Some(Resolution::open(s));
                }
                if self.awaiting_reply.capacity() == 0 {
                    // One awaited contact is the usual case: room for one, where a first
                    // push would allocate four (64 bytes) per journey with a contact.
                    self.awaiting_reply.reserve_exact(1);
                }
                self.awaiting_reply.push_back(PendingContact { ts: s.ts, channel: s.channel, step: s.step });
            }
            EventType::Reply => self.awaiting_reply.clear(),
            EventType::RequestOpened => {
                self.outcome_flags |= OPENED;
                if self.by_request.is_none() {
                    self.by_request = Some(Resolution::open(s));
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

    /// Checks a restored journey against what folding can produce, so that an
    /// inconsistent checkpoint is refused at restore instead of panicking (an
    /// unknown name id) or overflowing (a counter near its maximum) later.
    pub(crate) fn check(&self, names: usize) -> Result<(), &'static str> {
        let name = |id: NameId| (id as usize) < names;
        let step = |id: NameId| id == NO_NAME || name(id);
        let instant = |ts: i64| (MIN_TS_MS..=MAX_TS_MS).contains(&ts);
        let counter = |n: u32| n < COUNTER_LIMIT;
        if !instant(self.start_ts) || !instant(self.last_ts) || self.start_ts > self.last_ts {
            return Err("journey timestamps out of range");
        }
        let resolutions = [self.by_request, self.by_contact];
        let channels_ok = name(self.first_channel)
            && name(self.last_channel)
            && step(self.last_step)
            && self.path_prefix.iter().all(|&c| name(c))
            && self.segment_counts.iter().all(|&(c, n)| name(c) && counter(n))
            && resolutions.iter().flatten().all(|r| name(r.opener_channel))
            && self.awaiting_reply.iter().all(|c| name(c.channel) && step(c.step));
        if !channels_ok {
            return Err("journey refers to an unknown name");
        }
        let counters = [self.events, self.contacts, self.errors, self.unanswered, self.segments];
        if !counters.into_iter().chain(resolutions.iter().flatten().map(|r| r.contacts)).all(counter) {
            return Err("journey counter out of range");
        }
        let resolution_ok =
            |r: &Resolution| instant(r.opener_ts) && (r.resolved_ts == NOT_RESOLVED || instant(r.resolved_ts));
        if !resolutions.iter().flatten().all(resolution_ok) || !self.awaiting_reply.iter().all(|c| instant(c.ts)) {
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
            + spilled(self.segment_counts.spilled(), self.segment_counts.capacity() * size_of::<(NameId, u32)>())
            + self.segment_index.as_ref().map_or(0, |m| size_of::<HashMap<NameId, u32>>() + table(m.capacity(), 8))
            + self.awaiting_reply.capacity() * size_of::<PendingContact>()
            + match &self.seen {
                SeenIds::Few(v) => spilled(v.spilled(), v.capacity() * size_of::<u64>()),
                SeenIds::Many(set) => size_of::<HashSet<u64>>() + table(set.capacity(), size_of::<u64>()),
            }
    }

    /// Counts a new segment of `channel`.
    fn count_segment(&mut self, channel: NameId) {
        let counts = &mut self.segment_counts;
        if counts.len() <= SEGMENT_SCAN {
            match counts.iter_mut().find(|(c, _)| *c == channel) {
                Some((_, n)) => *n += 1,
                None => counts.push((channel, 1)),
            }
            return;
        }
        let index = self
            .segment_index
            .get_or_insert_with(|| Box::new(counts.iter().enumerate().map(|(i, &(c, _))| (c, i as u32)).collect()));
        match index.get(&channel) {
            Some(&i) => counts[i as usize].1 += 1,
            None => {
                index.insert(channel, counts.len() as u32);
                counts.push((channel, 1));
            }
        }
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
        let resolution = self.by_request.or(self.by_contact);
        ClosedJourney {
            start_ts: self.start_ts,
            end_ts: self.last_ts,
            events: i64::from(self.events),
            truncated: self.segments as usize > max_path,
            path_prefix: self.path_prefix,
            hops: i64::from(self.segments.saturating_sub(1)),
            segment_counts: self.segment_counts,
            first_channel: self.first_channel,
            last_channel: self.last_channel,
            outcome,
            conversion_value: self.conversion_value,
            resolution_ms: resolution.and_then(|r| r.resolution_ms()),
            first_contact_resolution: resolution.and_then(|r| r.first_contact_resolution()),
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
        let mut s = SeenIds::Few(SmallVec::new());
        for h in 0..100u64 {
            assert!(s.insert(h));
        }
        assert!(matches!(s, SeenIds::Many(_)));
        for h in 0..100u64 {
            assert!(!s.insert(h));
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
        let mut restored: JourneyState = postcard::from_bytes(&postcard::to_allocvec(&state).unwrap()).unwrap();
        assert!(restored.segment_index.is_none());
        for e in &evs[n as usize + 3..] {
            restored.apply(e, 12, SLA, &mut fx);
        }
        assert_eq!(restored.close(12, &mut fx).segment_counts, j.segment_counts);
    }

    #[test]
    fn size_of_journey_state() {
        let size = std::mem::size_of::<JourneyState>();
        assert!(size <= 248, "JourneyState grew to {size} bytes; update the module doc");
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
