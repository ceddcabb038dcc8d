//! Channel identity rules shared by edge and core.

/// Channel types of the protocol.
pub mod kind {
    pub const PERSON: u8 = 1;
    pub const GROUP: u8 = 2;
    /// A business server's message to a list of uids (`/message/send` with `subscribers`): members
    /// only, no conversations.
    pub const TEMP: u8 = 8;
}

/// Number of slots channels hash into, fixed for a cluster. Each slot is a raft group with its own
/// entries and heartbeats: enough to spread leadership over 3–5 nodes, few enough that a group's entries
/// still carry many messages each (docs/BENCHMARKS.md measures 1–16).
pub const DEFAULT_SLOTS: u16 = 8;

/// CRC32-IEEE of a channel or uid, as WuKongIM uses for slots and person-channel ordering.
pub fn crc(s: &str) -> u32 {
    crc32fast::hash(s.as_bytes())
}

pub fn slot_of(channel_id: &str, slots: u16) -> u16 {
    (crc(channel_id) % u32::from(slots.max(1))) as u16
}

/// The stored id of the person channel between two uids: `a@b` with crc(a) > crc(b) (ties by text),
/// so both sides name the same channel.
pub fn person_channel_id(a: &str, b: &str) -> String {
    let (ca, cb) = (crc(a), crc(b));
    if ca > cb || (ca == cb && a >= b) {
        format!("{a}@{b}")
    } else {
        format!("{b}@{a}")
    }
}

/// The two uids of a stored person channel id.
pub fn person_pair(channel_id: &str) -> Option<(&str, &str)> {
    channel_id.split_once('@')
}

/// What `viewer` calls a stored person channel: the other party's uid.
pub fn person_channel_for<'a>(channel_id: &'a str, viewer: &str) -> &'a str {
    match person_pair(channel_id) {
        Some((a, b)) if a == viewer => b,
        Some((a, _)) => a,
        None => channel_id,
    }
}

/// Uids may not contain the characters used to build channel ids, nor control characters: a NUL or
/// other byte below the separators used in keys would sort one uid's records inside another's range.
pub fn valid_uid(uid: &str) -> bool {
    !uid.is_empty() && uid.len() <= 64 && !uid.contains(['@', '#', '&']) && !uid.chars().any(char::is_control)
}

/// Group channel ids: 1-128 bytes without control characters (for the same reason as uids).
pub fn valid_channel_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && !id.chars().any(char::is_control)
}

/// Why a channel a sender names cannot be sent to or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("person channels need valid uids on both sides; group ids are 1-128 bytes without control characters")]
    BadId,
    #[error("channel type not supported: 1 (person), 2 (group) and 8 (temporary) are")]
    UnsupportedType,
}

/// The id a channel is stored and routed under, as `sender` names it: for a person channel the pair of
/// uids (`person_channel_id`), for a group its own id. Edges route by it and core nodes store by it, so
/// both must compute it alike: this is the one place that does.
pub fn stored_channel_id(sender: &str, channel_id: &str, channel_type: u8) -> Result<String, ChannelError> {
    match channel_type {
        kind::PERSON if valid_uid(sender) && valid_uid(channel_id) => Ok(person_channel_id(sender, channel_id)),
        kind::GROUP | kind::TEMP if valid_channel_id(channel_id) => Ok(channel_id.to_string()),
        kind::PERSON | kind::GROUP | kind::TEMP => Err(ChannelError::BadId),
        _ => Err(ChannelError::UnsupportedType),
    }
}

/// The temporary channel of a message to `subscribers`, WuKongIM's: the decimal FNV-1a 64 hash of the
/// uids joined by commas, then `____cmd`. The same list in the same order gives the same channel.
pub fn temp_channel_id(subscribers: &[String]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in subscribers.join(",").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h}____cmd")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_channel_ids_are_wukongims() {
        let id = temp_channel_id(&["u1".to_string(), "u2".to_string()]);
        assert_eq!(id, "17922244540036557902____cmd");
        assert_ne!(id, temp_channel_id(&["u2".to_string(), "u1".to_string()]));
        assert_eq!(stored_channel_id("", &id, kind::TEMP), Ok(id.clone()));
    }

    #[test]
    fn person_channel_is_symmetric() {
        let id = person_channel_id("alice", "bob");
        assert_eq!(id, person_channel_id("bob", "alice"));
        assert_eq!(person_channel_for(&id, "alice"), "bob");
        assert_eq!(person_channel_for(&id, "bob"), "alice");
        let (a, b) = person_pair(&id).unwrap();
        assert!(crc(a) > crc(b));
        assert_eq!(person_channel_id("x", "x"), "x@x");
    }

    #[test]
    fn uid_rules() {
        assert!(valid_uid("alice"));
        for bad in ["", "a@b", "a#", "&", "bob\0x", "tab\there", "del\u{7f}", &"x".repeat(65)] {
            assert!(!valid_uid(bad), "{bad:?}");
        }
        assert!(valid_channel_id("team-1") && valid_channel_id("队伍"));
        for bad in ["", "a\0b", "line\n", &"x".repeat(129)] {
            assert!(!valid_channel_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_sender_names_a_channel_by_its_stored_id() {
        assert_eq!(stored_channel_id("alice", "bob", kind::PERSON), Ok(person_channel_id("bob", "alice")));
        assert_eq!(stored_channel_id("alice", "team@1", kind::GROUP), Ok("team@1".into()));
        assert_eq!(stored_channel_id("alice", "b@b", kind::PERSON), Err(ChannelError::BadId));
        assert_eq!(stored_channel_id("", "bob", kind::PERSON), Err(ChannelError::BadId));
        assert_eq!(stored_channel_id("alice", "", kind::GROUP), Err(ChannelError::BadId));
        assert_eq!(stored_channel_id("alice", "bob", 3), Err(ChannelError::UnsupportedType));
    }
}
