//! Live counts of what the engine folded since they were last taken, for
//! Prometheus counters: unlike window rows they do not wait for a window to end.
//! Process-local by design: they are not checkpointed (a restart resets counters,
//! which Prometheus' `rate`/`increase` expect).

use hashbrown::HashMap;

use crate::counts::ChannelTypeCounts;
use crate::event::EventType;
use crate::identity::IdentityCounts;
use crate::journey::JourneyEffects;
use crate::names::{NO_NAME, NameId, Names};
use crate::rows::{FrictionKind, Name, RejectReason};
use crate::windows::WindowAggregates;

/// Counts since the last [`crate::PartitionEngine::take_tally`], with names resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Raw inputs pushed.
    pub inputs: u64,
    /// By [`RejectReason::index`], `late` included.
    pub rejected: [u64; RejectReason::ALL.len()],
    pub duplicates: u64,
    /// Processed events by channel and type.
    pub events: Vec<(Name, EventType, u64)>,
    /// Channel changes by `(from, to)`.
    pub hops: Vec<(Name, Name, u64)>,
    /// Friction points by kind, channel and step.
    pub friction: Vec<(FrictionKind, Name, Option<Name>, u64)>,
    /// SPEC §6 links, conflicts and anonymous events resolved or not.
    pub identity: IdentityCounts,
}

impl Tally {
    pub fn is_empty(&self) -> bool {
        *self == Tally::default()
    }
}

/// The engine-side accumulator: interned ids, cheap to bump per event.
#[derive(Debug, Default)]
pub(crate) struct LiveCounts {
    pub(crate) inputs: u64,
    pub(crate) rejected: [u64; RejectReason::ALL.len()],
    pub(crate) duplicates: u64,
    events: ChannelTypeCounts,
    hops: HashMap<(NameId, NameId), u64>,
    friction: HashMap<(FrictionKind, NameId, NameId), u64>,
}

impl LiveCounts {
    pub(crate) fn take(&mut self, names: &Names) -> Tally {
        let mut t = Tally {
            inputs: std::mem::take(&mut self.inputs),
            rejected: std::mem::take(&mut self.rejected),
            duplicates: std::mem::take(&mut self.duplicates),
            ..Tally::default()
        };
        t.events = self.events.iter().map(|(channel, ty, n)| (names.get(channel).clone(), ty, n)).collect();
        self.events.clear();
        t.hops = self.hops.drain().map(|((f, to), n)| (names.get(f).clone(), names.get(to).clone(), n)).collect();
        t.friction = self
            .friction
            .drain()
            .map(|((k, c, s), n)| (k, names.get(c).clone(), (s != NO_NAME).then(|| names.get(s).clone()), n))
            .collect();
        t
    }
}

/// What a journey's fold touches: the window aggregates and the live counts.
pub(crate) struct Effects<'a> {
    pub(crate) windows: &'a mut WindowAggregates,
    pub(crate) live: &'a mut LiveCounts,
}

impl JourneyEffects for Effects<'_> {
    fn activity(&mut self, ts: i64, channel: NameId, event_type: EventType) {
        self.windows.activity(ts, channel, event_type);
        self.live.events.add(channel, event_type);
    }

    fn hop(&mut self, ts: i64, from: NameId, to: NameId) {
        self.windows.hop(ts, from, to);
        *self.live.hops.entry((from, to)).or_default() += 1;
    }

    fn friction(&mut self, ts: i64, kind: FrictionKind, channel: NameId, step: NameId) {
        self.windows.friction(ts, kind, channel, step);
        *self.live.friction.entry((kind, channel, step)).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::{EngineConfig, PartitionEngine, Rows, Tally};

    fn input() -> Vec<String> {
        let types = ["touch", "contact", "reply", "request_opened", "error", "contact", "abandon", "conversion"];
        (0..600)
            .map(|i| {
                let ts = 1_793_606_400_000i64 + i as i64 * 20_000;
                let ch = ["web", "app", "phone", "store", "chat"][(i * 7) % 5];
                let step = if i % 3 == 0 { r#","step":"checkout""# } else { "" };
                format!(
                    r#"{{"event_id":"e{}","ts":{ts},"customer_id":"c{}","channel":"{ch}","type":"{}"{step}}}"#,
                    if i % 50 == 1 { i - 1 } else { i }, // same id, customer and ts region: a duplicate
                    (i - usize::from(i % 50 == 1)) % 11,
                    types[i % types.len()]
                )
            })
            .chain(["not json".to_owned()])
            .collect()
    }

    /// Over a whole input, the live counts add up to the same figures as the window rows.
    #[test]
    fn live_counts_equal_the_rows_they_precede() {
        let mut e = PartitionEngine::new(EngineConfig::default(), 0);
        let (mut tally, mut rows) = (Tally::default(), Rows::default());
        let merge = |t: Tally, r: &mut Rows, tally: &mut Tally, mut more: Rows| {
            tally.inputs += t.inputs;
            tally.duplicates += t.duplicates;
            for (a, b) in tally.rejected.iter_mut().zip(t.rejected) {
                *a += b;
            }
            tally.events.extend(t.events);
            tally.hops.extend(t.hops);
            tally.friction.extend(t.friction);
            r.append(&mut more);
        };
        for (i, line) in input().iter().enumerate() {
            e.push(line.as_bytes(), i as i64);
            if i % 97 == 0 {
                let (t, r) = (e.take_tally(), e.take_rows());
                merge(t, &mut rows, &mut tally, r);
            }
        }
        e.finish();
        let (t, r) = (e.take_tally(), e.take_rows());
        merge(t, &mut rows, &mut tally, r);

        assert_eq!(tally.inputs, 601);
        assert_eq!(tally.rejected.iter().sum::<u64>(), 1);
        assert_eq!(tally.duplicates, e.stats().duplicates);
        assert!(tally.duplicates > 0);

        let mut live = BTreeMap::new();
        for (c, t, n) in &tally.events {
            *live.entry(format!("{c}/{}", t.as_str())).or_insert(0) += n;
        }
        let mut windowed = BTreeMap::new();
        for a in &rows.activity {
            *windowed.entry(format!("{}/{}", a.channel, a.event_type.as_str())).or_insert(0) += a.events as u64;
        }
        assert_eq!(live, windowed);

        let (mut live, mut windowed) = (BTreeMap::new(), BTreeMap::new());
        for (f, t, n) in &tally.hops {
            *live.entry(format!("{f}>{t}")).or_insert(0) += n;
        }
        for h in &rows.transitions {
            *windowed.entry(format!("{}>{}", h.from_channel, h.to_channel)).or_insert(0) += h.hops as u64;
        }
        assert!(!live.is_empty());
        assert_eq!(live, windowed);

        let (mut live, mut windowed) = (BTreeMap::new(), BTreeMap::new());
        for (k, c, s, n) in &tally.friction {
            *live.entry(format!("{}/{c}/{s:?}", k.as_str())).or_insert(0) += n;
        }
        for f in &rows.friction {
            *windowed.entry(format!("{}/{}/{:?}", f.kind.as_str(), f.channel, f.step)).or_insert(0) +=
                f.occurrences as u64;
        }
        assert!(live.len() > 3);
        assert_eq!(live, windowed);
    }
}
