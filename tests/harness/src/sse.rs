//! A client of server-sent event streams, as a browser's `EventSource` reads them: it sends
//! `Last-Event-ID` when asked to, and yields each event's type, id and data.

use std::time::Duration;

use anyhow::{bail, Context};

/// One event of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field (`message` when absent).
    pub kind: String,
    pub id: Option<String>,
    pub data: String,
}

impl SseEvent {
    /// The data as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(&self.data).with_context(|| format!("event data is not JSON: {}", self.data))
    }
}

/// An open stream.
pub struct SseStream {
    response: reqwest::Response,
    buffer: String,
}

impl SseStream {
    /// Opens `url`, resuming after `last_event_id` if given; fails on a status other than 200.
    pub async fn open(http: &reqwest::Client, url: &str, last_event_id: Option<&str>) -> anyhow::Result<SseStream> {
        let mut request = http.get(url).header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.with_context(|| format!("opening {url}"))?;
        if response.status() != reqwest::StatusCode::OK {
            let status = response.status();
            bail!("{url} answered {status}: {}", response.text().await.unwrap_or_default());
        }
        Ok(SseStream { response, buffer: String::new() })
    }

    /// The next event (comments and keep-alives skipped), or an error after `within`.
    pub async fn next(&mut self, within: Duration) -> anyhow::Result<SseEvent> {
        tokio::time::timeout(within, self.next_event()).await.context("no event within the time allowed")?
    }

    async fn next_event(&mut self) -> anyhow::Result<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse(&block) {
                    return Ok(event);
                }
                continue;
            }
            match self.response.chunk().await? {
                Some(chunk) => self.buffer.push_str(std::str::from_utf8(&chunk).context("a stream that is not UTF-8")?),
                None => bail!("the stream ended"),
            }
        }
    }
}

/// An event block's fields; `None` for a block of comments only.
fn parse(block: &str) -> Option<SseEvent> {
    let (mut kind, mut id, mut data, mut any) = (String::from("message"), None, Vec::new(), false);
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => (kind, any) = (value.to_string(), true),
            "id" => (id, any) = (Some(value.to_string()), true),
            "data" => {
                data.push(value);
                any = true;
            }
            _ => {}
        }
    }
    any.then(|| SseEvent { kind, id, data: data.join("\n") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_become_events_and_comments_are_skipped() {
        let event = parse("event: delta\nid: 3.4\ndata: {\"a\":1}\n\n").unwrap();
        assert_eq!(event, SseEvent { kind: "delta".into(), id: Some("3.4".into()), data: "{\"a\":1}".into() });
        assert_eq!(parse(":\n\n"), None);
        assert_eq!(parse("data: a\ndata: b\n\n").unwrap().data, "a\nb");
    }
}
