//! Who is online where: soft state announced by edges, never in raft. A link that closes takes its
//! sessions with it; a link that (re)connects sends a full snapshot.

use std::collections::HashMap;
use std::sync::Mutex;
use tern_shared::link::{EdgeAddrs, LinkFrame, SessionInfo};
use tern_shared::proto::Reason;
use tokio::sync::mpsc;

/// One online session of a uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRef {
    pub edge_id: String,
    pub session: u64,
    pub device_flag: u8,
}

struct EdgeEntry {
    link_no: u64,
    tx: mpsc::Sender<LinkFrame>,
    addrs: EdgeAddrs,
    sessions: HashMap<u64, SessionInfo>,
    /// The edge's last report (edges of link version 7).
    report: Option<EdgeReport>,
}

/// What an edge last reported about itself (`LinkFrame::LinkReport`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgeReport {
    /// Round trip of its link to this node, in microseconds.
    pub micros: u64,
    /// Round trip of its presence link to each core node, by node id.
    pub by_node: Vec<(u64, u64)>,
    /// Client connections accepted since the edge started.
    pub connects: u64,
}

#[derive(Default)]
struct Inner {
    next_link: u64,
    edges: HashMap<String, EdgeEntry>,
    by_uid: HashMap<String, Vec<SessionRef>>,
}

#[derive(Default)]
pub struct Presence {
    inner: Mutex<Inner>,
}

impl Inner {
    fn drop_session(&mut self, edge_id: &str, session: u64) -> Option<SessionInfo> {
        let info = self.edges.get_mut(edge_id)?.sessions.remove(&session)?;
        if let Some(list) = self.by_uid.get_mut(&info.uid) {
            list.retain(|s| !(s.edge_id == edge_id && s.session == session));
            if list.is_empty() {
                self.by_uid.remove(&info.uid);
            }
        }
        Some(info)
    }

    fn drop_edge_sessions(&mut self, edge_id: &str) -> Vec<SessionInfo> {
        let ids: Vec<u64> = self.edges.get(edge_id).map(|e| e.sessions.keys().copied().collect()).unwrap_or_default();
        ids.into_iter().filter_map(|id| self.drop_session(edge_id, id)).collect()
    }
}

impl Presence {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a link from `edge_id`; a previous link of the same edge is replaced.
    pub fn register_edge(&self, edge_id: &str, addrs: EdgeAddrs, tx: mpsc::Sender<LinkFrame>) -> u64 {
        let mut g = self.lock();
        g.drop_edge_sessions(edge_id);
        g.next_link += 1;
        let link_no = g.next_link;
        g.edges.insert(edge_id.to_string(), EdgeEntry { link_no, tx, addrs, sessions: HashMap::new(), report: None });
        link_no
    }

    /// Forgets an edge when its link `link_no` closes (a newer link of the same edge is kept).
    /// The edge's presence link `link_no` closed: its sessions are forgotten (and returned) unless a
    /// newer link of the edge has taken over.
    pub fn unregister_edge(&self, edge_id: &str, link_no: u64) -> Vec<SessionInfo> {
        let mut g = self.lock();
        if g.edges.get(edge_id).is_none_or(|e| e.link_no != link_no) {
            return Vec::new();
        }
        let dropped = g.drop_edge_sessions(edge_id);
        g.edges.remove(edge_id);
        dropped
    }

    pub fn has_session(&self, edge_id: &str, session: u64) -> bool {
        self.lock().edges.get(edge_id).is_some_and(|e| e.sessions.contains_key(&session))
    }

    /// Records a new session and replaces older ones of the same uid and device flag, WuKongIM's rules:
    /// a master-level login (device_level 1) replaces them all, a slave-level one only those of the
    /// same `device_id` (a reconnecting device whose old connection lingers). They are returned with
    /// the frames that kick them.
    pub fn open(&self, edge_id: &str, info: SessionInfo) -> Vec<(mpsc::Sender<LinkFrame>, LinkFrame)> {
        self.insert(edge_id, info, true)
    }

    fn insert(&self, edge_id: &str, info: SessionInfo, replace: bool) -> Vec<(mpsc::Sender<LinkFrame>, LinkFrame)> {
        let mut g = self.lock();
        // Announcements may repeat (a session opened while a reconnect snapshot was in flight).
        g.drop_session(edge_id, info.session);
        let mut kicks = Vec::new();
        let replaces = replace && (info.device_level == 1 || !info.device_id.is_empty());
        let older: Vec<SessionRef> = if !replaces {
            Vec::new()
        } else {
            g.by_uid
                .get(&info.uid)
                .map(|l| l.iter().filter(|s| s.device_flag == info.device_flag).cloned().collect())
                .unwrap_or_default()
        };
        for old in older {
            let device = g.edges.get(&old.edge_id).and_then(|e| e.sessions.get(&old.session)).map(|s| &s.device_id);
            let same_device = !info.device_id.is_empty() && device == Some(&info.device_id);
            if info.device_level != 1 && !same_device {
                continue;
            }
            g.drop_session(&old.edge_id, old.session);
            if let Some(e) = g.edges.get(&old.edge_id) {
                let reason = if same_device {
                    "replaced by a new connection of this device"
                } else {
                    "logged in on another device"
                };
                let frame = LinkFrame::Kick {
                    session: old.session,
                    reason_code: Reason::ConnectKick.code(),
                    reason: reason.into(),
                };
                kicks.push((e.tx.clone(), frame));
            }
        }
        let Some(edge) = g.edges.get_mut(edge_id) else { return kicks };
        let r = SessionRef { edge_id: edge_id.to_string(), session: info.session, device_flag: info.device_flag };
        let uid = info.uid.clone();
        edge.sessions.insert(info.session, info);
        g.by_uid.entry(uid).or_default().push(r);
        kicks
    }

    /// Forgets a session; what it was, if it was known.
    pub fn close(&self, edge_id: &str, session: u64) -> Option<SessionInfo> {
        self.lock().drop_session(edge_id, session)
    }

    /// Replaces everything known about an edge's sessions (the first chunk of its snapshot).
    pub fn replace_all(&self, edge_id: &str, sessions: Vec<SessionInfo>) {
        self.lock().drop_edge_sessions(edge_id);
        self.add_all(edge_id, sessions);
    }

    /// Adds sessions of an edge's snapshot after its first chunk.
    pub fn add_all(&self, edge_id: &str, sessions: Vec<SessionInfo>) {
        for info in sessions {
            // Sessions of a snapshot were already admitted: no kicks among them.
            self.insert(edge_id, info, false);
        }
    }

    pub fn sessions_of(&self, uid: &str) -> Vec<SessionRef> {
        self.lock().by_uid.get(uid).cloned().unwrap_or_default()
    }

    pub fn link_of(&self, edge_id: &str) -> Option<mpsc::Sender<LinkFrame>> {
        self.lock().edges.get(edge_id).map(|e| e.tx.clone())
    }

    /// Sessions of `uid` with a given device flag.
    pub fn device_sessions(&self, uid: &str, device_flag: u8) -> Vec<SessionRef> {
        self.sessions_of(uid).into_iter().filter(|s| s.device_flag == device_flag).collect()
    }

    pub fn edge_addrs(&self) -> Vec<(String, EdgeAddrs)> {
        let g = self.lock();
        let mut v: Vec<_> = g.edges.iter().map(|(id, e)| (id.clone(), e.addrs.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Sessions per edge id, and the edge's last report.
    pub fn edge_stats(&self) -> std::collections::BTreeMap<String, (usize, Option<EdgeReport>)> {
        self.lock().edges.iter().map(|(id, e)| (id.clone(), (e.sessions.len(), e.report.clone()))).collect()
    }

    pub fn set_report(&self, edge_id: &str, report: EdgeReport) {
        if let Some(e) = self.lock().edges.get_mut(edge_id) {
            e.report = Some(report);
        }
    }

    pub fn counts(&self) -> (usize, usize) {
        let g = self.lock();
        (g.edges.len(), g.edges.values().map(|e| e.sessions.len()).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(session: u64, uid: &str, flag: u8, level: u8) -> SessionInfo {
        SessionInfo { session, uid: uid.into(), device_flag: flag, device_level: level, ..Default::default() }
    }

    #[test]
    fn a_slave_login_replaces_only_its_own_device_s_older_session() {
        let p = Presence::default();
        let (tx, _rx) = mpsc::channel(8);
        p.register_edge("e1", EdgeAddrs::default(), tx);
        let on = |session, device: &str| SessionInfo { device_id: device.into(), ..info(session, "a", 0, 0) };
        assert!(p.open("e1", on(1, "phone")).is_empty());
        assert!(p.open("e1", on(2, "tablet")).is_empty(), "another device stays");
        let kicks = p.open("e1", on(3, "phone"));
        assert!(matches!(&kicks[..], [(_, LinkFrame::Kick { session: 1, reason_code: 12, .. })]), "{kicks:?}");
        let mut left: Vec<u64> = p.sessions_of("a").iter().map(|s| s.session).collect();
        left.sort();
        assert_eq!(left, vec![2, 3]);
    }

    #[test]
    fn master_login_kicks_same_device_only() {
        let p = Presence::default();
        let (tx, _rx) = mpsc::channel(8);
        let link = p.register_edge("e1", EdgeAddrs::default(), tx);
        assert!(p.open("e1", info(1, "a", 0, 1)).is_empty());
        assert!(p.open("e1", info(2, "a", 1, 1)).is_empty());
        let kicks = p.open("e1", info(3, "a", 0, 1));
        assert_eq!(kicks.len(), 1);
        assert!(matches!(kicks[0].1, LinkFrame::Kick { session: 1, reason_code: 12, .. }));
        let mut left: Vec<u64> = p.sessions_of("a").iter().map(|s| s.session).collect();
        left.sort();
        assert_eq!(left, vec![2, 3]);
        p.unregister_edge("e1", link + 1);
        assert_eq!(p.sessions_of("a").len(), 2, "a stale link id must not drop the newer link");
        p.unregister_edge("e1", link);
        assert!(p.sessions_of("a").is_empty());
    }
}
