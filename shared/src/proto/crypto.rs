//! The CONNECT key agreement and the per-connection payload cipher the WuKongIM SDKs require.
//!
//! X25519 gives a shared secret; the AES-128 key is the first 16 hex characters of MD5(base64(shared)),
//! used as ASCII bytes, and the IV is the 16-character `salt` the server sends in CONNACK. Payloads travel as
//! base64 text of AES-128-CBC/PKCS7 ciphertext, and each SEND/RECV carries an MD5 "msgKey" over its fields.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use md5::{Digest, Md5};
use rand::{distributions::Alphanumeric, rngs::OsRng, Rng};
use x25519_dalek::{PublicKey, StaticSecret};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("client key is empty")]
    EmptyClientKey,
    #[error("client key is not base64 of 32 bytes")]
    BadClientKey,
    #[error("salt must be at least 16 bytes")]
    BadSalt,
    #[error("payload is not base64")]
    PayloadNotBase64,
    #[error("payload does not decrypt (wrong key or padding)")]
    PayloadDecrypt,
}

type Enc = cbc::Encryptor<aes::Aes128>;
type Dec = cbc::Decryptor<aes::Aes128>;

/// The key and IV of one client connection.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionCipher {
    key: [u8; 16],
    iv: [u8; 16],
}

impl std::fmt::Debug for SessionCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionCipher(..)")
    }
}

impl SessionCipher {
    /// `key` and `iv` are the ASCII texts the protocol derives; only their first 16 bytes count.
    pub fn new(key: &[u8], iv: &[u8]) -> Result<Self, CryptoError> {
        let (Some(key), Some(iv)) = (key.get(..16), iv.get(..16)) else {
            return Err(CryptoError::BadSalt);
        };
        let mut c = SessionCipher { key: [0; 16], iv: [0; 16] };
        c.key.copy_from_slice(key);
        c.iv.copy_from_slice(iv);
        Ok(c)
    }

    /// AES-CBC encrypts and returns the base64 text that goes on the wire.
    pub fn encrypt(&self, plain: &[u8]) -> String {
        let ct = Enc::new(&self.key.into(), &self.iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plain);
        B64.encode(ct)
    }

    /// Reverses [`Self::encrypt`].
    pub fn decrypt(&self, wire: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let ct = B64.decode(wire).map_err(|_| CryptoError::PayloadNotBase64)?;
        Dec::new(&self.key.into(), &self.iv.into())
            .decrypt_padded_vec_mut::<Pkcs7>(&ct)
            .map_err(|_| CryptoError::PayloadDecrypt)
    }

    /// msgKey = hex MD5 of base64(AES(signature)).
    pub fn msg_key(&self, signature: &str) -> String {
        md5_hex(self.encrypt(signature.as_bytes()).as_bytes())
    }

    /// msgKey of a SEND; `payload` is the wire (base64) payload.
    pub fn send_msg_key(
        &self,
        client_seq: u32,
        client_msg_no: &str,
        channel_id: &str,
        channel_type: u8,
        payload: &[u8],
    ) -> String {
        let sig = format!("{client_seq}{client_msg_no}{channel_id}{channel_type}{}", String::from_utf8_lossy(payload));
        self.msg_key(&sig)
    }

    /// msgKey of a RECV; `payload` is the wire (base64) payload.
    #[allow(clippy::too_many_arguments)]
    pub fn recv_msg_key(
        &self,
        message_id: i64,
        message_seq: u32,
        client_msg_no: &str,
        timestamp: i32,
        from_uid: &str,
        channel_id: &str,
        channel_type: u8,
        payload: &[u8],
    ) -> String {
        let sig = format!(
            "{message_id}{message_seq}{client_msg_no}{timestamp}{from_uid}{channel_id}{channel_type}{}",
            String::from_utf8_lossy(payload)
        );
        self.msg_key(&sig)
    }
}

/// Lowercase hex MD5.
pub fn md5_hex(data: &[u8]) -> String {
    let digest = Md5::digest(data);
    let mut s = String::with_capacity(32);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn derive(secret: &StaticSecret, peer: &PublicKey, salt: &str) -> Result<SessionCipher, CryptoError> {
    let shared = secret.diffie_hellman(peer);
    let key = md5_hex(B64.encode(shared.as_bytes()).as_bytes());
    SessionCipher::new(&key.as_bytes()[..16], salt.as_bytes())
}

fn decode_public(b64: &str) -> Result<PublicKey, CryptoError> {
    if b64.is_empty() {
        return Err(CryptoError::EmptyClientKey);
    }
    let bytes: [u8; 32] = B64.decode(b64).ok().and_then(|v| v.try_into().ok()).ok_or(CryptoError::BadClientKey)?;
    Ok(PublicKey::from(bytes))
}

/// The server side of the handshake: what CONNACK carries and the connection's cipher.
#[derive(Debug)]
pub struct ServerHandshake {
    pub server_key: String,
    pub salt: String,
    pub cipher: SessionCipher,
}

/// Answers a CONNECT's `clientKey` with a fresh key pair and a random 16-character salt.
pub fn server_handshake(client_key: &str) -> Result<ServerHandshake, CryptoError> {
    let salt: String = OsRng.sample_iter(&Alphanumeric).take(16).map(char::from).collect();
    server_handshake_with(client_key, StaticSecret::random_from_rng(OsRng), salt)
}

fn server_handshake_with(client_key: &str, secret: StaticSecret, salt: String) -> Result<ServerHandshake, CryptoError> {
    let client_pub = decode_public(client_key)?;
    let cipher = derive(&secret, &client_pub, &salt)?;
    Ok(ServerHandshake { server_key: B64.encode(PublicKey::from(&secret).as_bytes()), salt, cipher })
}

/// The client side: a key pair whose public half goes in CONNECT.
pub struct ClientKeys {
    secret: StaticSecret,
}

impl Default for ClientKeys {
    fn default() -> Self {
        Self::generate()
    }
}

impl ClientKeys {
    pub fn generate() -> Self {
        ClientKeys { secret: StaticSecret::random_from_rng(OsRng) }
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ClientKeys { secret: StaticSecret::from(bytes) }
    }

    pub fn public_b64(&self) -> String {
        B64.encode(PublicKey::from(&self.secret).as_bytes())
    }

    /// Completes the handshake from CONNACK's `serverKey` and `salt`.
    pub fn finish(&self, server_key: &str, salt: &str) -> Result<SessionCipher, CryptoError> {
        derive(&self.secret, &decode_public(server_key)?, salt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key32(s: &str) -> [u8; 32] {
        s.as_bytes().try_into().unwrap()
    }

    #[test]
    fn key_agreement_vector() {
        let client = ClientKeys::from_bytes(key32("0123456789abcdef0123456789abcdef"));
        assert_eq!(client.public_b64(), "hlF7wMOf6Ha3ZGy1407gPa9xzLrWdFDBapcK2MvAPn4=");
        let server = StaticSecret::from(key32("fedcba9876543210fedcba9876543210"));
        let shared = server.diffie_hellman(&decode_public(&client.public_b64()).unwrap());
        assert_eq!(B64.encode(shared.as_bytes()), "39OqijFkvP4v3jvEXXksRCvZXAgLKJdPxZ+NcKZ2wQc=");
        let hs = server_handshake_with(&client.public_b64(), server, "fedcba9876543210".into()).unwrap();
        assert_eq!(hs.server_key, "2/ygd0TRqiC1sebr6VaMzxUwnqJ9Zmo98HwJpoCThRI=");
        assert_eq!(&hs.cipher.key, b"d3514bfacef9c97a");
        // Both sides arrive at the same cipher.
        assert_eq!(client.finish(&hs.server_key, &hs.salt).unwrap(), hs.cipher);
    }

    #[test]
    fn send_payload_vector() {
        let c = SessionCipher::new(b"0123456789abcdef", b"fedcba9876543210").unwrap();
        let wire = c.encrypt(br#"{"type":1,"content":"hi"}"#);
        assert_eq!(wire, "hZI2uEjHFkB19tPiH0akECxMUzoxSCuHWNp+iGM15WA=");
        assert_eq!(c.send_msg_key(7, "cmn-1", "bob", 1, wire.as_bytes()), "7ace59429d3d6662ff77f785c05ab634");
        assert_eq!(c.decrypt(wire.as_bytes()).unwrap(), br#"{"type":1,"content":"hi"}"#);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let c = SessionCipher::new(b"0123456789abcdef", b"fedcba9876543210").unwrap();
        assert_eq!(c.decrypt(b"not base64!"), Err(CryptoError::PayloadNotBase64));
        assert_eq!(c.decrypt(b"AAAA"), Err(CryptoError::PayloadDecrypt));
        assert_eq!(server_handshake("").unwrap_err(), CryptoError::EmptyClientKey);
        assert_eq!(server_handshake("AAAA").unwrap_err(), CryptoError::BadClientKey);
    }
}
