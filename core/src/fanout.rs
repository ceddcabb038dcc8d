//! Fan-out: every stored message goes to the online sessions of its recipients, as one `Deliver` frame
//! per edge naming that edge's sessions, so a group costs one copy per edge rather than one per member.
//! Every edge links to every core node, so only the leader of the message's group (slot) fans out:
//! each session gets one copy.

use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::store::apply::Applied;
use crate::store::model::StoredMessage;
use crate::store::Db;
use std::collections::BTreeMap;
use std::sync::Arc;
use tern_shared::channel::{kind, person_channel_for, person_pair, slot_of};
use tern_shared::link::{DeliverTarget, Delivery, LinkFrame};
use tokio::sync::mpsc;

pub async fn run(
    db: Db,
    presence: Arc<Presence>,
    mut rx: mpsc::Receiver<Applied>,
    metrics: Metrics,
    leads: impl Fn(u16) -> bool + Send + 'static,
) {
    while let Some(applied) = rx.recv().await {
        metrics.messages_stored.inc();
        if !leads(slot_of(&applied.message.channel_id, db.slots)) {
            continue;
        }
        let uids = match recipients(&db, &applied.message) {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(channel = %applied.message.channel_id, error = %e, "fan-out: cannot list recipients");
                continue;
            }
        };
        for (edge_id, targets) in plan(&presence, &applied, &uids) {
            let Some(link) = presence.link_of(&edge_id) else { continue };
            let copies = targets.iter().map(|t| t.sessions.len() as u64).sum::<u64>();
            let frame = LinkFrame::Deliver(Delivery { message: (&applied.message).into(), targets });
            // A full link queue means that edge is not keeping up; its clients resync by seq.
            if link.try_send(frame).is_ok() {
                metrics.deliveries.inc_by(copies);
            } else {
                metrics.deliveries_dropped.inc_by(copies);
            }
        }
    }
}

pub(crate) fn recipients(db: &Db, m: &StoredMessage) -> Result<Vec<String>, crate::store::StoreError> {
    if m.channel_type == kind::PERSON {
        let mut v = match person_pair(&m.channel_id) {
            Some((a, b)) => vec![a.to_string(), b.to_string()],
            None => Vec::new(),
        };
        v.dedup();
        return Ok(v);
    }
    // Members on the deny list do not read the group either.
    let denied = db.list(&m.channel_id, m.channel_type, crate::store::keys::DENY)?;
    let mut members = db.subscribers(&m.channel_id, m.channel_type)?;
    if !denied.is_empty() {
        members.retain(|u| !denied.contains(u));
    }
    Ok(members)
}

/// Groups the online sessions of `uids` by edge, then by the channel id each sees.
fn plan(presence: &Presence, applied: &Applied, uids: &[String]) -> BTreeMap<String, Vec<DeliverTarget>> {
    let m = &applied.message;
    let mut per_edge: BTreeMap<String, BTreeMap<(String, bool), Vec<u64>>> = BTreeMap::new();
    for uid in uids {
        for s in presence.sessions_of(uid) {
            if applied.origin.as_ref().is_some_and(|o| o.edge_id == s.edge_id && o.session == s.session) {
                continue;
            }
            let shown = if m.channel_type == kind::PERSON {
                person_channel_for(&m.channel_id, uid).to_string()
            } else {
                m.channel_id.clone()
            };
            let own_device = *uid == m.from_uid;
            per_edge.entry(s.edge_id).or_default().entry((shown, own_device)).or_default().push(s.session);
        }
    }
    per_edge
        .into_iter()
        .map(|(edge, groups)| {
            let targets = groups
                .into_iter()
                .map(|((channel_id, clear_red_dot), sessions)| DeliverTarget { channel_id, clear_red_dot, sessions })
                .collect();
            (edge, targets)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::Origin;
    use tern_shared::channel::person_channel_id;
    use tern_shared::link::{EdgeAddrs, SessionInfo};

    #[test]
    fn person_message_skips_sender_session_and_names_peer() {
        let p = Presence::default();
        let (tx, _rx) = mpsc::channel(8);
        p.register_edge("e1", EdgeAddrs::default(), tx.clone());
        p.register_edge("e2", EdgeAddrs::default(), tx);
        let open = |edge: &str, session, uid: &str, flag| {
            p.open(edge, SessionInfo { session, uid: uid.into(), device_flag: flag, ..Default::default() });
        };
        open("e1", 1, "alice", 0); // the sending connection
        open("e2", 2, "alice", 1); // alice's other device
        open("e1", 3, "bob", 0);
        let applied = Applied {
            message: StoredMessage {
                channel_id: person_channel_id("alice", "bob"),
                channel_type: kind::PERSON,
                from_uid: "alice".into(),
                ..Default::default()
            },
            origin: Some(Origin { edge_id: "e1".into(), session: 1 }),
        };
        let plan = plan(&p, &applied, &["alice".into(), "bob".into()]);
        assert_eq!(
            plan["e1"],
            vec![DeliverTarget { channel_id: "alice".into(), clear_red_dot: false, sessions: vec![3] }]
        );
        assert_eq!(
            plan["e2"],
            vec![DeliverTarget { channel_id: "bob".into(), clear_red_dot: true, sessions: vec![2] }]
        );
    }
}
