//! Why a proposal or a linearizable read did not go through.

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProposeError {
    #[error("this node is not the leader (leader: {0:?})")]
    NotLeader(Option<u64>),
    #[error("raft stopped: {0}")]
    Fatal(String),
    #[error("the core is overloaded")]
    Overloaded,
    #[error("the core is shutting down")]
    ShuttingDown,
    #[error("not committed within {0:?} (no majority reachable?)")]
    Timeout(std::time::Duration),
}

impl ProposeError {
    /// The group had no leader this node could reach: trying again shortly may succeed. A timeout is
    /// not: the entry may still commit, and the caller has waited long enough.
    pub fn leader_moving(&self) -> bool {
        matches!(self, ProposeError::NotLeader(_))
    }
}
