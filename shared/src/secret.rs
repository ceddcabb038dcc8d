//! Comparing secrets without telling an attacker how much of a guess was right, and the form in which
//! user tokens are kept (raft entries, RocksDB, snapshots): a hash, never the token.

use subtle::ConstantTimeEq;

/// Equal in time that depends only on the lengths.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// A configured API token compared with the one a request presented. Both are hashed first, so the
/// time taken does not even depend on the presented token's length.
pub fn token_matches(expected: &str, given: Option<&str>) -> bool {
    let given = given.unwrap_or_default();
    let h = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    same(h(expected).as_ref(), h(given).as_ref()) && !expected.is_empty()
}

/// What is stored for a user's token: SHA-256 over a domain tag, the uid and the token, so equal
/// tokens of two users hash differently. Business servers issue tokens with enough entropy that a
/// slow password hash would only slow logins down.
pub fn user_token_hash(uid: &str, token: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"tern user token v1\0");
    ctx.update(&(uid.len() as u64).to_le_bytes());
    ctx.update(uid.as_bytes());
    ctx.update(token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// What an edge shows with each session it announces: proof that the session's client presented the
/// uid's current token, bound to that edge and session. The key is the stored token hash, which every
/// core node holds and an edge can derive only from the token itself, so an edge cannot announce a
/// uid that never logged in through it (and receive that uid's messages).
pub fn session_proof(token_hash: &[u8; 32], edge_id: &str, session: u64, device_flag: u8) -> [u8; 32] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token_hash);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(b"tern session v1\0");
    ctx.update(&(edge_id.len() as u64).to_le_bytes());
    ctx.update(edge_id.as_bytes());
    ctx.update(&session.to_le_bytes());
    ctx.update(&[device_flag]);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
        assert!(token_matches("s3cret", Some("s3cret")));
        assert!(!token_matches("s3cret", Some("s3cre")));
        assert!(!token_matches("s3cret", None));
        assert!(!token_matches("", Some("")), "an empty token never matches");
    }

    #[test]
    fn token_hashes_depend_on_uid_and_token() {
        let h = user_token_hash("alice", "t");
        assert_eq!(h, user_token_hash("alice", "t"));
        assert_ne!(h, user_token_hash("bob", "t"));
        assert_ne!(h, user_token_hash("alice", "u"));
        // The uid's length is hashed: moving bytes between uid and token changes the hash.
        assert_ne!(user_token_hash("ab", "c"), user_token_hash("a", "bc"));
    }

    #[test]
    fn session_proofs_bind_token_edge_session_and_device() {
        let h = user_token_hash("alice", "t");
        let p = session_proof(&h, "edge-1", 7, 0);
        assert_eq!(p, session_proof(&h, "edge-1", 7, 0));
        assert_ne!(p, session_proof(&user_token_hash("alice", "u"), "edge-1", 7, 0));
        assert_ne!(p, session_proof(&h, "edge-2", 7, 0));
        assert_ne!(p, session_proof(&h, "edge-1", 8, 0));
        assert_ne!(p, session_proof(&h, "edge-1", 7, 1));
    }
}
