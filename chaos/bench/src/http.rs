//! A lean HTTP/1.1 client for the load engine: one kept-alive connection per client, requests
//! written and answers read by hand on the client's own task. A general-purpose client (even
//! hyper's bare connection) runs each connection as a task of its own and passes every request
//! and answer through a channel to it; here the machine's cores go to the system measured
//! rather than to the load generator.

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http::{Method, StatusCode};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

/// Most header bytes an answer may have.
const HEADER_BYTES_MAX: usize = 64 << 10;
/// Most headers an answer may have.
const HEADERS_MAX: usize = 64;
/// Most body bytes an answer may have (a search answer, a bulk import's report).
const BODY_BYTES_MAX: usize = 256 << 20;

pub struct Conn {
    /// `host:port`.
    addr: String,
    stream: Option<BufStream<TcpStream>>,
    /// The request being written, kept to reuse its allocation.
    out: Vec<u8>,
}

impl Conn {
    /// A connection to `base` (`http://host:port`), opened on first use and again after a failure.
    pub fn new(base: &str) -> Conn {
        let addr = base.trim_start_matches("http://").trim_end_matches('/').to_string();
        Conn { addr, stream: None, out: Vec::with_capacity(512) }
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        self.out.clear();
        write_request(&mut self.out, &self.addr, &method, path, token, body.as_deref().unwrap_or(""), body.is_some());
        let result = self.exchange().await;
        if !matches!(result, Ok((_, _, true))) {
            // Failed, or the server closes the connection: the next request opens another.
            self.stream = None;
        }
        result.map(|(status, body, _)| (status, body))
    }

    /// Writes the request in `out` and reads the answer: its status, body, and whether the
    /// connection may carry another request.
    async fn exchange(&mut self) -> anyhow::Result<(StatusCode, Bytes, bool)> {
        if self.stream.is_none() {
            let stream =
                TcpStream::connect(&self.addr).await.with_context(|| format!("connecting to {}", self.addr))?;
            stream.set_nodelay(true)?;
            self.stream = Some(BufStream::new(stream));
        }
        let stream = self.stream.as_mut().ok_or_else(|| anyhow!("no connection"))?;
        stream.write_all(&self.out).await?;
        stream.flush().await?;
        read_response(stream).await
    }
}

fn write_request(
    out: &mut Vec<u8>,
    host: &str,
    method: &Method,
    path: &str,
    token: Option<&str>,
    body: &str,
    json: bool,
) {
    use std::io::Write;
    let _ = write!(out, "{method} {path} HTTP/1.1\r\nhost: {host}\r\ncontent-length: {}\r\n", body.len());
    if let Some(token) = token {
        let _ = write!(out, "authorization: Bearer {token}\r\n");
    }
    if json {
        out.extend_from_slice(b"content-type: application/json\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
}

/// What the head of an answer says.
struct Head {
    status: StatusCode,
    content_length: Option<usize>,
    chunked: bool,
    keep_alive: bool,
}

async fn read_response(stream: &mut BufStream<TcpStream>) -> anyhow::Result<(StatusCode, Bytes, bool)> {
    let mut head = Vec::with_capacity(256);
    loop {
        let before = head.len();
        let read = stream.read_until(b'\n', &mut head).await?;
        if read == 0 {
            bail!("the connection closed before the answer's head ended");
        }
        if head.len() > HEADER_BYTES_MAX {
            bail!("an answer's head is over {HEADER_BYTES_MAX} bytes");
        }
        // A line that is only CRLF ends the head.
        if &head[before..] == b"\r\n" {
            break;
        }
    }
    let head = parse_head(&head)?;
    let body = match (head.content_length, head.chunked) {
        (Some(length), false) => {
            if length > BODY_BYTES_MAX {
                bail!("an answer of {length} bytes is over {BODY_BYTES_MAX}");
            }
            let mut body = vec![0u8; length];
            stream.read_exact(&mut body).await?;
            body
        }
        (_, true) => read_chunked(stream).await?,
        (None, false) => bail!("an answer with neither a length nor chunks"),
    };
    Ok((head.status, Bytes::from(body), head.keep_alive))
}

fn parse_head(bytes: &[u8]) -> anyhow::Result<Head> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut response = httparse::Response::new(&mut headers);
    if !response.parse(bytes)?.is_complete() {
        bail!("an incomplete answer head");
    }
    let status = StatusCode::from_u16(response.code.ok_or_else(|| anyhow!("an answer without a status"))?)?;
    let mut head = Head { status, content_length: None, chunked: false, keep_alive: response.version == Some(1) };
    for header in response.headers.iter() {
        let value = std::str::from_utf8(header.value).unwrap_or("").trim();
        if header.name.eq_ignore_ascii_case("content-length") {
            head.content_length = Some(value.parse().context("a bad content-length")?);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.eq_ignore_ascii_case("chunked");
        } else if header.name.eq_ignore_ascii_case("connection") {
            head.keep_alive = !value.eq_ignore_ascii_case("close");
        }
    }
    Ok(head)
}

async fn read_chunked(stream: &mut BufStream<TcpStream>) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        stream.read_line(&mut line).await?;
        let size = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size, 16).with_context(|| format!("a bad chunk size {line:?}"))?;
        if body.len() + size > BODY_BYTES_MAX {
            bail!("a chunked answer over {BODY_BYTES_MAX} bytes");
        }
        let start = body.len();
        body.resize(start + size, 0);
        stream.read_exact(&mut body[start..]).await?;
        line.clear();
        stream.read_line(&mut line).await?;
        if size == 0 {
            return Ok(body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_written_with_its_length_and_token() {
        let mut out = Vec::new();
        write_request(&mut out, "h:1", &Method::POST, "/x", Some("t"), "{}", true);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "POST /x HTTP/1.1\r\nhost: h:1\r\ncontent-length: 2\r\nauthorization: Bearer t\r\n\
             content-type: application/json\r\n\r\n{}"
        );
    }

    #[test]
    fn a_head_gives_status_length_and_whether_the_connection_stays() {
        let head = parse_head(b"HTTP/1.1 409 Conflict\r\nContent-Length: 12\r\n\r\n").unwrap();
        assert_eq!(
            (head.status, head.content_length, head.chunked, head.keep_alive),
            (StatusCode::CONFLICT, Some(12), false, true)
        );
        let head = parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n").unwrap();
        assert!(head.chunked && !head.keep_alive);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n").is_err());
    }
}
