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
}

impl Names {
    /// Rebuilds a table from names in id order (a checkpoint's list).
    pub(crate) fn from_list(names: Vec<Name>) -> Self {
        let ids: HashMap<Name, NameId> = names.iter().enumerate().map(|(i, n)| (n.clone(), i as NameId)).collect();
        Names { ids, names }
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
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = NameId::try_from(self.names.len()).unwrap_or(NO_NAME - 1);
        let name: Name = s.into();
        self.names.push(name.clone());
        self.ids.insert(name, id);
        id
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
}
