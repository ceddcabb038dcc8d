//! Webhooks: each slot's leader delivers the events in its slot's outbox (written by the raft entry
//! that stored the message) to the business server, in batches, retrying with backoff until the server
//! answers 2xx, then removes them through raft. A new leader starts from what is left: at least once,
//! nothing lost while the server is down or a leader dies; receivers drop repeats by event id.

pub mod plan;

use crate::config::WebhookSettings;
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::raft::group::Groups;
use crate::raft::Command;
use crate::store::model::OutboxEvent;
use crate::store::{Db, StoreError};
use plan::{Post, Row, Wanted};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Rows counted for the backlog gauge at most.
const BACKLOG_CAP: usize = 100_000;

/// What every slot's delivery loop shares.
#[derive(Clone)]
pub struct Webhook {
    pub settings: WebhookSettings,
    pub db: Db,
    pub presence: Arc<Presence>,
    pub groups: Arc<Groups>,
    pub metrics: Metrics,
}

/// Starts a delivery loop per slot.
pub fn start(w: Webhook) {
    let http = match reqwest::Client::builder().timeout(Duration::from_millis(w.settings.timeout_ms)).build() {
        Ok(c) => c,
        Err(e) => return tracing::error!(error = %e, "webhooks off: no HTTP client"),
    };
    for slot in 0..w.db.slots {
        tokio::spawn(run(w.clone(), http.clone(), slot));
    }
}

async fn run(w: Webhook, http: reqwest::Client, slot: u16) {
    let s = &w.settings;
    let (interval, min, max) = (
        Duration::from_millis(s.interval_ms),
        Duration::from_millis(s.retry_min_ms),
        Duration::from_millis(s.retry_max_ms),
    );
    let Some(group) = w.groups.get(slot) else { return };
    let mut failures = 0u32;
    // POSTs of the current batch the server took: not sent again while the batch is retried.
    let mut taken: HashSet<(&'static str, Vec<u64>)> = HashSet::new();
    // After a full round more rows wait: the next round goes at once, so a backlog (the server was down)
    // drains as fast as the server takes it rather than a batch per interval.
    let mut more = false;
    let mut cursor = Cursor::default();
    loop {
        let pause = match (failures, more) {
            (0, true) => Duration::ZERO,
            (0, false) => interval,
            _ => plan::backoff(failures, min, max),
        };
        more = false;
        tokio::time::sleep(pause).await;
        // A stopping node has handed its leadership over.
        if w.groups.leaving() {
            return;
        }
        if !group.leads() {
            taken.clear();
            // Another leader may have delivered rows meanwhile, and this node's next term starts over.
            cursor = Cursor::default();
            continue;
        }
        match round(&w, &http, slot, &mut taken, &mut cursor).await {
            Ok((0, _)) => failures = 0,
            Ok((upto, full)) => {
                let done = Command::OutboxDone { slot, upto };
                match group.proposer.propose(done).await {
                    Ok(_) => {
                        taken.clear();
                        failures = 0;
                        more = full;
                        cursor.next = upto + 1;
                    }
                    Err(e) => {
                        tracing::info!(slot, error = %e, "webhook events delivered but not yet marked done");
                        failures += 1;
                    }
                }
            }
            Err(e) => {
                if failures == 0 {
                    tracing::warn!(slot, error = %e, "webhook delivery failed; retrying with backoff");
                }
                failures = failures.saturating_add(1);
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error("outbox: {0}")]
    Store(#[from] StoreError),
    #[error("{event} to the webhook: {reason}")]
    Post { event: &'static str, reason: String },
}

/// Where a slot's leader is in its outbox.
#[derive(Default)]
struct Cursor {
    /// Rows below this id were delivered and marked done in this leadership term.
    next: u64,
    /// When the backlog was last counted (a count walks up to `BACKLOG_CAP` rows).
    counted: Option<std::time::Instant>,
}

/// How often a long backlog is counted for the gauge.
const COUNT_EVERY: Duration = Duration::from_secs(1);

/// Sends the oldest batch of the slot's outbox; the last id delivered (0 if it was empty), and whether
/// the batch was full (more may wait).
async fn round(
    w: &Webhook,
    http: &reqwest::Client,
    slot: u16,
    taken: &mut HashSet<(&'static str, Vec<u64>)>,
    cursor: &mut Cursor,
) -> Result<(u64, bool), RoundError> {
    let s = &w.settings;
    let batch = w.db.outbox(slot, cursor.next, s.batch_size)?;
    // A batch that is not full is the whole backlog: the rows are counted only when there are more.
    let gauge = w.metrics.webhook_backlog.with_label_values(&[&slot.to_string()]);
    if batch.len() < s.batch_size {
        gauge.set(batch.len() as i64);
    } else if cursor.counted.is_none_or(|at| at.elapsed() >= COUNT_EVERY) {
        gauge.set(w.db.outbox_len(slot, cursor.next, BACKLOG_CAP)? as i64);
        cursor.counted = Some(std::time::Instant::now());
    }
    let full = batch.len() >= s.batch_size;
    let Some(&(last, _)) = batch.last() else { return Ok((0, false)) };
    let wanted =
        Wanted { notify: s.sends("msg.notify"), offline: s.sends("msg.offline"), online: s.sends("user.onlinestatus") };
    let mut rows = Vec::new();
    for (id, event) in batch {
        match event {
            OutboxEvent::Message { channel_id, channel_type, message_seq } => {
                let Some(message) = w.db.message(&channel_id, channel_type, message_seq)? else { continue };
                let offline = if wanted.offline { offline(w, &message)? } else { Vec::new() };
                rows.push(Row::Message { id, message, offline });
            }
            OutboxEvent::Online(line) => rows.push(Row::Online { id, line }),
        }
    }
    for post in plan::posts(&rows, wanted) {
        let key = (post.event, post.ids.clone());
        if taken.contains(&key) {
            continue;
        }
        let result = send(w, http, &post).await;
        let label = if result.is_ok() { "ok" } else { "failed" };
        w.metrics.webhook_posts.with_label_values(&[post.event, label]).inc();
        result.map_err(|reason| RoundError::Post { event: post.event, reason })?;
        taken.insert(key);
    }
    Ok((last, full))
}

/// The message's recipients with no session anywhere now, its sender aside.
fn offline(w: &Webhook, m: &crate::store::model::StoredMessage) -> Result<Vec<String>, StoreError> {
    let uids = crate::fanout::recipients(&w.db, m)?;
    Ok(uids.into_iter().filter(|u| *u != m.from_uid && w.presence.sessions_of(u).is_empty()).collect())
}

async fn send(w: &Webhook, http: &reqwest::Client, post: &Post) -> Result<(), String> {
    let s = &w.settings;
    let ids: Vec<String> = post.ids.iter().map(u64::to_string).collect();
    let mut req = http
        .post(&s.url)
        .query(&[("event", post.event)])
        .header("content-type", "application/json")
        .header("X-Tern-Event-Id", ids.join(","))
        .body(post.body.clone());
    if let Some(secret) = s.secret.as_deref().filter(|s| !s.is_empty()) {
        req = req.header("X-Tern-Signature", plan::signature(secret.as_bytes(), &post.body));
    }
    match req.send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("answered {}", r.status())),
        Err(e) => Err(e.to_string()),
    }
}
