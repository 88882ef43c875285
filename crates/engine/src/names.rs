//! Interned channel and step names: journeys and window keys hold a `u32`, rows
//! get a shared `Arc<str>`. A partition sees few distinct names, so this keeps
//! per-journey state small and comparisons cheap.

use hashbrown::HashMap;

use crate::rows::Name;

/// Id of an interned name.
pub(crate) type NameId = u32;

/// Marks an absent step.
pub(crate) const NO_NAME: NameId = NameId::MAX;

/// One partition's name table. Names are never forgotten: the table grows with
/// the number of distinct channels and steps the partition has seen, about 100
/// bytes per name in memory (Arc'd text, list and index entry) and the name's
/// length plus one byte in every checkpoint. Real inputs have tens of names; a
/// hostile one minting a million costs about 100 MB until the engine is dropped
/// (see the `hostile` tests). Metrics do not inherit this: their label values
/// are capped at `label_limit`.
#[derive(Debug, Default)]
pub(crate) struct Names {
    ids: HashMap<Name, NameId>,
    names: Vec<Name>,
    /// Recently interned names of up to 14 bytes, by their bytes: every event interns
    /// a channel and a step, and most are short and few, so most lookups end here
    /// without hashing the text. Derived, so not checkpointed.
    recent: Vec<(u128, NameId)>,
}

const RECENT: usize = 64;

/// A short name's bytes and length in one integer (never 0), or `None` past 14 bytes:
/// the bytes little-endian from the lowest, the length plus one in the highest byte.
/// Built from two overlapping loads, not a copy of `len` bytes: that copy was a call to
/// `memcpy`, twice per event.
fn short_key(s: &str) -> Option<u128> {
    let b = s.as_bytes();
    let n = b.len();
    // Bytes `at..at + N` as a little-endian integer (`at + N <= n` holds at every call).
    let u64_at = |at: usize| b.get(at..at + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()).map(u64::from_le_bytes);
    let u32_at = |at: usize| b.get(at..at + 4).and_then(|w| <[u8; 4]>::try_from(w).ok()).map(u32::from_le_bytes);
    let bytes: u128 = match n {
        0 => 0,
        1..=3 => b.iter().rev().fold(0u128, |k, &c| (k << 8) | u128::from(c)),
        4..=7 => {
            // The last four bytes, shifted so that only those past the first four remain.
            let tail = u32_at(n - 4)?.checked_shr(8 * (8 - n) as u32).unwrap_or(0);
            u128::from(u32_at(0)?) | (u128::from(tail) << 32)
        }
        8..=14 => {
            let tail = u64_at(n - 8)?.checked_shr(8 * (16 - n) as u32).unwrap_or(0);
            u128::from(u64_at(0)?) | (u128::from(tail) << 64)
        }
        _ => return None,
    };
    Some(bytes | (u128::from(n as u8 + 1) << 120))
}

fn recent_slot(key: u128) -> usize {
    let mixed = (key as u64 ^ (key >> 64) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> 58) as usize % RECENT
}

impl Names {
    /// Rebuilds a table from names in id order (a checkpoint's list).
    pub(crate) fn from_list(names: Vec<Name>) -> Self {
        let ids: HashMap<Name, NameId> = names.iter().enumerate().map(|(i, n)| (n.clone(), i as NameId)).collect();
        Names { ids, names, recent: Vec::new() }
    }

    /// All names in id order.
    pub(crate) fn list(&self) -> &[Name] {
        &self.names
    }

    /// Bytes the table takes: the list, the index, and each name's shared allocation.
    pub(crate) fn estimated_bytes(&self) -> usize {
        let arc = 2 * std::mem::size_of::<usize>(); // the reference counts before the text
        self.names.capacity() * std::mem::size_of::<Name>()
            + crate::engine::hash_table_bytes(self.ids.capacity(), std::mem::size_of::<(Name, NameId)>())
            + self.names.iter().map(|n| arc + n.len()).sum::<usize>()
    }

    pub(crate) fn intern(&mut self, s: &str) -> NameId {
        let key = short_key(s);
        if let Some(k) = key
            && let Some(&(cached, id)) = self.recent.get(recent_slot(k))
            && cached == k
        {
            return id;
        }
        let id = match self.ids.get(s) {
            Some(&id) => id,
            None => {
                let id = NameId::try_from(self.names.len()).unwrap_or(NO_NAME - 1);
                let name: Name = s.into();
                self.names.push(name.clone());
                self.ids.insert(name, id);
                id
            }
        };
        if let Some(k) = key {
            if self.recent.is_empty() {
                self.recent = vec![(0, 0); RECENT];
            }
            self.recent[recent_slot(k)] = (k, id);
        }
        id
    }

    /// Each id's position in text order (`ranks()[id]`), to sort rows by name with integer keys.
    pub(crate) fn ranks(&self) -> Vec<u32> {
        let mut ids: Vec<NameId> = (0..self.names.len() as NameId).collect();
        ids.sort_unstable_by(|&a, &b| self.get(a).cmp(self.get(b)));
        let mut rank = vec![0; ids.len()];
        for (r, id) in ids.into_iter().enumerate() {
            rank[id as usize] = r as u32;
        }
        rank
    }

    pub(crate) fn get(&self, id: NameId) -> &Name {
        &self.names[id as usize]
    }

    pub(crate) fn get_opt(&self, id: NameId) -> Option<&Name> {
        (id != NO_NAME).then(|| self.get(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_name_same_id() {
        let mut n = Names::default();
        let a = n.intern("web");
        let b = n.intern("app");
        assert_ne!(a, b);
        assert_eq!(n.intern("web"), a);
        assert_eq!(&**n.get(b), "app");
        assert_eq!(n.get_opt(NO_NAME), None);
    }

    proptest::proptest! {
        /// The overlapping loads give the bytes, zero-padded, with the length on top.
        #[test]
        fn short_keys_are_the_padded_bytes_and_the_length(s in "[a-z0-9_]{0,16}|\\PC{0,6}") {
            let b = s.as_bytes();
            let want = (b.len() <= 14).then(|| {
                let mut k = [0u8; 16];
                k[..b.len()].copy_from_slice(b);
                k[15] = b.len() as u8 + 1;
                u128::from_le_bytes(k)
            });
            proptest::prop_assert_eq!(short_key(&s), want);
        }
    }

    #[test]
    fn the_recent_cache_never_confuses_names() {
        let mut n = Names::default();
        let words: Vec<String> = (0..500).map(|i| format!("n{i}")).chain(["a".into(), "a\0".into()]).collect();
        let long = "a_name_longer_than_fourteen_bytes";
        let ids: Vec<NameId> = words.iter().map(|w| n.intern(w)).collect();
        for _ in 0..3 {
            for (w, &id) in words.iter().zip(&ids) {
                assert_eq!(n.intern(w), id);
                assert_eq!(&**n.get(id), w.as_str());
            }
        }
        let l = n.intern(long);
        assert_eq!((n.intern(long), &**n.get(l)), (l, long));
        let mut ranks = n.ranks();
        ranks.sort_unstable();
        assert_eq!(ranks, (0..n.list().len() as u32).collect::<Vec<_>>());
    }
}
