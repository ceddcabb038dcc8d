//! TLS for client listeners: certificates picked by SNI, reloaded from disk (on a timer or SIGHUP)
//! without touching established sessions, which keep the keys they negotiated.

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// One certificate chain and key, served for `names` (SNI); the first configured one is the default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertFiles {
    #[serde(default)]
    pub names: Vec<String>,
    /// PEM: the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    Load { path: String, message: String },
    #[error("no certificate is configured")]
    NoCertificates,
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load_err(path: &std::path::Path, message: impl std::fmt::Display) -> TlsError {
    TlsError::Load { path: path.display().to_string(), message: message.to_string() }
}

fn load(files: &CertFiles, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| load_err(&files.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| load_err(&files.cert, e))?;
    if certs.is_empty() {
        return Err(load_err(&files.cert, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| load_err(&files.key, e))?;
    let signing = provider.key_provider.load_private_key(key).map_err(|e| load_err(&files.key, e))?;
    Ok(Arc::new(CertifiedKey::new(certs, signing)))
}

#[derive(Debug)]
struct Loaded {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

/// Picks a certificate by SNI; swapped whole on reload.
#[derive(Debug)]
pub struct SniResolver {
    files: Vec<CertFiles>,
    provider: Arc<CryptoProvider>,
    loaded: RwLock<Arc<Loaded>>,
}

impl SniResolver {
    pub fn new(files: Vec<CertFiles>) -> Result<Arc<SniResolver>, TlsError> {
        let provider = provider();
        let loaded = Self::load_all(&files, &provider)?;
        Ok(Arc::new(SniResolver { files, provider, loaded: RwLock::new(Arc::new(loaded)) }))
    }

    fn load_all(files: &[CertFiles], provider: &CryptoProvider) -> Result<Loaded, TlsError> {
        let mut by_name = HashMap::new();
        let mut default = None;
        for f in files {
            let key = load(f, provider)?;
            default.get_or_insert_with(|| key.clone());
            for name in &f.names {
                by_name.insert(name.to_ascii_lowercase(), key.clone());
            }
        }
        Ok(Loaded { by_name, default: default.ok_or(TlsError::NoCertificates)? })
    }

    /// Reads every file again; on any error the certificates in use stay.
    pub fn reload(&self) -> Result<(), TlsError> {
        let loaded = Self::load_all(&self.files, &self.provider)?;
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
        Ok(())
    }

    fn stamp(&self) -> Vec<Option<SystemTime>> {
        self.files
            .iter()
            .flat_map(|f| [&f.cert, &f.key])
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    }

    /// Reloads whenever a file's modification time changes, checking every `every`.
    pub fn watch(self: &Arc<Self>, every: Duration) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut seen = me.stamp();
            loop {
                tokio::time::sleep(every).await;
                let now = me.stamp();
                if now != seen {
                    seen = now;
                    match me.reload() {
                        Ok(()) => tracing::info!("certificates reloaded"),
                        Err(e) => tracing::warn!(error = %e, "certificate reload failed; keeping the old ones"),
                    }
                }
            }
        });
    }

    /// A server config using these certificates, offering `alpn` (empty: no ALPN).
    pub fn server_config(self: &Arc<Self>, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner()).clone();
        let named = hello.server_name().and_then(|n| loaded.by_name.get(&n.to_ascii_lowercase())).cloned();
        Some(named.unwrap_or_else(|| loaded.default.clone()))
    }
}

/// A client config trusting the PEM certificates in `roots` (a private CA, or a test's own certs).
pub fn client_config(roots: &[u8]) -> Result<Arc<ClientConfig>, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(roots) {
        let cert = cert.map_err(|e| TlsError::Load { path: "roots".into(), message: e.to_string() })?;
        store.add(cert)?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Mutual TLS between an edge and the core, or between core nodes: each side presents `cert`/`key` and
/// accepts only peers whose certificate chains to `ca`. The dialing side also names the core it expects
/// (`server_name`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// PEM CA certificates trusted for the other side.
    pub ca: PathBuf,
    /// Dialing side: the name in the core's certificate (default `tern-core`).
    #[serde(default)]
    pub server_name: String,
}

impl LinkTls {
    /// What the dialing side needs: its TLS connector and the name the core must prove.
    pub fn connector(&self) -> Result<(tokio_rustls::TlsConnector, ServerName<'static>), TlsError> {
        let name = if self.server_name.is_empty() { "tern-core" } else { self.server_name.as_str() };
        let name = ServerName::try_from(name.to_string())
            .map_err(|e| TlsError::Load { path: "server_name".into(), message: e.to_string() })?;
        Ok((tokio_rustls::TlsConnector::from(link_client_config(self)?), name))
    }
}

fn roots(path: &std::path::Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| load_err(path, e))? {
        store.add(cert.map_err(|e| load_err(path, e))?)?;
    }
    if store.is_empty() {
        return Err(load_err(path, "no CA certificate in the file"));
    }
    Ok(store)
}

fn chain_and_key(t: &LinkTls) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let certs = CertificateDer::pem_file_iter(&t.cert)
        .map_err(|e| load_err(&t.cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| load_err(&t.cert, e))?;
    let key = PrivateKeyDer::from_pem_file(&t.key).map_err(|e| load_err(&t.key, e))?;
    Ok((certs, key))
}

/// The core's side: a client certificate chaining to `ca` is required.
pub fn link_server_config(t: &LinkTls) -> Result<Arc<ServerConfig>, TlsError> {
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots(&t.ca)?), provider())
        .build()
        .map_err(|e| load_err(&t.ca, e))?;
    let (certs, key) = chain_and_key(t)?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

/// The edge's side: trusts `ca` for the core and presents its own certificate.
pub fn link_client_config(t: &LinkTls) -> Result<Arc<ClientConfig>, TlsError> {
    let (certs, key) = chain_and_key(t)?;
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(&t.ca)?)
        .with_client_auth_cert(certs, key)?;
    Ok(Arc::new(config))
}
