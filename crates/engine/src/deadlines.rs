//! Open journeys' earliest close times, handed out in `(deadline, key, serial)`
//! order. A journey's first deadline is its first folded `ts` plus its gap, and
//! events fold in `ts` order, so each gap class (sessions, threads) gets its
//! deadlines almost in order: each class keeps them in a [`ReorderBuffer`], where
//! in-order arrivals append without sifting, and the two heads are merged when
//! popped. One binary heap for both sifted every pop through its levels.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::reorder::ReorderBuffer;

/// `(earliest possible close, key slot, journey serial)`.
pub(crate) type Deadline = (i64, u32, u32);

#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    /// Session journeys' deadlines, then threads' (`gap` and `thread_gap`).
    by_class: [ReorderBuffer<Deadline>; 2],
}

impl Deadlines {
    /// `thread` picks the class: either class hands entries out in the same order,
    /// the right one keeps pushes cheap.
    pub(crate) fn push(&mut self, thread: bool, d: Deadline) {
        self.by_class[usize::from(thread)].push(d);
    }

    fn head(&self) -> Option<usize> {
        match (self.by_class[0].peek(), self.by_class[1].peek()) {
            (Some(a), Some(b)) => Some(if a <= b { 0 } else { 1 }),
            (Some(_), None) => Some(0),
            (None, Some(_)) => Some(1),
            (None, None) => None,
        }
    }

    pub(crate) fn peek(&self) -> Option<&Deadline> {
        self.head().and_then(|c| self.by_class[c].peek())
    }

    pub(crate) fn pop(&mut self) -> Option<Deadline> {
        self.head().and_then(|c| self.by_class[c].pop())
    }

    pub(crate) fn clear(&mut self) {
        self.by_class = Default::default();
    }

    pub(crate) fn len(&self) -> usize {
        self.by_class.iter().map(ReorderBuffer::len).sum()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.by_class.iter().map(ReorderBuffer::capacity).sum()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Deadline> {
        self.by_class.iter().flat_map(ReorderBuffer::iter)
    }
}

/// A flat sequence of deadlines: the form checkpoint format 2 gave the binary heap
/// this replaced, so checkpoints written before restore unchanged.
impl Serialize for Deadlines {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for d in self.iter() {
            seq.serialize_element(d)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Deadlines {
    /// Restored in order into one class: the order out is the same whichever class holds an entry.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut all = Vec::<Deadline>::deserialize(d)?;
        all.sort_unstable();
        let mut out = Deadlines::default();
        for x in all {
            out.push(false, x);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the classes and arrivals (even below what was handed out), and across
        /// a round trip through the checkpoint form, entries come out as from a binary heap.
        #[test]
        fn pops_in_order_like_a_heap(
            items in prop::collection::vec((0i64..100, 0u32..5, 0u32..3, any::<bool>()), 0..150),
            pops in prop::collection::vec(any::<bool>(), 150),
            at in 0usize..150,
        ) {
            let mut d = Deadlines::default();
            let mut heap = BinaryHeap::new();
            for (i, &(t, k, s, thread)) in items.iter().enumerate() {
                d.push(thread, (t, k, s));
                heap.push(Reverse((t, k, s)));
                if i == at {
                    let bytes = postcard::to_allocvec(&d).unwrap();
                    d = postcard::from_bytes(&bytes).unwrap();
                }
                if pops[i] {
                    prop_assert_eq!(d.peek().copied(), heap.peek().map(|r| r.0));
                    prop_assert_eq!(d.pop(), heap.pop().map(|r| r.0));
                }
            }
            prop_assert_eq!(d.len(), heap.len());
            while let Some(Reverse(x)) = heap.pop() {
                prop_assert_eq!(d.pop(), Some(x));
            }
            prop_assert_eq!(d.pop(), None);
        }
    }

    #[test]
    fn a_checkpointed_binary_heap_restores() {
        let heap: BinaryHeap<Reverse<Deadline>> = [(5, 1, 1), (3, 2, 7)].into_iter().map(Reverse).collect();
        let restored: Deadlines = postcard::from_bytes(&postcard::to_allocvec(&heap).unwrap()).unwrap();
        assert_eq!(restored.iter().copied().collect::<Vec<_>>(), vec![(3, 2, 7), (5, 1, 1)]);
    }
}
