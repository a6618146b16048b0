//! TLS material and configuration shared by clients and nodes.
//!
//! Every connection in a Quorra cluster is QUIC with TLS 1.3 and mutual
//! authentication against one cluster CA (`quorra cert init`). A directory
//! holds `ca.crt` and, per identity, `NAME.crt` and `NAME.key`
//! (`quorra cert issue --name NAME`). Servers are always verified against
//! the CA under the name [`crate::wire::NODE_SERVER_NAME`], which every node
//! certificate carries; clients present their own certificate. One crypto
//! provider (ring) is used explicitly everywhere, so nothing depends on a
//! process-wide default.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Where one identity's TLS files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The cluster CA certificate.
    pub ca: PathBuf,
    /// This identity's certificate.
    pub cert: PathBuf,
    /// This identity's private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files of identity `name` in `dir`: `ca.crt`, `NAME.crt`, `NAME.key`.
    pub fn in_dir(dir: &Path, name: &str) -> Self {
        Self {
            ca: dir.join("ca.crt"),
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        }
    }
}

/// Why TLS material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or parsed.
    #[error("cannot read {path}: {reason}")]
    File {
        /// Which file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The material is inconsistent (e.g. the key does not match the certificate).
    #[error("invalid TLS configuration: {0}")]
    Invalid(String),
}

/// The crypto provider every configuration uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file_error = |reason: String| TlsError::File {
        path: path.to_path_buf(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error("no certificate in it".into()));
    }
    Ok(certs)
}

/// The private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// A root store holding only the cluster CA.
pub fn roots(ca: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(ca)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::Invalid(format!("CA certificate {}: {e}", ca.display())))?;
    }
    Ok(Arc::new(roots))
}

/// Ack-eliciting packets a peer may receive from us before it must
/// acknowledge them (QUIC's ACK frequency extension; RFC 9000 alone means
/// an ACK for every other packet).
pub const ACK_ELICITING_THRESHOLD: u32 = 10;

/// How long a peer may hold back an acknowledgement below the threshold.
pub const MAX_ACK_DELAY: Duration = Duration::from_millis(5);

/// QUIC transport settings shared by clients and nodes: keep idle
/// connections alive (a ping every 2 s), and give up on a connection whose
/// other end has been silent for 10 s (a killed process sends no goodbye).
///
/// Acknowledgements are thinned ([`ACK_ELICITING_THRESHOLD`],
/// [`MAX_ACK_DELAY`]): Quorra's traffic is requests and replies in both
/// directions, so most acknowledgements ride on a reply anyway, and an
/// acknowledgement sent on its own for every other packet was a datagram
/// (a system call, a wake-up of the other process, a decryption) of its
/// own. Measured with `tests/bench/resp-cpu-per-op.sh` on 3 local nodes:
/// datagrams per redis-benchmark request 0.56 → 0.46 (GET) and 0.40 → 0.27
/// (SET). The cost is slower feedback to the sender's congestion control
/// and loss detection, bounded by the 5 ms delay.
pub fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(Duration::from_secs(2)));
    t.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(Duration::from_secs(10)).expect("10 s fits"),
    ));
    let mut ack = quinn::AckFrequencyConfig::default();
    ack.ack_eliciting_threshold(quinn::VarInt::from_u32(ACK_ELICITING_THRESHOLD))
        .max_ack_delay(Some(MAX_ACK_DELAY));
    t.ack_frequency_config(Some(ack));
    Arc::new(t)
}

/// A QUIC client configuration presenting `files`' certificate, trusting
/// only the cluster CA, speaking `alpn`.
pub fn client_config(files: &TlsFiles, alpn: &[u8]) -> Result<quinn::ClientConfig, TlsError> {
    let roots = roots(&files.ca)?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Invalid(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(load_certs(&files.cert)?, load_key(&files.key)?)
        .map_err(|e| TlsError::Invalid(format!("{}: {e}", files.cert.display())))?;
    tls.alpn_protocols = vec![alpn.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| TlsError::Invalid(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport());
    Ok(config)
}
