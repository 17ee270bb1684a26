//! The room on one node: its fans' sessions and lines, the rooms it knows, and how it answers
//! what fans send (the [`Sessions`] the transports talk to).
//!
//! Locks: `lines` before `sessions`, never the other way, and neither across an await.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use gateway::admission::AdmissionClaims;
use gateway::Cluster;
use model::room::{presale_primary, Place, RoomState, CLASS_ONSALE, CLASS_PRESALE, REPORT_FRESH_MS};
use model::{Consistency, EventId, GroupId, Millis, NodeId, Query, QueryResult, UserId, PLACEMENT_GROUP};

use crate::clock::{Clock, ISSUE_UNCERTAINTY_MS_MAX};
use crate::keys::{Keys, Refusal, TicketClaims};
use crate::limits::{AddressLimiter, FanLimiter};
use crate::line::{ahead_in_room, Line};
use crate::session::{self, OutboxReceiver, OutboxSender, Outgoing, SessionId, Sessions, Via};
use crate::wire::{code, ClientMsg, NodeView, ServerMsg};

/// What a node's room is told at start.
#[derive(Debug, Clone)]
pub struct RoomConfig {
    pub node: NodeId,
    /// Keys of tickets, challenges and admissions derive from it; fan tokens are checked with it.
    pub cluster_secret: String,
    /// Joins one client address may make per minute (0: no limit).
    pub joins_per_address_per_min: u32,
    /// Client addresses the join limit tracks at once.
    pub addresses_tracked_max: usize,
    /// Joins one fan may make per minute, over every address and transport (0: no limit): a
    /// join is answered with the fan's place, so more are only work for the node.
    pub joins_per_fan_per_min: u32,
    /// Fans the per-fan join limit tracks at once.
    pub fans_tracked_max: usize,
    /// Fan sessions open at once on this node.
    pub sessions_max: usize,
    /// Fans one event's line holds on this node (connected and parked).
    pub waiters_per_event_max: usize,
    /// Rooms (events) this node serves at once.
    pub rooms_max: usize,
    /// Fans whose estimated wait is longer than this are parked: told when to come back, and
    /// disconnected, holding only their ticket.
    pub park_wait_ms: u64,
}

impl RoomConfig {
    pub fn new(node: NodeId, cluster_secret: String) -> RoomConfig {
        RoomConfig {
            node,
            cluster_secret,
            joins_per_address_per_min: 600,
            addresses_tracked_max: 100_000,
            joins_per_fan_per_min: 30,
            fans_tracked_max: 1_000_000,
            sessions_max: 500_000,
            waiters_per_event_max: 5_000_000,
            rooms_max: 256,
            park_wait_ms: 10 * 60 * 1000,
        }
    }
}

/// A fan connection's state.
pub(crate) struct Session {
    pub tx: OutboxSender,
    pub peer: IpAddr,
    /// HTTP sessions are not sent to a home node: the fallback has no node addresses to follow.
    pub via: Via,
    /// Set by a hello: the event and the fan, who may now join.
    pub fan: Option<(EventId, UserId)>,
    /// The place this session listens for.
    pub place: Option<Place>,
}

/// A room this node knows: its group and its state as last read.
#[derive(Clone)]
pub struct Known {
    pub group: GroupId,
    pub state: Arc<RoomState>,
}

/// Counters for metrics and the benchmark.
#[derive(Debug, Default)]
pub struct Counters {
    pub joins: AtomicU64,
    pub resumes: AtomicU64,
    pub admitted: AtomicU64,
    pub parked: AtomicU64,
    pub pushes: AtomicU64,
    pub refused: AtomicU64,
}

pub struct RoomNode<C> {
    pub cluster: Arc<C>,
    pub config: RoomConfig,
    /// Drawn at start: the reports of a restarted node start a new sequence, and its on-sale
    /// places a new range of sequence numbers.
    pub boot: u64,
    pub keys: Keys,
    pub(crate) sessions: Mutex<HashMap<SessionId, Session>>,
    pub lines: Mutex<HashMap<EventId, Line>>,
    pub rooms: RwLock<HashMap<EventId, Known>>,
    pub clock: Mutex<Clock>,
    /// Where fans reach this node's QUIC endpoint (`host:port`) and its certificate's SHA-256,
    /// as reports advertise them: known once the endpoint is bound.
    advertised: RwLock<(String, String)>,
    limiter: Mutex<AddressLimiter>,
    fan_limiter: Mutex<FanLimiter>,
    next_session: AtomicU64,
    pub counters: Counters,
}

impl<C: Cluster> RoomNode<C> {
    pub fn new(cluster: Arc<C>, config: RoomConfig) -> RoomNode<C> {
        let limiter = AddressLimiter::new(config.joins_per_address_per_min, config.addresses_tracked_max);
        let fan_limiter = FanLimiter::new(config.joins_per_fan_per_min, config.fans_tracked_max);
        RoomNode {
            keys: Keys::new(config.cluster_secret.as_bytes()),
            cluster,
            boot: rand::random(),
            sessions: Mutex::new(HashMap::new()),
            lines: Mutex::new(HashMap::new()),
            rooms: RwLock::new(HashMap::new()),
            clock: Mutex::new(Clock::default()),
            advertised: RwLock::new((String::new(), String::new())),
            limiter: Mutex::new(limiter),
            fan_limiter: Mutex::new(fan_limiter),
            next_session: AtomicU64::new(1),
            counters: Counters::default(),
            config,
        }
    }

    pub fn set_advertised(&self, endpoint: String, cert_sha256: String) {
        *self.advertised.write().expect("advertised lock") = (endpoint, cert_sha256);
    }

    /// `(endpoint, certificate SHA-256)` as reports advertise them.
    pub fn advertised(&self) -> (String, String) {
        self.advertised.read().expect("advertised lock").clone()
    }

    pub fn now(&self) -> Millis {
        self.cluster.now_ms()
    }

    /// Sends to a session if it is open and keeps up. A fan whose queue is full gets a position in
    /// place of the position queued last (keeping that one's note if the new one has none), and
    /// misses anything else (an admission is sent again until it is read).
    pub fn send(&self, session: SessionId, msg: ServerMsg) -> bool {
        let sessions = self.sessions.lock().expect("sessions lock");
        sessions.get(&session).is_some_and(|s| s.tx.try_send_or_merge(Box::new(msg), newer_position).is_ok())
    }

    /// Ends a session from the server's side (a parked fan): its queue closes after what is in it.
    pub fn detach(&self, session: SessionId) {
        self.sessions.lock().expect("sessions lock").remove(&session);
    }

    pub fn sessions_open(&self) -> usize {
        self.sessions.lock().expect("sessions lock").len()
    }

    /// The room of `event` as this node last read it, reading it now if unknown.
    pub async fn room(&self, event: EventId) -> Option<Known> {
        if let Some(known) = self.rooms.read().expect("rooms lock").get(&event) {
            return Some(known.clone());
        }
        let group = self.group_of(event).await?;
        let state = self.read_room(group, event).await?;
        let known = Known { group, state: Arc::new(state) };
        let mut rooms = self.rooms.write().expect("rooms lock");
        if rooms.len() >= self.config.rooms_max && !rooms.contains_key(&event) {
            tracing::warn!(event, rooms_max = self.config.rooms_max, "too many rooms on this node");
            return None;
        }
        rooms.insert(event, known.clone());
        Some(known)
    }

    pub async fn group_of(&self, event: EventId) -> Option<GroupId> {
        match self.cluster.read(PLACEMENT_GROUP, Query::Placement(event), Consistency::Stale).await {
            Ok(QueryResult::Placement(Some(placement))) => Some(placement.group),
            _ => None,
        }
    }

    pub async fn read_room(&self, group: GroupId, event: EventId) -> Option<RoomState> {
        match self.cluster.read(group, Query::Room(event), Consistency::Stale).await {
            Ok(QueryResult::Room(room)) => room,
            _ => None,
        }
    }

    /// The admission token of a place passed at `passed_at`.
    pub fn admission(&self, room: &RoomState, fan: UserId, place: Place, passed_at: Millis) -> (String, Millis) {
        let expires_at = passed_at + room.settings.admission_ms;
        let claims = AdmissionClaims { event: room.event, user: fan, place, expires_at };
        (self.keys.admission(&claims), expires_at)
    }

    /// The fan's home node if it is another one: each fan joins at one node (the highest of a
    /// hash of event, fan and node over the nodes with a fresh report), which remembers its
    /// place, so that joining again anywhere finds the same place. Pre-sale places need no home:
    /// the draw gives the same place everywhere.
    fn home_elsewhere(&self, room: &RoomState, fan: UserId, now: Millis) -> Option<NodeView> {
        let score = |node: NodeId| {
            use std::hash::Hasher;
            let mut hasher = siphasher::sip::SipHasher13::new_with_keys(room.event, fan);
            hasher.write_u64(node);
            hasher.finish()
        };
        let me = self.config.node;
        let home = self.other_nodes(room, now).into_iter().max_by_key(|n| score(n.node))?;
        (score(home.node) > score(me)).then_some(home)
    }

    /// Other nodes a fan may try, freshest reports first.
    fn other_nodes(&self, room: &RoomState, now: Millis) -> Vec<NodeView> {
        room.reports
            .iter()
            .filter(|(node, at, report)| {
                *node != self.config.node
                    && at + REPORT_FRESH_MS >= now
                    && report.uncertainty_ms <= ISSUE_UNCERTAINTY_MS_MAX
                    && !report.endpoint.is_empty()
            })
            .map(|(node, _, report)| NodeView {
                node: *node,
                endpoint: report.endpoint.clone(),
                cert_sha256: report.cert_sha256.clone(),
            })
            .collect()
    }

    async fn hello(&self, session: SessionId, event: EventId, token: &str, ticket: Option<&str>) -> Vec<ServerMsg> {
        let now = self.now();
        let fan = match self.keys.fan(token, now) {
            Ok(fan) => fan,
            Err(refusal) => return vec![refused(refusal)],
        };
        let Some(known) = self.room(event).await.filter(|k| k.state.settings.enabled) else {
            return vec![error(code::NO_ROOM, format!("event {event} has no waiting room open"))];
        };
        let room = &known.state;
        let mut via = Via::Http;
        if let Some(session) = self.sessions.lock().expect("sessions lock").get_mut(&session) {
            session.fan = Some((event, fan));
            via = session.via;
        }
        if let Some(ticket) = ticket {
            return match self.keys.open_ticket(ticket, event, fan) {
                Ok(place) => {
                    self.counters.resumes.fetch_add(1, Ordering::Relaxed);
                    self.attach(session, room, fan, place, ticket.to_string(), now)
                }
                Err(refusal) => vec![refused(refusal)],
            };
        }
        let existing = self.lines.lock().expect("lines lock").get(&event).and_then(|l| l.by_fan.get(&fan).copied());
        if let Some(place) = existing {
            let ticket = self.keys.ticket(&TicketClaims { e: event, u: fan, p: place });
            return self.attach(session, room, fan, place, ticket, now);
        }
        if room.settings.on_sale_at <= now && via != Via::Http {
            if let Some(home) = self.home_elsewhere(room, fan, now) {
                let detail = "this fan's place is kept by another node: join there".to_string();
                return vec![ServerMsg::Redirect { nodes: vec![home], detail }];
            }
        }
        let bits = room.settings.pow_bits;
        vec![ServerMsg::Challenge { challenge: self.keys.challenge(event, fan, bits, now), bits }]
    }

    async fn join(&self, session: SessionId, challenge: &str, answer: u64) -> Vec<ServerMsg> {
        let now = self.now();
        let (fan, peer) = {
            let sessions = self.sessions.lock().expect("sessions lock");
            let Some(s) = sessions.get(&session) else { return vec![] };
            (s.fan, s.peer)
        };
        let Some((event, fan)) = fan else {
            return vec![error(code::OUT_OF_ORDER, "send hello before join")];
        };
        if !self.limiter.lock().expect("limiter lock").allow(peer, now) {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            return vec![error(code::RATE_LIMITED, "too many joins from this address: wait a minute")];
        }
        if !self.fan_limiter.lock().expect("fan limiter lock").allow(fan, now) {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            return vec![error(code::RATE_LIMITED, "too many joins by this fan: wait a minute")];
        }
        if let Err(refusal) = self.keys.check_answer(challenge, answer, event, fan, now) {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            return vec![refused(refusal)];
        }
        let Some(known) = self.room(event).await.filter(|k| k.state.settings.enabled) else {
            return vec![error(code::NO_ROOM, format!("event {event} has no waiting room open"))];
        };
        let room = &known.state;
        let place = match self.place_for(room, fan, now) {
            Ok(place) => place,
            Err(msg) => return vec![msg],
        };
        self.counters.joins.fetch_add(1, Ordering::Relaxed);
        let ticket = self.keys.ticket(&TicketClaims { e: event, u: fan, p: place });
        self.attach(session, room, fan, place, ticket, now)
    }

    /// The fan's place: the one this node gave before, the draw before the on-sale, or the
    /// node's clock after it (if the node's clock agrees with the others').
    fn place_for(&self, room: &RoomState, fan: UserId, now: Millis) -> Result<Place, ServerMsg> {
        let event = room.event;
        let mut lines = self.lines.lock().expect("lines lock");
        if let Some(place) = lines.get(&event).and_then(|l| l.by_fan.get(&fan)) {
            return Ok(*place);
        }
        if now < room.settings.on_sale_at {
            let primary = presale_primary(&room.draw_key, event, fan);
            return Ok(Place { class: CLASS_PRESALE, primary, node: 0, seq: 0 });
        }
        let uncertainty = self.clock.lock().expect("clock lock").uncertainty_ms(room, self.config.node);
        let unsure = uncertainty.is_none_or(|u| u > ISSUE_UNCERTAINTY_MS_MAX);
        let others = self.other_nodes(room, now);
        if unsure && !others.is_empty() {
            let detail =
                format!("this node's clock is not yet in step with the others' ({uncertainty:?} ms): join another");
            return Err(ServerMsg::Redirect { nodes: others, detail });
        }
        let line = lines.entry(event).or_default();
        if line.waiters.len() >= self.config.waiters_per_event_max {
            return Err(error(code::BUSY, "this node's line is full: join another node"));
        }
        line.issued += 1;
        // The boot's low 20 bits keep a restarted node's sequence apart from its last life's, and
        // the whole under 2^52, exact in any JSON reader.
        let seq = ((self.boot & 0xf_ffff) << 32) | (line.issued & 0xffff_ffff);
        Ok(Place { class: CLASS_ONSALE, primary: now, node: self.config.node as u16, seq })
    }

    /// Puts the fan's place in the line under this session and says where it stands.
    fn attach(
        &self,
        session: SessionId,
        room: &RoomState,
        fan: UserId,
        place: Place,
        ticket: String,
        now: Millis,
    ) -> Vec<ServerMsg> {
        let mut out = vec![ServerMsg::Ticket { ticket, place: place.into(), presale: place.class == CLASS_PRESALE }];
        let passed = room.watermark.is_some_and(|w| place <= w);
        let mut lines = self.lines.lock().expect("lines lock");
        let line = lines.entry(room.event).or_default();
        let known = line.waiters.get(&place).filter(|w| w.fan == fan).cloned();
        if passed && known.is_none() {
            // Passed while the fan was elsewhere: admitted late if the admission window is open.
            let open = room.passed_at(&place).is_some_and(|at| now < at + room.settings.admission_ms);
            if !open {
                let detail = "your turn came while we did not hear from you, and its admission window has closed: \
                              join again for a new place"
                    .to_string();
                return vec![out.remove(0), ServerMsg::Lapsed { detail }];
            }
        }
        line.insert(place, fan, now + room.settings.abandon_ms);
        let waiter = line.waiters.get_mut(&place).expect("just inserted");
        if passed && waiter.admitted.is_none() && known.is_none() {
            waiter.late = true;
        }
        waiter.session = Some(session);
        waiter.pushed_ahead = None;
        match &waiter.admitted {
            Some((token, expires_at)) => {
                out.push(ServerMsg::Admitted { admission_token: token.clone(), expires_at: *expires_at })
            }
            None if !passed => {
                // Counting this node's places ahead exactly costs a walk of the line, too much
                // for every join of a surge: the first position reads this node's last report
                // like the others' (the beat's pushes walk the line once and are exact).
                let ahead = ahead_in_room(room, None, &place, 0, now.saturating_sub(REPORT_FRESH_MS));
                out.push(position(room, ahead, now, None));
            }
            None => {}
        }
        drop(lines);
        if let Some(s) = self.sessions.lock().expect("sessions lock").get_mut(&session) {
            s.place = Some(place);
        }
        out
    }

    fn heartbeat(&self, session: SessionId) {
        let Some((event, place)) = self.session_place(session) else { return };
        let Some(abandon_ms) = self.abandon_ms(event) else { return };
        let now = self.now();
        if let Some(waiter) =
            self.lines.lock().expect("lines lock").get_mut(&event).and_then(|l| l.waiters.get_mut(&place))
        {
            waiter.live_until = waiter.live_until.max(now + abandon_ms);
        }
    }

    /// How long a fan of `event`'s room may be gone before its place is abandoned, if the room is
    /// known here.
    fn abandon_ms(&self, event: EventId) -> Option<u64> {
        self.rooms.read().expect("rooms lock").get(&event).map(|k| k.state.settings.abandon_ms)
    }

    fn session_place(&self, session: SessionId) -> Option<(EventId, Place)> {
        let sessions = self.sessions.lock().expect("sessions lock");
        let s = sessions.get(&session)?;
        Some((s.fan?.0, s.place?))
    }
}

/// The position message for `ahead` fans ahead.
pub fn position(room: &RoomState, ahead: u64, now: Millis, note: Option<String>) -> ServerMsg {
    let rate = room.rate_achieved_per_min(now).filter(|r| *r > 0.0);
    let wait_seconds = rate.map(|r| (ahead as f64 * 60.0 / r).round() as u64);
    let note = note.or_else(|| room.settings.paused.then(|| "the room is paused: the line will move again".into()));
    ServerMsg::Position {
        ahead,
        wait_seconds: if room.settings.paused { None } else { wait_seconds },
        note,
        on_sale_at: room.settings.on_sale_at,
        paused: room.settings.paused,
    }
}

/// `new` in place of `queued` when both are positions, with `queued`'s note if `new` has none: a
/// note (a pause, a new rate) is said once, and a newer position must not lose it.
fn newer_position(queued: &Outgoing, mut new: Outgoing) -> Result<Outgoing, Outgoing> {
    let ServerMsg::Position { note: queued_note, .. } = &**queued else { return Err(new) };
    let ServerMsg::Position { note, .. } = &mut *new else { return Err(new) };
    if note.is_none() {
        note.clone_from(queued_note);
    }
    Ok(new)
}

fn error(code: &str, detail: impl Into<String>) -> ServerMsg {
    ServerMsg::Error { code: code.into(), detail: detail.into() }
}

fn refused(refusal: Refusal) -> ServerMsg {
    let code = match refusal {
        Refusal::BadToken => code::BAD_TOKEN,
        Refusal::BadTicket => code::BAD_TICKET,
        Refusal::WrongEvent => code::WRONG_EVENT,
        Refusal::WrongFan => code::WRONG_FAN,
        Refusal::BadChallenge => code::BAD_CHALLENGE,
        Refusal::BadAnswer => code::BAD_ANSWER,
    };
    error(code, refusal.to_string())
}

impl<C: Cluster> Sessions for RoomNode<C> {
    fn open(&self, peer: IpAddr, via: Via) -> (SessionId, OutboxReceiver) {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = session::outbox();
        let mut sessions = self.sessions.lock().expect("sessions lock");
        if sessions.len() >= self.config.sessions_max {
            let _ =
                tx.try_send(Box::new(error(code::BUSY, "this node holds as many fans as it can: try another node")));
            return (id, rx);
        }
        sessions.insert(id, Session { tx, peer, via, fan: None, place: None });
        (id, rx)
    }

    async fn message(&self, session: SessionId, msg: ClientMsg) {
        let replies = match msg {
            ClientMsg::Hello { event, token, ticket } => self.hello(session, event, &token, ticket.as_deref()).await,
            ClientMsg::Join { challenge, answer } => self.join(session, &challenge, answer).await,
            ClientMsg::Heartbeat => {
                self.heartbeat(session);
                vec![]
            }
        };
        for reply in replies {
            // A reply to what the fan just sent is worth waiting for (unlike a push).
            let tx = self.sessions.lock().expect("sessions lock").get(&session).map(|s| s.tx.clone());
            if let Some(tx) = tx {
                let _ = tx.send(Box::new(reply)).await;
            }
        }
    }

    fn close(&self, session: SessionId) {
        let Some(s) = self.sessions.lock().expect("sessions lock").remove(&session) else { return };
        let (Some((event, _)), Some(place)) = (s.fan, s.place) else { return };
        let abandon_ms = self.abandon_ms(event).unwrap_or(0);
        let now = self.now();
        let mut lines = self.lines.lock().expect("lines lock");
        if let Some(waiter) = lines.get_mut(&event).and_then(|l| l.waiters.get_mut(&place)) {
            if waiter.session == Some(session) {
                // The fan was live until now: it has `abandon_ms` to come back.
                waiter.session = None;
                waiter.live_until = waiter.live_until.max(now + abandon_ms);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ahead: u64, note: Option<&str>) -> Outgoing {
        let note = note.map(String::from);
        Box::new(ServerMsg::Position { ahead, wait_seconds: None, note, on_sale_at: 0, paused: false })
    }

    #[test]
    fn a_newer_position_takes_the_queued_ones_place_and_keeps_its_note() {
        let merged = newer_position(&at(10, Some("paused")), at(8, None)).unwrap();
        assert_eq!(merged, at(8, Some("paused")));
        let merged = newer_position(&at(10, Some("paused")), at(8, Some("moves again"))).unwrap();
        assert_eq!(merged, at(8, Some("moves again")), "the newer note wins");
        let admitted = Box::new(ServerMsg::Admitted { admission_token: "a".into(), expires_at: 1 });
        assert!(newer_position(&admitted, at(8, None)).is_err(), "an admission is never replaced");
        assert!(newer_position(&at(10, None), admitted).is_err(), "only positions replace positions");
    }
}
