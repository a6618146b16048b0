//! Framing: how messages travel on QUIC streams.
//!
//! Every message is one frame: a 4-byte big-endian length (of what
//! follows), a protocol version byte, then the message in MessagePack
//! (rmp-serde). Streams are long-lived and carry many frames, with request
//! ids inside the messages: measured here, one long-lived stream with
//! length-prefixed frames did several times the round trips per second of a
//! stream per request, which loses QUIC's packet batching.
//!
//! A reader never trusts a frame: a length above [`MAX_FRAME_LEN`], an
//! unknown version or a payload that does not decode is a [`WireError`],
//! and the caller closes that stream (never the node).

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Version byte of every frame.
pub const PROTOCOL_VERSION: u8 = 1;

/// Largest frame (length prefix excluded): 80 MiB, room for a key's largest
/// record ([`crate::MAX_VALUE_LEN`] values, several siblings) and a header.
pub const MAX_FRAME_LEN: usize = 80 * 1024 * 1024;

/// ALPN of client connections.
pub const ALPN_CLIENT: &[u8] = b"quorra-client/1";

/// ALPN of node-to-node connections.
pub const ALPN_PEER: &[u8] = b"quorra-peer/1";

/// Server name every node certificate carries and every connection checks:
/// the cluster CA is private, so the name only says "a node of this cluster".
pub const NODE_SERVER_NAME: &str = "quorra-node";

/// Why a frame could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The declared length is above the limit.
    #[error("frame of {len} bytes exceeds the {MAX_FRAME_LEN}-byte limit")]
    TooLarge {
        /// Declared length.
        len: usize,
    },
    /// A frame of another protocol version.
    #[error("unsupported protocol version {0} (this build speaks {PROTOCOL_VERSION})")]
    Version(u8),
    /// The payload does not decode as the expected message.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The stream failed or ended in the middle of a frame.
    #[error("stream error: {0}")]
    Stream(String),
}

/// Encodes `message` as one frame.
pub fn encode<T: Serialize>(message: &T) -> Result<Bytes, WireError> {
    // Most frames (a read, a reply with a small value) fit without growing.
    let mut out = BytesMut::with_capacity(256);
    out.put_u32(0);
    out.put_u8(PROTOCOL_VERSION);
    let mut writer = out.writer();
    rmp_serde::encode::write(&mut writer, message)
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    let mut out = writer.into_inner();
    let len = out.len() - 4;
    if len > MAX_FRAME_LEN {
        return Err(WireError::TooLarge { len });
    }
    out[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out.freeze())
}

/// Decodes the body of a frame (version byte and payload).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    let (&version, payload) = body
        .split_first()
        .ok_or_else(|| WireError::Malformed("empty frame".into()))?;
    if version != PROTOCOL_VERSION {
        return Err(WireError::Version(version));
    }
    rmp_serde::from_slice(payload).map_err(|e| WireError::Malformed(e.to_string()))
}

/// Reads one frame from `stream` into `buf` and decodes it. `Ok(None)` when
/// the stream ended cleanly between frames.
pub async fn read<T: DeserializeOwned>(
    stream: &mut quinn::RecvStream,
    buf: &mut Vec<u8>,
) -> Result<Option<T>, WireError> {
    let mut header = [0u8; 4];
    match stream.read_exact(&mut header).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(WireError::Stream(e.to_string())),
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME_LEN {
        return Err(WireError::TooLarge { len });
    }
    buf.clear();
    buf.resize(len, 0);
    stream
        .read_exact(buf)
        .await
        .map_err(|e| WireError::Stream(e.to_string()))?;
    decode(buf).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_reject_garbage() {
        let frame = encode(&("hello", 42u64)).unwrap();
        let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4);
        let back: (String, u64) = decode(&frame[4..]).unwrap();
        assert_eq!(back, ("hello".to_string(), 42));
        assert!(matches!(
            decode::<(String, u64)>(&[9, 1, 2]),
            Err(WireError::Version(9))
        ));
        assert!(matches!(
            decode::<(String, u64)>(&[PROTOCOL_VERSION, 0xc1]),
            Err(WireError::Malformed(_))
        ));
        assert!(decode::<u8>(&[]).is_err());
    }
}
