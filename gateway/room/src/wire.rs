//! The room's protocol: the messages a fan's client and a node exchange, and their framing.
//!
//! The same messages travel over native QUIC (ALPN `boxoffice-room/1`, one bidirectional stream
//! per fan), over WebTransport (one bidirectional stream of the session), and as JSON bodies and
//! server-sent events over HTTP. On a stream, a frame is a 4-byte big-endian length and that many
//! bytes of UTF-8 JSON, at most [`FRAME_BYTES_MAX`]. `docs/waiting-room.md` is the reference.

use serde::{Deserialize, Serialize};

/// The ALPN of the native protocol.
pub const ALPN_NATIVE: &[u8] = b"boxoffice-room/1";
/// The ALPN WebTransport rides on (HTTP/3).
pub const ALPN_H3: &[u8] = b"h3";
/// Largest frame either side sends or accepts.
pub const FRAME_BYTES_MAX: usize = 8 * 1024;

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum ClientMsg {
    /// First message: the fan's token, the event, and the ticket from an earlier join if any
    /// (a resume keeps the place, on any node).
    Hello { event: u64, token: String, ticket: Option<String> },
    /// The proof-of-work answer to the challenge the node sent: a join.
    Join { challenge: String, answer: u64 },
    /// "Still here": keeps the place live. Every 10 s is enough.
    Heartbeat,
}

/// What a node sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
// Each variant repeats `rename_all_fields` for the OpenAPI schema, which reads only the former.
pub enum ServerMsg {
    /// Solve: find `answer` such that SHA-256(challenge bytes ‖ answer as 8 bytes big endian) starts
    /// with `bits` zero bits.
    #[serde(rename_all = "camelCase")]
    Challenge { challenge: String, bits: u8 },
    /// The fan's place, signed. Keep it: it is the place, on any node.
    #[serde(rename_all = "camelCase")]
    Ticket { ticket: String, place: PlaceView, presale: bool },
    /// Where the fan stands. `wait_seconds` is absent until the room has measured its rate;
    /// `note` names what moved the estimate (a pause, a rate change).
    #[serde(rename_all = "camelCase")]
    Position { ahead: u64, wait_seconds: Option<u64>, note: Option<String>, on_sale_at: u64, paused: bool },
    /// The fan's turn: hold seats with this token (header `Admission-Token`) until `expires_at`.
    #[serde(rename_all = "camelCase")]
    Admitted { admission_token: String, expires_at: u64 },
    /// Far back in line: come back at `come_back_at` (ms since the epoch) with the ticket; the
    /// place is kept until then and `abandon` after.
    #[serde(rename_all = "camelCase")]
    Parked { come_back_at: u64 },
    /// The watermark passed the place while the fan was away and the admission window closed.
    #[serde(rename_all = "camelCase")]
    Lapsed { detail: String },
    /// Ask another node (this one cannot serve the fan now).
    #[serde(rename_all = "camelCase")]
    Redirect { nodes: Vec<NodeView>, detail: String },
    /// The last message sent was refused; nothing changed.
    #[serde(rename_all = "camelCase")]
    Error { code: String, detail: String },
}

/// A place as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlaceView {
    pub class: u8,
    pub primary: u64,
    pub node: u16,
    pub seq: u64,
}

impl From<model::room::Place> for PlaceView {
    fn from(p: model::room::Place) -> Self {
        PlaceView { class: p.class, primary: p.primary, node: p.node, seq: p.seq }
    }
}

/// A node's room endpoint as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    pub node: u64,
    /// `host:port` (UDP).
    pub endpoint: String,
    /// SHA-256 of the node's certificate, hex.
    pub cert_sha256: String,
}

/// Errors' codes, stable for clients.
pub mod code {
    pub const BAD_MESSAGE: &str = "bad_message";
    pub const BAD_TOKEN: &str = "bad_token";
    pub const BAD_TICKET: &str = "bad_ticket";
    pub const WRONG_EVENT: &str = "wrong_event";
    pub const WRONG_FAN: &str = "wrong_fan";
    pub const BAD_CHALLENGE: &str = "bad_challenge";
    pub const BAD_ANSWER: &str = "bad_answer";
    pub const NO_ROOM: &str = "no_room";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const BUSY: &str = "busy";
    pub const OUT_OF_ORDER: &str = "out_of_order";
}

/// One frame: length then JSON.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let body = serde_json::to_vec(msg).expect("room messages serialize");
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("a frame of {0} bytes is over the limit of {FRAME_BYTES_MAX}")]
    TooLarge(usize),
    #[error("the stream ended inside a frame")]
    Truncated,
    #[error("the stream failed: {0}")]
    Io(String),
}

/// Reads one frame's body; `Ok(None)` at a clean end of stream.
pub async fn read_frame<R: tokio::io::AsyncRead + Unpin>(reader: &mut R) -> Result<Option<Vec<u8>>, FrameError> {
    use tokio::io::AsyncReadExt;
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = reader.read(&mut len[got..]).await.map_err(|e| FrameError::Io(e.to_string()))?;
        if n == 0 {
            return if got == 0 { Ok(None) } else { Err(FrameError::Truncated) };
        }
        got += n;
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > FRAME_BYTES_MAX {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).await.map_err(|_| FrameError::Truncated)?;
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_the_protocol_writes_them() {
        let hello: ClientMsg = serde_json::from_str(r#"{"type":"hello","event":4,"token":"t","ticket":null}"#).unwrap();
        assert_eq!(hello, ClientMsg::Hello { event: 4, token: "t".into(), ticket: None });
        let join: ClientMsg = serde_json::from_str(r#"{"type":"join","challenge":"c","answer":7}"#).unwrap();
        assert_eq!(join, ClientMsg::Join { challenge: "c".into(), answer: 7 });
        let text = serde_json::to_string(&ServerMsg::Admitted { admission_token: "a".into(), expires_at: 5 }).unwrap();
        assert_eq!(text, r#"{"type":"admitted","admissionToken":"a","expiresAt":5}"#);
        let extra = r#"{"type":"hello","event":4,"token":"t","ticket":null,"x":1}"#;
        assert!(serde_json::from_str::<ClientMsg>(extra).is_err(), "unknown fields refused");
    }

    #[tokio::test]
    async fn frames_round_trip_and_oversized_ones_are_refused() {
        let bytes = encode(&ClientMsg::Heartbeat);
        let mut reader = &bytes[..];
        let body = read_frame(&mut reader).await.unwrap().unwrap();
        assert_eq!(serde_json::from_slice::<ClientMsg>(&body).unwrap(), ClientMsg::Heartbeat);
        assert!(read_frame(&mut reader).await.unwrap().is_none());
        let big = ((FRAME_BYTES_MAX + 1) as u32).to_be_bytes();
        assert!(matches!(read_frame(&mut &big[..]).await, Err(FrameError::TooLarge(_))));
    }
}
