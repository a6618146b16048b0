//! The admin listener: hyper's HTTP/1 server on a TCP port, one task per
//! connection, every limit a constant of [`super::config`].
//!
//! Routing is a match on the path; the handlers are small and answer
//! with JSON, the Prometheus text format or the status page. Everything
//! that shows the node's state is asked of the driver
//! ([`super::query`]) with a timeout, so a stuck driver gives a `503`, not
//! a hung scrape; `/health` answers from this task alone, so it says
//! "alive" exactly when the process can still serve HTTP.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use super::config::{
    ANSWER_TIMEOUT, AdminConfig, CONNECTION_LIFETIME, HEAD_TIMEOUT, MAX_CONNECTIONS,
    MAX_HEAD_BYTES, READY_CACHE,
};
use super::metrics::Metrics;
use super::page::PAGE;
use super::query::{Answer, Query};
use super::ready::Readiness;
use super::snapshot::{Process, certificate_expiry, directory_bytes, disk_space};
use crate::resp::Gateway;
use crate::runtime::transport::Input;

/// The `Content-Type` of the Prometheus text format.
const METRICS_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

type Reply = Response<Full<Bytes>>;

/// The admin listener's shared state.
pub struct AdminServer {
    config: AdminConfig,
    inbox: mpsc::Sender<Input>,
    metrics: Arc<Metrics>,
    resp: Option<Arc<Gateway>>,
    connections: AtomicUsize,
    /// The node's data directory (for its disk's free space).
    data_dir: PathBuf,
    /// When the node certificate expires.
    certificate_expiry: Option<f64>,
    /// The last `/ready` answer and when it was asked.
    ready_cache: std::sync::Mutex<Option<(Instant, Readiness)>>,
}

/// What the listener knows of its node besides what the driver answers.
pub struct NodeFacts {
    /// The node's RESP gateway, if it has one (for its connection count).
    pub resp: Option<Arc<Gateway>>,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The node certificate's file.
    pub certificate: PathBuf,
}

/// One counted connection; uncounted when dropped.
struct Slot(Arc<AdminServer>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AdminServer {
    /// A listener asking the driver through `inbox` about the node
    /// whose facts are `node`.
    pub fn new(
        config: AdminConfig,
        inbox: mpsc::Sender<Input>,
        metrics: Arc<Metrics>,
        node: NodeFacts,
    ) -> Self {
        Self {
            config,
            inbox,
            metrics,
            resp: node.resp,
            connections: AtomicUsize::new(0),
            data_dir: node.data_dir,
            certificate_expiry: certificate_expiry(&node.certificate),
            ready_cache: std::sync::Mutex::new(None),
        }
    }

    /// Serves `listener` until `shutdown` is set.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) {
        info!(listen = %self.config.listen, token = self.config.token.is_some(), "admin HTTP listener up");
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: pause, go on.
                        warn!(error = %e, "admin accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = shutdown.changed() => return,
            };
            if self.connections.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
                self.connections.fetch_sub(1, Ordering::Relaxed);
                debug!(%peer, "admin connection refused: too many open");
                tokio::spawn(refuse(stream));
                continue;
            }
            let slot = Slot(self.clone());
            let me = self.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let service = service_fn(move |request| {
                    let me = me.clone();
                    async move { Ok::<_, Infallible>(me.handle(request).await) }
                });
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEAD_TIMEOUT)
                    .max_buf_size(MAX_HEAD_BYTES)
                    .serve_connection(TokioIo::new(stream), service);
                // A client that stops reading its answers is never timed
                // out by hyper: every connection has a lifetime.
                match tokio::time::timeout(CONNECTION_LIFETIME, connection).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => debug!(%peer, error = %e, "admin connection ended with an error"),
                    Err(_) => debug!(%peer, "admin connection closed at the end of its lifetime"),
                }
            });
        }
    }

    async fn handle(&self, request: Request<Incoming>) -> Reply {
        let started = Instant::now();
        let path = request.uri().path().to_string();
        let reply = self.route(&request, &path).await;
        debug!(
            method = %request.method(),
            path,
            status = reply.status().as_u16(),
            micros = started.elapsed().as_micros() as u64,
            "admin request"
        );
        reply
    }

    async fn route(&self, request: &Request<Incoming>, path: &str) -> Reply {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut r = error(
                StatusCode::METHOD_NOT_ALLOWED,
                "only GET and HEAD are served",
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        match path {
            "/health" => text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into()),
            "/ready" => match self.readiness().await {
                Some(r) => {
                    let status = if r.ready {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    json(status, &r)
                }
                None => busy(),
            },
            // The page holds no data; what it shows it fetches with the
            // token (taken from the URL's fragment) like any client.
            "/" => text(StatusCode::OK, "text/html; charset=utf-8", PAGE.into()),
            _ => {
                if let Some(denied) = self.refusal(request) {
                    return denied;
                }
                self.protected(path).await
            }
        }
    }

    async fn protected(&self, path: &str) -> Reply {
        match path {
            "/metrics" => match self.ask(Query::Metrics).await {
                Some(Answer::Metrics(mut snapshot)) => {
                    snapshot.resp_connections =
                        self.resp.as_ref().map_or(0, |g| g.connections() as u64);
                    // File-system and /proc reads may block (a stuck
                    // disk): on the blocking pool, not the runtime's
                    // thread, which the driver shares.
                    let dir = self.data_dir.clone();
                    let read = tokio::task::spawn_blocking(move || {
                        (disk_space(&dir), directory_bytes(&dir), Process::read())
                    });
                    let (disk, size, process) = tokio::time::timeout(ANSWER_TIMEOUT, read)
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .unwrap_or_default();
                    snapshot.disk = disk;
                    snapshot.data_bytes = size;
                    snapshot.certificate_expiry = self.certificate_expiry;
                    match self.metrics.render(*snapshot, process) {
                        Ok(body) => text(StatusCode::OK, METRICS_TYPE, body),
                        Err(_) => error(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "the metrics could not be encoded",
                        ),
                    }
                }
                Some(_) => unexpected(),
                None => busy(),
            },
            "/v1/status" => match self.ask(Query::Status).await {
                Some(Answer::Status(s)) => json(StatusCode::OK, &*s),
                Some(_) => unexpected(),
                None => busy(),
            },
            "/v1/ring" => match self.ask(Query::Ring).await {
                Some(Answer::Ring(r)) => json(StatusCode::OK, &*r),
                Some(_) => unexpected(),
                None => busy(),
            },
            _ => error(
                StatusCode::NOT_FOUND,
                "no such endpoint; try /health, /ready, /metrics, /v1/status, /v1/ring or /",
            ),
        }
    }

    /// Checks the bearer token, if one is configured (else that the
    /// request names this machine as its host): the answer to give
    /// instead, if the request fails the check.
    fn refusal(&self, request: &Request<Incoming>) -> Option<Reply> {
        let Some(token) = self.config.token.as_ref() else {
            let host = request
                .headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if local_host(host) {
                return None;
            }
            return Some(error(
                StatusCode::FORBIDDEN,
                "without --admin-token only requests to a loopback host are served",
            ));
        };
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer);
        if given.is_some_and(|g| same(g.as_bytes(), token.as_bytes())) {
            return None;
        }
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "a valid token is required: Authorization: Bearer TOKEN",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"quorra\""),
        );
        Some(r)
    }

    /// The node's readiness, asked of the driver at most once per
    /// [`READY_CACHE`].
    async fn readiness(&self) -> Option<Readiness> {
        if let Ok(cache) = self.ready_cache.lock()
            && let Some((at, r)) = cache.as_ref()
            && at.elapsed() < READY_CACHE
        {
            return Some(r.clone());
        }
        let Answer::Ready(r) = self.ask(Query::Ready).await? else {
            return None;
        };
        if let Ok(mut cache) = self.ready_cache.lock() {
            *cache = Some((Instant::now(), r.clone()));
        }
        Some(r)
    }

    /// Asks the driver, within [`ANSWER_TIMEOUT`]; `None` if it did not
    /// answer in time.
    async fn ask(&self, query: Query) -> Option<Answer> {
        let (reply, answer) = oneshot::channel();
        tokio::time::timeout(ANSWER_TIMEOUT, async {
            self.inbox.send(Input::Admin { query, reply }).await.ok()?;
            answer.await.ok()
        })
        .await
        .ok()
        .flatten()
    }
}

/// Answers a connection beyond [`MAX_CONNECTIONS`] with a `503` and
/// closes it (a probe sees "busy", not a reset).
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = "{\"error\":\"too many admin connections\"}\n";
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let answered = async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        // Closing with the request unread would reset the connection and
        // lose the answer: drain what the client sent (a little) first.
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < MAX_HEAD_BYTES {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(HEAD_TIMEOUT, answered).await;
}

/// Compares two secrets in time independent of their contents and
/// lengths (their digests are compared).
fn same(a: &[u8], b: &[u8]) -> bool {
    blake3::hash(a) == blake3::hash(b)
}

/// The token of an `Authorization: Bearer TOKEN` header (the scheme in
/// any case, as RFC 7235 has it).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Whether a `Host` header names this machine (a loopback address or
/// `localhost`, with any port): without a token, only such requests are
/// served, so a web page the operator has open elsewhere cannot read the
/// node through a DNS name rebound to 127.0.0.1.
fn local_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        }),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn json(status: StatusCode, value: &impl Serialize) -> Reply {
    match serde_json::to_string_pretty(value) {
        Ok(mut body) => {
            body.push('\n');
            text(status, "application/json", body)
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the answer could not be encoded: {e}"),
        ),
    }
}

fn error(status: StatusCode, message: &str) -> Reply {
    let body = serde_json::json!({ "error": message }).to_string() + "\n";
    text(status, "application/json", body)
}

fn busy() -> Reply {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the node did not answer in time (busy, or stopping)",
    )
}

fn unexpected() -> Reply {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the node answered another question",
    )
}

#[cfg(test)]
mod tests {
    use super::{bearer, local_host, same};

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same(b"s3cret", b"s3cret"));
        assert!(!same(b"s3cret", b"s3creT"));
        assert!(!same(b"s3cret", b"s3cre"));
        assert!(!same(b"", b"x"));
    }

    #[test]
    fn the_bearer_scheme_is_read_in_any_case() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn only_loopback_hosts_are_local() {
        for host in [
            "127.0.0.1:9180",
            "localhost:9180",
            "LOCALHOST",
            "[::1]:9180",
            "127.0.0.2",
        ] {
            assert!(local_host(host), "{host}");
        }
        for host in [
            "evil.example:9180",
            "10.0.0.1:9180",
            "",
            "[::2]:1",
            "localhost.evil.example",
        ] {
            assert!(!local_host(host), "{host}");
        }
    }
}
