//! How the admin listener is set up, its limits, and the rule that keeps
//! it from being open to a network without a token.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

/// Where the admin listener listens unless told otherwise: loopback, on
/// the port ScyllaDB's Prometheus endpoint made familiar.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9180));

/// Connections the admin listener serves at once; more are answered
/// `503` and closed. Prometheus, a load balancer's probes and a few
/// browsers need far fewer.
pub const MAX_CONNECTIONS: usize = 64;

/// Longest a connection stays open, however it is used: a client that
/// keeps requesting without reading the answers cannot hold its slot
/// longer. Prometheus and probes reconnect when it ends.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// How long a `/ready` answer is reused: probes hammering it cost the
/// driver one check per this period, not one per request.
pub const READY_CACHE: Duration = Duration::from_millis(250);

/// Largest request head (request line and headers) read; a longer one is
/// answered `431` and the connection closed.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Longest a client may take to send a request's head: a connection that
/// trickles it (slowloris) is closed after this.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest a request waits for the node's answer before `503`: the node's
/// driver is busy or stuck. `/health` never waits for it.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// How the admin listener is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminConfig {
    /// TCP address to listen on.
    pub listen: SocketAddr,
    /// The bearer token every request but `/health` and `/ready` must
    /// carry (`Authorization: Bearer TOKEN`); none: no token asked.
    pub token: Option<String>,
    /// Whether the address was asked for. The default one is skipped with
    /// a warning when its port is taken (a second node on the host); an
    /// address asked for must be free or the node does not start.
    pub explicit: bool,
}

impl AdminConfig {
    /// Refuses a configuration that would expose the cluster's state and
    /// metrics to a network with no token.
    pub fn check(&self) -> Result<(), String> {
        if let Some(token) = &self.token
            && (token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(
                "the admin token must be non-empty printable ASCII without spaces (it is sent \
                 in an HTTP header)"
                    .into(),
            );
        }
        if !self.listen.ip().is_loopback() && self.token.is_none() {
            return Err(format!(
                "refusing to serve the admin API on {} without a token: anyone who can reach it \
                 could read the cluster's state. Set --admin-token (or `admin-token` in the \
                 config file), or listen on a loopback address such as 127.0.0.1",
                self.listen
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(listen: &str, token: Option<&str>) -> AdminConfig {
        AdminConfig {
            listen: listen.parse().unwrap(),
            token: token.map(str::to_string),
            explicit: true,
        }
    }

    #[test]
    fn loopback_needs_no_token_and_a_network_address_does() {
        assert!(config("127.0.0.1:9180", None).check().is_ok());
        assert!(config("[::1]:9180", None).check().is_ok());
        let e = config("0.0.0.0:9180", None).check().unwrap_err();
        assert!(e.contains("--admin-token"), "{e}");
        assert!(config("0.0.0.0:9180", Some("s3cret")).check().is_ok());
        assert!(config("127.0.0.1:9180", Some("")).check().is_err());
        assert!(config("127.0.0.1:9180", Some("two words")).check().is_err());
        assert!(config("127.0.0.1:9180", Some("naïve")).check().is_err());
    }
}
