//! Messages between nodes and how they are framed.
//!
//! A frame is `[u32 length][u64 correlation id][u8 kind][bincode payload]`, big endian, the
//! length counting everything after itself. Requests and responses of every group share one
//! connection per pair of nodes; the correlation id pairs a response with its request. A
//! keepalive frame (kind 2, id 0, no payload) tells the reader the link is alive and nothing
//! else.
//!
//! A frame's length is a claim, not a fact: [`read_frame`] grows its buffer as bytes arrive, so
//! a peer that announces a large frame and sends little costs what it sent.

use model::{Command, Consistency, GroupId, Millis, NodeId, Outcome, Query, QueryResult, ReplicaStatus};
use openraft::error::{Fatal, RaftError};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use serde::{Deserialize, Serialize};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::types::{SnapshotMeta, TypeConfig, Vote};

/// Bytes before the payload: length, correlation id, kind.
const HEADER_BYTES: usize = 4 + 8 + 1;
/// Most bytes a frame's buffer grows by per read: memory follows what arrived.
const READ_CHUNK_BYTES: usize = 64 << 10;

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// The first frame on a connection, from the node that dialed, after the TLS handshake:
    /// `from` must be the node its certificate names (see `link`).
    Hello {
        from: NodeId,
        cluster: String,
    },
    AppendEntries {
        group: GroupId,
        rpc: AppendEntriesRequest<TypeConfig>,
    },
    Vote {
        group: GroupId,
        rpc: VoteRequest<NodeId>,
    },
    /// A whole snapshot, sent in one frame.
    Snapshot {
        group: GroupId,
        vote: Vote,
        meta: SnapshotMeta,
        data: Vec<u8>,
    },
    /// A command for the group's leader, forwarded by a node that is not.
    Write {
        group: GroupId,
        command: Command,
    },
    Read {
        group: GroupId,
        query: Query,
        consistency: Consistency,
    },
    Status,
    /// Search this node's shard for these groups.
    Search {
        groups: Vec<GroupId>,
        query: model::SearchQuery,
    },
    /// A follower asks the group's leader for a read point (see `refusals`).
    ReadIndex {
        group: GroupId,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    Hello {
        from: NodeId,
    },
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    Snapshot(Result<SnapshotResponse<NodeId>, Fatal<NodeId>>),
    Write(Result<Outcome, Refusal>),
    Read(Result<QueryResult, Refusal>),
    Status(Vec<ReplicaStatus>),
    Search(Result<model::SearchResult, Refusal>),
    ReadIndex(Result<ReadPoint, Refusal>),
    /// The request named a group this node does not host, or came before the node was ready.
    Refused(Refusal),
}

/// Where a follower may serve a linearizable read: once its replica has applied `index`
/// (`None`: nothing is committed yet), at group time `at`. The leader confirmed its leadership
/// with a quorum after the request came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadPoint {
    pub index: Option<u64>,
    pub at: Millis,
}

/// Why a node did not serve a forwarded write or read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("no such group here")]
    NoSuchGroup,
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("shutting down")]
    ShuttingDown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request = 0,
    Response = 1,
    /// Nothing to do: the link is alive.
    Keepalive = 2,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {got} bytes is over the limit of {max}")]
    TooLarge { got: u32, max: u32 },
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("nothing arrived for {0:?}")]
    Idle(Duration),
}

/// Encodes one frame into a fresh buffer.
pub fn encode<T: Serialize>(id: u64, kind: Kind, message: &T) -> Result<Vec<u8>, FrameError> {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(&[0u8; 4]);
    buf.extend_from_slice(&id.to_be_bytes());
    buf.push(kind as u8);
    bincode::serialize_into(&mut buf, message).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let len = u32::try_from(buf.len() - 4).map_err(|_| FrameError::TooLarge { got: u32::MAX, max: u32::MAX })?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

/// A keepalive frame.
pub fn keepalive() -> Vec<u8> {
    let mut buf = ((HEADER_BYTES - 4) as u32).to_be_bytes().to_vec();
    buf.extend_from_slice(&0u64.to_be_bytes());
    buf.push(Kind::Keepalive as u8);
    buf
}

/// A received frame before its payload is decoded.
pub struct Frame {
    pub id: u64,
    pub kind: Kind,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn decode<T: for<'de> Deserialize<'de>>(&self) -> Result<T, FrameError> {
        bincode::deserialize(&self.payload).map_err(|e| FrameError::Malformed(e.to_string()))
    }
}

/// Reads one frame; `Ok(None)` at a clean end of stream. Fails with [`FrameError::Idle`] when
/// no byte arrives for `idle`, and never holds much more memory than the bytes that arrived.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    frame_bytes_max: u32,
    idle: Duration,
) -> Result<Option<Frame>, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < len.len() {
        match read_some(reader, &mut len[got..], idle).await? {
            0 if got == 0 => return Ok(None),
            0 => return Err(closed()),
            n => got += n,
        }
    }
    let len = u32::from_be_bytes(len);
    if len > frame_bytes_max {
        return Err(FrameError::TooLarge { got: len, max: frame_bytes_max });
    }
    if (len as usize) < HEADER_BYTES - 4 {
        return Err(FrameError::Malformed(format!("frame of {len} bytes is shorter than its header")));
    }
    let len = len as usize;
    let mut body = Vec::with_capacity(len.min(READ_CHUNK_BYTES));
    while body.len() < len {
        let start = body.len();
        let end = len.min(start + READ_CHUNK_BYTES);
        body.resize(end, 0);
        let n = read_some(reader, &mut body[start..end], idle).await?;
        if n == 0 {
            return Err(closed());
        }
        body.truncate(start + n);
    }
    assert_eq!(body.len(), len, "a frame's body is read whole");
    let id = u64::from_be_bytes(body[..8].try_into().expect("8 bytes were read"));
    let kind = match body[8] {
        0 => Kind::Request,
        1 => Kind::Response,
        2 => Kind::Keepalive,
        other => return Err(FrameError::Malformed(format!("unknown frame kind {other}"))),
    };
    body.drain(..9);
    Ok(Some(Frame { id, kind, payload: body }))
}

async fn read_some<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8], idle: Duration) -> Result<usize, FrameError> {
    match tokio::time::timeout(idle, reader.read(buf)).await {
        Ok(read) => Ok(read?),
        Err(_) => Err(FrameError::Idle(idle)),
    }
}

fn closed() -> FrameError {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed in the middle of a frame").into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn a_frame_round_trips() {
        let bytes = encode(42, Kind::Request, &Request::Status).unwrap();
        let frame = read_frame(&mut bytes.as_slice(), 1 << 20, IDLE).await.unwrap().unwrap();
        assert_eq!((frame.id, frame.kind), (42, Kind::Request));
        assert!(matches!(frame.decode::<Request>().unwrap(), Request::Status));
    }

    #[tokio::test]
    async fn an_oversized_or_truncated_frame_is_an_error_not_a_panic() {
        let bytes = encode(1, Kind::Response, &Response::Status(vec![])).unwrap();
        assert!(matches!(read_frame(&mut bytes.as_slice(), 4, IDLE).await, Err(FrameError::TooLarge { .. })));
        assert!(read_frame(&mut &bytes[..bytes.len() - 1], 1 << 20, IDLE).await.is_err());
        let garbage = [0u8, 0, 0, 3, 1, 2, 3];
        assert!(matches!(read_frame(&mut garbage.as_slice(), 1 << 20, IDLE).await, Err(FrameError::Malformed(_))));
        assert!(read_frame(&mut [].as_slice(), 1 << 20, IDLE).await.unwrap().is_none());
    }

    /// A reader waiting for the rest of a frame that announced 512 MiB is released by the idle
    /// timeout (what it holds meanwhile is measured on a real node: tests/tests/raft_port.rs);
    /// a keepalive frame reads as one.
    #[tokio::test]
    async fn a_peer_that_stops_mid_frame_is_dropped_when_idle() {
        let (mut ours, mut theirs) = tokio::io::duplex(1 << 16);
        use tokio::io::AsyncWriteExt;
        theirs.write_all(&(512u32 << 20).to_be_bytes()).await.unwrap();
        theirs.write_all(&[7u8; 1000]).await.unwrap();
        let read = read_frame(&mut ours, u32::MAX, Duration::from_millis(100)).await;
        assert!(matches!(read, Err(FrameError::Idle(_))), "{:?}", read.err());
        drop(theirs);
        let keepalive = keepalive();
        let frame = read_frame(&mut keepalive.as_slice(), 1 << 20, IDLE).await.unwrap().unwrap();
        assert_eq!((frame.id, frame.kind, frame.payload.len()), (0, Kind::Keepalive, 0));
    }
}

/// Property-based fuzzing of the codec: what any peer (or anyone who reaches the port) may send.
/// Bounded so it runs in seconds.
#[cfg(test)]
mod fuzz {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use model::{BookingId, Consistency, Query};
    use proptest::prelude::*;
    use tokio::io::{AsyncRead, ReadBuf};

    use super::*;

    fn config() -> ProptestConfig {
        ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() }
    }

    /// Serves `bytes` in chunks of `chunk` and records the largest buffer it was asked to fill:
    /// read_frame's buffers are what it allocates for a frame.
    struct Recording<'a> {
        bytes: &'a [u8],
        chunk: usize,
        largest_buffer: usize,
    }

    impl AsyncRead for Recording<'_> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            self.largest_buffer = self.largest_buffer.max(buf.remaining());
            let n = buf.remaining().min(self.chunk).min(self.bytes.len());
            let (now, rest) = self.bytes.split_at(n);
            buf.put_slice(now);
            self.bytes = rest;
            Poll::Ready(Ok(()))
        }
    }

    /// Readers here are in memory: they never go quiet.
    const IDLE: std::time::Duration = std::time::Duration::from_secs(10);

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime").block_on(future)
    }

    fn query() -> impl Strategy<Value = Query> {
        prop_oneof![
            any::<u64>().prop_map(Query::Event),
            any::<u64>().prop_map(Query::SeatMap),
            any::<u64>().prop_map(Query::Tickets),
            (any::<u64>(), any::<u64>()).prop_map(|(event, nonce)| Query::Booking(BookingId { event, nonce })),
            (any::<u64>(), any::<u32>()).prop_map(|(from, limit)| Query::UpcomingEvents { from, limit }),
            "\\PC{0,40}".prop_map(Query::UserByEmail),
            Just(Query::Digest),
            prop::collection::vec(any::<u64>(), 0..20).prop_map(Query::IndexEntries),
        ]
    }

    fn request() -> impl Strategy<Value = Request> {
        let consistency = prop_oneof![Just(Consistency::Linearizable), Just(Consistency::Stale)];
        prop_oneof![
            (any::<u64>(), "\\PC{0,40}").prop_map(|(from, cluster)| Request::Hello { from, cluster }),
            Just(()).prop_map(|()| Request::Status),
            any::<u32>().prop_map(|group| Request::ReadIndex { group }),
            (any::<u32>(), query(), consistency).prop_map(|(group, query, consistency)| Request::Read {
                group,
                query,
                consistency
            }),
        ]
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn arbitrary_bytes_never_panic_nor_ask_for_more_than_the_limit(
            small_len in prop::option::of(0u32..1_100),
            rest in prop::collection::vec(any::<u8>(), 0..512),
            frame_bytes_max in 0u32..1_024,
            chunk in 1usize..64,
        ) {
            // Random bytes mostly start with a huge length: half the cases start with a small one.
            let mut bytes = small_len.map(|len| len.to_be_bytes().to_vec()).unwrap_or_default();
            bytes.extend_from_slice(&rest);
            let mut reader = Recording { bytes: &bytes, chunk, largest_buffer: 0 };
            if let Ok(Some(frame)) = block_on(read_frame(&mut reader, frame_bytes_max, IDLE)) {
                prop_assert!(frame.payload.len() + HEADER_BYTES - 4 <= frame_bytes_max as usize);
                let _ = frame.decode::<Request>();
                let _ = frame.decode::<Response>();
            }
            prop_assert!(reader.largest_buffer <= (frame_bytes_max as usize).max(4), "asked for {}", reader.largest_buffer);
        }

        #[test]
        fn any_length_prefix_is_refused_or_read_within_the_limit(
            any_len in any::<u32>(),
            near_the_limit in prop::option::of(-16i32..=16),
            rest in prop::collection::vec(any::<u8>(), 0..64),
            frame_bytes_max in 0u32..(1 << 20),
        ) {
            // Lengths at the limit, just under and just over it, as well as anywhere.
            let len = near_the_limit.map_or(any_len, |offset| frame_bytes_max.saturating_add_signed(offset));
            let mut bytes = len.to_be_bytes().to_vec();
            bytes.extend_from_slice(&rest);
            let mut reader = Recording { bytes: &bytes, chunk: usize::MAX, largest_buffer: 0 };
            let result = block_on(read_frame(&mut reader, frame_bytes_max, IDLE));
            if len > frame_bytes_max {
                prop_assert!(matches!(result, Err(FrameError::TooLarge { .. })), "{:?}", result.map(|f| f.map(|f| f.id)));
            }
            prop_assert!(reader.largest_buffer <= (frame_bytes_max as usize).max(4), "asked for {}", reader.largest_buffer);
        }

        #[test]
        fn arbitrary_payloads_never_panic_when_decoded(payload in prop::collection::vec(any::<u8>(), 0..256)) {
            let frame = Frame { id: 0, kind: Kind::Request, payload };
            let _ = frame.decode::<Request>();
            let _ = frame.decode::<Response>();
        }

        #[test]
        fn requests_round_trip(id in any::<u64>(), request in request(), chunk in 1usize..64) {
            let bytes = encode(id, Kind::Request, &request).expect("a small request encodes");
            let mut reader = Recording { bytes: &bytes, chunk, largest_buffer: 0 };
            let frame = block_on(read_frame(&mut reader, 1 << 20, IDLE)).expect("a whole frame").expect("not the end");
            prop_assert_eq!((frame.id, frame.kind), (id, Kind::Request));
            let decoded: Request = frame.decode().expect("what encode wrote decodes");
            // Requests hold openraft types without equality: the same bytes again is the check.
            prop_assert_eq!(encode(id, Kind::Request, &decoded).expect("encodes again"), bytes);
        }
    }
}
