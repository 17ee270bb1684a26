//! Who is asking: passwords, and the extractors that check a request's token (a fan's, signed
//! as `tokens` says, or the operator's admin token).

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use model::UserId;
use rand::RngCore;

use crate::cluster::Cluster;
use crate::limits::PasswordSlots;
use crate::problem::Problem;
use crate::state::AppState;
use crate::tokens::same_secret;

/// Hashes a password with argon2id off the async threads (it takes tens of milliseconds), in
/// one of `slots` (a 503 if none frees soon).
pub async fn hash_password(slots: &PasswordSlots, password: String) -> Result<String, Problem> {
    let slot = slots.acquire().await?;
    let joined = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        hash_blocking(&password)
    })
    .await;
    match joined {
        Ok(Ok(hash)) => Ok(hash),
        Ok(Err(error)) => {
            tracing::error!(%error, "password hashing failed");
            Err(Problem::internal())
        }
        Err(error) => {
            tracing::error!(%error, "password hashing task failed");
            Err(Problem::internal())
        }
    }
}

/// Whether `password` matches the stored hash. Without a stored hash (unknown email) it still
/// verifies against a dummy hash, so that the answer takes as long either way and does not tell
/// which emails have accounts. Runs in one of `slots`, as hashing does.
pub async fn verify_password(slots: &PasswordSlots, password: String, stored: Option<String>) -> Result<bool, Problem> {
    let slot = slots.acquire().await?;
    let verify = move || {
        let _slot = slot;
        verify_blocking(&password, stored.as_deref())
    };
    tokio::task::spawn_blocking(verify).await.map_err(|error| {
        tracing::error!(%error, "password verification task failed");
        Problem::internal()
    })
}

fn hash_blocking(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)?;
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt)?.to_string())
}

fn verify_blocking(password: &str, stored: Option<&str>) -> bool {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    let (hash, real) = match stored {
        Some(hash) => (Some(hash), true),
        None => (DUMMY.get_or_init(|| hash_blocking("not anyone's password").ok()).as_deref(), false),
    };
    let Some(hash) = hash else { return false };
    let parsed = match PasswordHash::new(hash) {
        Ok(parsed) => parsed,
        Err(error) => {
            tracing::error!(%error, "stored password hash is unreadable");
            return false;
        }
    };
    Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok() && real
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<&str, Problem> {
    let missing = || Problem::unauthorized("send `Authorization: Bearer <token>`");
    let value = headers.get(AUTHORIZATION).ok_or_else(missing)?;
    let value = value.to_str().map_err(|_| missing())?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(missing());
    }
    Ok(token.trim())
}

/// A signed-in fan: the handler runs only with a valid token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fan(pub UserId);

impl<C: Cluster> FromRequestParts<AppState<C>> for Fan {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState<C>) -> Result<Self, Self::Rejection> {
        // The rate limits' middleware verified the token already on the routes it guards.
        if let Some(fan) = parts.extensions.get::<Fan>() {
            return Ok(*fan);
        }
        let token = bearer(&parts.headers)?;
        match state.tokens.verify(token, state.cluster.now_ms()) {
            Ok(claims) => Ok(Fan(claims.uid)),
            Err(error) => Err(Problem::unauthorized(error.to_string())),
        }
    }
}

/// An operator: the handler runs only with the admin token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admin;

impl<C: Cluster> FromRequestParts<AppState<C>> for Admin {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState<C>) -> Result<Self, Self::Rejection> {
        let expected = &state.config.admin_token;
        if expected.is_empty() {
            return Err(Problem::forbidden("the admin endpoints are disabled on this node"));
        }
        let token = bearer(&parts.headers)?;
        if !same_secret(token, expected) {
            return Err(Problem::forbidden("this token does not grant admin access"));
        }
        Ok(Admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let hash = hash_blocking("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_blocking("correct horse", Some(&hash)));
        assert!(!verify_blocking("wrong horse", Some(&hash)));
        assert!(!verify_blocking("correct horse", None));
        assert!(!verify_blocking("correct horse", Some("not a phc string")));
    }
}
