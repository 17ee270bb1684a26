//! Signing up and signing in.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use model::{normalize_email, Command, Consistency, Outcome, Query, QueryResult, User, PLACEMENT_GROUP};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth;
use crate::cluster::Cluster;
use crate::extract::JsonBody;
use crate::problem::Problem;
use crate::state::{unexpected, AppState, Shared};
use crate::tokens::Claims;
use crate::validate;
use crate::views::{rfc3339, SessionView, UserView};

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewUser {
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    #[schema(format = Email, max_length = 254)]
    email: String,
    #[schema(min_length = 8, max_length = 128)]
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    email: String,
    password: String,
}

/// `POST /users`: sign a fan up.
#[utoipa::path(post, path = "/users", tag = "fans", request_body = NewUser,
    responses((status = 201, description = "The fan, signed up", body = UserView)))]
pub async fn create_user<C: Cluster>(
    State(state): State<AppState<C>>,
    JsonBody(body): JsonBody<NewUser>,
) -> Result<(StatusCode, Json<UserView>), Problem> {
    validate::fields_problem(validate::new_user_errors(&body.name, &body.email, &body.password))?;
    let name = body.name.trim().to_owned();
    let email = normalize_email(&body.email);
    let password_hash = auth::hash_password(&state.limits.passwords, body.password).await?;
    let command =
        Command::CreateUser { name: name.clone(), email: email.clone(), password_hash: password_hash.clone() };
    let id = match state.write(PLACEMENT_GROUP, command).await? {
        Outcome::UserCreated(id) => id,
        Outcome::EmailTaken => created_by_retry(&state, &email, &password_hash).await?.ok_or_else(email_taken)?,
        Outcome::Rejected(reason) => return Err(Problem::invalid(reason)),
        other => return Err(unexpected("create user", &other)),
    };
    tracing::info!(user = id, "user created");
    Ok((StatusCode::CREATED, Json(UserView { id, name, email })))
}

/// The id of the user our own command created, when the cluster applied it twice (a retry after
/// a leader change) and the second time found the email taken by the first. The hash has a fresh
/// random salt, so no one else's account can have it.
async fn created_by_retry<C: Cluster>(state: &Shared<C>, email: &str, hash: &str) -> Result<Option<u64>, Problem> {
    let user = user_by_email(state, email).await?;
    Ok(user.filter(|u| u.password_hash == hash).map(|u| u.id))
}

fn email_taken() -> Problem {
    Problem::conflict("email-taken", "Email taken", "an account with this email address exists")
}

async fn user_by_email<C: Cluster>(state: &Shared<C>, email: &str) -> Result<Option<User>, Problem> {
    let query = Query::UserByEmail(email.to_owned());
    match state.read(PLACEMENT_GROUP, query, Consistency::Linearizable).await? {
        QueryResult::User(user) => Ok(user),
        other => Err(unexpected("user by email", &other)),
    }
}

/// `POST /sessions`: sign a fan in and hand out a token.
#[utoipa::path(post, path = "/sessions", tag = "fans", request_body = Credentials,
    responses((status = 201, description = "A fan token, for `Authorization: Bearer`", body = SessionView)))]
pub async fn create_session<C: Cluster>(
    State(state): State<AppState<C>>,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<(StatusCode, Json<SessionView>), Problem> {
    // One answer for a wrong email and a wrong password, so it does not reveal who has an account.
    let wrong = || Problem::unauthorized("the email address or the password is wrong");
    if body.password.chars().count() > validate::PASSWORD_CHARS_MAX {
        // No account has such a password; do not spend argon2 time on it.
        return Err(wrong());
    }
    let email = normalize_email(&body.email);
    state.limits.sign_in_to(&email)?;
    let user = user_by_email(&state, &email).await?;
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let user = match (auth::verify_password(&state.limits.passwords, body.password, stored).await?, user) {
        (true, Some(user)) => user,
        _ => return Err(wrong()),
    };
    let expires = state.now().saturating_add(state.config.session_ttl_ms);
    let token = state.tokens.sign(Claims { uid: user.id, exp: expires });
    tracing::info!(user = user.id, "session created");
    Ok((StatusCode::CREATED, Json(SessionView { token, user_id: user.id, expires_at: rfc3339(expires) })))
}
