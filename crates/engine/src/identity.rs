//! SPEC §6 identity links: who owns a cookie, a phone number, a loyalty card.
//! [`IdentityBook`] learns links in exact `(ts, event_id)` order once a watermark has
//! passed them, keeps the first owner of each identity for good, reports conflicts,
//! and tells which customer an event without `customer_id` belongs to.
//!
//! It is shared by file mode (links from the one partition) and the resolve stage
//! (links from every raw partition, passed once the slowest partition's watermark
//! has passed them), so both apply the same rule.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use compact_str::CompactString;
use hashbrown::HashMap;

use crate::rows::IdentityRow;

/// One identity of a customer: `(type, value)`.
pub type Identity = (CompactString, CompactString);

/// An [`Identity`] as borrowed strings, to look owners up without building one:
/// it hashes as the tuple does (each `CompactString` hashes as its `str`).
#[derive(Hash)]
struct IdentityRef<'a>(&'a str, &'a str);

impl hashbrown::Equivalent<Identity> for IdentityRef<'_> {
    fn equivalent(&self, key: &Identity) -> bool {
        self.0 == key.0.as_str() && self.1 == key.1.as_str()
    }
}

/// An event's identities as owned strings (for what outlives the raw payload).
pub fn owned(identities: &crate::event::Identities<'_>) -> Vec<Identity> {
    identities.iter().map(|(t, v)| (CompactString::from(t.as_ref()), CompactString::from(v.as_ref()))).collect()
}

/// The first link of an identity: its owner for good.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Owner {
    pub customer_id: CompactString,
    pub ts: i64,
    pub event_id: CompactString,
}

impl Owner {
    fn order(&self) -> (i64, &[u8], &[u8]) {
        (self.ts, self.event_id.as_bytes(), self.customer_id.as_bytes())
    }
}

/// A link event not yet passed by the watermark: an earlier one may still come.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PendingLink {
    pub ts: i64,
    pub event_id: CompactString,
    pub customer_id: CompactString,
    pub identities: Vec<Identity>,
}

impl PendingLink {
    /// `(ts, event_id)`, then the customer: two links with equal `(ts, event_id)` (which
    /// the SPEC leaves open) order the same way in every partition and arrival order.
    fn order(&self) -> (i64, &[u8], &[u8]) {
        (self.ts, self.event_id.as_bytes(), self.customer_id.as_bytes())
    }
}

impl PartialEq for PendingLink {
    fn eq(&self, other: &Self) -> bool {
        self.order() == other.order()
    }
}
impl Eq for PendingLink {}
impl PartialOrd for PendingLink {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for PendingLink {
    fn cmp(&self, other: &Self) -> Ordering {
        self.order().cmp(&other.order())
    }
}

/// Whom an anonymous event belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub customer_id: CompactString,
    /// `true` when an owner was found, `false` for `anon:<type>:<value>`.
    pub owned: bool,
}

/// Counters of the identity rules (SPEC §4 identity metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdentityCounts {
    /// Identities that got an owner.
    pub links: u64,
    /// Links of an owned identity to another customer.
    pub conflicts: u64,
    /// Anonymous events resolved to an owner / to their anonymous customer.
    pub resolved: u64,
    pub unresolved: u64,
}

/// Owners of identities and links waiting for the watermark.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct IdentityBook {
    owners: HashMap<Identity, Owner>,
    pending: BinaryHeap<Reverse<PendingLink>>,
    /// Conflicting links already written: `(identity, customer, ts, event_id)`. A link
    /// delivered twice is one link (the same place in `(ts, event_id)` order), so one row.
    conflicts_seen: hashbrown::HashSet<(Identity, CompactString, i64, CompactString)>,
    counts: IdentityCounts,
}

impl IdentityBook {
    /// Notes a link event (`customer_id` and `identities` both present).
    pub fn add_link(&mut self, link: PendingLink) {
        if !link.identities.is_empty() {
            self.pending.push(Reverse(link));
        }
    }

    /// Learns, in `(ts, event_id)` order, every pending link with `ts` below `watermark`:
    /// no link not seen yet can sort before them. Owner and conflict rows go to `rows`.
    pub fn learn_below(&mut self, watermark: i64, partition: i32, rows: &mut Vec<IdentityRow>) {
        while self.pending.peek().is_some_and(|Reverse(l)| l.ts < watermark) {
            if let Some(Reverse(link)) = self.pending.pop() {
                self.learn(link, partition, rows);
            }
        }
    }

    /// Learns every pending link (the input is over).
    pub fn learn_all(&mut self, partition: i32, rows: &mut Vec<IdentityRow>) {
        while let Some(Reverse(link)) = self.pending.pop() {
            self.learn(link, partition, rows);
        }
    }

    fn learn(&mut self, link: PendingLink, partition: i32, rows: &mut Vec<IdentityRow>) {
        for (identity_type, identity_value) in link.identities {
            let key = (identity_type, identity_value);
            match self.owners.get(&key) {
                Some(owner) if owner.customer_id == link.customer_id => {}
                Some(_) => {
                    let seen = (key.clone(), link.customer_id.clone(), link.ts, link.event_id.clone());
                    if !self.conflicts_seen.insert(seen) {
                        continue;
                    }
                    self.counts.conflicts += 1;
                    rows.push(IdentityRow {
                        partition,
                        identity_type: key.0,
                        identity_value: key.1,
                        customer_id: link.customer_id.clone(),
                        linked_ts: link.ts,
                        conflict: true,
                    });
                }
                None => {
                    self.counts.links += 1;
                    rows.push(IdentityRow {
                        partition,
                        identity_type: key.0.clone(),
                        identity_value: key.1.clone(),
                        customer_id: link.customer_id.clone(),
                        linked_ts: link.ts,
                        conflict: false,
                    });
                    let owner =
                        Owner { customer_id: link.customer_id.clone(), ts: link.ts, event_id: link.event_id.clone() };
                    self.owners.insert(key, owner);
                }
            }
        }
    }

    /// The customer of an event at `ts` known only by `identities` (sorted, not empty):
    /// the owner whose link is first among those linked by `ts + identify_wait`, else
    /// `anon:<type>:<value>` of the smallest identity; and whether an owner was found.
    /// Every link up to that time must have been learned ([`learn_below`](Self::learn_below) past it).
    pub fn customer_of<'a>(
        &self,
        ts: i64,
        identify_wait: i64,
        identities: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> (CompactString, bool) {
        let by = ts.saturating_add(identify_wait);
        let mut best: Option<&Owner> = None;
        let mut smallest: Option<(&str, &str)> = None;
        for (t, v) in identities {
            if smallest.is_none_or(|s| (t, v) < s) {
                smallest = Some((t, v));
            }
            if let Some(owner) = self.owner(t, v).filter(|o| o.ts <= by)
                && best.is_none_or(|b| owner.order() < b.order())
            {
                best = Some(owner);
            }
        }
        match best {
            Some(owner) => (owner.customer_id.clone(), true),
            None => {
                let (t, v) = smallest.unwrap_or_default();
                let mut customer_id = CompactString::with_capacity(5 + t.len() + 1 + v.len());
                for part in ["anon:", t, ":", v] {
                    customer_id.push_str(part);
                }
                (customer_id, false)
            }
        }
    }

    /// [`customer_of`](Self::customer_of), counted as resolved or not.
    pub fn resolve<'a>(
        &mut self,
        ts: i64,
        identify_wait: i64,
        identities: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Resolved {
        let (customer_id, owned) = self.customer_of(ts, identify_wait, identities);
        if owned {
            self.counts.resolved += 1;
        } else {
            self.counts.unresolved += 1;
        }
        Resolved { customer_id, owned }
    }

    /// The owner of `(type, value)`, once its first link has been learned.
    pub fn owner(&self, identity_type: &str, identity_value: &str) -> Option<&Owner> {
        self.owners.get(&IdentityRef(identity_type, identity_value))
    }

    pub fn counts(&self) -> IdentityCounts {
        self.counts
    }

    /// Identities with an owner.
    pub fn owned(&self) -> usize {
        self.owners.len()
    }

    /// Link events waiting for the watermark.
    pub fn pending_links(&self) -> usize {
        self.pending.len()
    }

    /// Heap bytes held, roughly: owners (key strings inline up to 24 bytes each) and pending links.
    pub fn estimated_bytes(&self) -> usize {
        let heap_str = |s: &CompactString| if s.is_heap_allocated() { s.capacity() } else { 0 };
        let owner_slot = std::mem::size_of::<(Identity, Owner)>() + 1;
        let owners = self.owners.capacity() * owner_slot
            + self
                .owners
                .iter()
                .map(|((t, v), o)| heap_str(t) + heap_str(v) + heap_str(&o.customer_id) + heap_str(&o.event_id))
                .sum::<usize>();
        let pending = self.pending.capacity() * std::mem::size_of::<PendingLink>()
            + self
                .pending
                .iter()
                .map(|Reverse(l)| l.identities.capacity() * std::mem::size_of::<Identity>())
                .sum::<usize>();
        owners + pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(ts: i64, id: &str, customer: &str, identities: &[(&str, &str)]) -> PendingLink {
        PendingLink {
            ts,
            event_id: id.into(),
            customer_id: customer.into(),
            identities: identities.iter().map(|(t, v)| ((*t).into(), (*v).into())).collect(),
        }
    }

    #[test]
    fn the_first_link_in_event_time_owns_whatever_the_arrival_order() {
        let mut book = IdentityBook::default();
        let mut rows = Vec::new();
        book.add_link(link(20, "b", "c2", &[("phone", "1")]));
        book.add_link(link(10, "z", "c1", &[("phone", "1")]));
        book.add_link(link(10, "y", "c1", &[("phone", "1")]));
        book.learn_below(20, 0, &mut rows);
        assert_eq!(rows.len(), 1, "the link at the watermark waits: one with a smaller id could come");
        book.learn_below(21, 0, &mut rows);
        let got: Vec<_> = rows.iter().map(|r| (r.customer_id.as_str(), r.linked_ts, r.conflict)).collect();
        assert_eq!(got, [("c1", 10, false), ("c2", 20, true)]);
        assert_eq!(book.counts(), IdentityCounts { links: 1, conflicts: 1, resolved: 0, unresolved: 0 });
        // Borrowed lookups find what owned keys stored (long values too: heap strings).
        assert_eq!(book.owner("phone", "1").map(|o| o.customer_id.as_str()), Some("c1"));
        let long = "a-cookie-value-longer-than-twenty-four-bytes";
        book.add_link(link(30, "c", "c3", &[("cookie", long)]));
        book.learn_below(31, 0, &mut rows);
        assert_eq!(book.owner("cookie", long).map(|o| o.customer_id.as_str()), Some("c3"));
        assert!(book.owner("cookie", "1").is_none() && book.owner("phone", long).is_none());
    }

    #[test]
    fn resolution_takes_owners_linked_by_ts_plus_wait_and_the_earliest_link() {
        let mut book = IdentityBook::default();
        let mut rows = Vec::new();
        book.add_link(link(100, "a", "late", &[("cookie", "k")]));
        book.add_link(link(50, "b", "early", &[("phone", "p")]));
        book.learn_all(0, &mut rows);
        let ids = [("cookie", "k"), ("phone", "p")];
        assert_eq!(book.resolve(0, 50, ids).customer_id, "early", "exactly ts + wait counts");
        assert_eq!(book.resolve(0, 49, ids).customer_id, "anon:cookie:k", "the smallest identity");
        assert_eq!(book.resolve(60, 40, ids).customer_id, "early", "the earliest link among those in time");
        assert_eq!(book.resolve(60, 40, [("cookie", "k")]).customer_id, "late");
    }
}
