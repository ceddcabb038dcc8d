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
}
