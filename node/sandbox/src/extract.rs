//! Extractors whose rejections are the API's JSON errors, never axum's plain-text ones.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest request body taken, in bytes.
pub const BODY_MAX: usize = 64 * 1024;
/// The longest idempotency key taken, as at Stripe.
const IDEMPOTENCY_KEY_MAX: usize = 255;

/// The `{id}` of the route.
pub struct Id(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::invalid(rejection.body_text()))?;
        Ok(Id(id))
    }
}

/// The query string, deserialized.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(params) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::invalid(rejection.body_text()))?;
        Ok(Params(params))
    }
}

/// The optional `Idempotency-Key` header.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        let key = value.to_str().map_err(|_| ApiError::invalid("the idempotency key must be visible ascii"))?;
        if key.is_empty() || key.len() > IDEMPOTENCY_KEY_MAX {
            return Err(ApiError::invalid(format!("an idempotency key has 1 to {IDEMPOTENCY_KEY_MAX} characters")));
        }
        Ok(IdempotencyKey(Some(key.to_string())))
    }
}

/// The request body, within the body limit.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state).await.map_err(body_error)?;
        Ok(RawBody(bytes))
    }
}

fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::too_large(format!("the request body is larger than {} bytes", BODY_MAX));
    }
    ApiError::invalid(format!("cannot read the request body: {}", rejection.body_text()))
}

/// A JSON request body.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawBody(bytes) = RawBody::from_request(request, state).await?;
        let value =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid(format!("malformed json body: {e}")))?;
        Ok(JsonBody(value))
    }
}
