//! openraft log storage on the `log` and `meta` column families. Appends are synced before openraft is
//! told they are flushed: that is what makes an acked message durable.

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
    pub fn new(db: Db) -> Self {
        LogStore { db }
    }

    fn meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        let cf = self.db.cf(CF_META)?;
        match self.db.db.get_cf(cf, key)? {
            Some(v) => Ok(Some(super::decode("raft meta", &v)?)),
            None => Ok(None),
        }
    }

    fn put_meta<T: serde::Serialize>(&self, key: &[u8], value: &T) -> Result<(), StoreError> {
        let cf = self.db.cf(CF_META)?;
        self.db.db.put_cf_opt(cf, key, super::encode(value), &synced())?;
        Ok(())
    }

    fn last_entry_id(&self) -> Result<Option<LogId<NodeId>>, StoreError> {
        let cf = self.db.cf(CF_LOG)?;
        match self.db.db.iterator_cf(cf, IteratorMode::End).next() {
            Some(item) => {
                let (_, v) = item?;
                let entry: Entry<TypeConfig> = super::decode("raft log", &v)?;
                Ok(Some(entry.log_id))
            }
            None => Ok(None),
        }
    }

    fn delete_range(&self, from: u64, to_exclusive: u64) -> Result<(), StoreError> {
        let cf = self.db.cf(CF_LOG)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, keys::log(from), keys::log(to_exclusive));
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
        let from = keys::log(start);
        for item in self.db.db.iterator_cf(cf, IteratorMode::From(&from, Direction::Forward)) {
            let (k, v) = item.map_err(read_err)?;
            let index = super::decode_u64("raft log index", &k).map_err(read_err)?;
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
        self.db.db.put_cf(cf, keys::COMMITTED, super::encode(&committed)).map_err(write_err)
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
            batch.put_cf(cf, keys::log(entry.get_log_id().index), super::encode(&entry));
        }
        let result = self.db.db.write_opt(batch, &synced());
        let io = result.as_ref().map(|_| ()).map_err(|e| std::io::Error::other(e.to_string()));
        callback.log_io_completed(io);
        result.map_err(write_err)
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        self.delete_range(log_id.index, u64::MAX).map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        self.put_meta(keys::PURGED, &log_id).map_err(write_err)?;
        self.delete_range(0, log_id.index + 1).map_err(write_err)
    }
}
