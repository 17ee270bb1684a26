//! A catalog generator: venues in real cities, performers with plausible names, and events of
//! every kind over the next two years, as many as asked (a million by default), the same for the
//! same seed. Made fast (no I/O here) and fed to a cluster in bulk by the benchmark.
//!
//! Performers and events are the demo catalog's records (`demo::DemoPerformer`,
//! `demo::DemoEvent`, events keeping their venue's prices), so each makes its admin API body as
//! the demo's do; venues all share one small seat map, made here.

use std::collections::BTreeMap;

use demo::bodies::{EventBody, VenueBody};
use demo::{DemoEvent, DemoPerformer};
use harness::grid_seat_map;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const CITIES: &[&str] = &[
    "New York",
    "Los Angeles",
    "Chicago",
    "Houston",
    "Phoenix",
    "Philadelphia",
    "San Antonio",
    "San Diego",
    "Dallas",
    "Austin",
    "Denver",
    "Seattle",
    "Boston",
    "Nashville",
    "Portland",
    "Las Vegas",
    "Atlanta",
    "Miami",
    "Minneapolis",
    "New Orleans",
    "Toronto",
    "Montreal",
    "Vancouver",
    "Mexico City",
    "London",
    "Manchester",
    "Glasgow",
    "Dublin",
    "Paris",
    "Lyon",
    "Berlin",
    "Hamburg",
    "Munich",
    "Amsterdam",
    "Rotterdam",
    "Brussels",
    "Madrid",
    "Barcelona",
    "Lisbon",
    "Rome",
    "Milan",
    "Vienna",
    "Zurich",
    "Prague",
    "Warsaw",
    "Stockholm",
    "Oslo",
    "Copenhagen",
    "Helsinki",
    "Reykjavik",
    "Tokyo",
    "Osaka",
    "Seoul",
    "Sydney",
    "Melbourne",
    "Auckland",
    "Sao Paulo",
    "Buenos Aires",
    "Santiago",
    "Cape Town",
];
const VENUE_KINDS: &[&str] =
    &["Arena", "Stadium", "Hall", "Theater", "Club", "Amphitheater", "Ballroom", "Opera House", "Pavilion", "Garden"];
const VENUE_WORDS: &[&str] = &[
    "Harbor",
    "Union",
    "Grand",
    "Royal",
    "Crystal",
    "Liberty",
    "Summit",
    "Riverside",
    "Golden",
    "Lantern",
    "Maple",
    "Starlight",
    "Orchard",
    "Beacon",
    "Granite",
    "Velvet",
    "Copper",
    "Meridian",
    "Northern",
    "Old Town",
];
const FIRST: &[&str] = &[
    "Taylor", "Olivia", "Noah", "Ava", "Liam", "Mia", "Lucas", "Zara", "Elena", "Marcus", "Priya", "Diego", "Yuki",
    "Amara", "Felix", "Nora", "Ravi", "Lena", "Omar", "Ingrid", "Santiago", "Chloe", "Kofi", "Hana", "Mateo", "Freya",
    "Jonah", "Aisha", "Viktor", "Rosa",
];
const LAST: &[&str] = &[
    "Swift",
    "Rivera",
    "Kim",
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Castellanos",
    "Nakamura",
    "Hughes",
    "Petrov",
    "Adeyemi",
    "Fischer",
    "Santos",
    "Bianchi",
    "O'Neill",
    "Haddad",
    "Kowalski",
    "Dubois",
    "Mensah",
    "Larsen",
    "Quinn",
    "Novak",
    "Tanaka",
    "Romero",
    "Schmidt",
    "Patel",
    "Berg",
    "Costa",
    "Walsh",
    "Yilmaz",
];
const BAND_ADJECTIVES: &[&str] = &[
    "Electric",
    "Midnight",
    "Velvet",
    "Silver",
    "Wandering",
    "Neon",
    "Hollow",
    "Golden",
    "Paper",
    "Restless",
    "Crimson",
    "Quiet",
    "Wild",
    "Broken",
    "Lucky",
    "Frozen",
    "Burning",
    "Cosmic",
    "Lonely",
    "Brass",
];
const BAND_NOUNS: &[&str] = &[
    "Owls",
    "Lanterns",
    "Tigers",
    "Rivers",
    "Ghosts",
    "Satellites",
    "Wolves",
    "Echoes",
    "Pilots",
    "Sparrows",
    "Kings",
    "Foxes",
    "Machines",
    "Harbors",
    "Comets",
    "Thieves",
    "Gardens",
    "Giants",
    "Sailors",
    "Dreamers",
];
const TEAMS: &[&str] =
    &["United", "City", "Rovers", "Athletic", "Wanderers", "Rangers", "Stars", "Hawks", "Bears", "Sharks"];
const CATEGORIES: &[(&str, &[&str])] = &[
    ("concert", &["Live", "Tour", "in Concert", "Unplugged", "Anniversary Tour", "Farewell Tour", "Live at Night"]),
    ("festival", &["Festival", "Weekender", "Summer Fest", "Block Party"]),
    ("sports", &["Derby", "Cup Final", "Championship", "Season Opener", "Playoffs"]),
    ("theater", &["The Musical", "A New Play", "Opening Night", "Revival"]),
    ("comedy", &["Stand-Up Special", "Comedy Night", "Live and Unfiltered"]),
    ("family", &["Family Show", "On Ice", "Circus Spectacular", "Puppet Theater"]),
];
const GENRES: &[&str] =
    &["pop", "rock", "jazz", "hip hop", "electronic", "folk", "classical", "soul", "metal", "country"];

/// Seats of every generated venue: search does not need big seat maps, and a bulk import of a
/// million events should not copy big ones.
const VENUE_SEATS: usize = 24;
/// Two years, in milliseconds.
const HORIZON_MS: u64 = 2 * 365 * 24 * 3_600_000;

#[derive(Debug, Clone)]
pub struct GenVenue {
    pub name: String,
    pub city: String,
}

pub struct Catalog {
    pub venues: Vec<GenVenue>,
    pub performers: Vec<DemoPerformer>,
    rng: StdRng,
    from_ms: u64,
}

impl Catalog {
    /// `venues` venues and `performers` performers; events come from [`Catalog::event`].
    pub fn new(seed: u64, venues: usize, performers: usize, from_ms: u64) -> Catalog {
        let mut rng = StdRng::seed_from_u64(seed);
        let venues = (0..venues)
            .map(|n| {
                let city = CITIES[n % CITIES.len()];
                let word = VENUE_WORDS.choose(&mut rng).expect("words");
                let kind = VENUE_KINDS.choose(&mut rng).expect("kinds");
                GenVenue { name: format!("{city} {word} {kind}"), city: city.into() }
            })
            .collect();
        let performers = (0..performers).map(|n| performer(&mut rng, n)).collect();
        Catalog { venues, performers, rng, from_ms }
    }

    /// The next event.
    pub fn event(&mut self) -> DemoEvent {
        let rng = &mut self.rng;
        let (category, words) = CATEGORIES.choose(rng).expect("categories");
        let headliner = rng.gen_range(0..self.performers.len());
        let mut performers = vec![headliner];
        if rng.gen_bool(0.3) {
            performers.push(rng.gen_range(0..self.performers.len()));
        }
        performers.dedup();
        let who = &self.performers[headliner].name;
        let what = words.choose(rng).expect("words");
        let venue = rng.gen_range(0..self.venues.len());
        let city = &self.venues[venue].city;
        let name = match *category {
            "sports" => format!("{city} {what}: {who}"),
            _ => format!("{who} {what}"),
        };
        let description = format!(
            "{who} plays {} in {city}. {} An evening of {} for all ages.",
            self.venues[venue].name,
            ["Doors open an hour before.", "Limited tickets.", "Special guests to be announced.", "All seated."]
                .choose(rng)
                .expect("lines"),
            self.performers[headliner].genre
        );
        let starts_at_ms = self.from_ms + rng.gen_range(0..HORIZON_MS) / 60_000 * 60_000;
        let prices = BTreeMap::new();
        DemoEvent { name, description, category: (*category).into(), starts_at_ms, venue, performers, prices }
    }
}

fn performer(rng: &mut StdRng, n: usize) -> DemoPerformer {
    let name = match n % 4 {
        0 | 1 => format!("{} {}", FIRST.choose(rng).expect("names"), LAST.choose(rng).expect("names")),
        2 => format!("The {} {}", BAND_ADJECTIVES.choose(rng).expect("words"), BAND_NOUNS.choose(rng).expect("words")),
        _ => format!("{} {}", CITIES.choose(rng).expect("cities"), TEAMS.choose(rng).expect("teams")),
    };
    // Numbered so that thousands of performers have distinct names.
    let name = if n >= FIRST.len() * LAST.len() / 4 { format!("{name} {}", n / 100) } else { name };
    DemoPerformer { name, description: String::new(), genre: GENRES.choose(rng).expect("genres").to_string() }
}

/// The admin API's body for a venue of the catalog: one row of `VENUE_SEATS` seats.
pub fn venue_body(venue: &GenVenue) -> VenueBody {
    let seat_map = grid_seat_map("General", 4_500, VENUE_SEATS, VENUE_SEATS, |_| "A".into());
    VenueBody { name: venue.name.clone(), address: String::new(), city: venue.city.clone(), seat_map }
}

/// The admin API's body for an event of the catalog, given the ids every venue and performer
/// got.
pub fn event_body(event: &DemoEvent, venue_ids: &[u64], performer_ids: &[u64]) -> EventBody {
    let performers: Vec<u64> = event.performers.iter().map(|p| performer_ids[*p]).collect();
    event.body(venue_ids[event.venue], &performers)
}

/// A progress bar on one line: `label [#####.....] 45% 450000/1000000 12345/s`.
pub fn progress(label: &str, done: usize, total: usize, started: std::time::Instant) {
    let share = done as f64 / total.max(1) as f64;
    let bar = "#".repeat((share * 30.0) as usize) + &".".repeat(30 - (share * 30.0) as usize);
    let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
    print!("\r  {label} [{bar}] {:>3.0}% {done}/{total} {rate:.0}/s   ", share * 100.0);
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    if done >= total {
        println!();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_catalog() {
        let mut a = Catalog::new(7, 50, 200, 0);
        let mut b = Catalog::new(7, 50, 200, 0);
        for _ in 0..100 {
            let (x, y) = (a.event(), b.event());
            assert_eq!((x.name, x.starts_at_ms, x.venue), (y.name, y.starts_at_ms, y.venue));
        }
        assert_eq!(a.venues[3].name, b.venues[3].name);
    }

    #[test]
    fn events_are_varied_and_within_two_years() {
        let mut catalog = Catalog::new(1, 100, 1_000, 1_000);
        let events: Vec<DemoEvent> = (0..2_000).map(|_| catalog.event()).collect();
        let categories: std::collections::HashSet<&str> = events.iter().map(|e| e.category.as_str()).collect();
        assert_eq!(categories.len(), CATEGORIES.len());
        assert!(events.iter().all(|e| e.starts_at_ms >= 1_000 && e.starts_at_ms < 1_000 + HORIZON_MS));
        let names: std::collections::HashSet<&str> = events.iter().map(|e| e.name.as_str()).collect();
        assert!(names.len() > 1_000, "names vary: {}", names.len());
        let body = event_body(&events[0], &(1..=100).collect::<Vec<_>>(), &(1..=1_000).collect::<Vec<_>>());
        let body = serde_json::to_value(body).unwrap();
        assert!(body["startsAt"].as_str().unwrap().ends_with('Z'));
    }
}
