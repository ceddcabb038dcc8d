//! Group commit: commands from every link and HTTP request queue here, and one task packs whatever is
//! waiting into a single raft entry. Entries are handed to openraft in queue order and several may be in
//! flight at once, so a busy core writes few large entries and an idle one answers a lone message at once.

use super::dial::Dial;
use super::error::ProposeError;
use super::leader::{await_leader, leader_of, LeaderConn, ELECTION_WAIT};
use super::types::{Batch, BatchResult, Command, CommandResult, NodeId, Raft};
use crate::store::apply::MAX_BATCH;
use openraft::error::ClientWriteError;
use std::sync::Arc;
use tern_wire::rpc::{RaftRequest, RaftResponse};
use tokio::sync::{mpsc, oneshot, Semaphore};

type Reply = oneshot::Sender<Result<CommandResult, ProposeError>>;

/// Bounds of one batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_commands: usize,
    pub max_bytes: usize,
    /// Batches handed to raft and not yet applied.
    pub max_in_flight: usize,
    /// While other batches are in flight, how long a new one waits for more commands before it goes.
    pub linger: std::time::Duration,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_commands: 1024,
            max_bytes: 4 << 20,
            max_in_flight: 16,
            // 0.5 and 1 ms measured no gain on the 2-vCPU machine (docs/BENCHMARKS.md): off by default.
            linger: std::time::Duration::ZERO,
        }
    }
}

#[derive(Clone)]
pub struct Proposer {
    tx: mpsc::Sender<(Command, Reply)>,
    commit_timeout: std::time::Duration,
}

impl Proposer {
    pub fn start(
        raft: Raft,
        node_id: NodeId,
        dial: Dial,
        handover: super::handover::Handover,
        commit_timeout: std::time::Duration,
        limits: BatchLimits,
        metrics: crate::metrics::Metrics,
    ) -> Proposer {
        let (tx, rx) = mpsc::channel(64 * 1024);
        let (forward_tx, forward_rx) = mpsc::channel(64);
        tokio::spawn(forward(raft.clone(), dial, forward_rx, limits, metrics.forwarded_batches.clone()));
        tokio::spawn(run(raft, node_id, handover, rx, forward_tx, limits, metrics));
        Proposer { tx, commit_timeout }
    }

    /// Proposes one command and waits until it is committed and applied.
    pub async fn propose(&self, cmd: Command) -> Result<CommandResult, ProposeError> {
        self.submit(cmd).await?.wait().await
    }

    /// Queues one command; commands are committed in the order they were submitted.
    pub async fn submit(&self, cmd: Command) -> Result<Pending, ProposeError> {
        let (reply, wait) = oneshot::channel();
        self.tx.send((cmd, reply)).await.map_err(|_| ProposeError::ShuttingDown)?;
        Ok(Pending(wait, self.commit_timeout))
    }
}

/// A submitted command's outcome, once applied.
pub struct Pending(oneshot::Receiver<Result<CommandResult, ProposeError>>, std::time::Duration);

impl Pending {
    pub async fn wait(self) -> Result<CommandResult, ProposeError> {
        match tokio::time::timeout(self.1, self.0).await {
            Ok(r) => r.map_err(|_| ProposeError::ShuttingDown)?,
            Err(_) => Err(ProposeError::Timeout(self.1)),
        }
    }
}

fn command_size(cmd: &Command) -> usize {
    match cmd {
        Command::Send(m) | Command::SendWithEvents(m) => {
            64 + m.payload.len() + m.channel_id.len() + m.client_msg_no.len()
        }
        _ => 256,
    }
}

type Group = (Vec<Command>, Vec<Reply>);

async fn run(
    raft: Raft,
    node_id: NodeId,
    handover: super::handover::Handover,
    mut rx: mpsc::Receiver<(Command, Reply)>,
    forward_tx: mpsc::Sender<Group>,
    limits: BatchLimits,
    metrics: crate::metrics::Metrics,
) {
    let max_commands = limits.max_commands.clamp(1, MAX_BATCH);
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight.max(1)));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = in_flight.clone().acquire_owned().await else { return };
        // Take what queued while waiting for a permit: that is the group in group commit.
        let mut bytes = command_size(&first.0);
        let mut group = vec![first];
        while group.len() < max_commands && bytes < limits.max_bytes {
            match rx.try_recv() {
                Ok(item) => {
                    bytes += command_size(&item.0);
                    group.push(item);
                }
                Err(_) => break,
            }
        }
        // With other batches still in flight this one would not commit before them anyway: let more
        // commands join it, so the group writes fewer, fuller entries. An idle group sends at once.
        let busy = in_flight.available_permits() + 1 < limits.max_in_flight.max(1);
        if busy && !limits.linger.is_zero() {
            let until = tokio::time::Instant::now() + limits.linger;
            while group.len() < max_commands && bytes < limits.max_bytes {
                match tokio::time::timeout_at(until, rx.recv()).await {
                    Ok(Some(item)) => {
                        bytes += command_size(&item.0);
                        group.push(item);
                    }
                    _ => break,
                }
            }
        }
        let (cmds, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
        // While leadership is being handed over, hold the group; it then goes to the new leader.
        while handover.active() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // Followers hand groups, in order, to the one task that forwards them to the leader.
        match await_leader(&raft).await {
            Some(leader) if leader == node_id => {}
            Some(_) => {
                drop(permit);
                if let Err(mpsc::error::SendError((_, replies))) = forward_tx.send((cmds, replies)).await {
                    fail_all(replies, ProposeError::ShuttingDown);
                }
                continue;
            }
            None => {
                fail_all(replies, ProposeError::NotLeader(None));
                continue;
            }
        }
        metrics.batch_size.observe(cmds.len() as f64);
        let started = std::time::Instant::now();
        let receiver = match raft.client_write_ff(Batch(cmds)).await {
            Ok(r) => r,
            Err(e) => {
                fail_all(replies, ProposeError::Fatal(e.to_string()));
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let outcome = receiver.await;
            drop(permit);
            metrics.commit_latency.observe(started.elapsed().as_secs_f64());
            match outcome {
                Ok(Ok(resp)) => deliver(replies, resp.data),
                Ok(Err(e)) => {
                    let err = match e {
                        ClientWriteError::ForwardToLeader(f) => ProposeError::NotLeader(f.leader_id),
                        other => ProposeError::Fatal(other.to_string()),
                    };
                    fail_all(replies, err)
                }
                Err(_) => fail_all(replies, ProposeError::ShuttingDown),
            }
        });
    }
}

/// Sends groups to the leader one at a time, so they commit in the order this node received them. A
/// group the leader could not take (it restarted under a pooled connection, or lost leadership) is
/// sent again, before any later group, while a new leader is elected: every command is safe to apply
/// twice (see `Groups::propose`), and failing it would only have the client send it again, possibly
/// after a later one.
///
/// Groups that queued while the one before was on its way go together, in order, as one: with one
/// forward at a time a follower would otherwise send one small group per round trip to the leader and
/// back (across regions, a few writes per group a second).
async fn forward(
    raft: Raft,
    dial: Dial,
    mut rx: mpsc::Receiver<Group>,
    limits: BatchLimits,
    forwarded: prometheus::IntCounter,
) {
    let mut leader = LeaderConn::default();
    let max_commands = limits.max_commands.clamp(1, MAX_BATCH);
    while let Some((mut cmds, mut replies)) = rx.recv().await {
        let mut bytes: usize = cmds.iter().map(command_size).sum();
        while cmds.len() < max_commands && bytes < limits.max_bytes {
            let Ok((more, more_replies)) = rx.try_recv() else { break };
            bytes += more.iter().map(command_size).sum::<usize>();
            cmds.extend(more);
            replies.extend(more_replies);
        }
        let request = RaftRequest::Propose(Batch(cmds));
        let deadline = tokio::time::Instant::now() + ELECTION_WAIT;
        let mut pause = std::time::Duration::from_millis(10);
        let result = loop {
            let attempt = forward_once(&raft, &dial, &mut leader, &request, &forwarded).await;
            match attempt {
                Err(e) if e.leader_moving() && tokio::time::Instant::now() + pause < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_millis(200));
                }
                other => break other,
            }
        };
        match result {
            Ok(results) => deliver(replies, results),
            Err(e) => fail_all(replies, e),
        }
    }
}

async fn forward_once(
    raft: &Raft,
    dial: &Dial,
    leader: &mut LeaderConn,
    request: &RaftRequest,
    forwarded: &prometheus::IntCounter,
) -> Result<BatchResult, ProposeError> {
    let (id, addr) = leader_of(raft, dial).ok_or(ProposeError::NotLeader(None))?;
    forwarded.inc();
    match leader.to(id, addr, dial).call(request, std::time::Duration::from_secs(10)).await {
        Ok(RaftResponse::Propose(Ok(results))) => Ok(results),
        Ok(RaftResponse::Propose(Err(e))) => {
            tracing::debug!(leader = id, error = %e, "forwarded batch refused");
            Err(ProposeError::NotLeader(Some(id)))
        }
        Ok(other) => Err(ProposeError::Fatal(format!("leader answered {other:?}"))),
        Err(e) => {
            tracing::debug!(leader = id, error = %e, "cannot forward to the leader");
            Err(ProposeError::NotLeader(Some(id)))
        }
    }
}

fn deliver(replies: Vec<Reply>, results: BatchResult) {
    let mut results = results.0.into_iter();
    for reply in replies {
        let r = results.next().ok_or_else(|| ProposeError::Fatal("state machine returned too few results".into()));
        let _ = reply.send(r);
    }
}

fn fail_all(replies: Vec<Reply>, err: ProposeError) {
    for reply in replies {
        let _ = reply.send(Err(err.clone()));
    }
}
