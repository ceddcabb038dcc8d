//! Group commit of raft log appends across raft groups. An append writes its entries at once (so they
//! can be read back) without syncing and leaves openraft's flush callback here; one thread syncs the WAL
//! for everything written before it started and then completes every callback that was waiting. Under
//! load one fsync covers many groups' appends.

use crate::raft::TypeConfig;
use openraft::storage::LogFlushed;
use rocksdb::DB;
use std::sync::mpsc;
use std::sync::Arc;

/// After a sync that covered several appends (the log is busy), how long to let more gather before the
/// next: fewer, fuller syncs. A lone append is synced at once.
const LINGER: std::time::Duration = std::time::Duration::from_micros(300);

pub struct WalSync {
    /// WAL syncs done (`tern_core_wal_syncs_total`): commits per sync shows how well they group.
    pub syncs: prometheus::IntCounter,
    tx: Option<mpsc::Sender<LogFlushed<TypeConfig>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WalSync {
    pub fn start(db: Arc<DB>) -> std::io::Result<WalSync> {
        let (tx, rx) = mpsc::channel::<LogFlushed<TypeConfig>>();
        let syncs = prometheus::IntCounter::new("wal_syncs_total", "Syncs of the write-ahead log (fsyncs)")
            .map_err(std::io::Error::other)?;
        let counted = syncs.clone();
        let thread = std::thread::Builder::new().name("wal-sync".into()).spawn(move || {
            let mut busy = false;
            while let Ok(first) = rx.recv() {
                if busy {
                    std::thread::sleep(LINGER);
                }
                let waiting: Vec<_> = std::iter::once(first).chain(rx.try_iter()).collect();
                busy = waiting.len() > 1;
                let synced = db.flush_wal(true).map_err(|e| e.to_string());
                counted.inc();
                for callback in waiting {
                    callback.log_io_completed(synced.clone().map_err(std::io::Error::other));
                }
            }
        })?;
        Ok(WalSync { syncs, tx: Some(tx), thread: Some(thread) })
    }

    /// Completes `callback` once everything written so far is on disk.
    pub fn after_sync(&self, callback: LogFlushed<TypeConfig>) {
        let Some(tx) = &self.tx else { return };
        if let Err(mpsc::SendError(callback)) = tx.send(callback) {
            callback.log_io_completed(Err(std::io::Error::other("the WAL sync thread is gone")));
        }
    }
}

impl Drop for WalSync {
    /// Ends the thread and waits for it, so the database it holds is closed once the last `Db` is gone.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
