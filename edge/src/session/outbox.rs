//! Frames waiting to be written to one client. Empty, it holds no allocation, and it needs no task of
//! its own: the link pushes and notifies, the session's task writes.

use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::Notify;

#[derive(Default)]
pub struct Outbox {
    state: Mutex<State>,
    notify: Notify,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Bytes>,
    /// A last frame (DISCONNECT) to write before closing.
    close: Option<Bytes>,
    overflowed: bool,
}

/// What the session should do next.
pub enum Drained {
    Frames(VecDeque<Bytes>),
    /// Write these, then the closing frame, then close.
    Close(VecDeque<Bytes>, Bytes),
    /// The client let its queue fill up.
    Overflowed,
}

impl Outbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a frame; returns false (and marks the client too slow) if `limit` frames are already waiting.
    pub fn push(&self, frame: Bytes, limit: usize) -> bool {
        let mut s = self.lock();
        if s.overflowed || s.frames.len() >= limit {
            s.overflowed = true;
            drop(s);
            self.notify.notify_one();
            return false;
        }
        s.frames.push_back(frame);
        drop(s);
        self.notify.notify_one();
        true
    }

    /// Queues an answer to the client's own request (SENDACK). Not counted against the limit: these are
    /// bounded by what the client sends, and a client that sends without reading is closed by the write
    /// timeout.
    pub fn push_reply(&self, frame: Bytes) {
        self.lock().frames.push_back(frame);
        self.notify.notify_one();
    }

    /// Asks the session to write `frame` after what is queued and close.
    pub fn close_with(&self, frame: Bytes) {
        self.lock().close = Some(frame);
        self.notify.notify_one();
    }

    /// Waits until something was pushed (a push before the wait is not lost).
    pub async fn ready(&self) {
        self.notify.notified().await;
    }

    pub fn drain(&self) -> Drained {
        let mut s = self.lock();
        if s.overflowed {
            return Drained::Overflowed;
        }
        let frames = std::mem::take(&mut s.frames);
        match s.close.take() {
            Some(last) => Drained::Close(frames, last),
            None => Drained::Frames(frames),
        }
    }
}
