//! The reorder buffer: accepted events waiting until the watermark passes their
//! `ts`, handed out in `(ts, event_id)` order. Inputs are mostly in order, so
//! in-order arrivals append to a sorted run (O(1), no sifting), slightly late ones
//! are inserted near its end, and only the far out-of-order ones go through a heap;
//! the smaller head of the two comes out first.
//!
//! Bound: the buffer holds exactly the accepted events not yet below the
//! watermark, i.e. those within `allowed_lateness` of the newest `ts`. That is a
//! bound in event time, not in count: `rate × allowed_lateness` events (500,000 at
//! 100,000 events/s and the default 5 s), 64 bytes each plus an `event_id` longer
//! than 24 bytes. A producer whose clock stands still keeps every event here until
//! a later `ts` arrives; capping the count instead would have to fold events the
//! SPEC still allows to arrive before them, so the bound stays in time (the
//! `hostile` test `the_reorder_buffer_is_bounded_by_the_lateness_window` pins it).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use serde::{Deserialize, Serialize};

/// How far from the newest end of the sorted run an out-of-order item is still inserted.
const NEAR: usize = 32;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ReorderBuffer<T: Ord> {
    run: VecDeque<T>,
    heap: BinaryHeap<Reverse<T>>,
}

impl<T: Ord> Default for ReorderBuffer<T> {
    fn default() -> Self {
        ReorderBuffer { run: VecDeque::new(), heap: BinaryHeap::new() }
    }
}

impl<T: Ord> ReorderBuffer<T> {
    pub(crate) fn push(&mut self, item: T) {
        if self.run.back().is_none_or(|last| *last <= item) {
            self.run.push_back(item);
            return;
        }
        // A stream's usual disorder puts a late arrival just before the newest few:
        // inserting it there moves at most NEAR items and spares a heap pop (a sift
        // through the heap's levels) later. Farther back it goes to the heap, so that
        // hostile orders (a reversed stream) never cost more than the heap does.
        // Binary search among the newest NEAR (the newest is known to sort after `item`):
        // most arrivals of a stream with a few seconds of disorder are late by several
        // places, and walking back one comparison at a time cost twice as much.
        let (mut lo, mut at) = (self.run.len().saturating_sub(NEAR), self.run.len() - 1);
        while lo < at {
            let mid = lo + (at - lo) / 2;
            if self.run[mid] <= item { lo = mid + 1 } else { at = mid }
        }
        if at > 0 && self.run[at - 1] > item {
            self.heap.push(Reverse(item));
        } else {
            self.run.insert(at, item);
        }
    }

    pub(crate) fn peek(&self) -> Option<&T> {
        match (self.run.front(), self.heap.peek()) {
            (Some(a), Some(Reverse(b))) => Some(if a <= b { a } else { b }),
            (a, b) => a.or(b.map(|r| &r.0)),
        }
    }

    pub(crate) fn pop(&mut self) -> Option<T> {
        let from_run = match (self.run.front(), self.heap.peek()) {
            (Some(a), Some(Reverse(b))) => a <= b,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if from_run { self.run.pop_front() } else { self.heap.pop().map(|r| r.0) }
    }

    pub(crate) fn len(&self) -> usize {
        self.run.len() + self.heap.len()
    }

    /// Items the buffer can hold without reallocating.
    pub(crate) fn capacity(&self) -> usize {
        self.run.capacity() + self.heap.capacity()
    }

    /// Every buffered item, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.run.iter().chain(self.heap.iter().map(|r| &r.0))
    }

    /// Whether the in-order run really is in order (checked on restore: `pop` relies on it).
    pub(crate) fn run_is_sorted(&self) -> bool {
        self.run.iter().zip(self.run.iter().skip(1)).all(|(a, b)| a <= b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hands_out_in_sorted_order_whatever_the_arrival(items in prop::collection::vec(0u32..50, 0..200), interleave in prop::collection::vec(any::<bool>(), 200)) {
            let mut buf = ReorderBuffer::default();
            let mut out = Vec::new();
            let mut popped_max = None;
            for (i, &x) in items.iter().enumerate() {
                // Only push items not below what was already handed out, as the engine does.
                if popped_max.is_none_or(|m| x >= m) {
                    buf.push(x);
                }
                if interleave[i] && buf.len() > 3 {
                    let y = buf.pop().unwrap();
                    popped_max = Some(y);
                    out.push(y);
                }
            }
            while let Some(y) = buf.pop() {
                out.push(y);
            }
            let mut sorted = out.clone();
            sorted.sort();
            prop_assert_eq!(out, sorted);
        }
    }

    #[test]
    fn peek_matches_pop() {
        let mut buf = ReorderBuffer::default();
        for x in [5, 7, 3, 9, 1, 8] {
            buf.push(x);
        }
        assert_eq!(buf.len(), 6);
        let mut got = Vec::new();
        while let Some(&p) = buf.peek() {
            assert_eq!(buf.pop(), Some(p));
            got.push(p);
        }
        assert_eq!(got, vec![1, 3, 5, 7, 8, 9]);
    }
}
