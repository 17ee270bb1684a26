//! A lean HTTP/1.1 client for the load engine: one kept-alive connection per client, requests
//! built by hand. Lighter than a pooled general-purpose client, so that the machine's cores go
//! to the system measured rather than to the load generator.

use anyhow::{anyhow, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub struct Conn {
    /// `host:port`.
    addr: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    /// A connection to `base` (`http://host:port`), opened on first use and again after a failure.
    pub fn new(base: &str) -> Conn {
        Conn { addr: base.trim_start_matches("http://").trim_end_matches('/').to_string(), sender: None }
    }

    async fn connect(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        if self.sender.is_none() {
            let stream =
                TcpStream::connect(&self.addr).await.with_context(|| format!("connecting to {}", self.addr))?;
            stream.set_nodelay(true)?;
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            self.sender = Some(sender);
        }
        self.sender.as_mut().ok_or_else(|| anyhow!("no connection"))
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut request = Request::builder().method(method).uri(path).header("host", &self.addr);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let result = async {
            let sender = self.connect().await?;
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        }
        .await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }
}
