//! openraft state machine of one raft group (one slot) on the `sm` column family. Applying an entry
//! writes its effects and the new applied log id in one RocksDB batch, so a crash leaves either all of
//! an entry or none of it. A snapshot is the slot's key ranges, in a file (`snapshot_file.rs`).

use super::apply::{apply_command, Applied, Overlay, MAX_BATCH};
use super::{keys, snapshot_file, Db, StoreError, CF_SM};
use crate::raft::{BatchResult, CommandResult, NodeId, StorageError, TypeConfig};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, StorageIOError, StoredMembership,
};
use rocksdb::{WriteBatch, WriteOptions};
use std::io::{Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tern_shared::proto::Reason;
use tokio::sync::mpsc;

type Membership = StoredMembership<NodeId, BasicNode>;
use snapshot_file::Meta;

pub struct StateMachine {
    db: Db,
    slot: u16,
    /// The latest snapshot; one being received is written beside it (`.recv`) until installed.
    snapshot_path: PathBuf,
    /// Stored messages go here for fan-out, in apply order.
    applied_tx: Option<mpsc::Sender<Applied>>,
    installs: Option<prometheus::IntCounter>,
    /// Held while the snapshot file is written (a build runs beside installs), so an install's kept
    /// file is not replaced before its data is in.
    snapshot_file: Arc<Mutex<()>>,
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
fn snap_read(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_snapshot(None, &e).into()
}
fn joined(e: tokio::task::JoinError) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl StateMachine {
    /// The state machine of group `slot`, keeping its latest snapshot in `snapshot_path`; first
    /// finishes a snapshot install a crash interrupted.
    pub fn new(
        db: Db,
        slot: u16,
        snapshot_path: PathBuf,
        applied_tx: Option<mpsc::Sender<Applied>>,
    ) -> std::io::Result<Self> {
        snapshot_file::recover(&db, slot, &snapshot_path)?;
        Ok(StateMachine { db, slot, snapshot_path, applied_tx, installs: None, snapshot_file: Arc::default() })
    }

    fn lock_snapshot_file(lock: &Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
        lock.lock().unwrap_or_else(|e| e.into_inner())
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
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (db, slot, path, lock) =
            (self.db.clone(), self.slot, self.snapshot_path.clone(), self.snapshot_file.clone());
        // Off the async workers: a large slot takes seconds to write out.
        let (meta, file) = tokio::task::spawn_blocking(move || {
            let _file = Self::lock_snapshot_file(&lock);
            let meta = snapshot_file::write(&db, slot, &path)?;
            Ok::<_, std::io::Error>((meta, std::fs::File::open(&path)?))
        })
        .await
        .map_err(joined)
        .and_then(|r| r)
        .map_err(snap_write)?;
        Ok(Snapshot { meta, snapshot: Box::new(tokio::fs::File::from_std(file)) })
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
            snapshot_file: self.snapshot_file.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let file = tokio::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.snapshot_path.with_extension("recv"))
            .await
            .map_err(snap_write)?;
        Ok(Box::new(file))
    }

    async fn install_snapshot(&mut self, meta: &Meta, snapshot: Box<tokio::fs::File>) -> Result<(), StorageError> {
        let read_err = |e: std::io::Error| StorageIOError::read_snapshot(Some(meta.signature()), &e);
        let mut file = snapshot.into_std().await;
        file.seek(SeekFrom::Start(0)).map_err(read_err)?;
        let (db, slot, owned_meta, path) = (self.db.clone(), self.slot, meta.clone(), self.snapshot_path.clone());
        let lock = self.snapshot_file.clone();
        // The installed snapshot becomes this node's latest, to send on if it ever leads.
        let bytes = tokio::task::spawn_blocking(move || {
            let _file = Self::lock_snapshot_file(&lock);
            snapshot_file::install(&db, slot, &owned_meta, &mut file, &path)
        })
        .await
        .map_err(joined)
        .and_then(|r| r)
        .map_err(read_err)?;
        if let Some(c) = &self.installs {
            c.inc();
        }
        tracing::info!(slot = self.slot, last_log_id = ?meta.last_log_id, bytes, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let mut file = match std::fs::File::open(&self.snapshot_path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(snap_read(e)),
        };
        let meta = snapshot_file::read_meta(&mut std::io::BufReader::new(&mut file)).map_err(snap_read)?;
        file.seek(SeekFrom::Start(0)).map_err(snap_read)?;
        Ok(Some(Snapshot { meta, snapshot: Box::new(tokio::fs::File::from_std(file)) }))
    }
}

/// Unique across groups: the position in the group's log, then the group in the low 12 bits.
fn message_id(index: u64, pos: usize, slot: u16) -> i64 {
    (((index * MAX_BATCH as u64 + pos as u64) << 12) | u64::from(slot)) as i64
}
