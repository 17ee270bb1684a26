//! Fans racing for the same tickets through every node's gateway: the log serializes them, so
//! exactly one wins each ticket, and a multi-ticket hold is all or nothing.

use futures::future::join_all;
use harness::{ticket_statuses, ticket_statuses_when, Cluster, Settings, StatusCode};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_fans_race_for_one_ticket_and_exactly_one_wins() {
    let cluster = Cluster::start(Settings::default()).await.unwrap();
    let event = cluster.seed_event(40).await.unwrap();
    let event_id = event["id"].as_u64().unwrap();
    let nodes = cluster.running();
    let fans = join_all((0..200).map(|n| cluster.fan(nodes[n % nodes.len()], format!("racer{n}")))).await;
    let fans: Vec<_> = fans.into_iter().map(|f| f.unwrap()).collect();

    let answers = join_all(fans.iter().enumerate().map(|(n, fan)| {
        let base = cluster.url(nodes[n % nodes.len()]);
        async move { fan.hold(&base, event_id, &[7]).await.unwrap() }
    }))
    .await;

    let won: Vec<_> = answers.iter().filter(|a| a.status == StatusCode::CREATED).collect();
    let lost: Vec<_> = answers.iter().filter(|a| a.status == StatusCode::CONFLICT).collect();
    assert_eq!(
        won.len(),
        1,
        "exactly one fan gets the ticket: {:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    assert_eq!(lost.len(), 199, "every other fan is told it is taken");
    assert!(lost.iter().all(|a| a.is_problem() && a.body["unavailableTicketIds"] == serde_json::json!([7])));
    assert_eq!(won[0].body["status"], "held");
    let statuses =
        ticket_statuses_when(&cluster.http, &cluster.url(nodes[0]), event_id, |s| s[7] == "held").await.unwrap();
    assert_eq!(statuses[7], "held");
    assert_eq!(statuses.iter().filter(|s| *s == "held").count(), 1, "no other ticket was touched");

    // The operator's view of it: one leader, and every hold decided in an entry or refused
    // without one (retries only add), entries carrying several holds each.
    let group = model::group_for_new_event(event_id, Settings::default().inventory_groups) as u64;
    let (mut leaders, mut entries, mut commands, mut refused) = (0, 0, 0, 0);
    for &node in &nodes {
        let text = cluster.metrics_text(node).await.unwrap();
        let value = |name: &str| metric(&text, name, group);
        leaders += value("boxoffice_raft_leader");
        entries += value("boxoffice_raft_entries_proposed_total");
        commands += value("boxoffice_raft_commands_proposed_total");
        refused += value("boxoffice_raft_holds_refused_as_leader_total");
        refused += value("boxoffice_raft_holds_refused_as_follower_total");
    }
    assert_eq!(leaders, 1, "one node says it leads group {group}");
    assert!(commands + refused >= 200, "every hold counted: {commands} proposed, {refused} refused without the log");
    assert!(entries >= 1 && entries <= commands, "{entries} entries carried {commands} commands");
}

/// The value of `name` for `group` in a `/metrics` text, 0 if it is not there.
fn metric(text: &str, name: &str, group: u64) -> u64 {
    let prefix = format!("{name}{{group=\"{group}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fans_racing_for_overlapping_sets_get_all_or_nothing() {
    // Each fan wins dozens of seats here: no per-fan limit.
    let settings = Settings { gateway_extra: "tickets_per_fan_max = 0".into(), ..Settings::default() };
    let cluster = Cluster::start(settings).await.unwrap();
    let event = cluster.seed_event(200).await.unwrap();
    let event_id = event["id"].as_u64().unwrap();
    let a = cluster.fan(1, "alice").await.unwrap();
    let b = cluster.fan(2, "bob").await.unwrap();
    for round in 0..30u32 {
        // Alice wants {5r, 5r+1, 5r+2}, Bob {5r+2, 5r+3, 5r+4}: they overlap on one seat.
        let first = round * 5;
        let alice_set = [first, first + 1, first + 2];
        let bob_set = [first + 2, first + 3, first + 4];
        let (url_a, url_b) = (cluster.url(1 + u64::from(round % 3)), cluster.url(1 + u64::from((round + 1) % 3)));
        let (ra, rb) = tokio::join!(a.hold(&url_a, event_id, &alice_set), b.hold(&url_b, event_id, &bob_set));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let mut codes = [ra.status, rb.status];
        codes.sort();
        assert_eq!(codes, [StatusCode::CREATED, StatusCode::CONFLICT], "round {round}: one wins, one loses");
        let (winner_set, loser_set) =
            if ra.status == StatusCode::CREATED { (alice_set, bob_set) } else { (bob_set, alice_set) };
        let loser = if ra.status == StatusCode::CREATED { &rb } else { &ra };
        assert_eq!(loser.body["unavailableTicketIds"], serde_json::json!([first + 2]), "round {round}");
        // Ticket reads may trail the leader by a moment (design rule 8): wait for the winner's
        // holds to show, and check every time that none of the loser's own seats is held.
        let mut polls = 0;
        loop {
            let statuses = ticket_statuses(&cluster.http, &cluster.url(1), event_id).await.unwrap();
            for t in loser_set.iter().filter(|t| !winner_set.contains(t)) {
                assert_eq!(statuses[*t as usize], "available", "round {round}: the loser holds none of its set");
            }
            if winner_set.iter().all(|&t| statuses[t as usize] == "held") {
                break;
            }
            polls += 1;
            assert!(
                polls < 100,
                "round {round}: the winner's holds never showed: {:?}",
                &statuses[first as usize..first as usize + 5]
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// A follower's gateway refuses a hold for seats its replica shows as taken without the leader's
/// log, after a read point from the leader (`raft/src/refusals.rs`). The read point is what keeps
/// that refusal from being stale: a release acknowledged by the leader's gateway must let the
/// very next hold through a follower's gateway succeed, though the follower may not have applied
/// the release yet when the hold arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_never_refuses_a_seat_released_before_the_hold_came() {
    let settings = Settings::default();
    let groups = settings.inventory_groups;
    let cluster = Cluster::start(settings).await.unwrap();
    let event = cluster.seed_event(20).await.unwrap();
    let event_id = event["id"].as_u64().unwrap();
    let leader = cluster.leader_of(model::group_for_new_event(event_id, groups) as u64).await.unwrap();
    let follower = *cluster.running().iter().find(|&&id| id != leader).unwrap();
    let (at_leader, at_follower) = (cluster.url(leader), cluster.url(follower));
    let alice = cluster.fan(leader, "alice").await.unwrap();
    let bob = cluster.fan(follower, "bob").await.unwrap();
    for round in 0..100 {
        let held = alice.hold(&at_leader, event_id, &[3]).await.unwrap();
        assert_eq!(held.status, StatusCode::CREATED, "round {round}: {:?}", held.body);
        let booking = held.body["bookingId"].as_str().unwrap().to_string();
        // While Alice holds it, Bob is refused through the follower, naming the seat.
        let refused = bob.hold(&at_follower, event_id, &[3]).await.unwrap();
        assert_eq!(refused.status, StatusCode::CONFLICT, "round {round}: {:?}", refused.body);
        assert_eq!(refused.body["unavailableTicketIds"], serde_json::json!([3]), "round {round}");
        let released = alice.release(&at_leader, &booking).await.unwrap();
        assert_eq!(released.status, StatusCode::OK, "round {round}: {:?}", released.body);
        // The release is acknowledged: Bob's hold through the follower must now succeed.
        let bobs = bob.hold(&at_follower, event_id, &[3]).await.unwrap();
        assert_eq!(bobs.status, StatusCode::CREATED, "round {round}: a stale refusal: {:?}", bobs.body);
        let released = bob.release(&at_follower, bobs.body["bookingId"].as_str().unwrap()).await.unwrap();
        assert_eq!(released.status, StatusCode::OK, "round {round}: {:?}", released.body);
    }
}
