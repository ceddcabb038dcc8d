//! Certificates made at test time: a CA and leaves it signs, for mutual TLS between Tern's processes.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::path::Path;

pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pub pem: String,
}

pub fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    Ca { params, key, pem }
}

/// Writes `<stem>.pem` / `<stem>.key` for `name`, signed by `ca`.
pub fn leaf(dir: &Path, stem: &str, name: &str, ca: &Ca) {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .signed_by(&key, &Issuer::from_params(&ca.params, &ca.key))
        .unwrap();
    std::fs::write(dir.join(format!("{stem}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
}

/// A `[table]` of mutual TLS settings (`link_tls`, `raft_tls`) with `<stem>.pem`/`.key`, trusting `ca_file`.
pub fn mtls(table: &str, dir: &Path, stem: &str, ca_file: &str) -> String {
    let p = |f: String| dir.join(f).display().to_string();
    format!(
        "[{table}]\ncert = \"{}\"\nkey = \"{}\"\nca = \"{}\"\nserver_name = \"tern-core\"\n",
        p(format!("{stem}.pem")),
        p(format!("{stem}.key")),
        p(ca_file.to_string())
    )
}
