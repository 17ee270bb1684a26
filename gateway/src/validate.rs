//! Checks of what clients send that need nothing but the input: the gateway refuses bad input
//! before it costs a raft round (and before apply would have to refuse it).

use std::collections::HashSet;

use model::TicketId;
use serde::Serialize;

use crate::problem::Problem;

/// Longest name of a fan, in characters after trimming.
pub const USER_NAME_CHARS_MAX: usize = 100;
/// Longest email address (RFC 5321's path limit).
pub const EMAIL_CHARS_MAX: usize = 254;
pub const PASSWORD_CHARS_MIN: usize = 8;
pub const PASSWORD_CHARS_MAX: usize = 128;
/// Deepest position `GET /events` pages reach: each group is asked for this many events at most.
pub const EVENT_LIST_POSITION_MAX: u64 = 10_000;

/// One field that is wrong, in an `errors` extension member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        FieldError { field, message: message.into() }
    }
}

/// A 422 listing every wrong field at once, so a form can mark them all.
pub fn fields_problem(errors: Vec<FieldError>) -> Result<(), Problem> {
    if errors.is_empty() {
        return Ok(());
    }
    let detail = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
    Err(Problem::invalid(detail).with("errors", errors))
}

/// What is wrong with a sign-up, field by field.
pub fn new_user_errors(name: &str, email: &str, password: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let name_chars = name.trim().chars().count();
    if !(1..=USER_NAME_CHARS_MAX).contains(&name_chars) {
        errors.push(FieldError::new("name", format!("a name has 1 to {USER_NAME_CHARS_MAX} characters")));
    }
    if let Some(message) = email_problem(email) {
        errors.push(FieldError::new("email", message));
    }
    let password_chars = password.chars().count();
    if !(PASSWORD_CHARS_MIN..=PASSWORD_CHARS_MAX).contains(&password_chars) {
        let message = format!("a password has {PASSWORD_CHARS_MIN} to {PASSWORD_CHARS_MAX} characters");
        errors.push(FieldError::new("password", message));
    }
    errors
}

/// What is wrong with an email address, if anything. Only the shape is checked: one `@` with
/// text on both sides and no spaces; whether the mailbox exists is not the gateway's business.
pub fn email_problem(email: &str) -> Option<String> {
    let email = email.trim();
    if email.chars().count() > EMAIL_CHARS_MAX {
        return Some(format!("an email address has at most {EMAIL_CHARS_MAX} characters"));
    }
    let well_formed = match email.split_once('@') {
        Some((local, domain)) => !local.is_empty() && !domain.is_empty() && !domain.contains('@'),
        None => false,
    };
    if !well_formed || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("an email address looks like `name@example.org`".into());
    }
    None
}

/// Refuses an empty, too long or repetitive list of tickets to hold.
/// Longest `returnUrl` a payment takes (as browsers and providers do).
pub const RETURN_URL_CHARS_MAX: usize = 2_048;

/// What is wrong with a payment's `returnUrl`, if anything: it must lead back to one of
/// `origins` (the gateway's own), so that the provider's checkout page cannot be made to send a
/// fan anywhere else.
pub fn return_url_problem(url: &str, origins: &[String]) -> Option<String> {
    if url.chars().count() > RETURN_URL_CHARS_MAX {
        return Some(format!("is at most {RETURN_URL_CHARS_MAX} characters"));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\') {
        return Some("has a space, a control character or a backslash".into());
    }
    let ours = origins.iter().any(|origin| {
        let origin = origin.trim_end_matches('/');
        url.len() >= origin.len()
            && url.is_char_boundary(origin.len())
            && url[..origin.len()].eq_ignore_ascii_case(origin)
            && matches!(url[origin.len()..].chars().next(), None | Some('/' | '?' | '#'))
    });
    if !ours {
        return Some(format!("must lead back to this site: it starts with one of {origins:?}"));
    }
    None
}

pub fn ticket_list(tickets: &[TicketId], max: usize) -> Result<(), Problem> {
    if tickets.is_empty() {
        return Err(Problem::invalid("ticketIds must name at least one ticket"));
    }
    if tickets.len() > max {
        let detail = format!("a booking holds at most {max} tickets, this one asks for {}", tickets.len());
        return Err(Problem::invalid(detail).with("ticketsPerBookingMax", max));
    }
    let duplicates = duplicates(tickets);
    if !duplicates.is_empty() {
        let detail = format!("ticketIds names tickets more than once: {duplicates:?}");
        return Err(Problem::invalid(detail).with("duplicateTicketIds", duplicates));
    }
    Ok(())
}

/// The ids that appear more than once, each once, in order of their second appearance.
fn duplicates(tickets: &[TicketId]) -> Vec<TicketId> {
    let mut seen = HashSet::new();
    let mut repeated = Vec::new();
    for &ticket in tickets {
        if !seen.insert(ticket) && !repeated.contains(&ticket) {
            repeated.push(ticket);
        }
    }
    repeated
}

/// The ids beyond the event's last ticket.
pub fn unknown_tickets(tickets: &[TicketId], ticket_count: usize) -> Vec<TicketId> {
    tickets.iter().copied().filter(|&t| t as usize >= ticket_count).collect()
}

/// A page of a list: 1-based number and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub number: u32,
    pub size: u32,
}

impl Page {
    pub fn new(number: u32, size: u32, size_max: u32) -> Result<Page, Problem> {
        let mut errors = Vec::new();
        if number < 1 {
            errors.push(FieldError::new("page", "pages are numbered from 1"));
        }
        if !(1..=size_max).contains(&size) {
            errors.push(FieldError::new("pageSize", format!("a page has 1 to {size_max} events")));
        }
        if u64::from(number) * u64::from(size) > EVENT_LIST_POSITION_MAX {
            let message = format!("page * pageSize can be at most {EVENT_LIST_POSITION_MAX}");
            errors.push(FieldError::new("page", message));
        }
        fields_problem(errors)?;
        Ok(Page { number, size })
    }

    /// Index of the page's first item.
    pub fn start(&self) -> usize {
        (self.number as usize - 1) * self.size as usize
    }

    /// Index one past the page's last item.
    pub fn end(&self) -> usize {
        self.number as usize * self.size as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn a_return_url_must_lead_back_to_one_of_the_origins() {
        let origins = vec!["http://127.0.0.1:8080".to_string(), "https://tickets.example.com/".to_string()];
        for good in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/#/bookings/5",
            "HTTPS://Tickets.Example.com/?x=1",
            "https://tickets.example.com#/b",
        ] {
            assert_eq!(return_url_problem(good, &origins), None, "{good}");
        }
        for bad in [
            "https://evil.example",
            "http://127.0.0.1:80801/",
            "http://127.0.0.1:8080.evil.example/",
            "http://127.0.0.1:8080@evil.example/",
            "https://tickets.example.com.evil/",
            "//evil.example",
            "/relative",
            "http://127.0.0.1:8080/\\evil",
            "http://127.0.0.1:8080/ x",
        ] {
            assert!(return_url_problem(bad, &origins).is_some(), "{bad}");
        }
        let long = format!("http://127.0.0.1:8080/{}", "a".repeat(RETURN_URL_CHARS_MAX));
        assert!(return_url_problem(&long, &origins).unwrap().contains("at most"));
        assert!(return_url_problem("http://127.0.0.1:8080/", &[]).is_some(), "no origins: nothing is ours");
    }

    #[test]
    fn a_good_sign_up_has_no_errors() {
        assert_eq!(new_user_errors("  Ann  ", "ann@example.org", "12345678"), vec![]);
    }

    #[test]
    fn every_bad_field_is_named() {
        let fields: Vec<_> = new_user_errors("   ", "nope", "short").into_iter().map(|e| e.field).collect();
        assert_eq!(fields, vec!["name", "email", "password"]);
    }

    #[test]
    fn lengths_are_counted_in_characters() {
        let name = "é".repeat(USER_NAME_CHARS_MAX);
        assert!(new_user_errors(&name, "a@b", "12345678").is_empty());
        let name = "é".repeat(USER_NAME_CHARS_MAX + 1);
        assert_eq!(new_user_errors(&name, "a@b", "12345678")[0].field, "name");
        let password = "p".repeat(PASSWORD_CHARS_MAX + 1);
        assert_eq!(new_user_errors("Ann", "a@b", &password)[0].field, "password");
    }

    #[test]
    fn emails_need_one_at_with_text_on_both_sides() {
        assert_eq!(email_problem(" Ann@Example.org "), None);
        for bad in ["", "@", "ann@", "@example.org", "a@b@c", "ann example@x.org", "plain"] {
            assert!(email_problem(bad).is_some(), "{bad:?}");
        }
        let long = format!("{}@x.org", "a".repeat(EMAIL_CHARS_MAX));
        assert!(email_problem(&long).is_some());
    }

    #[test]
    fn a_ticket_list_must_be_nonempty_short_and_distinct() {
        assert!(ticket_list(&[1, 2, 3], 8).is_ok());
        assert_eq!(ticket_list(&[], 8).unwrap_err().status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(ticket_list(&[0; 9], 8).unwrap_err().extension("ticketsPerBookingMax"), Some(&8.into()));
        let problem = ticket_list(&[4, 1, 4, 2, 1, 4], 8).unwrap_err();
        assert_eq!(problem.extension("duplicateTicketIds"), Some(&serde_json::json!([4, 1])));
    }

    #[test]
    fn tickets_at_or_beyond_the_count_are_unknown() {
        assert_eq!(unknown_tickets(&[0, 9, 10, 11, u32::MAX], 10), vec![10, 11, u32::MAX]);
    }

    #[test]
    fn pages_are_bounded() {
        let page = Page::new(3, 20, 100).unwrap();
        assert_eq!((page.start(), page.end()), (40, 60));
        assert!(Page::new(0, 20, 100).is_err());
        assert!(Page::new(1, 0, 100).is_err());
        assert!(Page::new(1, 101, 100).is_err());
        assert!(Page::new(100, 100, 100).is_ok());
        assert!(Page::new(101, 100, 100).is_err());
        assert!(Page::new(u32::MAX, 100, 100).is_err());
    }
}
