//! A group's snapshot as a file, written and read as a stream so that neither building, sending nor
//! installing one holds it in memory (the install still gathers it into one RocksDB batch, so that a
//! crash leaves the old state or the new one):
//!
//! ```text
//! u32 BE meta length, meta (bincode SnapshotMeta)
//! then per key: u32 BE key length, key, u32 BE value length, value
//! ```

use super::{keys, Db, StoreError, CF_SM};
use crate::raft::NodeId;
use openraft::{BasicNode, LogId, SnapshotMeta, StoredMembership};
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom};
use std::path::Path;
use tern_shared::records::{read_field, write_field};

pub type Meta = SnapshotMeta<NodeId, BasicNode>;

/// Bounds on what a snapshot file may claim, so a corrupt one is an error, not an allocation.
const MAX_META: usize = 1 << 20;
const MAX_KEY: usize = 1 << 16;
const MAX_VALUE: usize = 256 << 20;

fn store_err(e: StoreError) -> io::Error {
    io::Error::other(e.to_string())
}

/// Writes `slot`'s state, as of one consistent RocksDB snapshot, to `path` (through a temporary file
/// renamed into place, so `path` always holds a whole snapshot). Returns its meta.
pub fn write(db: &Db, slot: u16, path: &Path) -> io::Result<Meta> {
    let snap = db.db.snapshot();
    let cf = db.cf(CF_SM).map_err(store_err)?;
    let get = |key: &[u8]| snap.get_cf(cf, key).map_err(io::Error::other);
    let applied: Option<LogId<NodeId>> = match get(&keys::applied(slot))? {
        Some(raw) => super::decode("applied", &raw).map_err(store_err)?,
        None => None,
    };
    let membership: StoredMembership<NodeId, BasicNode> = match get(&keys::membership(slot))? {
        Some(raw) => super::decode("membership", &raw).map_err(store_err)?,
        None => StoredMembership::default(),
    };
    let meta = Meta {
        snapshot_id: format!("{}-{}-{}", slot, applied.map_or(0, |l| l.index), tern_shared::client::now_ms()),
        last_log_id: applied,
        last_membership: membership,
    };
    let tmp = path.with_extension("tmp");
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
    write_field(&mut w, &super::encode(&meta))?;
    for tag in keys::DATA_TAGS {
        let (start, end) = keys::slot_range(tag, slot);
        for item in snap.iterator_cf(cf, IteratorMode::From(&start, Direction::Forward)) {
            let (k, v) = item.map_err(io::Error::other)?;
            if *k >= *end {
                break;
            }
            write_field(&mut w, &k)?;
            write_field(&mut w, &v)?;
        }
    }
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(meta)
}

/// The meta at the head of a snapshot file.
pub fn read_meta(r: &mut impl Read) -> io::Result<Meta> {
    let raw = read_field(r, MAX_META, "snapshot meta")?.ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
    super::decode("snapshot meta", &raw).map_err(store_err)
}

/// Replaces `slot`'s state with the snapshot read from `file` (from its start), as `meta` describes it,
/// in one synced batch. Returns the bytes of data installed.
pub fn install(db: &Db, slot: u16, meta: &Meta, file: &mut File) -> io::Result<u64> {
    let mut r = BufReader::with_capacity(1 << 20, file);
    read_meta(&mut r)?;
    let cf = db.cf(CF_SM).map_err(store_err)?;
    let mut batch = WriteBatch::default();
    for tag in keys::DATA_TAGS {
        let (start, end) = keys::slot_range(tag, slot);
        batch.delete_range_cf(cf, start, end);
    }
    let mut bytes = 0u64;
    while let Some(k) = read_field(&mut r, MAX_KEY, "snapshot key")? {
        let v = read_field(&mut r, MAX_VALUE, "snapshot value")?
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        // A key of another slot would overwrite a group this snapshot does not own.
        if k.len() < 3 || !keys::DATA_TAGS.contains(&k[0]) || k[1..3] != slot.to_be_bytes() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "snapshot key outside its slot"));
        }
        bytes += (k.len() + v.len()) as u64;
        batch.put_cf(cf, k, v);
    }
    batch.put_cf(cf, keys::applied(slot), super::encode(&meta.last_log_id));
    batch.put_cf(cf, keys::membership(slot), super::encode(&meta.last_membership));
    let mut opts = WriteOptions::default();
    opts.set_sync(true);
    db.db.write_opt(batch, &opts).map_err(io::Error::other)?;
    Ok(bytes)
}

/// Copies the snapshot in `file` (from its start) to `path`, through a temporary file renamed into place.
pub fn keep(file: &mut File, path: &Path) -> io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    let tmp = path.with_extension("tmp");
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
    io::copy(file, &mut w)?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::keys::ChannelKeys;

    fn db(dir: &Path) -> Db {
        Db::open(&dir.join("db"), 8).unwrap()
    }

    fn put_raw(db: &Db, k: &[u8], v: &[u8]) {
        db.db.put_cf(db.cf(CF_SM).unwrap(), k, v).unwrap();
    }

    fn get_raw(db: &Db, k: &[u8]) -> Option<Vec<u8>> {
        db.db.get_cf(db.cf(CF_SM).unwrap(), k).unwrap()
    }

    /// A channel of `slot`, found by trying names.
    fn channel_in(slot: u16) -> ChannelKeys {
        let name = (0..).map(|i| format!("g{i}")).find(|n| tern_shared::channel::slot_of(n, 8) == slot).unwrap();
        ChannelKeys::new(&name, 2, 8)
    }

    #[test]
    fn a_slot_travels_whole_and_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (db(&dir.path().join("a")), db(&dir.path().join("b")));
        let (mine, other) = (channel_in(3), channel_in(4));
        put_raw(&from, &mine.message(1), b"one");
        put_raw(&from, &mine.last_seq(), &1u64.to_be_bytes());
        put_raw(&from, &other.message(1), b"not in the snapshot");
        // The receiver's old state of slot 3 goes; its other slots stay.
        put_raw(&to, &mine.message(7), b"stale");
        put_raw(&to, &other.message(9), b"kept");
        let path = dir.path().join("3.snap");
        let meta = write(&from, 3, &path).unwrap();
        install(&to, 3, &meta, &mut File::open(&path).unwrap()).unwrap();
        assert_eq!(get_raw(&to, &mine.message(1)).as_deref(), Some(&b"one"[..]));
        assert_eq!(get_raw(&to, &mine.message(7)), None);
        assert_eq!(get_raw(&to, &other.message(9)).as_deref(), Some(&b"kept"[..]));
        assert_eq!(get_raw(&to, &other.message(1)), None);
    }

    #[test]
    fn a_bad_file_is_an_error_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (db(&dir.path().join("a")), db(&dir.path().join("b")));
        let mine = channel_in(3);
        put_raw(&from, &mine.message(1), b"one");
        put_raw(&to, &mine.message(5), b"before");
        let path = dir.path().join("3.snap");
        let meta = write(&from, 3, &path).unwrap();
        let good = std::fs::read(&path).unwrap();
        let bad = dir.path().join("bad.snap");
        let mut foreign = good[..good.len() - (mine.message(1).len() + 4 + 3 + 4)].to_vec();
        let key = channel_in(5).message(1);
        foreign.extend_from_slice(&(key.len() as u32).to_be_bytes());
        foreign.extend_from_slice(&key);
        foreign.extend_from_slice(&[0, 0, 0, 1, b'x']);
        let mut huge = good.clone();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        for (what, bytes) in [("truncated", &good[..good.len() - 2]), ("foreign key", &foreign[..]), ("huge", &huge)] {
            std::fs::write(&bad, bytes).unwrap();
            assert!(install(&to, 3, &meta, &mut File::open(&bad).unwrap()).is_err(), "{what}");
            assert_eq!(get_raw(&to, &mine.message(5)).as_deref(), Some(&b"before"[..]), "{what}");
        }
    }
}
