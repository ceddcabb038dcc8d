//! openraft log storage of one raft group (one slot) on the `log` and `meta` column families. Appends
//! are synced before openraft is told they are flushed: that is what makes an acked message durable.

use super::{keys, Db, StoreError, CF_LOG, CF_META};
use crate::raft::{NodeId, StorageError, TypeConfig};
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogId, StorageIOError, Vote};
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

#[derive(Clone)]
pub struct LogStore {
    db: Db,
    slot: u16,
}

fn synced() -> WriteOptions {
    let mut o = WriteOptions::default();
    o.set_sync(true);
    o
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_logs(&e).into()
}
fn write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_logs(&e).into()
}

impl LogStore {
    pub fn new(db: Db, slot: u16) -> Self {
        LogStore { db, slot }
    }

    fn meta<T: serde::de::DeserializeOwned>(&self, name: &[u8]) -> Result<Option<T>, StoreError> {
        let cf = self.db.cf(CF_META)?;
        match self.db.db.get_cf(cf, keys::meta(name, self.slot))? {
            Some(v) => Ok(Some(super::decode("raft meta", &v)?)),
            None => Ok(None),
        }
    }

    fn put_meta<T: serde::Serialize>(&self, name: &[u8], value: &T) -> Result<(), StoreError> {
        let cf = self.db.cf(CF_META)?;
        self.db.db.put_cf_opt(cf, keys::meta(name, self.slot), super::encode(value), &synced())?;
        Ok(())
    }

    fn last_entry_id(&self) -> Result<Option<LogId<NodeId>>, StoreError> {
        let cf = self.db.cf(CF_LOG)?;
        let end = keys::log(self.slot, u64::MAX);
        match self.db.db.iterator_cf(cf, IteratorMode::From(&end, Direction::Reverse)).next() {
            Some(item) => {
                let (k, v) = item?;
                if keys::log_index(&k, self.slot).is_none() {
                    return Ok(None);
                }
                let entry: Entry<TypeConfig> = super::decode("raft log", &v)?;
                Ok(Some(entry.log_id))
            }
            None => Ok(None),
        }
    }

    fn delete_range(&self, from: u64, to_inclusive: u64) -> Result<(), StoreError> {
        let cf = self.db.cf(CF_LOG)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, keys::log(self.slot, from), keys::log(self.slot, to_inclusive));
        batch.delete_cf(cf, keys::log(self.slot, to_inclusive));
        self.db.db.write_opt(batch, &synced())?;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i + 1,
            Bound::Unbounded => 0,
        };
        let cf = self.db.cf(CF_LOG).map_err(read_err)?;
        let mut out = Vec::new();
        let from = keys::log(self.slot, start);
        for item in self.db.db.iterator_cf(cf, IteratorMode::From(&from, Direction::Forward)) {
            let (k, v) = item.map_err(read_err)?;
            let Some(index) = keys::log_index(&k, self.slot) else { break };
            if !range.contains(&index) {
                break;
            }
            out.push(super::decode("raft log", &v).map_err(read_err)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId<NodeId>> = self.meta(keys::PURGED).map_err(read_err)?;
        let last = self.last_entry_id().map_err(read_err)?.or(last_purged);
        Ok(LogState { last_purged_log_id: last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.put_meta(keys::VOTE, vote).map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.meta(keys::VOTE).map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError> {
        // Not synced: losing it only means re-deriving the commit index after a restart.
        let cf = self.db.cf(CF_META).map_err(write_err)?;
        self.db.db.put_cf(cf, keys::meta(keys::COMMITTED, self.slot), super::encode(&committed)).map_err(write_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError> {
        Ok(self.meta::<Option<LogId<NodeId>>>(keys::COMMITTED).map_err(read_err)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let cf = self.db.cf(CF_LOG).map_err(write_err)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put_cf(cf, keys::log(self.slot, entry.get_log_id().index), super::encode(&entry));
        }
        if let Err(e) = self.db.db.write_opt(batch, &WriteOptions::default()) {
            callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
            return Err(write_err(e));
        }
        self.db.wal.after_sync(callback);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        self.delete_range(log_id.index, u64::MAX).map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        self.put_meta(keys::PURGED, &log_id).map_err(write_err)?;
        self.delete_range(0, log_id.index).map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(index: u64) -> Entry<TypeConfig> {
        Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), index), payload: EntryPayload::Blank }
    }

    fn indexes(entries: &[Entry<TypeConfig>]) -> Vec<u64> {
        entries.iter().map(|e| e.log_id.index).collect()
    }

    /// Groups share one column family: each must see, purge and truncate only its own entries.
    #[tokio::test]
    async fn a_group_sees_and_changes_only_its_own_log() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("db"), 8).unwrap();
        let cf = db.cf(CF_LOG).unwrap();
        for (slot, last) in [(4u16, 9u64), (5, 5), (6, 7)] {
            for i in 1..=last {
                db.db.put_cf(cf, keys::log(slot, i), super::super::encode(&entry(i))).unwrap();
            }
        }
        let (mut four, mut five, mut six) =
            (LogStore::new(db.clone(), 4), LogStore::new(db.clone(), 5), LogStore::new(db.clone(), 6));
        assert_eq!(five.get_log_state().await.unwrap().last_log_id.map(|l| l.index), Some(5));
        assert_eq!(indexes(&five.try_get_log_entries(0..).await.unwrap()), [1, 2, 3, 4, 5]);
        five.purge(LogId::new(CommittedLeaderId::new(1, 1), 2)).await.unwrap();
        five.truncate(LogId::new(CommittedLeaderId::new(1, 1), 4)).await.unwrap();
        assert_eq!(indexes(&five.try_get_log_entries(0..).await.unwrap()), [3]);
        assert_eq!(indexes(&four.try_get_log_entries(0..).await.unwrap()), (1..=9).collect::<Vec<_>>());
        assert_eq!(indexes(&six.try_get_log_entries(0..).await.unwrap()), (1..=7).collect::<Vec<_>>());
        assert_eq!(six.get_log_state().await.unwrap().last_log_id.map(|l| l.index), Some(7));
        let empty = LogStore::new(db.clone(), 7).get_log_state().await.unwrap();
        assert_eq!(empty.last_log_id, None);
    }
}
