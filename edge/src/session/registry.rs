//! The live sessions of this edge, by id: what the link needs to deliver to, kick, or announce.

use super::outbox::Outbox;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tern_shared::link::SessionInfo;
use tern_shared::proto::crypto::SessionCipher;

#[derive(Clone)]
pub struct SessionEntry {
    pub info: SessionInfo,
    pub version: u8,
    pub cipher: SessionCipher,
    pub outbox: Arc<Outbox>,
}

#[derive(Default)]
pub struct Registry {
    sessions: Mutex<HashMap<u64, SessionEntry>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, SessionEntry>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, entry: SessionEntry) {
        self.lock().insert(entry.info.session, entry);
    }

    pub fn remove(&self, session: u64) -> Option<SessionEntry> {
        self.lock().remove(&session)
    }

    pub fn get(&self, session: u64) -> Option<SessionEntry> {
        self.lock().get(&session).cloned()
    }

    pub fn outboxes(&self) -> Vec<Arc<Outbox>> {
        self.lock().values().map(|e| e.outbox.clone()).collect()
    }

    /// Every live session's id.
    pub fn ids(&self) -> Vec<u64> {
        self.lock().keys().copied().collect()
    }

    /// What the core is told of the sessions `ids` that are still live.
    pub fn infos(&self, ids: &[u64]) -> Vec<SessionInfo> {
        let sessions = self.lock();
        ids.iter().filter_map(|id| sessions.get(id)).map(|e| e.info.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
