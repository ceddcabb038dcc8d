//! What every request handler of a node shares: its settings, store, raft groups, presence and metrics.

use crate::config::CoreConfig;
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::raft::error::ProposeError;
use crate::raft::group::Groups;
use crate::raft::{Command, CommandResult, NewMessage};
use crate::rules::send::{outcome, Outcome};
use crate::store::keys::DENY;
use crate::store::Db;
use std::sync::Arc;
use tern_shared::channel::{kind, person_channel_for};
use tern_shared::link::SessionInfo;
use tern_shared::proto::Reason;

pub struct Core {
    pub config: CoreConfig,
    pub db: Db,
    /// One raft group per slot.
    pub groups: Arc<Groups>,
    pub presence: Arc<Presence>,
    /// Which edge process holds each edge id (a second one claiming it is refused).
    pub claims: Arc<crate::claims::EdgeClaims>,
    pub metrics: Metrics,
    /// Raised when the node stops (`crate::stop`): links and the HTTP API finish what is in flight and
    /// close.
    pub closing: tokio::sync::watch::Sender<bool>,
}

impl Core {
    /// A client's message checked, before it is proposed, against state outside its channel's slot
    /// (the apply checks the channel's own): the sender's own ban, and for a person channel the
    /// recipient's deny list. A system uid's message skips the sender checks, as a business server's
    /// does. Read from this node's state: a change made a moment ago elsewhere may not be seen yet.
    pub fn admit_client(&self, mut m: NewMessage) -> Result<NewMessage, Reason> {
        let mut refusal = || -> Result<Option<Reason>, crate::store::StoreError> {
            if let Some(own) = self.db.channel(&m.from_uid, kind::PERSON)? {
                if own.ban {
                    return Ok(Some(Reason::Ban));
                }
                if own.send_ban {
                    return Ok(Some(Reason::SendBan));
                }
            }
            if self.db.is_system_uid(&m.from_uid)? {
                m.check_sender = false;
            } else if m.channel_type == kind::PERSON {
                let to = person_channel_for(&m.channel_id, &m.from_uid);
                if !self.db.is_system_uid(to)? && self.db.is_listed(to, kind::PERSON, DENY, &m.from_uid)? {
                    return Ok(Some(Reason::InDenyList));
                }
            }
            Ok(None)
        };
        match refusal() {
            Ok(None) => Ok(m),
            Ok(Some(reason)) => Err(reason),
            Err(e) => {
                tracing::error!(error = %e, "send checks failed");
                Err(Reason::SystemError)
            }
        }
    }

    /// The command that stores `m`: with a webhook outbox row when the business server wants messages.
    pub fn send_command(&self, m: NewMessage) -> Command {
        let w = &self.config.webhook;
        if w.sends("msg.notify") || w.sends("msg.offline") {
            Command::SendWithEvents(m)
        } else {
            Command::Send(m)
        }
    }

    /// On the leader of the uid's group, a `user.onlinestatus` line for the webhook outbox (group
    /// commit batches them). Lost if the group has no leader: presence itself is not in raft.
    pub async fn online_event(&self, uid: &str, device_flag: u8, online: bool, session: u64) {
        if !self.config.webhook.sends("user.onlinestatus") {
            return;
        }
        let p = &self.presence;
        let (on_device, total) = (p.device_sessions(uid, device_flag).len(), p.sessions_of(uid).len());
        let line = crate::webhook::plan::online_line(uid, device_flag, online, session, on_device, total);
        let event = Command::PresenceEvent { uid: uid.to_string(), line };
        if let Err(e) = self.groups.submit(event).await {
            tracing::info!(uid, error = %e, "user.onlinestatus event not recorded");
        }
    }

    /// An edge's presence link closed and took `sessions` with it. If the edge is not back with them
    /// within `grace` (its link dropped for a moment, or this node restarted, and the edge's snapshot
    /// restores them), it is gone: the leader of each uid's group records them offline.
    pub async fn sessions_lost(&self, edge_id: &str, sessions: Vec<SessionInfo>, grace: std::time::Duration) {
        if sessions.is_empty() || !self.config.webhook.sends("user.onlinestatus") {
            return;
        }
        let mut closing = self.closing.subscribe();
        tokio::select! {
            _ = tokio::time::sleep(grace) => {}
            // A stopping node leaves that to the others.
            _ = raised(&mut closing) => return,
        }
        for s in sessions {
            if !self.presence.has_session(edge_id, s.session) && self.groups.of(&s.uid).leads() {
                self.online_event(&s.uid, s.device_flag, false, s.session).await;
            }
        }
    }

    /// The outcome of a proposed send, counted and, when it failed, logged.
    pub fn settle(&self, r: &Result<CommandResult, ProposeError>) -> Outcome {
        let done = outcome(r);
        match (done, r) {
            (Outcome::Refused(_), _) => self.metrics.messages_rejected.inc(),
            (Outcome::Failed, Err(e)) => tracing::warn!(error = %e, "proposal failed"),
            (Outcome::Failed, Ok(other)) => tracing::error!(result = ?other, "a send was answered with no message"),
            _ => {}
        }
        done
    }
}

/// Resolves once `closing` is raised, or its sender is gone.
pub async fn raised(closing: &mut tokio::sync::watch::Receiver<bool>) {
    // Drops the read guard here, so no caller holds it across an await.
    let _ = closing.wait_for(|c| *c).await.map(|_| ());
}
