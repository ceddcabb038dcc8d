//! Each slot is its own raft group: its raft instance, group commit, read barrier and leadership. A
//! command goes to the group of the channel or uid it touches; groups elect leaders independently, so
//! leadership (and with it the write load) spreads over the nodes.

use super::dial::Dial;
use super::error::ProposeError;
use super::handover::Handover;
use super::leader::ReadBarrier;
use super::proposer::{Pending, Proposer};
use super::types::{Command, CommandResult, Raft};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tern_shared::channel::slot_of;
use tokio::time::Instant;

/// How long a write keeps being tried while leadership moves (a transfer, an election, a leader that
/// restarted under a pooled connection): long enough for an election across a WAN, short of the HTTP
/// request deadline.
pub const WRITE_RETRY_FOR: Duration = Duration::from_secs(10);

pub struct Group {
    pub slot: u16,
    pub raft: Raft,
    pub proposer: Proposer,
    pub reads: ReadBarrier,
    /// Dials other nodes for this group's requests.
    pub dial: Dial,
    pub handover: Handover,
    /// Whether this node leads the group (it alone pushes the group's messages to edges and kicks).
    pub leading: Arc<AtomicBool>,
}

impl Group {
    pub fn leads(&self) -> bool {
        self.leading.load(Ordering::Relaxed)
    }
}

pub struct Groups {
    groups: Vec<Group>,
    /// Raised when this node stops (`crate::stop`): it neither campaigns nor takes leadership again.
    leaving: AtomicBool,
    /// Whether each other voter answered the last probe (`quorum.rs`).
    reachable: std::sync::Mutex<BTreeMap<super::types::NodeId, bool>>,
}

impl Groups {
    /// `groups[i]` must be the group of slot `i`.
    pub fn new(groups: Vec<Group>) -> Groups {
        Groups { groups, leaving: AtomicBool::new(false), reachable: Default::default() }
    }

    pub fn reachable(&self) -> BTreeMap<super::types::NodeId, bool> {
        self.reachable.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_reachable(&self, now: BTreeMap<super::types::NodeId, bool>) {
        *self.reachable.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }

    pub fn leaving(&self) -> bool {
        self.leaving.load(Ordering::Relaxed)
    }

    /// This node stops campaigning in every group, for good.
    pub fn leave(&self) {
        self.leaving.store(true, Ordering::Relaxed);
        for g in &self.groups {
            g.raft.runtime_config().elect(false);
        }
    }

    pub fn all(&self) -> &[Group] {
        &self.groups
    }

    pub fn get(&self, slot: u16) -> Option<&Group> {
        self.groups.get(usize::from(slot))
    }

    /// Waits until every acked write of every group is visible here (a read barrier per group, at once),
    /// for reads that span slots.
    pub async fn wait_all(&self) -> Result<(), ProposeError> {
        futures_util::future::try_join_all(self.groups.iter().map(|g| g.reads.wait())).await.map(|_| ())
    }

    /// The group holding a channel or uid (`key`).
    pub fn of(&self, key: &str) -> &Group {
        let slot = slot_of(key, self.groups.len() as u16);
        &self.groups[usize::from(slot)]
    }

    /// Proposes one command to its group and waits until it is committed and applied; tried again
    /// for up to [`WRITE_RETRY_FOR`] while the group has no reachable leader. A retry may propose a
    /// command whose first try was committed after all (a leader lost just after appending it): every
    /// command is safe to apply twice (sets, adds and removes; messages dedup by `client_msg_no`,
    /// which the API fills in when the caller gave none), except `PresenceEvent`, whose webhook is
    /// at-least-once anyway.
    pub async fn propose(&self, cmd: Command) -> Result<CommandResult, ProposeError> {
        let proposer = &self.of(cmd.key()).proposer;
        let deadline = Instant::now() + WRITE_RETRY_FOR;
        let mut pause = Duration::from_millis(20);
        loop {
            match proposer.propose(cmd.clone()).await {
                Err(e) if e.leader_moving() && Instant::now() + pause < deadline => {
                    tracing::debug!(error = %e, "write retried while leadership moves");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                other => return other,
            }
        }
    }

    /// Queues one command in its group; a group commits in the order commands were submitted.
    pub async fn submit(&self, cmd: Command) -> Result<Pending, ProposeError> {
        self.of(cmd.key()).proposer.submit(cmd).await
    }
}
