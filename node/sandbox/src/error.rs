//! The sandbox's errors: [`ApiError`], what the API answers, in Stripe's shape (`{"error":
//! {"type", "code"?, "message"}}` with a 4xx or 5xx status), and [`SandboxError`], why the
//! sandbox could not start or serve.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// Why the sandbox could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the sandbox needs an API key")]
    NoApiKey,
    #[error("the sandbox needs a webhook secret")]
    NoWebhookSecret,
    #[error("duplicate_per_mille is at most 1000, not {0}")]
    DuplicateChance(u32),
    #[error("a webhook URL starts with http:// or https://, not {0:?}")]
    WebhookUrl(String),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the address the sandbox listens on")]
    Address(#[source] std::io::Error),
    #[error("cannot make the webhook client")]
    Client(#[source] reqwest::Error),
    #[error("the sandbox server failed")]
    Serve(#[source] std::io::Error),
}

/// An answer of the API's other than a 2xx; its message is what the caller reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    /// Stripe's error type: `invalid_request_error`, `card_error`, `idempotency_error`, …
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, code: Option<&'static str>, message: impl Into<String>) -> Self {
        ApiError { status, kind, code, message: message.into() }
    }

    /// A request the API cannot take as it is: 400.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", None, message)
    }

    /// A parameter with a bad value: 400, with the parameter named in the message.
    pub fn invalid_param(param: &str, message: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("parameter_invalid"),
            format!("{param}: {message}"),
        )
    }

    /// A card number without the shape of one: 400.
    pub fn invalid_number() -> Self {
        let message = "the card number is not a valid card number: 12 to 19 digits, spaces and dashes allowed";
        Self::new(StatusCode::BAD_REQUEST, "card_error", Some("invalid_number"), message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", None, message)
    }

    /// No such object: 404.
    pub fn missing(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("resource_missing"),
            format!("no such {what}: {id:?}"),
        )
    }

    pub fn not_found_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, "invalid_request_error", None, "unrecognized request url")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error", None, "this url does not take this method")
    }

    /// The object is not in a state that allows this: 409.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "invalid_request_error", Some(code), message)
    }

    /// An idempotency key reused with another request: 422.
    pub fn idempotency(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_error", None, message)
    }

    pub fn unauthorized() -> Self {
        let message = "invalid api key: send `Authorization: Bearer <api key>`";
        Self::new(StatusCode::UNAUTHORIZED, "authentication_error", None, message)
    }

    /// The sandbox is full: 503.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "api_error", None, message)
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body { error: Detail { kind: self.kind, code: self.code, message: &self.message } };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        response
    }
}
