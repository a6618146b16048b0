//! The node's TLS: a QUIC server that requires client certificates from
//! the cluster CA, and the check that a peer connection comes from a node.
//!
//! Both clients and nodes connect to the same UDP port; the ALPN protocol
//! tells them apart ([`quorra_client::wire::ALPN_CLIENT`],
//! [`quorra_client::wire::ALPN_PEER`]). Any certificate not signed by the
//! cluster CA is refused during the handshake. A peer connection must
//! additionally present a *node* certificate (one valid for the name
//! [`quorra_client::wire::NODE_SERVER_NAME`], which `quorra cert issue`
//! puts only in node certificates), so a client certificate cannot speak
//! the node protocol.

use std::sync::Arc;

use quorra_client::TlsFiles;
use quorra_client::tls::{TlsError, load_certs, load_key, provider, roots, transport};
use quorra_client::wire::{ALPN_CLIENT, ALPN_PEER, NODE_SERVER_NAME};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::WebPkiClientVerifier;

/// The QUIC server configuration of a node.
pub fn server_config(files: &TlsFiles) -> Result<quinn::ServerConfig, TlsError> {
    let roots = roots(&files.ca)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| TlsError::Invalid(format!("client verifier: {e}")))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Invalid(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(&files.cert)?, load_key(&files.key)?)
        .map_err(|e| TlsError::Invalid(format!("{}: {e}", files.cert.display())))?;
    tls.alpn_protocols = vec![ALPN_PEER.to_vec(), ALPN_CLIENT.to_vec()];
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| TlsError::Invalid(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(transport());
    Ok(config)
}

/// The ALPN protocol a connection negotiated.
pub fn alpn(connection: &quinn::Connection) -> Option<Vec<u8>> {
    connection
        .handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?
        .protocol
}

/// Whether the certificate the connection presented is a node certificate.
pub fn presented_node_certificate(connection: &quinn::Connection) -> bool {
    let Some(identity) = connection.peer_identity() else {
        return false;
    };
    let Ok(chain) = identity.downcast::<Vec<CertificateDer<'static>>>() else {
        return false;
    };
    let Some(leaf) = chain.first() else {
        return false;
    };
    let Ok(cert) = webpki::EndEntityCert::try_from(leaf) else {
        return false;
    };
    let name = ServerName::try_from(NODE_SERVER_NAME).expect("a valid DNS name");
    cert.verify_is_valid_for_subject_name(&name).is_ok()
}
