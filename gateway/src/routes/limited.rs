//! The middleware of the rate-limited routes (sign-up, sign-in, hold, payment): checks the
//! client's address and, with a valid fan token, the fan against [`crate::limits`], before the
//! body is read.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::{bearer, Fan};
use crate::cluster::Cluster;
use crate::limits::Action;
use crate::state::AppState;

/// `route_layer(from_fn_with_state((state, action), limit))`. A request with a fan's valid token
/// counts for that fan too; one without is left to the handler's own 401.
/// The verified fan is left in the request for the handler's [`Fan`] extractor, so that the
/// token is checked once.
pub async fn limit<C: Cluster>(
    State((state, action)): State<(AppState<C>, Action)>,
    mut request: Request,
    next: Next,
) -> Response {
    let address = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip());
    let fan = bearer(request.headers()).ok().and_then(|token| state.tokens.verify(token, state.now()).ok());
    let fan = fan.map(|claims| Fan(claims.uid));
    if let Some(fan) = fan {
        request.extensions_mut().insert(fan);
    }
    match state.limits.check(action, address, fan.map(|Fan(uid)| uid)) {
        Ok(()) => next.run(request).await,
        Err(problem) => {
            tracing::debug!(?address, ?action, "rate limited");
            problem.into_response()
        }
    }
}
