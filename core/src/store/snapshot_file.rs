//! A group's snapshot as a file, written and read as a stream so that neither building, sending nor
//! installing one holds it in memory. An install writes the slot in batches of `INSTALL_BATCH`
//! bytes; a crash part way leaves a marker, and the next start installs the kept file again.
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

/// An install writes the data in RocksDB batches of about this size.
const INSTALL_BATCH: usize = 16 << 20;

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

/// Replaces `slot`'s state with the snapshot in `file` (read from its start), as `meta` describes it,
/// and keeps the file at `keep` as this node's latest snapshot. A bad file changes nothing. Returns
/// the bytes of data installed.
pub fn install(db: &Db, slot: u16, meta: &Meta, file: &mut File, keep: &Path) -> io::Result<u64> {
    check(slot, file)?;
    // From here a crash is finished at the next start (`recover`): the marker first, then the file
    // the marker names, then the data.
    put_synced(db, &keys::installing(slot), meta.snapshot_id.as_bytes())?;
    keep_copy(file, keep)?;
    write_data(db, slot, meta, file, INSTALL_BATCH)
}

/// Finishes an install a crash interrupted: if the marker names the snapshot kept at `keep`, its data
/// may be half written and is written again; otherwise the crash came before any data was touched.
pub fn recover(db: &Db, slot: u16, keep: &Path) -> io::Result<()> {
    let cf = db.cf(CF_SM).map_err(store_err)?;
    let Some(id) = db.db.get_cf(cf, keys::installing(slot)).map_err(io::Error::other)? else {
        return Ok(());
    };
    let kept = match File::open(keep) {
        Ok(mut f) => Some((read_meta(&mut BufReader::new(&mut f))?, f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    match kept {
        Some((meta, mut f)) if meta.snapshot_id.as_bytes() == id.as_slice() => {
            tracing::warn!(slot, snapshot = %meta.snapshot_id, "finishing a snapshot install a crash interrupted");
            write_data(db, slot, &meta, &mut f, INSTALL_BATCH)?;
        }
        _ => {
            let mut opts = WriteOptions::default();
            opts.set_sync(true);
            db.db.delete_cf_opt(cf, keys::installing(slot), &opts).map_err(io::Error::other)?;
        }
    }
    Ok(())
}

/// Reads `file` through, checking that it is whole and holds only keys of `slot`.
fn check(slot: u16, file: &mut File) -> io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    for_each_field(&mut BufReader::with_capacity(1 << 20, file), slot, |_, _| Ok(()))
}

/// Calls `f` with every key and value of the snapshot `r` reads (after its meta); an error for a
/// truncated or oversized field or a key outside `slot`.
fn for_each_field(
    r: &mut impl Read,
    slot: u16,
    mut f: impl FnMut(Vec<u8>, Vec<u8>) -> io::Result<()>,
) -> io::Result<()> {
    read_meta(r)?;
    while let Some(k) = read_field(r, MAX_KEY, "snapshot key")? {
        let v =
            read_field(r, MAX_VALUE, "snapshot value")?.ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        // A key of another slot would overwrite a group this snapshot does not own.
        if k.len() < 3 || !keys::DATA_TAGS.contains(&k[0]) || k[1..3] != slot.to_be_bytes() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "snapshot key outside its slot"));
        }
        f(k, v)?;
    }
    Ok(())
}

/// Clears `slot`'s data and writes the snapshot's in batches of about `batch_bytes`; the last batch
/// sets the applied position and membership and clears the install marker, synced.
fn write_data(db: &Db, slot: u16, meta: &Meta, file: &mut File, batch_bytes: usize) -> io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let cf = db.cf(CF_SM).map_err(store_err)?;
    let mut batch = WriteBatch::default();
    for tag in keys::DATA_TAGS {
        let (start, end) = keys::slot_range(tag, slot);
        batch.delete_range_cf(cf, start, end);
    }
    let mut bytes = 0u64;
    for_each_field(&mut BufReader::with_capacity(1 << 20, file), slot, |k, v| {
        bytes += (k.len() + v.len()) as u64;
        batch.put_cf(cf, k, v);
        if batch.size_in_bytes() >= batch_bytes {
            db.db.write(std::mem::take(&mut batch)).map_err(io::Error::other)?;
        }
        Ok(())
    })?;
    batch.put_cf(cf, keys::applied(slot), super::encode(&meta.last_log_id));
    batch.put_cf(cf, keys::membership(slot), super::encode(&meta.last_membership));
    batch.delete_cf(cf, keys::installing(slot));
    let mut opts = WriteOptions::default();
    opts.set_sync(true);
    db.db.write_opt(batch, &opts).map_err(io::Error::other)?;
    Ok(bytes)
}

fn put_synced(db: &Db, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut opts = WriteOptions::default();
    opts.set_sync(true);
    db.db.put_cf_opt(db.cf(CF_SM).map_err(store_err)?, key, value, &opts).map_err(io::Error::other)
}

/// Copies the snapshot in `file` (from its start) to `path`, through a temporary file renamed into
/// place; the rename is made durable before any data is installed from the copy.
fn keep_copy(file: &mut File, path: &Path) -> io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    let tmp = path.with_extension("tmp");
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
    io::copy(file, &mut w)?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path)?;
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
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
        let kept = dir.path().join("kept.snap");
        install(&to, 3, &meta, &mut File::open(&path).unwrap(), &kept).unwrap();
        assert_eq!(std::fs::read(&kept).unwrap(), std::fs::read(&path).unwrap());
        assert_eq!(get_raw(&to, &keys::installing(3)), None);
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
        let kept = dir.path().join("kept.snap");
        for (what, bytes) in [("truncated", &good[..good.len() - 2]), ("foreign key", &foreign[..]), ("huge", &huge)] {
            std::fs::write(&bad, bytes).unwrap();
            assert!(install(&to, 3, &meta, &mut File::open(&bad).unwrap(), &kept).is_err(), "{what}");
            assert_eq!(get_raw(&to, &mine.message(5)).as_deref(), Some(&b"before"[..]), "{what}");
            assert!(!kept.exists() && get_raw(&to, &keys::installing(3)).is_none(), "{what}");
        }
    }

    /// A snapshot of 300 messages of 1 KiB in slot 3, and a receiver holding a stale message there.
    struct Fixture {
        dir: tempfile::TempDir,
        ch: ChannelKeys,
        path: std::path::PathBuf,
        meta: Meta,
        to: Db,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let ch = channel_in(3);
        let from = db(&dir.path().join("from"));
        for i in 1..=300 {
            put_raw(&from, &ch.message(i), &[i as u8; 1024]);
        }
        let last = LogId::<NodeId>::new(openraft::CommittedLeaderId::new(1, 1), 300);
        put_raw(&from, &keys::applied(3), &super::super::encode(&Some(last)));
        let path = dir.path().join("3.snap");
        let meta = write(&from, 3, &path).unwrap();
        let to = db(&dir.path().join("to"));
        put_raw(&to, &ch.message(999), b"stale");
        Fixture { dir, ch, path, meta, to }
    }

    fn applied(db: &Db) -> Option<LogId<NodeId>> {
        super::super::decode("applied", &get_raw(db, &keys::applied(3)).unwrap()).unwrap()
    }

    #[test]
    fn data_goes_in_in_batches() {
        let Fixture { dir: _dir, ch, path, meta, to } = fixture();
        // 300 KiB in batches of 16 KiB.
        write_data(&to, 3, &meta, &mut File::open(&path).unwrap(), 16 << 10).unwrap();
        assert!((1..=300).all(|i| get_raw(&to, &ch.message(i)).is_some_and(|v| v == [i as u8; 1024])));
        assert_eq!(get_raw(&to, &ch.message(999)), None);
        assert_eq!(applied(&to), meta.last_log_id);
    }

    #[test]
    fn an_install_cut_short_is_finished_at_the_next_start_and_one_not_begun_is_forgotten() {
        let Fixture { dir, ch, path, meta, to } = fixture();
        // What a crash part way through `install` leaves: the marker, the kept file, some data.
        let kept = dir.path().join("kept.snap");
        put_synced(&to, &keys::installing(3), meta.snapshot_id.as_bytes()).unwrap();
        keep_copy(&mut File::open(&path).unwrap(), &kept).unwrap();
        put_raw(&to, &ch.message(1), &[1u8; 1024]);
        recover(&to, 3, &kept).unwrap();
        assert!((1..=300).all(|i| get_raw(&to, &ch.message(i)).is_some()));
        assert_eq!(get_raw(&to, &ch.message(999)), None);
        assert_eq!((applied(&to), get_raw(&to, &keys::installing(3))), (meta.last_log_id, None));

        // A marker naming another snapshot than the kept one: the crash came before the copy, so
        // no data was touched and the marker goes.
        put_raw(&to, &ch.message(999), b"later write");
        put_synced(&to, &keys::installing(3), b"3-999-0").unwrap();
        recover(&to, 3, &kept).unwrap();
        assert_eq!(get_raw(&to, &keys::installing(3)), None);
        assert_eq!(get_raw(&to, &ch.message(999)).as_deref(), Some(&b"later write"[..]));
    }
}
