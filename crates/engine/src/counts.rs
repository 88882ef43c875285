//! Event counts by `(channel, type)`, bumped once per processed event by the live
//! tally and by each activity window: an array per channel id for the usual few
//! channels, a map past [`DENSE_IDS`] (hostile inputs minting names).

use hashbrown::HashMap;

use crate::event::EventType;
use crate::names::NameId;

/// Channel ids below this are counted in the per-channel arrays.
const DENSE_IDS: usize = 256;

const TYPES: usize = EventType::ALL.len();

#[derive(serde::Serialize, serde::Deserialize, Debug, Default, Clone)]
pub(crate) struct ChannelTypeCounts {
    /// By channel id, then `EventType as usize`; as long as the highest dense id seen needs.
    dense: Vec<[u64; TYPES]>,
    sparse: HashMap<(NameId, EventType), u64>,
}

impl ChannelTypeCounts {
    #[inline]
    pub(crate) fn add(&mut self, channel: NameId, event_type: EventType) {
        let c = channel as usize;
        if c >= DENSE_IDS {
            *self.sparse.entry((channel, event_type)).or_default() += 1;
            return;
        }
        if c >= self.dense.len() {
            self.dense.resize(c + 1, [0; TYPES]);
        }
        self.dense[c][event_type as usize] += 1;
    }

    /// Every non-zero count: dense channels in id order, then the others.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (NameId, EventType, u64)> + '_ {
        let dense = self.dense.iter().enumerate().flat_map(|(c, counts)| {
            EventType::ALL.iter().zip(counts).filter(|&(_, &n)| n != 0).map(move |(&t, &n)| (c as NameId, t, n))
        });
        dense.chain(self.sparse.iter().map(|(&(c, t), &n)| (c, t, n)))
    }

    /// Zeroes every count, keeping the arrays for the next round.
    pub(crate) fn clear(&mut self) {
        self.dense.iter_mut().for_each(|counts| *counts = [0; TYPES]);
        self.sparse.clear();
    }

    /// Whether restored counts have the shape `add` gives them.
    pub(crate) fn is_consistent(&self) -> bool {
        self.dense.len() <= DENSE_IDS && self.sparse.keys().all(|&(c, _)| c as usize >= DENSE_IDS)
    }

    /// Bytes held (arrays and map entries).
    pub(crate) fn estimated_bytes(&self) -> usize {
        self.dense.capacity() * std::mem::size_of::<[u64; TYPES]>()
            + crate::engine::hash_table_bytes(self.sparse.capacity(), 24)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_channel_id_near_and_far() {
        let mut a = ChannelTypeCounts::default();
        let far = DENSE_IDS as NameId + 5;
        for (c, t) in [(3, EventType::Abandon), (0, EventType::Touch), (3, EventType::Abandon), (far, EventType::Reply)]
        {
            a.add(c, t);
        }
        let got: Vec<_> = a.iter().collect();
        assert_eq!(got, vec![(0, EventType::Touch, 1), (3, EventType::Abandon, 2), (far, EventType::Reply, 1)]);
        assert_eq!(a.dense.len(), 4, "sized by the highest dense id");
        assert!(a.is_consistent());
        a.clear();
        assert_eq!(a.iter().count(), 0);
        assert_eq!(a.dense.len(), 4, "arrays kept for the next round");
    }
}
