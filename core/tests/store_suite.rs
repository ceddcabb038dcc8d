//! openraft's storage conformance suite against the RocksDB log store and state machine.

use openraft::testing::{StoreBuilder, Suite};
use tempfile::TempDir;
use tern_core::raft::{StorageError, TypeConfig};
use tern_core::store::{log_store::LogStore, state_machine::StateMachine, Db};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().map_err(|e| openraft::StorageIOError::write(&e))?;
        let db = Db::open(&dir.path().join("db"), 64).map_err(|e| openraft::StorageIOError::write(&e))?;
        // A group other than the first, so keys must carry their slot.
        let sm = StateMachine::new(db.clone(), 5, dir.path().join("snapshot.bin"), None).expect("state machine");
        Ok((dir, LogStore::new(db, 5), sm))
    }
}

#[test]
fn openraft_storage_suite() {
    if let Err(e) = Suite::test_all(Builder) {
        panic!("storage suite failed: {e}");
    }
}
