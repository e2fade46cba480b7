//! The topics a broker serves, by name and by id (Fetch v13+ and Metadata
//! name topics by id; a look-up is a hash probe, not a scan of every topic).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use brook_protocol::codec::Uuid;

use super::Topic;

/// The topics this broker serves, by name and by id.
#[derive(Debug, Default)]
pub(super) struct TopicTable {
    by_name: BTreeMap<String, Arc<Topic>>,
    by_id: HashMap<Uuid, Arc<Topic>>,
}

impl From<BTreeMap<String, Arc<Topic>>> for TopicTable {
    fn from(by_name: BTreeMap<String, Arc<Topic>>) -> Self {
        let by_id = by_name.values().map(|t| (t.id, t.clone())).collect();
        Self { by_name, by_id }
    }
}

impl TopicTable {
    pub(super) fn get(&self, name: &str) -> Option<&Arc<Topic>> {
        self.by_name.get(name)
    }

    pub(super) fn by_id(&self, id: &Uuid) -> Option<Arc<Topic>> {
        self.by_id.get(id).cloned()
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Arc<Topic>> {
        self.by_name.values()
    }

    pub(super) fn insert(&mut self, topic: Arc<Topic>) {
        if let Some(old) = self.by_name.insert(topic.name.to_string(), topic.clone()) {
            self.by_id.remove(&old.id);
        }
        self.by_id.insert(topic.id, topic);
    }

    /// Remove `name` if it still has id `id`.
    pub(super) fn remove(&mut self, name: &str, id: Uuid) -> Option<Arc<Topic>> {
        if self.by_name.get(name).is_none_or(|t| t.id != id) {
            return None;
        }
        self.by_id.remove(&id);
        self.by_name.remove(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, id: u8) -> Arc<Topic> {
        Arc::new(Topic::new(
            name,
            Uuid::from_bytes([id; 16]),
            BTreeMap::new(),
        ))
    }

    #[test]
    fn names_and_ids_stay_in_step_through_recreation_and_removal() {
        let mut t = TopicTable::from(BTreeMap::from([("a".to_owned(), topic("a", 1))]));
        t.insert(topic("b", 2));
        assert_eq!(
            t.by_id(&Uuid::from_bytes([2; 16]))
                .map(|t| t.name.to_string()),
            Some("b".into())
        );
        // "a" deleted and created again under a new id: the old id is gone.
        t.insert(topic("a", 3));
        assert!(t.by_id(&Uuid::from_bytes([1; 16])).is_none());
        assert_eq!(t.get("a").map(|t| t.id), Some(Uuid::from_bytes([3; 16])));
        // A removal naming the old id leaves the new topic alone.
        assert!(t.remove("a", Uuid::from_bytes([1; 16])).is_none());
        assert!(t.remove("a", Uuid::from_bytes([3; 16])).is_some());
        assert!(t.get("a").is_none() && t.by_id(&Uuid::from_bytes([3; 16])).is_none());
        assert_eq!(t.values().count(), 1);
    }
}
