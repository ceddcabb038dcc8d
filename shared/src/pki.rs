//! The cluster's own certificate authority: a CA, and the certificates it issues to core nodes and
//! edges with their identity inside (URI names `tern://node/<id>`, `tern://edge/<id>`,
//! `tern://region/<region>`). A core accepts on its link port only edge certificates and takes the edge
//! id from the certificate; its raft port accepts only node certificates. Only node certificates carry
//! the name `tern-core` and may serve TLS, so an edge certificate can pose neither as a node nor as a
//! core to another edge.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The DNS name every core node's certificate carries and every dialer expects.
pub const CORE_NAME: &str = "tern-core";

const SCHEME: &str = "tern://";

/// Who a certificate says its holder is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Node(u64),
    Edge { id: String, region: Option<String> },
}

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("peer certificate: {0}")]
    Parse(String),
    #[error("peer certificate names no Tern identity (tern://node/<id> or tern://edge/<id>): issue it with `tern certs issue`")]
    NoIdentity,
    #[error("peer certificate names more than one Tern identity")]
    Ambiguous,
    #[error("the peer presented no certificate")]
    NoCertificate,
    #[error("`{0}` may hold only letters, digits, '.', '_' and '-' (1-64 characters)")]
    BadName(String),
}

/// Edge ids and regions go into URIs and logs: plain names only.
pub fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn file_err(path: &Path, message: impl std::fmt::Display) -> PkiError {
    PkiError::File { path: path.display().to_string(), message: message.to_string() }
}

/// The identity in a DER certificate, if it names exactly one.
pub fn identity_of(der: &[u8]) -> Result<Identity, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| PkiError::Parse(e.to_string()))?;
    let san = cert.subject_alternative_name().map_err(|e| PkiError::Parse(e.to_string()))?;
    let uris = san.iter().flat_map(|s| s.value.general_names.iter()).filter_map(|n| match n {
        x509_parser::extensions::GeneralName::URI(u) => u.strip_prefix(SCHEME),
        _ => None,
    });
    let (mut found, mut region) = (None, None);
    for uri in uris {
        let parsed = match uri.split_once('/') {
            Some(("node", id)) => id.parse().ok().filter(|&id| id > 0).map(Identity::Node),
            Some(("edge", id)) if valid_name(id) => Some(Identity::Edge { id: id.to_string(), region: None }),
            Some(("region", r)) if valid_name(r) => {
                region = Some(r.to_string());
                None
            }
            _ => None,
        };
        if let Some(identity) = parsed {
            if found.replace(identity).is_some() {
                return Err(PkiError::Ambiguous);
            }
        }
    }
    match found {
        Some(Identity::Edge { id, .. }) => Ok(Identity::Edge { id, region }),
        Some(node) => Ok(node),
        None => Err(PkiError::NoIdentity),
    }
}

/// What a TLS peer's certificate chain says of it: its leaf's identity and fingerprint.
pub fn peer_identity(certs: Option<&[rustls_pki_types::CertificateDer<'_>]>) -> Result<(Identity, [u8; 32]), PkiError> {
    let leaf = certs.and_then(|c| c.first()).ok_or(PkiError::NoCertificate)?;
    Ok((identity_of(leaf)?, fingerprint(leaf)))
}

/// SHA-256 of a DER certificate: tells two certificates for the same identity apart.
pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// A CA kept as `ca.pem` (certificate) and `ca.key` (private key, mode 0600) in one directory.
pub struct Ca {
    pub dir: PathBuf,
    cert_pem: String,
    key: KeyPair,
}

/// Where `issue` wrote a certificate and its key.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

const DAY: Duration = Duration::from_secs(86_400);

fn validity(params: &mut CertificateParams, days: u32) {
    let now = std::time::SystemTime::now();
    // An hour back, for clocks a little behind this one.
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + DAY * days).into();
}

fn write_private(path: &Path, text: &str) -> Result<(), PkiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| file_err(path, e))?;
    f.write_all(text.as_bytes()).map_err(|e| file_err(path, e))
}

fn write_public(path: &Path, text: &str) -> Result<(), PkiError> {
    std::fs::write(path, text).map_err(|e| file_err(path, e))
}

impl Ca {
    pub fn cert_path(dir: &Path) -> PathBuf {
        dir.join("ca.pem")
    }

    /// Creates a CA in `dir` (created if missing); refuses to overwrite one.
    pub fn init(dir: &Path, name: &str, days: u32) -> Result<Ca, PkiError> {
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
        let cert_path = Self::cert_path(dir);
        if cert_path.exists() {
            return Err(file_err(&cert_path, "a CA is already there; remove it to make a new one"));
        }
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.distinguished_name.push(DnType::CommonName, name);
        validity(&mut params, days);
        let key = KeyPair::generate()?;
        let cert_pem = params.self_signed(&key)?.pem();
        write_private(&dir.join("ca.key"), &key.serialize_pem())?;
        write_public(&cert_path, &cert_pem)?;
        Ok(Ca { dir: dir.to_path_buf(), cert_pem, key })
    }

    pub fn open(dir: &Path) -> Result<Ca, PkiError> {
        let cert_path = Self::cert_path(dir);
        let key_path = dir.join("ca.key");
        let cert_pem = std::fs::read_to_string(&cert_path).map_err(|e| file_err(&cert_path, e))?;
        let key_pem = std::fs::read_to_string(&key_path).map_err(|e| file_err(&key_path, e))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| file_err(&key_path, e))?;
        Issuer::from_ca_cert_pem(&cert_pem, &key).map_err(|e| file_err(&cert_path, e))?;
        Ok(Ca { dir: dir.to_path_buf(), cert_pem, key })
    }

    /// The CA in `dir`, created first if there is none.
    pub fn open_or_init(dir: &Path, name: &str) -> Result<Ca, PkiError> {
        if Self::cert_path(dir).exists() {
            Self::open(dir)
        } else {
            Self::init(dir, name, 3650)
        }
    }

    /// Issues a certificate for `identity` into the CA's directory as `<stem>.pem` / `<stem>.key`:
    /// `node-<id>` or `edge-<id>`. `names` are extra DNS names or IP addresses a node serves under.
    pub fn issue(&self, identity: &Identity, names: &[String], days: u32) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let uri = |s: String| -> Result<SanType, PkiError> { Ok(SanType::URI(s.try_into()?)) };
        let stem = match identity {
            Identity::Node(id) => {
                params.distinguished_name.push(DnType::CommonName, format!("tern node {id}"));
                params.subject_alt_names.push(uri(format!("{SCHEME}node/{id}"))?);
                params.subject_alt_names.push(SanType::DnsName(CORE_NAME.try_into()?));
                for n in names {
                    params.subject_alt_names.push(match n.parse::<IpAddr>() {
                        Ok(ip) => SanType::IpAddress(ip),
                        Err(_) => SanType::DnsName(n.clone().try_into()?),
                    });
                }
                // A node serves its raft and link ports and dials other nodes.
                params.extended_key_usages =
                    vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
                format!("node-{id}")
            }
            Identity::Edge { id, region } => {
                for name in std::iter::once(id).chain(region) {
                    if !valid_name(name) {
                        return Err(PkiError::BadName(name.clone()));
                    }
                }
                params.distinguished_name.push(DnType::CommonName, format!("tern edge {id}"));
                params.subject_alt_names.push(uri(format!("{SCHEME}edge/{id}"))?);
                if let Some(r) = region {
                    params.subject_alt_names.push(uri(format!("{SCHEME}region/{r}"))?);
                }
                // An edge only dials: its certificate cannot serve TLS.
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
                format!("edge-{id}")
            }
        };
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        validity(&mut params, days);
        let key = KeyPair::generate()?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)?;
        let cert = params.signed_by(&key, &issuer)?;
        let issued = Issued { cert: self.dir.join(format!("{stem}.pem")), key: self.dir.join(format!("{stem}.key")) };
        write_private(&issued.key, &key.serialize_pem())?;
        write_public(&issued.cert, &cert.pem())?;
        Ok(issued)
    }

    /// Mutual TLS settings (`link_tls`, `raft_tls`) for an issued certificate, trusting this CA.
    pub fn link_tls(&self, issued: &Issued) -> crate::tls::LinkTls {
        crate::tls::LinkTls {
            cert: issued.cert.clone(),
            key: issued.key.clone(),
            ca: Self::cert_path(&self.dir),
            server_name: CORE_NAME.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;

    fn der(path: &Path) -> Vec<u8> {
        rustls_pki_types::CertificateDer::from_pem_file(path).unwrap().to_vec()
    }

    #[test]
    fn issued_certificates_carry_their_identity() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::init(dir.path(), "test ca", 30).unwrap();
        assert!(Ca::init(dir.path(), "again", 30).is_err(), "an existing CA is never overwritten");
        let node = ca.issue(&Identity::Node(3), &["10.0.0.3".into(), "core3.example".into()], 30).unwrap();
        assert_eq!(identity_of(&der(&node.cert)).unwrap(), Identity::Node(3));
        let edge = Identity::Edge { id: "edge-eu-1".into(), region: Some("eu-west".into()) };
        let issued = ca.issue(&edge, &[], 30).unwrap();
        assert_eq!(identity_of(&der(&issued.cert)).unwrap(), edge);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&issued.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "private keys are readable by their owner only");

        let reopened = Ca::open(dir.path()).unwrap();
        let again = reopened.issue(&Identity::Node(4), &[], 30).unwrap();
        assert_eq!(identity_of(&der(&again.cert)).unwrap(), Identity::Node(4));
        assert_ne!(fingerprint(&der(&again.cert)), fingerprint(&der(&node.cert)));

        let bad = Identity::Edge { id: "a/b".into(), region: None };
        assert!(matches!(ca.issue(&bad, &[], 30), Err(PkiError::BadName(_))));
    }

    #[test]
    fn a_plain_certificate_names_no_identity() {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["edge-1".to_string()]).unwrap().self_signed(&key).unwrap();
        assert!(matches!(identity_of(cert.der()), Err(PkiError::NoIdentity)));
        assert!(matches!(identity_of(b"not der"), Err(PkiError::Parse(_))));
    }
}
