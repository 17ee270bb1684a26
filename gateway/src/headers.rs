//! Security headers: what every answer carries, and the content security policy of the pages.
//!
//! Every answer says `nosniff` (a JSON body is never run as a script), may not be framed
//! (`frame-ancestors 'none'` and `X-Frame-Options: DENY`, against clickjacking the checkout
//! button) and sends no referrer. An answer without a policy of its own (the API's JSON) gets
//! one that allows nothing at all; a page sends [`page_policy`]: scripts and styles only from the
//! gateway itself or, when inline, by their SHA-256, so an injected `<script>` never runs.

use axum::body::Body;
use axum::http::header::{
    HeaderValue, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::Request;
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use sha2::{Digest, Sha256};

/// The policy of an answer that is not a page: it may load and run nothing.
const API_POLICY: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Adds the headers every answer carries; a policy the handler set is kept.
pub async fn secure(request: Request<Body>, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !headers.contains_key(CONTENT_SECURITY_POLICY) {
        headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(API_POLICY));
    }
    response
}

/// The policy of a page whose scripts and styles come from the gateway itself (`'self'`) or are
/// the inline ones of `page` (allowed by hash). It may fetch from the gateway and open
/// WebTransport sessions to the waiting room's nodes (`https:` on their own ports).
pub fn page_policy(page: &str) -> String {
    let scripts = inline_hashes(page, "script");
    let styles = inline_hashes(page, "style");
    format!(
        "default-src 'none'; script-src 'self'{scripts}; style-src 'self'{styles}; img-src 'self' data:; \
         connect-src 'self' https:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
}

/// ` 'sha256-…'` for every inline `<tag>…</tag>` of `page` (elements with attributes, such as
/// `<script type="module" src=…>`, load from a URL and need no hash).
fn inline_hashes(page: &str, tag: &str) -> String {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut hashes = String::new();
    let mut rest = page;
    while let Some(start) = rest.find(&open) {
        let body = &rest[start + open.len()..];
        let Some(end) = body.find(&close) else { break };
        let digest = Sha256::digest(&body.as_bytes()[..end]);
        hashes.push_str(&format!(" 'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest)));
        rest = &body[end + close.len()..];
    }
    hashes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_scripts_and_styles_are_allowed_by_their_hash_and_nothing_else_inline() {
        let page = "<style>a{}</style><script>go()</script><script type=\"module\" src=\"/app/x.js\"></script>";
        let policy = page_policy(page);
        let script_hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b"go()"));
        let style_hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b"a{}"));
        assert!(policy.contains(&format!("script-src 'self' 'sha256-{script_hash}';")), "{policy}");
        assert!(policy.contains(&format!("style-src 'self' 'sha256-{style_hash}';")), "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    }

    #[test]
    fn a_page_without_inline_code_allows_only_its_own_files() {
        let policy = page_policy("<script type=\"module\" src=\"/app/main.js\"></script>");
        assert!(policy.contains("script-src 'self';"), "{policy}");
        assert!(policy.contains("style-src 'self';"), "{policy}");
    }
}
