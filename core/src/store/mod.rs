//! RocksDB storage: the raft log, raft metadata and the state machine live in one database, in three
//! column families, so one WAL orders all of them.

pub mod apply;
pub mod keys;
pub mod log_store;
pub mod model;
pub mod reads;
pub mod snapshot_file;
pub mod state_machine;
pub mod wal_sync;

use rocksdb::{ColumnFamilyDescriptor, Options, DB};
use std::path::Path;
use std::sync::Arc;

pub const CF_LOG: &str = "log";
pub const CF_META: &str = "meta";
pub const CF_SM: &str = "sm";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt record under {what}: {source}")]
    Corrupt { what: &'static str, source: bincode::Error },
    #[error("column family {0} is missing")]
    MissingCf(&'static str),
    #[error("corrupt {0}: expected 8 bytes")]
    BadNumber(&'static str),
    #[error("`slots` is {configured} but this data dir was created with {recorded}; the slot count is fixed when a cluster is created")]
    SlotsChanged { recorded: u16, configured: u16 },
    #[error("cannot start the WAL sync thread: {0}")]
    Thread(std::io::Error),
}

/// A big-endian u64 stored as a key or value (log indexes, channel seqs).
pub(crate) fn decode_u64(what: &'static str, bytes: &[u8]) -> Result<u64, StoreError> {
    bytes.try_into().map(u64::from_be_bytes).map_err(|_| StoreError::BadNumber(what))
}

/// The shared database handle.
#[derive(Clone)]
pub struct Db {
    pub(crate) db: Arc<DB>,
    pub slots: u16,
    pub(crate) wal: Arc<wal_sync::WalSync>,
}

impl Db {
    pub fn open(path: &Path, slots: u16) -> Result<Db, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // Most state-machine reads miss (dedup keys, first messages of a channel): a bloom filter over the
        // memtable answers those without walking its skiplist, which profiles showed as the top cost.
        let mut sm = Options::default();
        sm.set_memtable_whole_key_filtering(true);
        sm.set_memtable_prefix_bloom_ratio(0.1);
        let cfs = [(CF_LOG, Options::default()), (CF_META, Options::default()), (CF_SM, sm)]
            .map(|(name, opts)| ColumnFamilyDescriptor::new(name, opts));
        let db = Arc::new(DB::open_cf_descriptors(&opts, path, cfs)?);
        let meta = db.cf_handle(CF_META).ok_or(StoreError::MissingCf(CF_META))?;
        match db.get_cf(meta, keys::CLUSTER)? {
            Some(raw) => {
                let recorded: u16 = decode("cluster record", &raw)?;
                if recorded != slots {
                    return Err(StoreError::SlotsChanged { recorded, configured: slots });
                }
            }
            None => {
                let mut o = rocksdb::WriteOptions::default();
                o.set_sync(true);
                db.put_cf_opt(meta, keys::CLUSTER, encode(&slots), &o)?;
            }
        }
        let wal = Arc::new(wal_sync::WalSync::start(db.clone()).map_err(StoreError::Thread)?);
        Ok(Db { db, slots, wal })
    }

    pub(crate) fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db.cf_handle(name).ok_or(StoreError::MissingCf(name))
    }

    pub fn wal_syncs(&self) -> &prometheus::IntCounter {
        &self.wal.syncs
    }

    /// Approximate on-disk size of live data, for metrics.
    pub fn live_size(&self) -> u64 {
        self.db.property_int_value("rocksdb.total-sst-files-size").ok().flatten().unwrap_or(0)
    }
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    bincode::deserialize(bytes).map_err(|source| StoreError::Corrupt { what, source })
}

pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serializing plain structs into a Vec cannot fail.
    bincode::serialize(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_dir_keeps_the_slot_count_it_was_created_with() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        drop(Db::open(&path, 16).unwrap());
        let e = Db::open(&path, 8).err().expect("another slot count is refused");
        assert!(e.to_string().contains("`slots` is 8") && e.to_string().contains("created with 16"), "{e}");
        assert_eq!(Db::open(&path, 16).unwrap().slots, 16);
    }
}
