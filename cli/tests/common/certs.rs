//! Certificates made at test time with Tern's own CA code: a CA and the node and edge certificates it
//! issues, for mutual TLS between Tern's processes.

use std::path::{Path, PathBuf};
use tern_shared::pki::{self, Identity, Issued};

pub struct Ca(pki::Ca);

/// A CA in `dir/<name>/`.
pub fn ca(dir: &Path, name: &str) -> Ca {
    Ca(pki::Ca::init(&dir.join(name), name, 30).expect("test CA"))
}

impl Ca {
    pub fn pem(&self) -> PathBuf {
        pki::Ca::cert_path(&self.0.dir)
    }

    pub fn node(&self, id: u64) -> Issued {
        self.0.issue(&Identity::Node(id), &[], 30).expect("node certificate")
    }

    /// Mutual TLS settings presenting `issued` and trusting this CA, for a hand-made peer.
    pub fn tls(&self, issued: &Issued) -> tern_shared::tls::LinkTls {
        self.0.link_tls(issued)
    }

    pub fn edge(&self, id: &str) -> Issued {
        self.0.issue(&Identity::Edge { id: id.into(), region: None }, &[], 30).expect("edge certificate")
    }
}

/// A `[table]` of mutual TLS settings (`link_tls`, `raft_tls`) presenting `issued`, trusting `ca_pem`.
pub fn mtls(table: &str, issued: &Issued, ca_pem: &Path) -> String {
    format!(
        "[{table}]\ncert = \"{}\"\nkey = \"{}\"\nca = \"{}\"\nserver_name = \"{}\"\n",
        issued.cert.display(),
        issued.key.display(),
        ca_pem.display(),
        pki::CORE_NAME
    )
}
