//! Bad input of every kind gets a 4xx with an application/problem+json body, never a 5xx, and
//! changes nothing.

use harness::{answer, ticket_statuses, Answer, Cluster, Settings, StatusCode, ADMIN_TOKEN};
use serde_json::json;

fn assert_problem(what: &str, answer: &Answer, status: StatusCode) {
    assert_eq!(answer.status, status, "{what}: {answer:?}");
    assert!(answer.is_problem(), "{what}: not a problem+json body: {answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_a_problem_never_a_server_error() {
    let cluster = Cluster::start(Settings::default()).await.unwrap();
    let event = cluster.seed_event(20).await.unwrap();
    let event_id = event["id"].as_u64().unwrap();
    let base = cluster.url(2);
    let http = &cluster.http;
    let fan = cluster.fan(2, "carol").await.unwrap();
    let other = cluster.fan(3, "dave").await.unwrap();
    let bookings = format!("{base}/events/{event_id}/bookings");
    let send = |request: reqwest::RequestBuilder| async move { answer(request.send().await.unwrap()).await.unwrap() };

    let malformed = send(
        http.post(&bookings)
            .bearer_auth(&fan.token)
            .header("content-type", "application/json")
            .body("{\"ticketIds\": [1,"),
    )
    .await;
    assert_problem("malformed json", &malformed, StatusCode::BAD_REQUEST);
    let wrong_shape = send(http.post(&bookings).bearer_auth(&fan.token).json(&json!({"ticketIds": "one"}))).await;
    assert!(wrong_shape.status.is_client_error() && wrong_shape.is_problem(), "wrong shape: {wrong_shape:?}");
    let not_json = send(http.post(&bookings).bearer_auth(&fan.token).body("ticketIds=1")).await;
    assert!(not_json.status.is_client_error() && not_json.is_problem(), "not json: {not_json:?}");

    let unknown = fan.hold(&base, event_id, &[3, 999]).await.unwrap();
    assert_problem("unknown ticket", &unknown, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unknown.body["unknownTicketIds"], json!([999]));
    assert_problem("empty list", &fan.hold(&base, event_id, &[]).await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY);
    let nine: Vec<u32> = (0..9).collect();
    assert_problem(
        "too many tickets",
        &fan.hold(&base, event_id, &nine).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert_problem(
        "duplicate tickets",
        &fan.hold(&base, event_id, &[1, 1]).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    let huge = json!({"ticketIds": vec![1u32; 100_000]});
    let oversized = send(http.post(&bookings).bearer_auth(&fan.token).json(&huge)).await;
    assert_problem("oversized body", &oversized, StatusCode::PAYLOAD_TOO_LARGE);
    assert_problem("unknown event", &fan.hold(&base, 987_654, &[1]).await.unwrap(), StatusCode::NOT_FOUND);
    let bad_event_id = send(http.get(format!("{base}/events/not-a-number")).bearer_auth(&fan.token)).await;
    assert_problem("non-numeric event id", &bad_event_id, StatusCode::BAD_REQUEST);

    let no_token = send(http.post(&bookings).json(&json!({"ticketIds": [1]}))).await;
    assert_problem("missing token", &no_token, StatusCode::UNAUTHORIZED);
    let mut forged = fan.token.clone();
    forged.pop();
    forged.push(if fan.token.ends_with('A') { 'B' } else { 'A' });
    let forged = send(http.post(&bookings).bearer_auth(forged).json(&json!({"ticketIds": [1]}))).await;
    assert_problem("forged token", &forged, StatusCode::UNAUTHORIZED);
    let garbage = send(http.post(&bookings).bearer_auth("garbage").json(&json!({"ticketIds": [1]}))).await;
    assert_problem("garbage token", &garbage, StatusCode::UNAUTHORIZED);

    let held = fan.hold(&base, event_id, &[4]).await.unwrap();
    assert_eq!(held.status, StatusCode::CREATED, "{held:?}");
    let booking = held.body["bookingId"].as_str().unwrap();
    assert_problem("another fan's booking", &other.booking(&base, booking).await.unwrap(), StatusCode::FORBIDDEN);
    assert_problem("another fan releasing", &other.release(&base, booking).await.unwrap(), StatusCode::FORBIDDEN);
    assert_problem(
        "another fan paying",
        &other.pay(&base, booking, "4242424242424242").await.unwrap(),
        StatusCode::FORBIDDEN,
    );
    assert_problem("bad booking id", &fan.booking(&base, "nonsense").await.unwrap(), StatusCode::BAD_REQUEST);
    assert_problem(
        "unknown booking",
        &fan.booking(&base, &format!("{event_id}-00000000000000ff")).await.unwrap(),
        StatusCode::NOT_FOUND,
    );
    let bad_card = fan.pay(&base, booking, "12ab").await.unwrap();
    assert_problem("bad card number", &bad_card, StatusCode::UNPROCESSABLE_ENTITY);

    let signup =
        send(http.post(format!("{base}/users")).json(&json!({"name": "", "email": "nope", "password": "x"}))).await;
    assert_problem("bad sign up", &signup, StatusCode::UNPROCESSABLE_ENTITY);
    let wrong_password = send(
        http.post(format!("{base}/sessions")).json(&json!({"email": "carol@fans.test", "password": "wrong-password"})),
    )
    .await;
    assert_problem("wrong password", &wrong_password, StatusCode::UNAUTHORIZED);
    let not_admin = send(http.get(format!("{base}/admin/cluster")).bearer_auth(&fan.token)).await;
    assert!(
        matches!(not_admin.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) && not_admin.is_problem(),
        "{not_admin:?}"
    );
    assert_problem("unknown route", &send(http.get(format!("{base}/no/such/route"))).await, StatusCode::NOT_FOUND);
    assert_problem("wrong method", &send(http.put(format!("{base}/events"))).await, StatusCode::METHOD_NOT_ALLOWED);
    let bad_page = send(http.get(format!("{base}/events?page=0&pageSize=1000"))).await;
    assert_problem("bad page", &bad_page, StatusCode::UNPROCESSABLE_ENTITY);

    // Prices for a section the venue does not have, alone and in a bulk import.
    let events = format!("{base}/events?page=1&pageSize=100");
    let before = send(http.get(&events)).await.body["events"].as_array().map(Vec::len);
    let venue_id = event["venue"]["id"].as_u64().unwrap();
    let priced = |name: &str| {
        json!({"name": name, "category": "concert", "startsAt": "2031-05-01T20:00:00Z", "venueId": venue_id,
               "performerIds": [], "priceCents": {"Balcony": 1000}})
    };
    let single = send(http.post(format!("{base}/admin/events")).bearer_auth(ADMIN_TOKEN).json(&priced("One"))).await;
    assert_problem("unknown section price", &single, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(single.body["unknownSections"], json!(["Balcony"]));
    let mut fine = priced("Fine");
    fine["priceCents"] = json!({"Floor": 7000});
    let bulk = json!({"events": [fine, priced("Two")]});
    let bulk = send(http.post(format!("{base}/admin/events/bulk")).bearer_auth(ADMIN_TOKEN).json(&bulk)).await;
    assert_problem("unknown section price in a bulk import", &bulk, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!((&bulk.body["unknownSections"], &bulk.body["eventIndex"]), (&json!(["Balcony"]), &json!(1)));
    let after = send(http.get(&events)).await.body["events"].as_array().map(Vec::len);
    assert_eq!(after, before, "no event was created");

    // Nothing above changed anything: only ticket 4 is held.
    let statuses = ticket_statuses(http, &base, event_id).await.unwrap();
    let held: Vec<usize> = statuses.iter().enumerate().filter(|(_, s)| *s != "available").map(|(i, _)| i).collect();
    assert_eq!(held, vec![4]);
}

/// What a stranger can reach is closed: the metrics need the admin token, every answer carries
/// the security headers (the page its content policy), a payment cannot be sent back to another
/// site, and a node will not start with a secret copied from the documentation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_surfaces_a_stranger_sees_are_closed() {
    let cluster = Cluster::start(Settings::default()).await.unwrap();
    let event = cluster.seed_event(4).await.unwrap();
    let event_id = event["id"].as_u64().unwrap();
    let base = cluster.url(1);
    let http = &cluster.http;
    let send = |request: reqwest::RequestBuilder| async move { answer(request.send().await.unwrap()).await.unwrap() };

    let metrics = send(http.get(format!("{base}/metrics"))).await;
    assert_problem("metrics without a token", &metrics, StatusCode::UNAUTHORIZED);
    assert!(cluster.metrics_text(1).await.unwrap().contains("boxoffice_"), "the admin reads them");

    let page = http.get(format!("{base}/")).send().await.unwrap();
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"), "{policy}");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    let api = http.get(format!("{base}/events/{event_id}")).send().await.unwrap();
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("content-security-policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    ] {
        assert_eq!(api.headers()[name], value, "{name}");
    }
    let room = http.get(format!("{base}/waiting-room/{event_id}")).send().await.unwrap();
    let policy = room.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(policy.contains("script-src 'self' 'sha256-") && !policy.contains("unsafe-inline"), "{policy}");

    let fan = cluster.fan(1, "erin").await.unwrap();
    let held = fan.hold(&base, event_id, &[0]).await.unwrap();
    let booking = held.body["bookingId"].as_str().unwrap().to_string();
    let pay = |url: String| {
        let request = http.post(format!("{base}/bookings/{booking}/payment")).bearer_auth(&fan.token);
        send(request.json(&json!({"returnUrl": url})))
    };
    let elsewhere = pay("https://evil.example/phish".into()).await;
    assert_problem("a return to another site", &elsewhere, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(elsewhere.body["errors"][0]["field"], "returnUrl", "{elsewhere:?}");
    let lookalike = pay(format!("{base}.evil.example/")).await;
    assert_problem("a look-alike host", &lookalike, StatusCode::UNPROCESSABLE_ENTITY);
    let home = pay(format!("{base}/#/bookings/{booking}")).await;
    assert!(home.status.is_success(), "a return to this site starts the payment: {home:?}");

    // A bulk import may not copy a big venue's map thousands of times.
    let arena = harness::grid_seat_map("Floor", 5_000, 100_000, 100, |r| format!("R{r}"));
    let venue = json!({"name": "Arena", "address": "1 Main St", "city": "Testville", "seatMap": arena});
    let venue = cluster.admin(1, "/admin/venues", venue).await.unwrap();
    let event = json!({"name": "Again", "category": "concert", "startsAt": "2031-05-01T20:00:00Z",
                       "venueId": venue["id"], "performerIds": []});
    let bulk = json!({"events": vec![event; 21]});
    let bulk = send(http.post(format!("{base}/admin/events/bulk")).bearer_auth(ADMIN_TOKEN).json(&bulk)).await;
    assert_problem("a bulk import of 2,100,000 seats", &bulk, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bulk.body["seats"], 2_100_000, "{bulk:?}");

    let config = cluster.dir().join("node1.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let example = cluster.dir().join("example.toml");
    std::fs::write(&example, text.replace(ADMIN_TOKEN, "change-me")).unwrap();
    let refused =
        std::process::Command::new(harness::test_binary()).args(["node", "--config"]).arg(&example).output().unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "a node with an example secret must not start");
    assert!(stderr.contains("admin_token is an example value"), "{stderr}");
}
