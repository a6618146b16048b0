//! TLS on the RESP port: the node's own certificate (from the cluster CA),
//! TLS 1.3, no client certificate asked for: clients prove who they are
//! with `AUTH`, so `redis-cli --tls --cacert ca.crt` is enough.

use std::sync::Arc;

use quorra_client::TlsFiles;
use quorra_client::tls::{TlsError, load_certs, load_key, provider};
use tokio_rustls::TlsAcceptor;

/// The acceptor for the RESP port, from the node's TLS files.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Invalid(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(load_certs(&files.cert)?, load_key(&files.key)?)
        .map_err(|e| TlsError::Invalid(format!("{}: {e}", files.cert.display())))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
