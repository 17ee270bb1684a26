//! What the room signs and checks: fan tokens (the gateway's), tickets, proof-of-work challenges
//! and admission tokens, each under its own key derived from the cluster secret, so that any node
//! accepts what another one issued and none has to remember it.
//!
//! - A **ticket** `t1.<claims>.<mac>` fixes a fan's place: `{e, u, p}` (event, fan, place). It has
//!   no issue time, so the same place always prints the same ticket.
//! - A **challenge** `c1.<claims>.<mac>` is `{e, u, t, n, b}` (event, fan, issued at, a random
//!   nonce, bits): valid for [`CHALLENGE_TTL_MS`]. The answer is a number `x` such that
//!   SHA-256(challenge's text ‖ x as 8 bytes big endian) starts with `b` zero bits.
//! - An **admission token** is the gateway's (`gateway::admission`).

use gateway::admission::{self, AdmissionClaims, AdmissionSigner};
use gateway::tokens::TokenSigner;
use model::room::Place;
use model::{EventId, Millis, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How long a challenge may be answered.
pub const CHALLENGE_TTL_MS: Millis = 120_000;

/// What a ticket says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketClaims {
    pub e: EventId,
    pub u: UserId,
    pub p: Place,
}

/// What a challenge says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeClaims {
    pub e: EventId,
    pub u: UserId,
    pub t: Millis,
    pub n: u64,
    pub b: u8,
}

/// Why a ticket or challenge was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the fan token is not valid: sign in again")]
    BadToken,
    #[error("the ticket is not valid")]
    BadTicket,
    #[error("the ticket is for another event")]
    WrongEvent,
    #[error("the ticket is another fan's")]
    WrongFan,
    #[error("the challenge is not valid, expired, or another fan's: ask for a new one")]
    BadChallenge,
    #[error("the answer does not solve the challenge")]
    BadAnswer,
}

/// The room's keys.
pub struct Keys {
    fans: TokenSigner,
    ticket: [u8; 32],
    challenge: [u8; 32],
    admission: AdmissionSigner,
}

impl Keys {
    pub fn new(cluster_secret: &[u8]) -> Keys {
        Keys {
            fans: TokenSigner::new(cluster_secret),
            ticket: admission::derive_key(cluster_secret, admission::TICKET_LABEL),
            challenge: admission::derive_key(cluster_secret, admission::CHALLENGE_LABEL),
            admission: AdmissionSigner::new(cluster_secret),
        }
    }

    /// The fan a token names, if it is valid at `now`.
    pub fn fan(&self, token: &str, now: Millis) -> Result<UserId, Refusal> {
        self.fans.verify(token, now).map(|claims| claims.uid).map_err(|_| Refusal::BadToken)
    }

    pub fn ticket(&self, claims: &TicketClaims) -> String {
        admission::sign_claims("t1", &self.ticket, claims)
    }

    /// The place a ticket fixes, if it is this fan's ticket for this event.
    pub fn open_ticket(&self, ticket: &str, event: EventId, fan: UserId) -> Result<Place, Refusal> {
        let claims: TicketClaims =
            admission::open_claims("t1", &self.ticket, ticket).map_err(|_| Refusal::BadTicket)?;
        if claims.e != event {
            return Err(Refusal::WrongEvent);
        }
        if claims.u != fan {
            return Err(Refusal::WrongFan);
        }
        Ok(claims.p)
    }

    pub fn challenge(&self, event: EventId, fan: UserId, bits: u8, now: Millis) -> String {
        let claims = ChallengeClaims { e: event, u: fan, t: now, n: rand::random(), b: bits };
        admission::sign_claims("c1", &self.challenge, &claims)
    }

    /// Checks an answer to a challenge this room issued for this fan and event.
    pub fn check_answer(
        &self,
        challenge: &str,
        answer: u64,
        event: EventId,
        fan: UserId,
        now: Millis,
    ) -> Result<(), Refusal> {
        let claims: ChallengeClaims =
            admission::open_claims("c1", &self.challenge, challenge).map_err(|_| Refusal::BadChallenge)?;
        let fresh = claims.t <= now + 5_000 && now < claims.t + CHALLENGE_TTL_MS;
        if claims.e != event || claims.u != fan || !fresh {
            return Err(Refusal::BadChallenge);
        }
        if !solves(challenge, answer, claims.b) {
            return Err(Refusal::BadAnswer);
        }
        Ok(())
    }

    pub fn admission(&self, claims: &AdmissionClaims) -> String {
        self.admission.sign(claims)
    }
}

/// Whether SHA-256(challenge ‖ answer) starts with `bits` zero bits.
pub fn solves(challenge: &str, answer: u64, bits: u8) -> bool {
    let digest = Sha256::new().chain_update(challenge.as_bytes()).chain_update(answer.to_be_bytes()).finalize();
    leading_zero_bits(&digest) >= bits as u32
}

fn leading_zero_bits(bytes: &[u8]) -> u32 {
    let mut zeros = 0;
    for byte in bytes {
        if *byte == 0 {
            zeros += 8;
        } else {
            return zeros + byte.leading_zeros();
        }
    }
    zeros
}

/// Finds an answer by trying 0, 1, 2, ...: what a client does (about 2^bits tries).
pub fn solve(challenge: &str, bits: u8) -> u64 {
    (0..).find(|x| solves(challenge, *x, bits)).expect("some answer solves any challenge of at most 64 bits")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place() -> Place {
        Place { class: 1, primary: 1_000, node: 2, seq: 3 }
    }

    #[test]
    fn a_ticket_opens_only_for_its_fan_and_event() {
        let keys = Keys::new(b"secret");
        let ticket = keys.ticket(&TicketClaims { e: 4, u: 9, p: place() });
        assert_eq!(keys.open_ticket(&ticket, 4, 9), Ok(place()));
        assert_eq!(keys.open_ticket(&ticket, 5, 9), Err(Refusal::WrongEvent));
        assert_eq!(keys.open_ticket(&ticket, 4, 8), Err(Refusal::WrongFan));
        assert_eq!(Keys::new(b"other").open_ticket(&ticket, 4, 9), Err(Refusal::BadTicket));
        let mut forged = ticket.clone().into_bytes();
        let middle = forged.len() / 2;
        forged[middle] ^= 1;
        assert_eq!(keys.open_ticket(&String::from_utf8_lossy(&forged), 4, 9), Err(Refusal::BadTicket));
        assert_eq!(ticket, keys.ticket(&TicketClaims { e: 4, u: 9, p: place() }), "the same place, the same ticket");
    }

    #[test]
    fn a_challenge_needs_its_answer_its_fan_and_time() {
        let keys = Keys::new(b"secret");
        let challenge = keys.challenge(4, 9, 8, 1_000_000);
        let answer = solve(&challenge, 8);
        assert_eq!(keys.check_answer(&challenge, answer, 4, 9, 1_000_500), Ok(()));
        let wrong = (0..).find(|x| !solves(&challenge, *x, 8)).unwrap();
        assert_eq!(keys.check_answer(&challenge, wrong, 4, 9, 1_000_500), Err(Refusal::BadAnswer));
        assert_eq!(keys.check_answer(&challenge, answer, 4, 8, 1_000_500), Err(Refusal::BadChallenge));
        assert_eq!(keys.check_answer(&challenge, answer, 5, 9, 1_000_500), Err(Refusal::BadChallenge));
        let late = 1_000_000 + CHALLENGE_TTL_MS;
        assert_eq!(keys.check_answer(&challenge, answer, 4, 9, late), Err(Refusal::BadChallenge));
    }

    #[test]
    fn zero_bits_are_counted_across_bytes() {
        assert_eq!(leading_zero_bits(&[0, 0, 0b0001_0000]), 19);
        assert_eq!(leading_zero_bits(&[0xff]), 0);
    }
}
