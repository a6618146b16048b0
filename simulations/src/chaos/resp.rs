//! The harness's RESP clients: `INCR` over a real RESP connection, so the
//! gateway's own path (its codec, connection loop, `AUTH`,
//! `QUORRA.CONSISTENCY` and the update it coordinates) runs under the
//! faults, judged by the counters check like the SDK's increments.
//!
//! A connection is opened on first use and again after any failure. The
//! answer to an increment is one of three: `:N` (acknowledged), an error
//! reply (the node refused or failed it: `Failed`), or nothing usable (a
//! timeout, a lost connection: `Unknown`, as it may have been applied).

use std::net::SocketAddr;
use std::time::Duration;

use quorra_client::Consistency;
use quorra_node::resp::codec::encode_request;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// What became of one `INCR`.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// `:N`: applied, the counter's new value.
    Value(i64),
    /// An error reply, as the node wrote it.
    Error(String),
    /// No answer (timeout, connection lost or refused).
    Lost(String),
}

/// One RESP connection to one node.
pub struct RespClient {
    addr: SocketAddr,
    password: String,
    timeout: Duration,
    stream: Option<BufReader<TcpStream>>,
}

/// The longest reply line accepted (an `INCR` answers a short one).
const MAX_LINE: u64 = 64 * 1024;

impl RespClient {
    /// A client of the gateway at `addr`, authenticating with `password`,
    /// waiting `timeout` for each answer.
    pub fn new(addr: SocketAddr, password: &str, timeout: Duration) -> Self {
        Self {
            addr,
            password: password.to_string(),
            timeout,
            stream: None,
        }
    }

    /// `QUORRA.CONSISTENCY level` then `INCR key`, in one write.
    pub async fn incr(&mut self, key: &[u8], consistency: Consistency) -> Answer {
        match tokio::time::timeout(self.timeout, self.try_incr(key, consistency)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                self.stream = None;
                Answer::Lost(e)
            }
            Err(_) => {
                self.stream = None;
                Answer::Lost(format!("no answer within {:?}", self.timeout))
            }
        }
    }

    async fn try_incr(&mut self, key: &[u8], consistency: Consistency) -> Result<Answer, String> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr)
                .await
                .map_err(|e| format!("connecting to {}: {e}", self.addr))?;
            let mut stream = BufReader::new(stream);
            let mut auth = Vec::new();
            encode_request(&[b"AUTH", self.password.as_bytes()], &mut auth);
            stream
                .get_mut()
                .write_all(&auth)
                .await
                .map_err(|e| e.to_string())?;
            match line(&mut stream).await? {
                l if l == "+OK" => {}
                other => return Err(format!("AUTH: {other}")),
            }
            self.stream = Some(stream);
        }
        let stream = self.stream.as_mut().expect("opened above");
        let mut out = Vec::new();
        let level = consistency.to_string();
        encode_request(&[b"QUORRA.CONSISTENCY", level.as_bytes()], &mut out);
        encode_request(&[b"INCR", key], &mut out);
        stream
            .get_mut()
            .write_all(&out)
            .await
            .map_err(|e| e.to_string())?;
        let set = line(stream).await?;
        if set != "+OK" {
            return Err(format!("QUORRA.CONSISTENCY {level}: {set}"));
        }
        let answer = line(stream).await?;
        Ok(parse(&answer))
    }
}

/// The answer an `INCR` reply line stands for.
fn parse(reply: &str) -> Answer {
    if let Some(n) = reply.strip_prefix(':') {
        match n.parse() {
            Ok(n) => Answer::Value(n),
            Err(_) => Answer::Lost(format!("a malformed integer reply: {reply:?}")),
        }
    } else if let Some(e) = reply.strip_prefix('-') {
        Answer::Error(e.to_string())
    } else {
        Answer::Lost(format!("an unexpected reply: {reply:?}"))
    }
}

/// One reply line, without its `\r\n`.
async fn line(stream: &mut BufReader<TcpStream>) -> Result<String, String> {
    let mut buf = Vec::new();
    let n = (&mut *stream)
        .take(MAX_LINE)
        .read_until(b'\n', &mut buf)
        .await
        .map_err(|e| e.to_string())?;
    if n == 0 || !buf.ends_with(b"\r\n") {
        return Err("connection closed mid-reply".into());
    }
    buf.truncate(buf.len() - 2);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_map_to_answers() {
        assert_eq!(parse(":42"), Answer::Value(42));
        assert_eq!(
            parse("-BUSY 4096 requests in flight"),
            Answer::Error("BUSY 4096 requests in flight".into())
        );
        assert!(matches!(parse(":x"), Answer::Lost(_)));
        assert!(matches!(parse("$3"), Answer::Lost(_)));
    }

    #[tokio::test]
    async fn an_increment_authenticates_sets_the_level_and_reads_its_value() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let mut s = BufReader::new(s);
            let mut seen = Vec::new();
            // AUTH, then QUORRA.CONSISTENCY and INCR: 3 commands.
            for reply in [&b"+OK\r\n"[..], b"", b"+OK\r\n:7\r\n"] {
                let mut header = String::new();
                s.read_line(&mut header).await.unwrap();
                let parts: usize = header.trim()[1..].parse().unwrap();
                let mut words = Vec::new();
                for _ in 0..parts {
                    let mut len = String::new();
                    s.read_line(&mut len).await.unwrap();
                    let mut word = vec![0; len.trim()[1..].parse::<usize>().unwrap() + 2];
                    s.read_exact(&mut word).await.unwrap();
                    words.push(String::from_utf8_lossy(&word[..word.len() - 2]).into_owned());
                }
                seen.push(words.join(" "));
                s.get_mut().write_all(reply).await.unwrap();
            }
            seen
        });
        let mut c = RespClient::new(addr, "pw", Duration::from_secs(5));
        assert_eq!(c.incr(b"k", Consistency::QUORUM).await, Answer::Value(7));
        assert_eq!(
            server.await.unwrap(),
            vec!["AUTH pw", "QUORRA.CONSISTENCY quorum", "INCR k"]
        );
    }
}
