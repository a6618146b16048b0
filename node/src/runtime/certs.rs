//! `quorra cert`: a private cluster CA and the certificates it signs.
//!
//! `init` makes `ca.crt` and `ca.key` (ECDSA P-256, via rcgen). `issue`
//! makes `NAME.crt` and `NAME.key` signed by it: a node certificate carries
//! the DNS name [`NODE_SERVER_NAME`] (every connection verifies servers by
//! it, and nodes require it of peers) plus `NAME` and `localhost`; a client
//! certificate carries `quorra-client` and `NAME`. Private keys are written
//! with mode 0600 and never overwritten: an existing file is an error.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use quorra_client::wire::NODE_SERVER_NAME;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file already exists and would be overwritten.
    #[error("{0} already exists; remove it first if you really mean to replace it")]
    Exists(PathBuf),
    /// The CA is missing.
    #[error("no cluster CA in {0}: run `quorra cert init --dir {0}` first")]
    NoCa(PathBuf),
    /// A name that cannot go into a certificate or a file name.
    #[error("invalid name {0:?}: use letters, digits, '-', '_' and '.'")]
    BadName(String),
    /// Reading or writing failed.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// rcgen refused.
    #[error("certificate generation failed: {0}")]
    Generate(String),
}

/// What a certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A node: server and client of other nodes.
    Node,
    /// A client of the cluster.
    Client,
}

fn generate(e: rcgen::Error) -> CertError {
    CertError::Generate(e.to_string())
}

fn io(path: &Path, e: std::io::Error) -> CertError {
    CertError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Writes `contents` to a new file, failing if it exists.
fn write_new(path: &Path, contents: &str, private: bool) -> Result<(), CertError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    if private {
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            CertError::Exists(path.to_path_buf())
        } else {
            io(path, e)
        }
    })?;
    file.write_all(contents.as_bytes())
        .map_err(|e| io(path, e))?;
    file.sync_all().map_err(|e| io(path, e))
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Quorra cluster CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// Creates a cluster CA in `dir` (created if needed).
pub fn init(dir: &Path) -> Result<(), CertError> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let (cert_path, key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
    for p in [&cert_path, &key_path] {
        if p.exists() {
            return Err(CertError::Exists(p.clone()));
        }
    }
    let key = KeyPair::generate().map_err(generate)?;
    let cert = ca_params().self_signed(&key).map_err(generate)?;
    write_new(&key_path, &key.serialize_pem(), true)?;
    write_new(&cert_path, &cert.pem(), false)
}

/// Issues a certificate named `name` for `role`, signed by the CA in `dir`.
pub fn issue(dir: &Path, name: &str, role: Role) -> Result<(), CertError> {
    if name.is_empty()
        || name == "ca"
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(CertError::BadName(name.to_string()));
    }
    let (ca_cert, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
    if !ca_cert.exists() || !ca_key.exists() {
        return Err(CertError::NoCa(dir.to_path_buf()));
    }
    let ca_key_pem = std::fs::read_to_string(&ca_key).map_err(|e| io(&ca_key, e))?;
    let ca_cert_pem = std::fs::read_to_string(&ca_cert).map_err(|e| io(&ca_cert, e))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(generate)?;
    let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, ca_key).map_err(generate)?;

    let names = match role {
        Role::Node => vec![
            NODE_SERVER_NAME.to_string(),
            name.to_string(),
            "localhost".into(),
        ],
        Role::Client => vec!["quorra-client".to_string(), name.to_string()],
    };
    let mut params = CertificateParams::new(names).map_err(generate)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match role {
        Role::Node => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        Role::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    let key = KeyPair::generate().map_err(generate)?;
    let cert = params.signed_by(&key, &issuer).map_err(generate)?;
    let (cert_path, key_path) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    for p in [&cert_path, &key_path] {
        if p.exists() {
            return Err(CertError::Exists(p.clone()));
        }
    }
    write_new(&key_path, &key.serialize_pem(), true)?;
    write_new(&cert_path, &cert.pem(), false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn issues_node_and_client_certificates_with_private_keys() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path()).unwrap();
        assert!(matches!(init(dir.path()), Err(CertError::Exists(_))));
        issue(dir.path(), "node1", Role::Node).unwrap();
        issue(dir.path(), "cli", Role::Client).unwrap();
        assert!(matches!(
            issue(dir.path(), "node1", Role::Node),
            Err(CertError::Exists(_))
        ));
        assert!(matches!(
            issue(dir.path(), "../x", Role::Node),
            Err(CertError::BadName(_))
        ));
        for key in ["ca.key", "node1.key", "cli.key"] {
            let mode = std::fs::metadata(dir.path().join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
        let other = tempfile::tempdir().unwrap();
        assert!(matches!(
            issue(other.path(), "n", Role::Node),
            Err(CertError::NoCa(_))
        ));
    }
}
