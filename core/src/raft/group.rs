//! Each slot is its own raft group: its raft instance, group commit, read barrier and leadership. A
//! command goes to the group of the channel or uid it touches; groups elect leaders independently, so
//! leadership (and with it the write load) spreads over the nodes.

use super::dial::Dial;
use super::error::ProposeError;
use super::handover::Handover;
use super::leader::ReadBarrier;
use super::proposer::{Pending, Proposer};
use super::types::{Command, CommandResult, Raft};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tern_shared::channel::slot_of;

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
}

impl Groups {
    /// `groups[i]` must be the group of slot `i`.
    pub fn new(groups: Vec<Group>) -> Groups {
        Groups { groups }
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

    /// Proposes one command to its group and waits until it is committed and applied.
    pub async fn propose(&self, cmd: Command) -> Result<CommandResult, ProposeError> {
        self.of(cmd.key()).proposer.propose(cmd).await
    }

    /// Queues one command in its group; a group commits in the order commands were submitted.
    pub async fn submit(&self, cmd: Command) -> Result<Pending, ProposeError> {
        self.of(cmd.key()).proposer.submit(cmd).await
    }
}
