//! axum's extractors, wrapped so that a rejection is a [`Problem`] rather than axum's plain text.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// A JSON request body.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(JsonBody(value))
    }
}

/// Parameters of the matched route's path.
pub struct PathParams<T>(pub T);

impl<S, T> FromRequestParts<S> for PathParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) = axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(PathParams(value))
    }
}

/// The query string.
pub struct QueryParams<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(QueryParams(value))
    }
}

/// Longest `Idempotency-Key` accepted.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 255;

/// A JSON body and its `Idempotency-Key`, if the client sent one: a retry with the same key gets
/// the first answer, and the same key with another body (or path) is refused. The fingerprint
/// covers the method, the path and the raw body.
pub struct Keyed<T> {
    pub body: T,
    pub idempotency: Option<model::Idempotency>,
}

impl<S, T> FromRequest<S> for Keyed<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let key = idempotency_key(req.headers())?;
        let (method, path) = (req.method().clone(), req.uri().path().to_string());
        let json = req.headers().get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !json.starts_with("application/json") {
            return Err(Problem::unsupported_media_type("send the body as JSON, with Content-Type: application/json"));
        }
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Problem::payload_too_large("the request body is too large")
            } else {
                Problem::bad_request(e.body_text())
            }
        })?;
        let body: T = serde_json::from_slice(&bytes).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => Problem::invalid(format!("the body does not fit: {e}")),
            _ => Problem::bad_request(format!("the body is not valid JSON: {e}")),
        })?;
        let idempotency =
            key.map(|key| model::Idempotency { key, fingerprint: fingerprint(method.as_str(), &path, &bytes) });
        Ok(Keyed { body, idempotency })
    }
}

fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value.to_str().ok().filter(|k| !k.is_empty() && k.len() <= IDEMPOTENCY_KEY_BYTES_MAX);
    let key = key.ok_or_else(|| {
        Problem::bad_request(format!("an Idempotency-Key is 1 to {IDEMPOTENCY_KEY_BYTES_MAX} visible ASCII characters"))
    })?;
    Ok(Some(key.to_string()))
}

/// The first 8 bytes of SHA-256 over method, path and body.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(method)
        .chain_update([0])
        .chain_update(path)
        .chain_update([0])
        .chain_update(body)
        .finalize();
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_requests_apart() {
        let a = fingerprint("POST", "/events/1/bookings", b"{\"ticketIds\":[1]}");
        assert_eq!(a, fingerprint("POST", "/events/1/bookings", b"{\"ticketIds\":[1]}"));
        assert_ne!(a, fingerprint("POST", "/events/1/bookings", b"{\"ticketIds\":[2]}"));
        assert_ne!(a, fingerprint("POST", "/events/2/bookings", b"{\"ticketIds\":[1]}"));
    }

    #[test]
    fn idempotency_keys_are_bounded() {
        let mut headers = axum::http::HeaderMap::new();
        assert_eq!(idempotency_key(&headers).unwrap(), None);
        headers.insert("idempotency-key", "k-1".parse().unwrap());
        assert_eq!(idempotency_key(&headers).unwrap().as_deref(), Some("k-1"));
        headers.insert("idempotency-key", "x".repeat(300).parse().unwrap());
        assert_eq!(idempotency_key(&headers).unwrap_err().status(), axum::http::StatusCode::BAD_REQUEST);
    }
}
