//! Sending a message: the command a send becomes, and what the sender is told when it is through.

use crate::raft::error::ProposeError;
use crate::raft::{CommandResult, NewMessage, Origin};
use tern_shared::channel::{stored_channel_id, ChannelError};
use tern_shared::link::OutgoingMessage;
use tern_shared::proto::Reason;

/// The reason code a sender gets for a channel it cannot name.
pub fn refusal(e: ChannelError) -> Reason {
    match e {
        ChannelError::BadId => Reason::ChannelIdError,
        ChannelError::UnsupportedType => Reason::NotSupportChannelType,
    }
}

/// A client's SEND (through its edge, from `origin`) at `now` (seconds) as a command. Clients must be
/// members of the channel they send to; the state machine checks that against the channel as applied.
pub fn client_message(msg: OutgoingMessage, origin: Origin, now: i32) -> Result<NewMessage, Reason> {
    let channel_id = stored_channel_id(&msg.from_uid, &msg.channel_id, msg.channel_type).map_err(refusal)?;
    Ok(NewMessage {
        from_uid: msg.from_uid,
        channel_id,
        channel_type: msg.channel_type,
        client_msg_no: msg.client_msg_no,
        header_flags: msg.header_flags,
        setting: msg.setting,
        expire: msg.expire,
        topic: msg.topic,
        payload: msg.payload,
        timestamp: now,
        origin: Some(origin),
        check_sender: true,
    })
}

/// What became of a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Sent {
        message_id: i64,
        message_seq: u64,
    },
    /// Refused for what it is (not a member, a banned channel): sending it again will not help.
    Refused(u8),
    /// This node cannot reach the channel's leader now (an election, a moving leader): try again.
    NotLeader,
    /// Not committed (raft stopped, overloaded, timed out): it may or may not be stored, and sending
    /// it again with the same client_msg_no is safe.
    Failed,
}

impl Outcome {
    /// The SENDACK reason code.
    pub fn reason(self) -> u8 {
        match self {
            Outcome::Sent { .. } => Reason::Success.code(),
            Outcome::Refused(code) => code,
            Outcome::NotLeader => Reason::NodeNotMatch.code(),
            Outcome::Failed => Reason::SystemError.code(),
        }
    }

    /// (message id, seq) of a stored message, zeros otherwise.
    pub fn stored(self) -> (i64, u64) {
        match self {
            Outcome::Sent { message_id, message_seq } => (message_id, message_seq),
            _ => (0, 0),
        }
    }
}

/// The outcome of proposing a send.
pub fn outcome(r: &Result<CommandResult, ProposeError>) -> Outcome {
    match r {
        Ok(CommandResult::Sent { message_id, message_seq, .. }) => {
            Outcome::Sent { message_id: *message_id, message_seq: *message_seq }
        }
        Ok(CommandResult::Rejected(code)) => Outcome::Refused(*code),
        // A send always answers `Sent` or `Rejected`; anything else is a bug, and not the sender's.
        Ok(CommandResult::Done) => Outcome::Failed,
        Err(ProposeError::NotLeader(_)) => Outcome::NotLeader,
        Err(_) => Outcome::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_shared::channel::{kind, person_channel_id};

    fn send(to: &str, channel_type: u8) -> OutgoingMessage {
        OutgoingMessage {
            from_uid: "alice".into(),
            channel_id: to.into(),
            channel_type,
            payload: b"hi".to_vec(),
            ..Default::default()
        }
    }

    fn origin() -> Origin {
        Origin { edge_id: "e1".into(), session: 7 }
    }

    #[test]
    fn a_client_send_names_its_stored_channel_and_the_time() {
        let m = client_message(send("bob", kind::PERSON), origin(), 1_700_000_000).unwrap();
        assert_eq!(m.channel_id, person_channel_id("alice", "bob"));
        assert_eq!((m.timestamp, m.check_sender, m.origin), (1_700_000_000, true, Some(origin())));
        assert_eq!(client_message(send("a@b", kind::PERSON), origin(), 0), Err(Reason::ChannelIdError));
        assert_eq!(client_message(send("g", 9), origin(), 0), Err(Reason::NotSupportChannelType));
    }

    #[test]
    fn outcomes_tell_a_sender_whether_to_try_again() {
        let sent = Ok(CommandResult::Sent { message_id: 5, message_seq: 2, duplicate: false });
        assert_eq!(outcome(&sent).stored(), (5, 2));
        assert_eq!(outcome(&sent).reason(), Reason::Success.code());
        let refused = Ok(CommandResult::Rejected(Reason::SubscriberNotExist.code()));
        assert_eq!(outcome(&refused), Outcome::Refused(Reason::SubscriberNotExist.code()));
        assert_eq!(outcome(&Err(ProposeError::NotLeader(Some(2)))).reason(), Reason::NodeNotMatch.code());
        assert_eq!(outcome(&Err(ProposeError::Overloaded)).reason(), Reason::SystemError.code());
    }
}
