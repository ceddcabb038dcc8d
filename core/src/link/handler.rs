//! What a core node does with each frame an edge sends.

use crate::context::Core;
use crate::raft::Origin;
use crate::rules::send::{client_message, Outcome};
use std::sync::Arc;
use tern_shared::channel::valid_uid;
use tern_shared::link::{LinkFrame, OutgoingMessage, SessionInfo};
use tern_shared::proto::Reason;
use tern_shared::secret::session_proof;
use tokio::sync::mpsc;

/// Token hashes by uid and device flag, read once per snapshot chunk.
type TokenCache = std::collections::HashMap<String, Vec<(u8, Option<[u8; 32]>)>>;

#[derive(Clone)]
pub(super) struct LinkHandler {
    pub core: Arc<Core>,
    pub edge_id: String,
    pub tx: mpsc::Sender<LinkFrame>,
    /// Counts this link's SENDs under its lane.
    pub sends: prometheus::IntCounter,
    /// Payload bytes of this link's SENDs waiting for their commit (`link_send_budget`): past it the
    /// link is not read until some are answered, so one edge cannot fill the core's memory.
    pub budget: Arc<tokio::sync::Semaphore>,
}

impl LinkHandler {
    pub async fn handle(&self, frame: LinkFrame) {
        match frame {
            LinkFrame::LinkReport { micros, by_node, connects } => {
                self.core.presence.set_report(&self.edge_id, crate::presence::EdgeReport { micros, by_node, connects });
            }
            LinkFrame::Ping(nonce) => {
                let leaders = self
                    .core
                    .groups
                    .all()
                    .iter()
                    .map(|g| g.raft.metrics().borrow().current_leader.unwrap_or(0))
                    .collect();
                self.reply(LinkFrame::Pong { nonce, leaders }).await
            }
            LinkFrame::Auth { req, uid, device_flag, token } => {
                // Off the read loop: on a follower the check waits for the leader's read index.
                let (core, tx) = (self.core.clone(), self.tx.clone());
                tokio::spawn(async move {
                    let (reason, device_level) = check_token(&core, &uid, device_flag, &token).await;
                    let _ = tx.send(LinkFrame::AuthResult { req, reason: reason.code(), device_level }).await;
                });
            }
            LinkFrame::SessionOpen(info) => {
                if !self.proven_now(&info).await {
                    tracing::warn!(edge = %self.edge_id, uid = %info.uid, "session announced without a valid proof; ignored");
                    return;
                }
                let leads = self.core.groups.of(&info.uid).leads();
                let (uid, device_flag, session) = (info.uid.clone(), info.device_flag, info.session);
                let kicks = self.core.presence.open(&self.edge_id, info);
                // Every node hears every announcement; the leader of the uid's group alone kicks, so a
                // kick is sent once.
                if leads {
                    for (link, kick) in kicks {
                        let _ = link.try_send(kick);
                    }
                    self.core.online_event(&uid, device_flag, true, session).await;
                }
                self.update_gauge();
            }
            LinkFrame::SessionClose { session } => {
                if let Some(info) = self.core.presence.close(&self.edge_id, session) {
                    if self.core.groups.of(&info.uid).leads() {
                        self.core.online_event(&info.uid, info.device_flag, false, session).await;
                    }
                }
                self.update_gauge();
            }
            LinkFrame::PresenceSnapshot(sessions) => {
                let sessions = self.proven_snapshot(sessions).await;
                self.core.presence.replace_all(&self.edge_id, sessions);
                self.update_gauge();
            }
            LinkFrame::PresenceMore(sessions) => {
                let sessions = self.proven_snapshot(sessions).await;
                self.core.presence.add_all(&self.edge_id, sessions);
                self.update_gauge();
            }
            LinkFrame::Send { req, msg } => {
                self.sends.inc();
                self.send(req, msg).await
            }
            other => tracing::debug!(edge = %self.edge_id, frame = ?other, "unexpected frame from edge"),
        }
    }

    /// Whether the session's proof matches its uid's token as applied on this node.
    fn proven(&self, info: &SessionInfo) -> bool {
        self.proven_with(info, &mut TokenCache::new())
    }

    fn proven_with(&self, info: &SessionInfo, cache: &mut TokenCache) -> bool {
        let cached = cache.get(info.uid.as_str()).and_then(|flags| flags.iter().find(|(f, _)| *f == info.device_flag));
        let hash = match cached {
            Some((_, hash)) => *hash,
            None => {
                let hash = match self.core.db.token(&info.uid, info.device_flag) {
                    Ok(t) => t.map(|t| t.hash),
                    Err(e) => {
                        tracing::error!(error = %e, "token lookup failed");
                        None
                    }
                };
                cache.entry(info.uid.clone()).or_default().push((info.device_flag, hash));
                hash
            }
        };
        hash.is_some_and(|hash| {
            let expected = session_proof(&hash, &self.edge_id, info.session, info.device_flag);
            tern_shared::secret::same(&info.proof, &expected)
        })
    }

    /// A token set a moment ago may not be applied on this node yet: after a failed check, catch up
    /// with the uid's group (a linearizable read) and check again.
    async fn proven_now(&self, info: &SessionInfo) -> bool {
        self.proven(info) || (self.core.groups.of(&info.uid).reads.wait().await.is_ok() && self.proven(info))
    }

    /// The sessions of a snapshot whose proofs hold. The others' tokens changed (or were revoked) while
    /// the link was down: the leader of each one's uid group kicks it, so its client logs in again.
    async fn proven_snapshot(&self, sessions: Vec<SessionInfo>) -> Vec<SessionInfo> {
        // A uid's sessions on one device flag share a token: one lookup for all of them.
        let mut cache = TokenCache::new();
        let (mut good, doubtful): (Vec<_>, Vec<_>) =
            sessions.into_iter().partition(|s| self.proven_with(s, &mut cache));
        let mut caught_up = std::collections::BTreeSet::new();
        for s in doubtful {
            let group = self.core.groups.of(&s.uid);
            if caught_up.insert(group.slot) && group.reads.wait().await.is_err() {
                tracing::warn!(slot = group.slot, "presence check: no linearizable read");
            }
            if self.proven(&s) {
                good.push(s);
                continue;
            }
            tracing::info!(edge = %self.edge_id, uid = %s.uid, "session's token no longer matches; kicked");
            if group.leads() {
                let kick = LinkFrame::Kick {
                    session: s.session,
                    reason_code: Reason::AuthFail.code(),
                    reason: "token changed".into(),
                };
                let _ = self.tx.try_send(kick);
            }
        }
        good
    }

    async fn reply(&self, frame: LinkFrame) {
        let _ = self.tx.send(frame).await;
    }

    fn update_gauge(&self) {
        self.core.metrics.online_sessions.set(self.core.presence.counts().1 as i64);
    }

    /// Queues the message in arrival order (so one client's messages keep their order), then waits for
    /// the commit off the read loop so one slow commit does not stall the link.
    async fn send(&self, req: u64, msg: OutgoingMessage) {
        let cost = msg.payload.len().clamp(1, self.core.config.link_send_budget) as u32;
        let Ok(held) = self.budget.clone().acquire_many_owned(cost).await else { return };
        let origin = Origin { edge_id: self.edge_id.clone(), session: msg.session };
        let checked = client_message(msg, origin, crate::rules::now_secs()).and_then(|m| self.core.admit_client(m));
        let pending = match checked {
            Err(reason) => Err(reason),
            Ok(m) => Ok(self.core.groups.submit(self.core.send_command(m)).await),
        };
        let core = self.core.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let done = match pending {
                Err(reason) => Outcome::Refused(reason.code()),
                Ok(Err(e)) => core.settle(&Err(e)),
                Ok(Ok(p)) => core.settle(&p.wait().await),
            };
            let (message_id, message_seq) = done.stored();
            let _ = tx.send(LinkFrame::SendResult { req, reason: done.reason(), message_id, message_seq }).await;
            // Only once the answer is queued: a closing link waits for the whole budget.
            drop(held);
        });
    }

    /// Waits (up to `limit`) until every SEND taken from this link has its answer queued.
    pub async fn settle_in_flight(&self, limit: std::time::Duration) {
        let all = self.core.config.link_send_budget as u32;
        let _ = tokio::time::timeout(limit, self.budget.acquire_many(all)).await;
    }
}

/// A token set through any node is seen here (linearizable read).
async fn check_token(core: &Core, uid: &str, device_flag: u8, token: &str) -> (Reason, u8) {
    if !valid_uid(uid) {
        return (Reason::AuthFail, 0);
    }
    if let Err(e) = core.groups.of(uid).reads.wait().await {
        tracing::warn!(error = %e, "token check: no linearizable read");
        return (Reason::QueryTokenError, 0);
    }
    let presented = tern_shared::secret::user_token_hash(uid, token);
    match core.db.token(uid, device_flag) {
        Ok(Some(t)) if !token.is_empty() && tern_shared::secret::same(&t.hash, &presented) => {
            // A banned user (`/channel/info` on their person channel) stays out.
            match core.db.channel(uid, tern_shared::channel::kind::PERSON) {
                Ok(Some(own)) if own.ban => (Reason::Ban, 0),
                _ => (Reason::Success, t.device_level),
            }
        }
        Ok(_) => (Reason::AuthFail, 0),
        Err(e) => {
            tracing::error!(error = %e, "token lookup failed");
            (Reason::QueryTokenError, 0)
        }
    }
}
