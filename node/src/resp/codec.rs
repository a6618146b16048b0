//! RESP framing: requests in, replies out, for RESP2 and RESP3.
//!
//! A request is an array of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`),
//! or an inline command (`PING\r\n`, what `telnet` and `redis-cli` in
//! some modes send). [`parse_request`] takes complete requests off the front
//! of a connection's buffer without copying their arguments, and returns
//! `Ok(None)` while a request is still incomplete, so pipelined requests
//! are simply parsed one after the other.
//!
//! Limits are checked before anything is buffered for good: a bulk string
//! longer than [`MAX_BULK_LEN`], more than [`MAX_ARGS`] arguments, bulk
//! strings adding up to more than [`MAX_REQUEST_LEN`], or an inline line
//! longer than [`MAX_INLINE_LEN`] is a [`ProtocolError`], and the
//! connection answers `-ERR Protocol error: ...` and closes, as Redis does;
//! the node serves everyone else on. A connection that has not
//! authenticated yet gets Redis's tighter limits ([`Limits::UNAUTHENTICATED`]),
//! so nobody without the password can make a node buffer much.
//!
//! Replies ([`Reply`]) are encoded for the connection's protocol version:
//! RESP3 has real nulls, maps, booleans and doubles; RESP2 gets `$-1`,
//! flattened maps, integers and bulk strings instead.

use bytes::{Buf, Bytes, BytesMut};

/// Largest bulk string in a request: a value at the value limit, plus room.
pub const MAX_BULK_LEN: usize = quorra_client::MAX_VALUE_LEN + 1024;

/// Most arguments in one request.
pub const MAX_ARGS: usize = 65_536;

/// Longest inline command line.
pub const MAX_INLINE_LEN: usize = 64 * 1024;

/// Most bytes of bulk strings in one request (an `MSET` of many values):
/// what one connection can make a node buffer.
pub const MAX_REQUEST_LEN: usize = 256 * 1024 * 1024;

/// The limits a request is parsed under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most arguments.
    pub args: usize,
    /// Longest bulk string.
    pub bulk: usize,
    /// Most bytes of bulk strings in all (checked as each one's length is
    /// read, so at most this plus one bulk string is ever buffered).
    pub request: usize,
}

impl Limits {
    /// For an authenticated connection (or one that needs none).
    pub const AUTHENTICATED: Limits = Limits {
        args: MAX_ARGS,
        bulk: MAX_BULK_LEN,
        request: MAX_REQUEST_LEN,
    };
    /// Before `AUTH`, as Redis: 10 arguments of 16 KiB at most.
    pub const UNAUTHENTICATED: Limits = Limits {
        args: 10,
        bulk: 16 * 1024,
        request: 10 * 16 * 1024,
    };
}

/// A malformed or oversized request; the connection is closed after the
/// error reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

fn error(what: impl Into<String>) -> ProtocolError {
    ProtocolError(what.into())
}

/// The position of the first `\r\n` at or after `from`.
fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| from + p)
}

/// Parses a decimal length after a type byte (`*` or `$`).
fn length(line: &[u8], what: &str) -> Result<i64, ProtocolError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| error(format!("invalid {what} length")))
}

/// Takes one complete request off the front of `buf`: its arguments, or
/// `None` if more bytes are needed. Empty inline lines are skipped.
pub fn parse_request(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    parse_request_within(buf, Limits::AUTHENTICATED)
}

/// Appends a request as a client sends it, an array of bulk strings: what
/// [`parse_request`] takes back (for the harness's and the bench's RESP
/// clients).
pub fn encode_request(parts: &[&[u8]], out: &mut Vec<u8>) {
    line(out, b'*', parts.len().to_string().as_bytes());
    for part in parts {
        line(out, b'$', part.len().to_string().as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
}

/// [`parse_request`] under `limits`.
pub fn parse_request_within(
    buf: &mut BytesMut,
    limits: Limits,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    loop {
        match buf.first() {
            None => return Ok(None),
            Some(b'*') => match parse_multibulk(buf, limits)? {
                // `*0` and `*-1` carry no command: skipped, as Redis does.
                Some(args) if args.is_empty() => continue,
                other => return Ok(other),
            },
            Some(_) => {
                // Inline lines may end in LF alone, as netcat sends them.
                let Some(newline) = buf.iter().position(|&b| b == b'\n') else {
                    if buf.len() > MAX_INLINE_LEN {
                        return Err(error("too big inline request"));
                    }
                    return Ok(None);
                };
                if newline > MAX_INLINE_LEN {
                    return Err(error("too big inline request"));
                }
                let line = buf.split_to(newline + 1).freeze();
                let text = line[..newline]
                    .strip_suffix(b"\r")
                    .unwrap_or(&line[..newline]);
                let args = inline_args(text)?;
                if args.len() > limits.args {
                    return Err(error("too many arguments"));
                }
                if !args.is_empty() {
                    return Ok(Some(args));
                }
            }
        }
    }
}

/// Splits an inline line on blanks; double quotes group words, with the
/// usual backslash escapes inside them.
fn inline_args(line: &[u8]) -> Result<Vec<Bytes>, ProtocolError> {
    let mut args = Vec::new();
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            break;
        }
        let mut arg = Vec::new();
        if line[i] == b'"' {
            i += 1;
            loop {
                match line.get(i) {
                    None => return Err(error("unbalanced quotes in request")),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        let c = *line
                            .get(i + 1)
                            .ok_or_else(|| error("unbalanced quotes in request"))?;
                        arg.push(match c {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            other => other,
                        });
                        i += 2;
                    }
                    Some(&c) => {
                        arg.push(c);
                        i += 1;
                    }
                }
            }
            if line.get(i).is_some_and(|c| !c.is_ascii_whitespace()) {
                return Err(error("unbalanced quotes in request"));
            }
        } else {
            while i < line.len() && !line[i].is_ascii_whitespace() {
                arg.push(line[i]);
                i += 1;
            }
        }
        args.push(Bytes::from(arg));
        if args.len() > MAX_ARGS {
            return Err(error("too many arguments"));
        }
    }
    Ok(args)
}

fn parse_multibulk(
    buf: &mut BytesMut,
    limits: Limits,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(end) = line_end(buf, 1) else {
        return if buf.len() > 32 {
            Err(error("invalid multibulk length"))
        } else {
            Ok(None)
        };
    };
    let count = length(&buf[1..end], "multibulk")?;
    if count > limits.args as i64 {
        return Err(error("invalid multibulk length"));
    }
    if count <= 0 {
        buf.advance(end + 2);
        return Ok(Some(Vec::new()));
    }
    // First check that the whole request is here, then split it off.
    let mut at = end + 2;
    let mut spans = Vec::with_capacity(count as usize);
    let mut total = 0usize;
    for _ in 0..count {
        match buf.get(at) {
            None => return Ok(None),
            Some(b'$') => {}
            Some(&c) => {
                return Err(error(format!("expected '$', got '{}'", c as char)));
            }
        }
        let Some(end) = line_end(buf, at + 1) else {
            return if buf.len() - at > 32 {
                Err(error("invalid bulk length"))
            } else {
                Ok(None)
            };
        };
        let len = length(&buf[at + 1..end], "bulk")?;
        if len < 0 || len as usize > limits.bulk {
            return Err(error("invalid bulk length"));
        }
        total += len as usize;
        if total > limits.request {
            return Err(error("request too big"));
        }
        let start = end + 2;
        let stop = start + len as usize;
        if buf.len() < stop + 2 {
            return Ok(None);
        }
        if &buf[stop..stop + 2] != b"\r\n" {
            return Err(error("bulk string not terminated by CRLF"));
        }
        spans.push((start, stop));
        at = stop + 2;
    }
    let request = buf.split_to(at).freeze();
    Ok(Some(
        spans
            .into_iter()
            .map(|(a, b)| request.slice(a..b))
            .collect(),
    ))
}

/// The protocol version a connection speaks (`HELLO 3` switches).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RESP2, every connection's start.
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

/// A reply, encoded for the connection's protocol by [`Reply::encode`].
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `+OK`.
    Simple(String),
    /// `-ERR ...`: the text after the minus, code included.
    Error(String),
    /// `:42`.
    Integer(i64),
    /// A binary-safe string.
    Bulk(Bytes),
    /// No value: `$-1` (RESP2), `_` (RESP3).
    Null,
    /// An array.
    Array(Vec<Reply>),
    /// Pairs: a map in RESP3, a flat array in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// A double: `,1.5` in RESP3, a bulk string in RESP2.
    Double(f64),
    /// A boolean: `#t` in RESP3, `:1`/`:0` in RESP2.
    Bool(bool),
}

impl Reply {
    /// `+OK`.
    pub fn ok() -> Self {
        Reply::Simple("OK".into())
    }

    /// An error reply; `text` starts with its code (`ERR`, `WRONGTYPE`, ...).
    pub fn error(text: impl Into<String>) -> Self {
        Reply::Error(text.into())
    }

    /// A bulk string from anything byte-like.
    pub fn bulk(b: impl Into<Bytes>) -> Self {
        Reply::Bulk(b.into())
    }

    /// Appends the encoding of this reply in `protocol` to `out`.
    pub fn encode(&self, protocol: Protocol, out: &mut Vec<u8>) {
        let resp3 = protocol == Protocol::Resp3;
        match self {
            Reply::Simple(s) => line(out, b'+', clean(s).as_bytes()),
            Reply::Error(s) => line(out, b'-', clean(s).as_bytes()),
            Reply::Integer(n) => line(out, b':', n.to_string().as_bytes()),
            Reply::Bulk(b) => {
                line(out, b'$', b.len().to_string().as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Null if resp3 => out.extend_from_slice(b"_\r\n"),
            Reply::Null => out.extend_from_slice(b"$-1\r\n"),
            Reply::Array(items) => {
                line(out, b'*', items.len().to_string().as_bytes());
                for item in items {
                    item.encode(protocol, out);
                }
            }
            Reply::Map(pairs) => {
                if resp3 {
                    line(out, b'%', pairs.len().to_string().as_bytes());
                } else {
                    line(out, b'*', (2 * pairs.len()).to_string().as_bytes());
                }
                for (k, v) in pairs {
                    k.encode(protocol, out);
                    v.encode(protocol, out);
                }
            }
            Reply::Double(d) if resp3 => line(out, b',', format_double(*d).as_bytes()),
            Reply::Double(d) => Reply::bulk(format_double(*d)).encode(protocol, out),
            Reply::Bool(b) if resp3 => {
                out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" })
            }
            Reply::Bool(b) => Reply::Integer(i64::from(*b)).encode(protocol, out),
        }
    }
}

fn line(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    out.push(kind);
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

/// Simple strings and errors cannot hold CR or LF.
fn clean(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

fn format_double(d: f64) -> String {
    if d.is_infinite() {
        if d > 0.0 { "inf".into() } else { "-inf".into() }
    } else if d.is_nan() {
        "nan".into()
    } else {
        format!("{d}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(s: &[u8]) -> BytesMut {
        BytesMut::from(s)
    }

    #[test]
    fn an_encoded_request_parses_back_to_its_arguments() {
        let mut out = Vec::new();
        encode_request(&[b"SET", b"k", b"v\r\n1"], &mut out);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\nv\r\n1\r\n");
        let mut b = BytesMut::from(&out[..]);
        assert_eq!(
            parse_request(&mut b).unwrap(),
            Some(vec![
                Bytes::from_static(b"SET"),
                Bytes::from_static(b"k"),
                Bytes::from_static(b"v\r\n1")
            ])
        );
        assert!(b.is_empty());
    }

    fn args(v: &[&str]) -> Vec<Bytes> {
        v.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    #[test]
    fn inline_lines_may_end_in_lf_alone() {
        let mut b = buf(b"PING\nECHO hi\r\nGET");
        assert_eq!(parse_request(&mut b).unwrap(), Some(args(&["PING"])));
        assert_eq!(parse_request(&mut b).unwrap(), Some(args(&["ECHO", "hi"])));
        assert_eq!(parse_request(&mut b).unwrap(), None);
    }

    #[test]
    fn requests_are_bounded_in_total_and_tighter_before_auth() {
        let small = Limits {
            args: 10,
            bulk: 100,
            request: 150,
        };
        let two = b"*3\r\n$100\r\n";
        let mut b = BytesMut::from(&two[..]);
        b.extend(std::iter::repeat_n(b'x', 100));
        b.extend_from_slice(b"\r\n$40\r\n");
        assert!(matches!(
            parse_request_within(&mut b.clone(), small),
            Ok(None)
        ));
        b.extend(std::iter::repeat_n(b'y', 40));
        b.extend_from_slice(b"\r\n$11\r\n");
        let e = parse_request_within(&mut b, small).unwrap_err();
        assert!(e.0.contains("too big"), "{e}");

        let eleven = b"*11\r\n".to_vec();
        assert!(parse_request_within(&mut buf(&eleven), Limits::UNAUTHENTICATED).is_err());
        assert!(matches!(
            parse_request_within(&mut buf(&eleven), Limits::AUTHENTICATED),
            Ok(None)
        ));
        let big = b"*2\r\n$4\r\nAUTH\r\n$20000\r\n";
        assert!(parse_request_within(&mut buf(big), Limits::UNAUTHENTICATED).is_err());
        let inline = "x ".repeat(11);
        assert!(
            parse_request_within(
                &mut buf(format!("{inline}\r\n").as_bytes()),
                Limits::UNAUTHENTICATED
            )
            .is_err()
        );
    }

    #[test]
    fn pipelined_requests_come_out_in_order_and_partial_ones_wait() {
        let mut b = buf(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO");
        assert_eq!(parse_request(&mut b).unwrap(), Some(args(&["GET", "k"])));
        assert_eq!(parse_request(&mut b).unwrap(), Some(args(&["PING"])));
        assert_eq!(parse_request(&mut b).unwrap(), None);
        b.extend_from_slice(b"\r\n$2\r\nhi\r\n");
        assert_eq!(parse_request(&mut b).unwrap(), Some(args(&["ECHO", "hi"])));
        assert!(b.is_empty());
    }

    #[test]
    fn empty_requests_are_skipped() {
        let mut b = buf(b"*0\r\n*-1\r\n\r\n*1\r\n$4\r\nPING\r\n");
        assert_eq!(parse_request(&mut b).unwrap(), Some(args(&["PING"])));
        assert!(b.is_empty());
    }

    #[test]
    fn inline_commands_split_on_blanks_and_honour_quotes() {
        let mut b = buf(b"\r\nSET k \"a b\\n\"\r\nPING\r\n");
        assert_eq!(
            parse_request(&mut b).unwrap(),
            Some(args(&["SET", "k", "a b\n"]))
        );
        assert_eq!(parse_request(&mut b).unwrap(), Some(args(&["PING"])));
        assert!(parse_request(&mut buf(b"SET \"k\r\n")).is_err());
    }

    #[test]
    fn malformed_and_oversized_requests_are_protocol_errors() {
        for bad in [
            &b"*1\r\n+PING\r\n"[..],
            b"*x\r\n",
            b"*1\r\n$-5\r\n",
            b"*1\r\n$3\r\nGETX\r\n",
            b"*99999999\r\n",
        ] {
            assert!(parse_request(&mut buf(bad)).is_err(), "{bad:?}");
        }
        let huge = format!("*1\r\n${}\r\n", MAX_BULK_LEN + 1);
        assert!(parse_request(&mut buf(huge.as_bytes())).is_err());
        let long = vec![b'a'; MAX_INLINE_LEN + 1];
        assert!(parse_request(&mut buf(&long)).is_err());
    }

    #[test]
    fn replies_take_the_shape_of_the_protocol() {
        let enc = |r: &Reply, p| {
            let mut out = Vec::new();
            r.encode(p, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(enc(&Reply::Null, Protocol::Resp2), "$-1\r\n");
        assert_eq!(enc(&Reply::Null, Protocol::Resp3), "_\r\n");
        let map = Reply::Map(vec![(Reply::bulk("a"), Reply::Integer(1))]);
        assert_eq!(enc(&map, Protocol::Resp2), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&map, Protocol::Resp3), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&Reply::Bool(true), Protocol::Resp2), ":1\r\n");
        assert_eq!(enc(&Reply::Double(1.5), Protocol::Resp3), ",1.5\r\n");
        assert_eq!(
            enc(&Reply::error("ERR a\r\nb"), Protocol::Resp2),
            "-ERR a  b\r\n"
        );
    }
}
