//! Frames waiting to be written to one client. Empty, it holds no allocation, and it needs no task of
//! its own: the link pushes and notifies, the session's task writes. It also keeps each RECV until the
//! client's RECVACK: one not acked in time is written again, and a client that does not ack after the
//! resends, or lets too many wait, is closed so that it resyncs by seq rather than miss messages.

use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};
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
    /// RECVs written or queued and not acked yet, by message id.
    unacked: BTreeMap<i64, Unacked>,
}

struct Unacked {
    frame: Bytes,
    due: Instant,
    resends: u32,
}

/// When unacked RECVs are written again, and how often.
#[derive(Debug, Clone, Copy)]
pub struct Resend {
    pub after: Duration,
    pub times: u32,
}

/// A client that did not ack a RECV after every resend.
#[derive(Debug, PartialEq, Eq)]
pub struct NotAcked(pub i64);

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

    /// Queues a RECV and keeps it until acked; `limit` bounds the frames waiting and the RECVs unacked.
    pub fn push_recv(&self, message_id: i64, frame: Bytes, limit: usize, now: Instant, resend: Resend) -> bool {
        let mut s = self.lock();
        if s.unacked.len() >= limit && !s.unacked.contains_key(&message_id) {
            s.overflowed = true;
            drop(s);
            self.notify.notify_one();
            return false;
        }
        s.unacked.insert(message_id, Unacked { frame: frame.clone(), due: now + resend.after, resends: 0 });
        drop(s);
        self.push(frame, limit)
    }

    /// The client acked a RECV.
    pub fn acked(&self, message_id: i64) {
        self.lock().unacked.remove(&message_id);
    }

    /// Queues again every RECV whose ack is overdue at `now`; the first that has been resent
    /// `resend.times` already ends the session.
    pub fn resend_due(&self, now: Instant, resend: Resend) -> Result<usize, NotAcked> {
        let mut s = self.lock();
        let mut again = Vec::new();
        for (id, u) in s.unacked.iter_mut().filter(|(_, u)| u.due <= now) {
            if u.resends >= resend.times {
                return Err(NotAcked(*id));
            }
            u.resends += 1;
            u.due = now + resend.after;
            again.push(u.frame.clone());
        }
        let n = again.len();
        s.frames.extend(again);
        drop(s);
        if n > 0 {
            self.notify.notify_one();
        }
        Ok(n)
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

#[cfg(test)]
mod tests {
    use super::*;

    const RESEND: Resend = Resend { after: Duration::from_secs(10), times: 2 };

    fn frames(o: &Outbox) -> usize {
        match o.drain() {
            Drained::Frames(f) => f.len(),
            _ => usize::MAX,
        }
    }

    #[test]
    fn an_unacked_recv_is_written_again_then_ends_the_session() {
        let (o, t0) = (Outbox::default(), Instant::now());
        assert!(o.push_recv(7, Bytes::from_static(b"r7"), 8, t0, RESEND));
        assert!(o.push_recv(8, Bytes::from_static(b"r8"), 8, t0, RESEND));
        assert_eq!(frames(&o), 2);
        o.acked(8);
        assert_eq!(o.resend_due(t0 + Duration::from_secs(9), RESEND), Ok(0));
        assert_eq!(o.resend_due(t0 + Duration::from_secs(10), RESEND), Ok(1));
        assert_eq!(frames(&o), 1);
        assert_eq!(o.resend_due(t0 + Duration::from_secs(15), RESEND), Ok(0), "the next one is due 10 s after");
        assert_eq!(o.resend_due(t0 + Duration::from_secs(20), RESEND), Ok(1));
        assert_eq!(o.resend_due(t0 + Duration::from_secs(30), RESEND), Err(NotAcked(7)));
        o.acked(7);
        assert_eq!(o.resend_due(t0 + Duration::from_secs(40), RESEND), Ok(0));
    }

    #[test]
    fn too_many_unacked_recvs_overflow() {
        let (o, t0) = (Outbox::default(), Instant::now());
        for id in 0..4 {
            assert!(o.push_recv(id, Bytes::from_static(b"r"), 4, t0, RESEND));
            let _ = o.drain();
        }
        assert!(!o.push_recv(9, Bytes::from_static(b"r"), 4, t0, RESEND));
        assert!(matches!(o.drain(), Drained::Overflowed));
    }
}
