//! The OpenAPI 3.1 document of the HTTP API, served at `GET /openapi.json`.
//!
//! It is derived from the code: every handler carries its `#[utoipa::path]` (method, path,
//! parameters, body, success answers) and every view its schema; a unit test compares the
//! document with the router's route list, so a route without docs fails it. What holds for every
//! route is added here once ([`Conventions`]): any 4xx or 5xx answers `application/problem+json`
//! ([`ProblemBody`]), and the security schemes (the fan's bearer token, the operators' admin
//! token, the waiting room's `Admission-Token`). The node merges in the document of the routes it
//! adds (the waiting room's HTTP fallback), as it merges in the routes. Event streams describe
//! each event as it travels (`event`, `data`, `id`), as OpenAPI 3.2 reads `text/event-stream`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::problem::ProblemBody;
use crate::routes::{admin, bookings, events, me, room, search, seats, users, web, webhooks};

/// The security scheme of a fan's token (`Authorization: Bearer`, from `POST /sessions`).
pub const FAN_SCHEME: &str = "fan";
/// The security scheme of the operators' token (`Authorization: Bearer`, `admin_token`).
pub const ADMIN_SCHEME: &str = "admin";
/// The security scheme of the waiting room's admission (header `Admission-Token`).
pub const ADMISSION_SCHEME: &str = "admission";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Boxoffice",
        description = "The ticketing cluster's HTTP API: fans browse, search, hold and pay; operators \
            build the catalog and watch the cluster. Any node answers any request.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        web::index, web::asset, web::healthz, web::metrics, openapi_json,
        users::create_user, users::create_session,
        events::list, search::search, events::get_event, events::tickets,
        seats::layout, seats::snapshot, seats::stream,
        room::public_room,
        bookings::create, bookings::get_booking, bookings::release, bookings::pay,
        me::my_bookings,
        webhooks::payment_event,
        admin::create_venue, admin::create_performer, admin::create_event, admin::create_events,
        admin::cluster_status, admin::snapshot, admin::backup, admin::digest, admin::event_state,
        room::get_room, room::configure,
        admin::inject_faults,
    ),
    components(schemas(ProblemBody, crate::seats::wire::SnapshotView, crate::seats::wire::DeltaView)),
    modifiers(&Conventions),
    tags(
        (name = "events", description = "The catalog: upcoming events, search, an event's page and tickets"),
        (name = "seats", description = "Seat maps: the layout, and availability as a snapshot or a stream"),
        (name = "fans", description = "Signing up and signing in"),
        (name = "bookings", description = "Holding tickets, paying, releasing"),
        (name = "waiting room", description = "Queueing fans fairly before an on-sale"),
        (name = "payments", description = "The payment provider's webhooks"),
        (name = "admin", description = "The operators' API: needs the admin token"),
        (name = "operations", description = "Health, metrics and this document"),
        (name = "web", description = "The web page"),
    )
)]
struct ApiDoc;

/// What holds for every route: the security schemes, and problems for every error status.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(what)).build())
        };
        components.add_security_scheme(FAN_SCHEME, bearer("A fan's token, from `POST /sessions`"));
        components.add_security_scheme(ADMIN_SCHEME, bearer("The cluster's admin token (`admin_token`)"));
        components.add_security_scheme(
            ADMISSION_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Admission-Token",
                "The waiting room's admission, for a hold on an event that sells through it",
            ))),
        );
        let problem = ResponseBuilder::new()
            .description("A problem (RFC 9457)")
            .content(crate::problem::CONTENT_TYPE, Content::new(Some(Ref::from_schema_name("Problem"))))
            .build();
        components.responses.insert("Problem".to_owned(), RefOr::T(problem));
        add_problem_responses(doc);
    }
}

/// Every operation answers problems for 4xx and 5xx statuses beside those it names.
fn add_problem_responses(doc: &mut Document) {
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            for range in ["4XX", "5XX"] {
                let problem = RefOr::Ref(Ref::from_response_name("Problem"));
                operation.responses.responses.entry(range.to_owned()).or_insert(problem);
            }
        }
    }
}

/// The document of the gateway's routes with `extra`'s merged in (the routes the node adds).
pub fn document(extra: Option<Document>) -> Document {
    let mut doc = ApiDoc::openapi();
    if let Some(mut extra) = extra {
        add_problem_responses(&mut extra);
        doc.merge(extra);
    }
    doc
}

/// The document as served: rendered once, when the router is built.
#[derive(Clone)]
pub struct Rendered(pub Arc<String>);

impl Rendered {
    pub fn new(doc: &Document) -> Self {
        Rendered(Arc::new(doc.to_pretty_json().expect("an OpenAPI document serializes")))
    }
}

/// The route of the document, rendered once, to merge into the gateway's router.
pub fn router(doc: Document) -> axum::Router {
    axum::Router::new().route("/openapi.json", axum::routing::get(openapi_json)).with_state(Rendered::new(&doc))
}

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object)))]
pub async fn openapi_json(State(rendered): State<Rendered>) -> Response {
    ([(CONTENT_TYPE, "application/json"), (CACHE_CONTROL, "no-cache")], rendered.0.as_str().to_owned()).into_response()
}

/// `(method, path)` of every `.route(...)` in `source` (a router's Rust source, e.g. routes/mod.rs),
/// with path parameters unnamed (`{}`), for comparing a router with a document.
pub fn routes_in_source(source: &str) -> std::collections::BTreeSet<(String, String)> {
    let mut routes = std::collections::BTreeSet::new();
    for line in source.lines() {
        let Some((_, route)) = line.split_once(".route(\"") else { continue };
        let (path, line) = route.split_once('"').expect("a route's path is a string literal");
        for method in ["get", "post", "put", "delete", "patch"] {
            let called = format!("{method}(");
            let found = line
                .match_indices(&called)
                .any(|(at, _)| at > 0 && matches!(line.as_bytes()[at - 1], b'(' | b' ' | b'.' | b',' | b':'));
            if found {
                routes.insert((method.to_owned(), unnamed_params(path)));
            }
        }
    }
    routes
}

/// `(method, path)` of every operation of `doc`, path parameters unnamed.
pub fn routes_in_document(doc: &Document) -> std::collections::BTreeSet<(String, String)> {
    let mut routes = std::collections::BTreeSet::new();
    for (path, item) in &doc.paths.paths {
        let methods = [
            ("get", &item.get),
            ("post", &item.post),
            ("put", &item.put),
            ("delete", &item.delete),
            ("patch", &item.patch),
        ];
        for (method, operation) in methods {
            if operation.is_some() {
                routes.insert((method.to_owned(), unnamed_params(path)));
            }
        }
    }
    routes
}

fn unnamed_params(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            c if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_and_every_documented_route_served() {
        let mut served = routes_in_source(include_str!("routes/mod.rs"));
        served.extend(routes_in_source(include_str!("openapi.rs")));
        assert!(served.len() > 25, "the route list was read: {served:?}");
        assert!(served.contains(&("delete".to_owned(), "/bookings/{}".to_owned())));
        let documented = routes_in_document(&document(None));
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(undocumented.is_empty(), "routes without docs: {undocumented:?}");
        assert!(unserved.is_empty(), "documented routes the router does not serve: {unserved:?}");
    }

    #[test]
    fn errors_are_problems_and_the_schemes_are_declared() {
        let json: serde_json::Value = serde_json::from_str(&Rendered::new(&document(None)).0).unwrap();
        assert!(json["openapi"].as_str().unwrap().starts_with("3.1"), "{}", json["openapi"]);
        for scheme in [FAN_SCHEME, ADMIN_SCHEME, ADMISSION_SCHEME] {
            assert!(json["components"]["securitySchemes"][scheme].is_object(), "{scheme}");
        }
        let problem = &json["components"]["responses"]["Problem"]["content"]["application/problem+json"];
        assert_eq!(problem["schema"]["$ref"], "#/components/schemas/Problem");
        let required = json["components"]["schemas"]["Problem"]["required"].as_array().unwrap();
        assert!(required.contains(&"type".into()) && required.contains(&"status".into()), "{required:?}");
        for (path, item) in json["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let responses = &operation["responses"];
                assert!(responses["4XX"].is_object() && responses["5XX"].is_object(), "{method} {path}");
            }
        }
        let stream = &json["paths"]["/events/{eventId}/seats/stream"]["get"]["responses"]["200"]["content"];
        assert!(stream["text/event-stream"].is_object(), "{stream}");
        let admin = &json["paths"]["/admin/cluster"]["get"]["security"];
        assert_eq!(admin, &serde_json::json!([{"admin": []}]));
    }

    #[test]
    fn the_route_list_reader_sees_each_method() {
        let source =
            "        .route(\"/a/{id}\", get(x::get_a::<C>).delete(x::del))\n        .route(\"/b\", post(snapshot))";
        let routes: Vec<_> = routes_in_source(source).into_iter().collect();
        let pair = |m: &str, p: &str| (m.to_owned(), p.to_owned());
        assert_eq!(routes, vec![pair("delete", "/a/{}"), pair("get", "/a/{}"), pair("post", "/b")]);
    }
}
