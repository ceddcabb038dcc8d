//! openraft state machine of one raft group (one slot) on the `sm` column family. Applying an entry
//! writes its effects and the new applied log id in one RocksDB batch, so a crash leaves either all of
//! an entry or none of it. A snapshot is the slot's key ranges.

use super::apply::{apply_command, Applied, Overlay, MAX_BATCH};
use super::{keys, Db, StoreError, CF_SM};
use crate::raft::{BatchResult, CommandResult, NodeId, StorageError, TypeConfig};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageIOError,
    StoredMembership,
};
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions};
use std::io::Cursor;
use std::path::PathBuf;
use tern_shared::proto::Reason;
use tokio::sync::mpsc;

type Membership = StoredMembership<NodeId, BasicNode>;
type Meta = SnapshotMeta<NodeId, BasicNode>;

pub struct StateMachine {
    db: Db,
    slot: u16,
    snapshot_path: PathBuf,
    /// Stored messages go here for fan-out, in apply order.
    applied_tx: Option<mpsc::Sender<Applied>>,
    installs: Option<prometheus::IntCounter>,
}

fn sm_read(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_state_machine(&e).into()
}
fn sm_write(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_state_machine(&e).into()
}
fn snap_write(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_snapshot(None, &e).into()
}

impl StateMachine {
    /// The state machine of group `slot`, keeping its latest snapshot in `snapshot_path`.
    pub fn new(db: Db, slot: u16, snapshot_path: PathBuf, applied_tx: Option<mpsc::Sender<Applied>>) -> Self {
        StateMachine { db, slot, snapshot_path, applied_tx, installs: None }
    }

    /// Counts snapshots installed from the leader (a metric).
    pub fn counting_installs(mut self, counter: prometheus::IntCounter) -> Self {
        self.installs = Some(counter);
        self
    }

    fn read_meta<T: serde::de::DeserializeOwned + Default>(&self, key: &[u8]) -> Result<T, StoreError> {
        match self.db.db.get_cf(self.db.cf(CF_SM)?, key)? {
            Some(raw) => super::decode("state machine meta", &raw),
            None => Ok(T::default()),
        }
    }

    fn save_snapshot_file(&self, meta: &Meta, data: &[u8]) -> std::io::Result<()> {
        let tmp = self.snapshot_path.with_extension("tmp");
        std::fs::write(&tmp, super::encode(&(meta, data)))?;
        std::fs::rename(&tmp, &self.snapshot_path)
    }

    /// Copies this slot's data out of a consistent RocksDB snapshot.
    fn dump(&self) -> Result<Dump, StoreError> {
        let snap = self.db.db.snapshot();
        let cf = self.db.cf(CF_SM)?;
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for tag in keys::DATA_TAGS {
            let (start, end) = keys::slot_range(tag, self.slot);
            for item in snap.iterator_cf(cf, IteratorMode::From(&start, Direction::Forward)) {
                let (k, v) = item?;
                if *k >= *end {
                    break;
                }
                pairs.push((k.to_vec(), v.to_vec()));
            }
        }
        let get = |key: &[u8]| -> Result<Option<Vec<u8>>, StoreError> { Ok(snap.get_cf(cf, key)?) };
        let applied = get(&keys::applied(self.slot))?.map(|r| super::decode("applied", &r)).transpose()?.flatten();
        let membership = get(&keys::membership(self.slot))?
            .map(|r| super::decode("membership", &r))
            .transpose()?
            .unwrap_or_default();
        Ok(Dump { applied, membership, data: super::encode(&pairs) })
    }
}

/// A point-in-time copy of the state machine.
struct Dump {
    applied: Option<LogId<NodeId>>,
    membership: Membership,
    data: Vec<u8>,
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let Dump { applied, membership, data } = self.dump().map_err(|e| StorageIOError::read_state_machine(&e))?;
        let meta = Meta {
            snapshot_id: format!("{}-{}", applied.map(|l| l.index).unwrap_or(0), tern_shared::client::now_ms()),
            last_log_id: applied,
            last_membership: membership,
        };
        self.save_snapshot_file(&meta, &data).map_err(snap_write)?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId<NodeId>>, Membership), StorageError> {
        let applied: Option<LogId<NodeId>> = self.read_meta(&keys::applied(self.slot)).map_err(sm_read)?;
        let membership: Membership = self.read_meta(&keys::membership(self.slot)).map_err(sm_read)?;
        Ok((applied, membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<BatchResult>, StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut results = Vec::new();
        let mut stored = Vec::new();
        {
            let mut st = Overlay::new(&self.db);
            let mut last = None;
            for entry in entries {
                let log_id = entry.log_id;
                last = Some(log_id);
                let mut out = Vec::new();
                match entry.payload {
                    EntryPayload::Blank => {}
                    EntryPayload::Normal(batch) => {
                        for (pos, cmd) in batch.0.into_iter().enumerate() {
                            if pos >= MAX_BATCH {
                                out.push(CommandResult::Rejected(Reason::SystemError.code()));
                                continue;
                            }
                            let id = message_id(log_id.index, pos, self.slot);
                            let r = apply_command(&mut st, cmd, id, &mut stored)
                                .map_err(|e| StorageIOError::apply(log_id, &e))?;
                            out.push(r);
                        }
                    }
                    EntryPayload::Membership(m) => {
                        st.put(keys::membership(self.slot), super::encode(&Membership::new(Some(log_id), m)));
                    }
                }
                results.push(BatchResult(out));
            }
            st.put(keys::applied(self.slot), super::encode(&last));
            let mut batch = WriteBatch::default();
            st.write_into(&mut batch).map_err(sm_write)?;
            // Not synced: the log entries are, and replaying them rebuilds anything lost here.
            self.db.db.write_opt(batch, &WriteOptions::default()).map_err(sm_write)?;
        }
        if let Some(tx) = &self.applied_tx {
            for a in stored {
                // Fan-out being gone (shutdown) must not fail the state machine.
                let _ = tx.send(a).await;
            }
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        StateMachine {
            db: self.db.clone(),
            slot: self.slot,
            snapshot_path: self.snapshot_path.clone(),
            applied_tx: None,
            installs: None,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(&mut self, meta: &Meta, snapshot: Box<Cursor<Vec<u8>>>) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let pairs: Vec<(Vec<u8>, Vec<u8>)> =
            super::decode("snapshot", &data).map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let cf = self.db.cf(CF_SM).map_err(sm_write)?;
        let mut batch = WriteBatch::default();
        for tag in keys::DATA_TAGS {
            let (start, end) = keys::slot_range(tag, self.slot);
            batch.delete_range_cf(cf, start, end);
        }
        for (k, v) in pairs {
            batch.put_cf(cf, k, v);
        }
        batch.put_cf(cf, keys::applied(self.slot), super::encode(&meta.last_log_id));
        batch.put_cf(cf, keys::membership(self.slot), super::encode(&meta.last_membership));
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.db.db.write_opt(batch, &opts).map_err(sm_write)?;
        if let Some(c) = &self.installs {
            c.inc();
        }
        tracing::info!(last_log_id = ?meta.last_log_id, bytes = data.len(), "installed snapshot");
        self.save_snapshot_file(meta, &data).map_err(snap_write)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let raw = match std::fs::read(&self.snapshot_path) {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageIOError::read_snapshot(None, &e).into()),
        };
        let (meta, data): (Meta, Vec<u8>) =
            super::decode("snapshot file", &raw).map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(Some(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}

/// Unique across groups: the position in the group's log, then the group in the low 12 bits.
fn message_id(index: u64, pos: usize, slot: u16) -> i64 {
    (((index * MAX_BATCH as u64 + pos as u64) << 12) | u64::from(slot)) as i64
}
