//! The demo catalog and its loader: a fixed set of fictional venues, performers and events that
//! fills an empty cluster through the admin HTTP API, so that a fresh cluster has something to
//! sell.
//!
//! Two halves:
//! - [`generate`] is a pure function of the time it is given: about ten venues in ten cities
//!   (three clubs of ~400 seats in a grid, five theaters of 1,500–2,500 seats with Orchestra,
//!   Mezzanine and Balcony on arcs, an arena of ~15,000 seats with a floor and two tiers around
//!   it, and a stadium of ~50,000 seats around a pitch), ~30 performers and ~90 events over the
//!   next six months. The lists are fixed, so two runs give the same catalog (and the same
//!   times, when they are given a time on the same UTC day).
//! - [`load`] sends that catalog to a gateway: venues, then performers, then events, each
//!   request with a timeout and a bounded retry while the cluster is still electing leaders.
//!   If the cluster already lists an event, it loads nothing: the data survived a restart.
//!
//! Seat coordinates are in tenths of a metre (a seat is 5 units wide), origin top left, y down:
//! stages are at the top of clubs and theaters and at the left end of the arena, the stadium's
//! pitch is in its middle.

use std::collections::BTreeMap;
use std::f32::consts::PI;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use model::{Row, Seat, SeatMap, Section};
use serde_json::{json, Value};
use tracing::{info, warn};

/// How long one request may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one request keeps being retried on a refused connection or a 503.
pub const RETRY_BUDGET: Duration = Duration::from_secs(30);

/// Events are spread over this many days after the day of `now_ms`.
pub const HORIZON_DAYS: u64 = 180;

const DAY_MS: u64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// The width of one seat, in map units (tenths of a metre).
const SEAT_PITCH: f32 = 5.0;

/// What [`load`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DemoSummary {
    pub venues: usize,
    pub performers: usize,
    pub events: usize,
    /// True when the cluster already had events and nothing was loaded.
    pub skipped: bool,
}

/// The demo catalog, as [`generate`] makes it: what the loader sends, before the cluster has
/// given anything an id. Events refer to venues and performers by their index in these lists.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoCatalog {
    pub venues: Vec<DemoVenue>,
    pub performers: Vec<DemoPerformer>,
    pub events: Vec<DemoEvent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VenueKind {
    Club,
    Theater,
    Arena,
    Stadium,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DemoVenue {
    pub name: String,
    pub address: String,
    pub city: String,
    pub kind: VenueKind,
    pub seat_map: SeatMap,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoPerformer {
    pub name: String,
    pub description: String,
    pub genre: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoEvent {
    pub name: String,
    pub description: String,
    /// One of `concert`, `sports`, `theater`, `comedy`, `family`.
    pub category: String,
    /// Milliseconds since the Unix epoch.
    pub starts_at_ms: u64,
    /// Index into [`DemoCatalog::venues`].
    pub venue: usize,
    /// Indexes into [`DemoCatalog::performers`], one to three.
    pub performers: Vec<usize>,
    /// Per-section prices in cents; empty when the event keeps its venue's prices.
    pub prices: BTreeMap<String, u64>,
}

// ------------------------------------------------------------------------------------------
// The fixed lists
// ------------------------------------------------------------------------------------------

enum Layout {
    Club(ClubSpec),
    Theater(TheaterSpec),
    Arena,
    Stadium,
}

struct VenueSpec {
    name: &'static str,
    address: &'static str,
    city: &'static str,
    /// Standard-time offset of the venue's city, so that shows start in the local evening.
    utc_offset_hours: i64,
    layout: Layout,
}

const VENUES: &[VenueSpec] = &[
    VenueSpec {
        name: "The Lantern Room",
        address: "412 Dekalb Avenue, Brooklyn, NY 11205",
        city: "New York",
        utc_offset_hours: -5,
        layout: Layout::Club(ClubSpec {
            floor_rows: 16,
            floor_cols: 20,
            balcony_rows: 3,
            balcony_cols: 24,
            rail: 8,
            prices: [3_500, 4_500, 4_000],
        }),
    },
    VenueSpec {
        name: "Copper Kettle Hall",
        address: "1120 East Sixth Street, Austin, TX 78702",
        city: "Austin",
        utc_offset_hours: -6,
        layout: Layout::Club(ClubSpec {
            floor_rows: 17,
            floor_cols: 22,
            balcony_rows: 2,
            balcony_cols: 26,
            rail: 8,
            prices: [3_000, 4_200, 3_600],
        }),
    },
    VenueSpec {
        name: "The Blue Heron Lounge",
        address: "87 Alder Street, Seattle, WA 98104",
        city: "Seattle",
        utc_offset_hours: -8,
        layout: Layout::Club(ClubSpec {
            floor_rows: 14,
            floor_cols: 18,
            balcony_rows: 4,
            balcony_cols: 22,
            rail: 8,
            prices: [2_800, 3_800, 3_200],
        }),
    },
    VenueSpec {
        name: "Marlowe Theatre",
        address: "230 West Randall Street, Chicago, IL 60606",
        city: "Chicago",
        utc_offset_hours: -6,
        layout: Layout::Theater(TheaterSpec {
            house_width: 220.0,
            orchestra_rows: 24,
            mezzanine_rows: 9,
            balcony_rows: 11,
            boxes: false,
            prices: [12_900, 8_900, 4_900, 0],
        }),
    },
    VenueSpec {
        name: "Bellhaven Playhouse",
        address: "41 Tremont Row, Boston, MA 02108",
        city: "Boston",
        utc_offset_hours: -5,
        layout: Layout::Theater(TheaterSpec {
            house_width: 200.0,
            orchestra_rows: 22,
            mezzanine_rows: 8,
            balcony_rows: 10,
            boxes: false,
            prices: [11_500, 7_900, 4_500, 0],
        }),
    },
    VenueSpec {
        name: "Grand Meridian Theater",
        address: "6200 Sunset Terrace, Los Angeles, CA 90028",
        city: "Los Angeles",
        utc_offset_hours: -8,
        layout: Layout::Theater(TheaterSpec {
            house_width: 250.0,
            orchestra_rows: 24,
            mezzanine_rows: 9,
            balcony_rows: 11,
            boxes: true,
            prices: [14_900, 9_900, 5_900, 17_900],
        }),
    },
    VenueSpec {
        name: "Harborlight Opera House",
        address: "1 Harborlight Plaza, San Francisco, CA 94111",
        city: "San Francisco",
        utc_offset_hours: -8,
        layout: Layout::Theater(TheaterSpec {
            house_width: 240.0,
            orchestra_rows: 23,
            mezzanine_rows: 9,
            balcony_rows: 11,
            boxes: true,
            prices: [13_900, 9_500, 5_500, 16_500],
        }),
    },
    VenueSpec {
        name: "Cumberland Music Hall",
        address: "515 Commerce Street, Nashville, TN 37203",
        city: "Nashville",
        utc_offset_hours: -6,
        layout: Layout::Theater(TheaterSpec {
            house_width: 210.0,
            orchestra_rows: 23,
            mezzanine_rows: 9,
            balcony_rows: 10,
            boxes: false,
            prices: [9_900, 6_900, 3_900, 0],
        }),
    },
    VenueSpec {
        name: "Summit Arena",
        address: "1000 Summit Parkway, Denver, CO 80204",
        city: "Denver",
        utc_offset_hours: -7,
        layout: Layout::Arena,
    },
    VenueSpec {
        name: "Magnolia Field",
        address: "1 Magnolia Way, Atlanta, GA 30313",
        city: "Atlanta",
        utc_offset_hours: -5,
        layout: Layout::Stadium,
    },
];

/// (name, genre, description)
const PERFORMERS: &[(&str, &str, &str)] = &[
    ("The Paper Lanterns", "Indie rock", "Brooklyn four-piece with jangly guitars and big sing-along choruses."),
    ("Neon Harbor", "Synth-pop", "Glittering synth-pop duo known for laser-lit, sweat-soaked live shows."),
    ("Cedar & Smoke", "Folk", "Close-harmony folk trio with fiddle, banjo and campfire stories between songs."),
    (
        "Velvet Ordinance",
        "Alternative rock",
        "Loud, tight and theatrical: the alt-rock band that never plays the same set twice.",
    ),
    ("Brass Ferris Wheel", "Funk", "Nine-piece brass band that turns any room into a dance floor."),
    ("Low Tide Choir", "Dream pop", "Hazy guitars and layered vocals from the Pacific Northwest."),
    ("Static Orchard", "Post-punk", "Angular riffs, driving drums and songs about small-town winters."),
    ("Mara Quinlan", "Singer-songwriter", "Piano-led songs about leaving home and finding it again."),
    ("Juniper Hale", "Country", "Honky-tonk heart with a modern Nashville polish."),
    ("DJ Kessel", "Electronic", "Deep house sets that run long and build slow."),
    ("Ollie Ventura Trio", "Jazz", "Piano trio reworking the standards with a wink."),
    ("Amaya Ríos", "Latin pop", "Bilingual pop anthems with a full live band and dancers."),
    ("Theo Marchetti", "Classical", "Violinist playing Bach, Brahms and his own film-score suites."),
    ("Kofi Adjei & The Sunrise Band", "Afrobeat", "Horn-driven Afrobeat grooves from a twelve-piece band."),
    ("Rosalind Park", "R&B", "Velvet-voiced R&B singer with a voice built for big rooms."),
    ("Priya Castellanos", "Stand-up comedy", "Sharp stand-up about family, food and the group chat."),
    ("Dale Wimbush", "Stand-up comedy", "Observational comedy from a retired high-school gym teacher."),
    ("Benny Okafor", "Stand-up comedy", "Fast, physical storytelling that leaves him out of breath and you in tears."),
    ("The Night Shift", "Improv comedy", "Improvised comedy built entirely from the audience's suggestions."),
    ("Ironwood Owls", "Basketball", "Fast-breaking pro basketball club with the loudest home crowd in the league."),
    ("Lakeshore Lynx", "Basketball", "Defense-first basketball side from the shores of the lake."),
    ("Granite Ridge Grizzlies", "Hockey", "Hard-checking hockey club chasing its first title."),
    ("Red River Rustlers", "Hockey", "Speedy hockey club with the youngest roster in the league."),
    ("Magnolia City FC", "Soccer", "Home club of Magnolia Field, famous for its singing supporters' end."),
    ("Harbor United", "Soccer", "Possession-minded soccer side from the coast."),
    ("Pinewood Rovers", "Soccer", "Newly promoted underdogs with a knack for late goals."),
    ("Lamplight Repertory Company", "Drama", "Touring company staging classics and new plays with a cast of twelve."),
    ("The Whistlestop Players", "Musical theater", "Broadway-style musicals with a live pit orchestra."),
    ("Moonrise Ballet", "Ballet", "Classical and contemporary ballet from a company of thirty dancers."),
    ("Open Book Puppet Theater", "Family", "Giant puppets bring picture books to life, for ages 3 and up."),
    ("Circus Aurelia", "Circus", "Acrobats, aerialists and clowns in a modern one-ring circus."),
    ("The Bubble Scientists", "Family science", "A science show with giant bubbles, smoke rings and very loud bangs."),
];

enum PriceRule {
    /// The venue's own prices.
    Venue,
    /// Every section at this percentage of the venue's price, rounded to whole dollars.
    Percent(u64),
    /// These sections at these prices; the others at the venue's.
    Sections(&'static [(&'static str, u64)]),
}

struct ShowSpec {
    name: &'static str,
    category: &'static str,
    description: &'static str,
    performers: &'static [&'static str],
    /// Local start time (hour, minute).
    time: (i64, i64),
    prices: PriceRule,
    /// (venue name, days after the day of `now_ms`, 1..=HORIZON_DAYS)
    stops: &'static [(&'static str, u64)],
}

const LANTERN: &str = "The Lantern Room";
const KETTLE: &str = "Copper Kettle Hall";
const HERON: &str = "The Blue Heron Lounge";
const MARLOWE: &str = "Marlowe Theatre";
const BELLHAVEN: &str = "Bellhaven Playhouse";
const MERIDIAN: &str = "Grand Meridian Theater";
const HARBORLIGHT: &str = "Harborlight Opera House";
const CUMBERLAND: &str = "Cumberland Music Hall";
const ARENA: &str = "Summit Arena";
const STADIUM: &str = "Magnolia Field";

const SHOWS: &[ShowSpec] = &[
    // Concerts.
    ShowSpec {
        name: "Neon Harbor: Afterglow Tour",
        category: "concert",
        description: "The synth-pop duo's biggest production yet, with a full laser and light show.",
        performers: &["Neon Harbor", "DJ Kessel"],
        time: (20, 0),
        prices: PriceRule::Percent(120),
        stops: &[(ARENA, 24), (MERIDIAN, 31), (HARBORLIGHT, 33), (MARLOWE, 40)],
    },
    ShowSpec {
        name: "The Paper Lanterns with Static Orchard",
        category: "concert",
        description: "A hometown double bill of jangly indie rock and wiry post-punk.",
        performers: &["The Paper Lanterns", "Static Orchard"],
        time: (20, 30),
        prices: PriceRule::Venue,
        stops: &[(LANTERN, 5), (LANTERN, 6), (KETTLE, 12), (HERON, 19)],
    },
    ShowSpec {
        name: "Cedar & Smoke: Songs from the Porch",
        category: "concert",
        description: "An intimate, mostly acoustic evening of harmonies and stories.",
        performers: &["Cedar & Smoke"],
        time: (19, 30),
        prices: PriceRule::Sections(&[("Orchestra", 7_900), ("Mezzanine", 5_900), ("Balcony", 3_500)]),
        stops: &[(CUMBERLAND, 9), (BELLHAVEN, 45), (HERON, 52)],
    },
    ShowSpec {
        name: "Velvet Ordinance: Loud Hours Tour",
        category: "concert",
        description: "Two hours of riffs, confetti and a different setlist every night.",
        performers: &["Velvet Ordinance", "Static Orchard"],
        time: (20, 0),
        prices: PriceRule::Venue,
        stops: &[(ARENA, 61), (MARLOWE, 68), (HARBORLIGHT, 75)],
    },
    ShowSpec {
        name: "Brass Ferris Wheel Dance Party",
        category: "concert",
        description: "Nine horns, two drummers, no chairs needed. Doors at seven.",
        performers: &["Brass Ferris Wheel"],
        time: (21, 0),
        prices: PriceRule::Venue,
        stops: &[(KETTLE, 3), (LANTERN, 27), (KETTLE, 88)],
    },
    ShowSpec {
        name: "Low Tide Choir: Slow Waves",
        category: "concert",
        description: "The dream-pop band plays its new record front to back.",
        performers: &["Low Tide Choir"],
        time: (20, 0),
        prices: PriceRule::Venue,
        stops: &[(HERON, 14), (HARBORLIGHT, 95)],
    },
    ShowSpec {
        name: "Mara Quinlan: An Evening at the Piano",
        category: "concert",
        description: "Songs old and new, alone at a grand piano.",
        performers: &["Mara Quinlan"],
        time: (19, 30),
        prices: PriceRule::Venue,
        stops: &[(BELLHAVEN, 16), (MARLOWE, 58), (MERIDIAN, 102)],
    },
    ShowSpec {
        name: "Juniper Hale: Backroads & Neon",
        category: "concert",
        description: "Honky-tonk hits and new ballads, with Cedar & Smoke opening.",
        performers: &["Juniper Hale", "Cedar & Smoke"],
        time: (19, 30),
        prices: PriceRule::Venue,
        stops: &[(CUMBERLAND, 21), (CUMBERLAND, 22), (ARENA, 110)],
    },
    ShowSpec {
        name: "DJ Kessel All Night Long",
        category: "concert",
        description: "A six-hour deep house set. Come late, stay later.",
        performers: &["DJ Kessel"],
        time: (22, 0),
        prices: PriceRule::Venue,
        stops: &[(LANTERN, 13), (KETTLE, 41), (HERON, 83), (LANTERN, 130)],
    },
    ShowSpec {
        name: "Ollie Ventura Trio: Standards, Mostly",
        category: "concert",
        description: "Piano, bass and drums taking the Great American Songbook for a walk.",
        performers: &["Ollie Ventura Trio"],
        time: (19, 0),
        prices: PriceRule::Venue,
        stops: &[(LANTERN, 8), (HERON, 37), (BELLHAVEN, 120)],
    },
    ShowSpec {
        name: "Amaya Ríos: Corazón en Vivo",
        category: "concert",
        description: "Bilingual pop anthems with a twelve-piece band and a troupe of dancers.",
        performers: &["Amaya Ríos"],
        time: (20, 0),
        prices: PriceRule::Sections(&[("Floor 1", 19_900), ("Floor 2", 19_900), ("Floor 3", 19_900)]),
        stops: &[(ARENA, 54)],
    },
    ShowSpec {
        name: "Summer Nights Festival",
        category: "concert",
        description: "One stage, one long evening: Latin pop, Afrobeat and R&B under the stadium lights.",
        performers: &["Amaya Ríos", "Kofi Adjei & The Sunrise Band", "Rosalind Park"],
        time: (18, 0),
        prices: PriceRule::Percent(110),
        stops: &[(STADIUM, 164)],
    },
    ShowSpec {
        name: "Theo Marchetti Plays Bach & Brahms",
        category: "concert",
        description: "Solo partitas in the first half, Brahms with a string quartet in the second.",
        performers: &["Theo Marchetti"],
        time: (19, 30),
        prices: PriceRule::Venue,
        stops: &[(HARBORLIGHT, 29), (MARLOWE, 86), (BELLHAVEN, 140)],
    },
    ShowSpec {
        name: "Kofi Adjei & The Sunrise Band",
        category: "concert",
        description: "Horn-driven Afrobeat grooves. Expect to dance in the aisles.",
        performers: &["Kofi Adjei & The Sunrise Band"],
        time: (20, 30),
        prices: PriceRule::Venue,
        stops: &[(KETTLE, 48), (CUMBERLAND, 96)],
    },
    ShowSpec {
        name: "Rosalind Park: Velvet Hours",
        category: "concert",
        description: "Slow-burning R&B with a string section.",
        performers: &["Rosalind Park"],
        time: (20, 0),
        prices: PriceRule::Percent(90),
        stops: &[(MERIDIAN, 66), (ARENA, 143)],
    },
    // Sports.
    ShowSpec {
        name: "Ironwood Owls vs. Lakeshore Lynx",
        category: "sports",
        description: "Regular-season basketball between two rivals separated by one game in the standings.",
        performers: &["Ironwood Owls", "Lakeshore Lynx"],
        time: (19, 0),
        prices: PriceRule::Venue,
        stops: &[(ARENA, 11), (ARENA, 39), (ARENA, 81)],
    },
    ShowSpec {
        name: "Granite Ridge Grizzlies vs. Red River Rustlers",
        category: "sports",
        description: "Hockey night: the league's hardest hitters against its fastest skaters.",
        performers: &["Granite Ridge Grizzlies", "Red River Rustlers"],
        time: (19, 30),
        prices: PriceRule::Percent(85),
        stops: &[(ARENA, 18), (ARENA, 46), (ARENA, 95)],
    },
    ShowSpec {
        name: "Magnolia City FC vs. Harbor United",
        category: "sports",
        description: "League soccer under the lights. Supporters' end opens two hours before kickoff.",
        performers: &["Magnolia City FC", "Harbor United"],
        time: (19, 30),
        prices: PriceRule::Venue,
        stops: &[(STADIUM, 35)],
    },
    ShowSpec {
        name: "Magnolia City FC vs. Pinewood Rovers",
        category: "sports",
        description: "Cup quarter-final: the favorites against the league's newest giant-killers.",
        performers: &["Magnolia City FC", "Pinewood Rovers"],
        time: (15, 0),
        prices: PriceRule::Percent(90),
        stops: &[(STADIUM, 77)],
    },
    // Comedy.
    ShowSpec {
        name: "Priya Castellanos: Group Chat",
        category: "comedy",
        description: "An hour of brand-new stand-up about family, food and the group chat.",
        performers: &["Priya Castellanos"],
        time: (19, 0),
        prices: PriceRule::Venue,
        stops: &[(LANTERN, 10), (BELLHAVEN, 26), (MARLOWE, 73), (MERIDIAN, 115)],
    },
    ShowSpec {
        name: "Dale Wimbush: Back in the Gym",
        category: "comedy",
        description: "Thirty years of dodgeball, hall passes and parent-teacher nights.",
        performers: &["Dale Wimbush"],
        time: (19, 30),
        prices: PriceRule::Sections(&[("Orchestra", 6_500), ("Mezzanine", 4_900), ("Balcony", 2_900)]),
        stops: &[(CUMBERLAND, 30), (MARLOWE, 63)],
    },
    ShowSpec {
        name: "Benny Okafor Live",
        category: "comedy",
        description: "Fast, physical storytelling comedy. Front rows may get involved.",
        performers: &["Benny Okafor"],
        time: (21, 30),
        prices: PriceRule::Venue,
        stops: &[(HERON, 23), (HARBORLIGHT, 92)],
    },
    ShowSpec {
        name: "The Night Shift: Late Show",
        category: "comedy",
        description: "Fully improvised comedy from your suggestions. No two nights alike.",
        performers: &["The Night Shift"],
        time: (22, 0),
        prices: PriceRule::Percent(60),
        stops: &[(LANTERN, 2), (LANTERN, 44), (LANTERN, 100)],
    },
    ShowSpec {
        name: "Comedy Night Out",
        category: "comedy",
        description: "Three headliners, one night: Priya Castellanos, Dale Wimbush and Benny Okafor.",
        performers: &["Priya Castellanos", "Dale Wimbush", "Benny Okafor"],
        time: (20, 0),
        prices: PriceRule::Venue,
        stops: &[(MERIDIAN, 80), (ARENA, 125)],
    },
    // Theater.
    ShowSpec {
        name: "The Winter Orchard",
        category: "theater",
        description: "A family drama in three acts about a farm, a flood and four siblings.",
        performers: &["Lamplight Repertory Company"],
        time: (19, 30),
        prices: PriceRule::Venue,
        stops: &[(BELLHAVEN, 4), (BELLHAVEN, 5), (BELLHAVEN, 7), (MARLOWE, 60)],
    },
    ShowSpec {
        name: "Main Street Melody",
        category: "theater",
        description: "A new musical about a small-town diner and the songs its regulars never sang.",
        performers: &["The Whistlestop Players"],
        time: (19, 30),
        prices: PriceRule::Sections(&[("Orchestra", 15_900), ("Boxes", 18_900)]),
        stops: &[(MERIDIAN, 15), (MERIDIAN, 16), (HARBORLIGHT, 135)],
    },
    ShowSpec {
        name: "Main Street Melody (Touring Company)",
        category: "theater",
        description: "The touring production of the diner musical, with a live pit orchestra.",
        performers: &["The Whistlestop Players"],
        time: (19, 30),
        prices: PriceRule::Venue,
        stops: &[(CUMBERLAND, 70), (MARLOWE, 150)],
    },
    ShowSpec {
        name: "The Snow Queen",
        category: "theater",
        description: "Andersen's fairy tale as a full-length ballet with a live orchestra.",
        performers: &["Moonrise Ballet"],
        time: (19, 0),
        prices: PriceRule::Venue,
        stops: &[(HARBORLIGHT, 50), (HARBORLIGHT, 51), (MARLOWE, 106)],
    },
    ShowSpec {
        name: "Twelfth Night",
        category: "theater",
        description: "Shakespeare's comedy of shipwrecks and mistaken identities, set in a 1920s seaside hotel.",
        performers: &["Lamplight Repertory Company"],
        time: (19, 30),
        prices: PriceRule::Percent(90),
        stops: &[(HARBORLIGHT, 112), (BELLHAVEN, 160), (BELLHAVEN, 161)],
    },
    ShowSpec {
        name: "Moonrise Ballet: Spring Repertory",
        category: "theater",
        description: "Three short contemporary ballets, one of them a world premiere.",
        performers: &["Moonrise Ballet", "Theo Marchetti"],
        time: (19, 30),
        prices: PriceRule::Venue,
        stops: &[(MERIDIAN, 145), (CUMBERLAND, 172)],
    },
    // Family.
    ShowSpec {
        name: "The Very Brave Teapot",
        category: "family",
        description: "Giant puppets and live music in a 50-minute show for ages 3 and up.",
        performers: &["Open Book Puppet Theater"],
        time: (11, 0),
        prices: PriceRule::Percent(40),
        stops: &[(BELLHAVEN, 20), (HERON, 34), (CUMBERLAND, 90), (MARLOWE, 127)],
    },
    ShowSpec {
        name: "Circus Aurelia: Skyward",
        category: "family",
        description: "Aerialists, acrobats and clowns in a modern one-ring circus.",
        performers: &["Circus Aurelia"],
        time: (14, 0),
        prices: PriceRule::Percent(60),
        stops: &[(ARENA, 67), (MERIDIAN, 85), (MARLOWE, 138)],
    },
    ShowSpec {
        name: "Big Bang Bubbles",
        category: "family",
        description: "Giant bubbles, smoke rings and explosions (the safe kind) for curious kids.",
        performers: &["The Bubble Scientists"],
        time: (14, 0),
        prices: PriceRule::Percent(45),
        stops: &[(CUMBERLAND, 28), (BELLHAVEN, 99), (KETTLE, 155)],
    },
    ShowSpec {
        name: "Puppets & Bubbles Holiday Matinee",
        category: "family",
        description: "The puppeteers and the bubble scientists share one stage for a holiday special.",
        performers: &["Open Book Puppet Theater", "The Bubble Scientists"],
        time: (13, 0),
        prices: PriceRule::Percent(50),
        stops: &[(HARBORLIGHT, 64), (MERIDIAN, 170)],
    },
];

// ------------------------------------------------------------------------------------------
// The generator
// ------------------------------------------------------------------------------------------

/// The demo catalog with event times counted from the UTC day of `now_ms`: every event starts
/// between one and [`HORIZON_DAYS`] + 1 days later, in the local afternoon or evening of its
/// venue's city. Pure and deterministic.
pub fn generate(now_ms: u64) -> DemoCatalog {
    let venues: Vec<DemoVenue> = VENUES
        .iter()
        .map(|spec| {
            let (kind, seat_map) = match &spec.layout {
                Layout::Club(club) => (VenueKind::Club, club_map(club)),
                Layout::Theater(theater) => (VenueKind::Theater, theater_map(theater)),
                Layout::Arena => (VenueKind::Arena, arena_map()),
                Layout::Stadium => (VenueKind::Stadium, stadium_map()),
            };
            DemoVenue { name: spec.name.into(), address: spec.address.into(), city: spec.city.into(), kind, seat_map }
        })
        .collect();

    let performers = PERFORMERS
        .iter()
        .map(|(name, genre, description)| DemoPerformer {
            name: (*name).into(),
            description: (*description).into(),
            genre: (*genre).into(),
        })
        .collect();

    let venue_index = |name: &str| {
        VENUES.iter().position(|v| v.name == name).unwrap_or_else(|| panic!("demo show at unknown venue `{name}`"))
    };
    let performer_index = |name: &str| {
        PERFORMERS
            .iter()
            .position(|p| p.0 == name)
            .unwrap_or_else(|| panic!("demo show with unknown performer `{name}`"))
    };

    let first_midnight = (now_ms / DAY_MS) * DAY_MS;
    let mut events = Vec::new();
    for show in SHOWS {
        let performers: Vec<usize> = show.performers.iter().map(|p| performer_index(p)).collect();
        for &(venue_name, day) in show.stops {
            assert!((1..=HORIZON_DAYS).contains(&day), "demo show `{}` is outside the horizon", show.name);
            let venue = venue_index(venue_name);
            let spec = &VENUES[venue];
            let local = show.time.0 * HOUR_MS + show.time.1 * 60_000;
            let starts_at = (first_midnight + day * DAY_MS) as i64 + local - spec.utc_offset_hours * HOUR_MS;
            let prices = event_prices(&show.prices, &venues[venue].seat_map);
            events.push(DemoEvent {
                name: show.name.into(),
                description: show.description.into(),
                category: show.category.into(),
                starts_at_ms: starts_at as u64,
                venue,
                performers: performers.clone(),
                prices,
            });
        }
    }
    events.sort_by(|a, b| a.starts_at_ms.cmp(&b.starts_at_ms).then_with(|| a.name.cmp(&b.name)));

    DemoCatalog { venues, performers, events }
}

fn event_prices(rule: &PriceRule, map: &SeatMap) -> BTreeMap<String, u64> {
    match rule {
        PriceRule::Venue => BTreeMap::new(),
        PriceRule::Percent(percent) => map
            .sections
            .iter()
            .map(|s| {
                let dollars = (s.price_cents * percent + 5_000) / 10_000;
                (s.name.clone(), dollars.max(5) * 100)
            })
            .collect(),
        // Only the sections this venue has: a rule may name sections some venues lack.
        PriceRule::Sections(prices) => prices
            .iter()
            .filter(|(name, _)| map.sections.iter().any(|s| s.name == *name))
            .map(|(name, cents)| ((*name).to_string(), *cents))
            .collect(),
    }
}

/// Builds a section row by row, numbering seats from 1 and rounding coordinates to 0.1.
struct SectionBuilder {
    section: Section,
}

impl SectionBuilder {
    fn new(name: impl Into<String>, price_cents: u64) -> Self {
        SectionBuilder { section: Section { name: name.into(), price_cents, rows: Vec::new() } }
    }

    fn row(&mut self, name: impl Into<String>, points: impl IntoIterator<Item = (f32, f32)>) {
        let seats: Vec<Seat> = points
            .into_iter()
            .enumerate()
            .map(|(i, (x, y))| Seat { number: (i + 1).to_string(), x: round_tenth(x), y: round_tenth(y) })
            .collect();
        if !seats.is_empty() {
            self.section.rows.push(Row { name: name.into(), seats });
        }
    }

    fn build(self) -> Section {
        self.section
    }
}

fn round_tenth(v: f32) -> f32 {
    (v * 10.0).round() / 10.0
}

/// Row letters as theaters use them: A–Z without I and O, then AA, BB, …
fn row_letters(index: usize) -> String {
    const LETTERS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    let letter = LETTERS[index % LETTERS.len()] as char;
    std::iter::repeat_n(letter, index / LETTERS.len() + 1).collect()
}

/// `count` points evenly spaced and centred between `from` and `to`.
fn spaced(count: usize, from: (f32, f32), to: (f32, f32)) -> impl Iterator<Item = (f32, f32)> {
    (0..count).map(move |i| {
        let t = (i as f32 + 0.5) / count as f32;
        (from.0 + (to.0 - from.0) * t, from.1 + (to.1 - from.1) * t)
    })
}

// --- Clubs: a standing-room-like floor in a grid, a balcony at the back, rails on the sides.

#[derive(Clone, Copy)]
struct ClubSpec {
    floor_rows: usize,
    floor_cols: usize,
    balcony_rows: usize,
    balcony_cols: usize,
    /// Seats along each side wall.
    rail: usize,
    /// Floor, Balcony, Rail.
    prices: [u64; 3],
}

fn club_map(spec: &ClubSpec) -> SeatMap {
    const FLOOR_PITCH: f32 = 6.0;
    const FLOOR_ROW: f32 = 7.0;
    const MARGIN: f32 = 30.0;
    let width = spec.floor_cols.max(spec.balcony_cols) as f32 * FLOOR_PITCH + 2.0 * MARGIN;
    let cx = width / 2.0;
    // The stage takes the top 60 units.
    let floor_top = 80.0;

    let mut floor = SectionBuilder::new("Floor", spec.prices[0]);
    let floor_width = spec.floor_cols as f32 * FLOOR_PITCH;
    for r in 0..spec.floor_rows {
        let y = floor_top + r as f32 * FLOOR_ROW;
        floor.row(row_letters(r), spaced(spec.floor_cols, (cx - floor_width / 2.0, y), (cx + floor_width / 2.0, y)));
    }

    let floor_bottom = floor_top + spec.floor_rows as f32 * FLOOR_ROW;
    let mut balcony = SectionBuilder::new("Balcony", spec.prices[1]);
    let balcony_width = spec.balcony_cols as f32 * SEAT_PITCH;
    for r in 0..spec.balcony_rows {
        let y = floor_bottom + 30.0 + r as f32 * 8.0;
        balcony.row(
            row_letters(r),
            spaced(spec.balcony_cols, (cx - balcony_width / 2.0, y), (cx + balcony_width / 2.0, y)),
        );
    }

    let rail_length = spec.rail as f32 * SEAT_PITCH;
    let rail_x = floor_width / 2.0 + 18.0;
    let mut left = SectionBuilder::new("Rail Left", spec.prices[2]);
    left.row("A", spaced(spec.rail, (cx - rail_x, floor_top + 10.0), (cx - rail_x, floor_top + 10.0 + rail_length)));
    let mut right = SectionBuilder::new("Rail Right", spec.prices[2]);
    right.row("A", spaced(spec.rail, (cx + rail_x, floor_top + 10.0), (cx + rail_x, floor_top + 10.0 + rail_length)));

    SeatMap { sections: vec![floor.build(), left.build(), right.build(), balcony.build()] }
}

// --- Theaters: curved rows around a point behind the stage, clipped by the side walls.

#[derive(Clone, Copy)]
struct TheaterSpec {
    /// Wall to wall, in map units, at the orchestra; the mezzanine and balcony are wider.
    house_width: f32,
    orchestra_rows: usize,
    mezzanine_rows: usize,
    balcony_rows: usize,
    /// Two boxes on each side wall.
    boxes: bool,
    /// Orchestra, Mezzanine, Balcony, Boxes.
    prices: [u64; 4],
}

fn theater_map(spec: &TheaterSpec) -> SeatMap {
    const ROW_PITCH: f32 = 9.0;
    const AISLE: f32 = 12.0;
    let width = spec.house_width + 2.0 * 80.0;
    let cx = width / 2.0;
    let stage_front = 70.0;
    // Rows are arcs around a point far behind the stage, so they curve gently towards it.
    let focus = (cx, stage_front - 260.0);
    let first_radius: f32 = 260.0 + 35.0;

    // Each row runs from wall to wall, cut into left, centre and right blocks by two aisles
    // parallel to the house's axis.
    let tier = |name: &str, price: u64, first: f32, rows: usize, half_width: f32| {
        let centre_half = half_width * 0.42;
        let mut section = SectionBuilder::new(name, price);
        for r in 0..rows {
            let radius = first + r as f32 * ROW_PITCH;
            let angle_at = |x: f32| (x / radius).clamp(-1.0, 1.0).asin();
            let wall = angle_at(half_width);
            let (inner, outer) = (angle_at(centre_half - AISLE / 2.0), angle_at(centre_half + AISLE / 2.0));
            let mut points = arc_points(focus, radius, -wall, -outer);
            points.extend(arc_points(focus, radius, -inner, inner));
            points.extend(arc_points(focus, radius, outer, wall));
            section.row(row_letters(r), points);
        }
        section.build()
    };

    let half = spec.house_width / 2.0;
    let orchestra_end = first_radius + spec.orchestra_rows as f32 * ROW_PITCH;
    let mezzanine_first = orchestra_end + 40.0;
    let mezzanine_end = mezzanine_first + spec.mezzanine_rows as f32 * ROW_PITCH;
    let balcony_first = mezzanine_end + 40.0;

    let mut sections = vec![
        tier("Orchestra", spec.prices[0], first_radius, spec.orchestra_rows, half),
        tier("Mezzanine", spec.prices[1], mezzanine_first, spec.mezzanine_rows, half + 25.0),
        tier("Balcony", spec.prices[2], balcony_first, spec.balcony_rows, half + 45.0),
    ];
    if spec.boxes {
        // Two boxes on each side wall, beside the front of the orchestra, facing the stage.
        let mut boxes = SectionBuilder::new("Boxes", spec.prices[3]);
        for side in [("Left", -1.0f32), ("Right", 1.0)] {
            for b in 0..2 {
                let x = cx + side.1 * (half + 22.0 + b as f32 * 14.0);
                let top = stage_front + 30.0 + b as f32 * 60.0;
                for col in 0..2 {
                    let x = x + side.1 * col as f32 * 7.0;
                    let name = format!("{} {}{}", side.0, b + 1, ["A", "B"][col]);
                    boxes.row(name, spaced(6, (x, top), (x, top + 6.0 * SEAT_PITCH)));
                }
            }
        }
        sections.push(boxes.build());
    }
    SeatMap { sections }
}

/// Seats on an arc of `radius` around `focus`, from angle `from` to `to` (radians, 0 straight
/// down from the focus, positive to the right), centred in the range.
fn arc_points(focus: (f32, f32), radius: f32, from: f32, to: f32) -> Vec<(f32, f32)> {
    if to <= from {
        return Vec::new();
    }
    let count = (radius * (to - from) / SEAT_PITCH).floor() as usize;
    let step = (to - from) / count.max(1) as f32;
    (0..count)
        .map(|i| {
            let angle = from + step * (i as f32 + 0.5);
            (focus.0 + radius * angle.sin(), focus.1 + radius * angle.cos())
        })
        .collect()
}

// --- Arena and stadium: tiers of rows around a rounded rectangle.

/// A rounded rectangle: straight sides of half-lengths `a` (along x) and `b` (along y) around
/// `centre`, corners of radius `corner`. A row at distance `d` from it runs along the same
/// shape grown by `d`.
#[derive(Clone, Copy)]
struct Bowl {
    centre: (f32, f32),
    a: f32,
    b: f32,
    corner: f32,
}

/// One piece of a row's path: a straight run or a corner arc.
#[derive(Clone, Copy, Debug)]
enum Piece {
    /// From `from` to `to` on the rectangle's side, pushed out along `normal`.
    Line { from: (f32, f32), to: (f32, f32), normal: (f32, f32) },
    /// Around `centre` from angle `from` to `to` (radians, screen coordinates: 0 right, π/2 down).
    Arc { centre: (f32, f32), from: f32, to: f32 },
}

impl Bowl {
    /// The eight pieces, clockwise on screen from the left end of the top side: top, top-right
    /// corner, right, bottom-right corner, bottom, bottom-left corner, left, top-left corner.
    fn pieces(&self) -> [Piece; 8] {
        let (cx, cy) = self.centre;
        let (a, b) = (self.a, self.b);
        [
            Piece::Line { from: (cx - a, cy - b), to: (cx + a, cy - b), normal: (0.0, -1.0) },
            Piece::Arc { centre: (cx + a, cy - b), from: -PI / 2.0, to: 0.0 },
            Piece::Line { from: (cx + a, cy - b), to: (cx + a, cy + b), normal: (1.0, 0.0) },
            Piece::Arc { centre: (cx + a, cy + b), from: 0.0, to: PI / 2.0 },
            Piece::Line { from: (cx + a, cy + b), to: (cx - a, cy + b), normal: (0.0, 1.0) },
            Piece::Arc { centre: (cx - a, cy + b), from: PI / 2.0, to: PI },
            Piece::Line { from: (cx - a, cy + b), to: (cx - a, cy - b), normal: (-1.0, 0.0) },
            Piece::Arc { centre: (cx - a, cy - b), from: PI, to: 1.5 * PI },
        ]
    }
}

impl Piece {
    /// The `index`-th of `parts` equal parts of this piece.
    fn part(&self, index: usize, parts: usize) -> Piece {
        let (t0, t1) = (index as f32 / parts as f32, (index + 1) as f32 / parts as f32);
        let lerp = |p: (f32, f32), q: (f32, f32), t: f32| (p.0 + (q.0 - p.0) * t, p.1 + (q.1 - p.1) * t);
        match *self {
            Piece::Line { from, to, normal } => {
                Piece::Line { from: lerp(from, to, t0), to: lerp(from, to, t1), normal }
            }
            Piece::Arc { centre, from, to } => {
                Piece::Arc { centre, from: from + (to - from) * t0, to: from + (to - from) * t1 }
            }
        }
    }

    /// The seats of a row at `radius` from the shape's sides (corner radius plus distance),
    /// leaving half an aisle free at each end.
    fn seats(&self, radius: f32, aisle: f32) -> Vec<(f32, f32)> {
        match *self {
            Piece::Line { from, to, normal } => {
                let length = ((to.0 - from.0).powi(2) + (to.1 - from.1).powi(2)).sqrt();
                let usable = length - aisle;
                if usable < SEAT_PITCH {
                    return Vec::new();
                }
                let dir = ((to.0 - from.0) / length, (to.1 - from.1) / length);
                let start = (
                    from.0 + normal.0 * radius + dir.0 * aisle / 2.0,
                    from.1 + normal.1 * radius + dir.1 * aisle / 2.0,
                );
                let end =
                    (to.0 + normal.0 * radius - dir.0 * aisle / 2.0, to.1 + normal.1 * radius - dir.1 * aisle / 2.0);
                spaced((usable / SEAT_PITCH).floor() as usize, start, end).collect()
            }
            Piece::Arc { centre, from, to } => {
                let margin = aisle / 2.0 / radius;
                let (from, to) = (from + margin, to - margin);
                if to <= from {
                    return Vec::new();
                }
                let count = (radius * (to - from) / SEAT_PITCH).floor() as usize;
                let step = (to - from) / count.max(1) as f32;
                (0..count)
                    .map(|i| {
                        let angle = from + step * (i as f32 + 0.5);
                        (centre.0 + radius * angle.cos(), centre.1 + radius * angle.sin())
                    })
                    .collect()
            }
        }
    }
}

/// One ring of sections around a bowl.
struct Tier<'a> {
    bowl: Bowl,
    /// Distance of the first row from the shape.
    first: f32,
    rows: usize,
    row_pitch: f32,
    /// How many sections each of the eight pieces is cut into.
    splits: [usize; 8],
    /// The name of the first section; the others count up clockwise.
    first_number: usize,
    /// Leave out section `part` of piece `piece` (e.g. behind a stage).
    skip: &'a dyn Fn(usize, usize) -> bool,
    /// The price of section `part` of `parts` of piece `piece`.
    price: &'a dyn Fn(usize, usize, usize) -> u64,
}

fn tier_sections(tier: &Tier) -> Vec<Section> {
    const AISLE: f32 = 8.0;
    let mut sections = Vec::new();
    let mut number = tier.first_number;
    for (p, piece) in tier.bowl.pieces().iter().enumerate() {
        let parts = tier.splits[p];
        for part in 0..parts {
            if (tier.skip)(p, part) {
                continue;
            }
            let sub = piece.part(part, parts);
            let mut section = SectionBuilder::new(number.to_string(), (tier.price)(p, part, parts));
            for r in 0..tier.rows {
                let radius = tier.bowl.corner + tier.first + r as f32 * tier.row_pitch;
                section.row((r + 1).to_string(), sub.seats(radius, AISLE));
            }
            let section = section.build();
            if !section.rows.is_empty() {
                sections.push(section);
                number += 1;
            }
        }
    }
    sections
}

/// Is section `part` of `parts` of a long side (pieces 0 and 4) near its middle?
fn near_middle(part: usize, parts: usize) -> bool {
    let centre = (parts as f32 - 1.0) / 2.0;
    (part as f32 - centre).abs() <= parts as f32 / 4.0
}

/// An arena set for an end-stage concert: the stage at the left end of the floor, chairs on
/// the floor, and two tiers of sections on the other three sides.
fn arena_map() -> SeatMap {
    // A 60 m × 26 m floor with 8.5 m corners.
    let bowl = Bowl { centre: (680.0, 510.0), a: 215.0, b: 45.0, corner: 85.0 };
    let (cx, cy) = bowl.centre;
    let (half_x, half_y) = (bowl.a + bowl.corner, bowl.b + bowl.corner);

    // Floor: three blocks side by side facing the stage, rows running parallel to it.
    let mut sections = Vec::new();
    let stage_depth = 120.0;
    let floor_left = cx - half_x + stage_depth + 20.0;
    let floor_right = cx + half_x - 25.0;
    let floor_top = cy - half_y + 20.0;
    let floor_bottom = cy + half_y - 20.0;
    let aisle = 16.0;
    let block_height = (floor_bottom - floor_top - 2.0 * aisle) / 3.0;
    let cross_aisle_x = floor_left + (floor_right - floor_left) * 0.45;
    for block in 0..3 {
        let top = floor_top + block as f32 * (block_height + aisle);
        let per_row = (block_height / SEAT_PITCH).floor() as usize;
        let mut section = SectionBuilder::new(format!("Floor {}", block + 1), 17_500);
        let mut x = floor_left;
        let mut r = 0;
        while x <= floor_right {
            if (x - cross_aisle_x).abs() < 10.0 {
                x += 20.0;
                continue;
            }
            section.row(row_letters(r), spaced(per_row, (x, top), (x, top + block_height)));
            r += 1;
            x += 9.0;
        }
        sections.push(section.build());
    }

    // Behind the stage: the left side and the halves of the left corners next to it.
    let behind_stage = |piece: usize, part: usize| piece == 6 || (piece == 5 && part == 1) || (piece == 7 && part == 0);
    let splits = [6, 2, 1, 2, 6, 2, 1, 2];
    let lower_price = |piece: usize, part: usize, parts: usize| match piece {
        0 | 4 if near_middle(part, parts) => 12_500,
        0 | 4 => 9_900,
        2 => 6_900,
        _ => 8_500,
    };
    let upper_price = |piece: usize, part: usize, parts: usize| match piece {
        0 | 4 if near_middle(part, parts) => 6_500,
        0 | 4 => 5_500,
        2 => 3_900,
        _ => 4_500,
    };
    sections.extend(tier_sections(&Tier {
        bowl,
        first: 25.0,
        rows: 18,
        row_pitch: 8.0,
        splits,
        first_number: 101,
        skip: &behind_stage,
        price: &lower_price,
    }));
    sections.extend(tier_sections(&Tier {
        bowl,
        first: 25.0 + 18.0 * 8.0 + 45.0,
        rows: 16,
        row_pitch: 8.5,
        splits: [8, 3, 1, 3, 8, 3, 1, 3],
        first_number: 201,
        skip: &|piece, part| piece == 6 || (piece == 5 && part == 2) || (piece == 7 && part == 0),
        price: &upper_price,
    }));
    SeatMap { sections }
}

/// A soccer stadium: three tiers all the way around a 105 m × 68 m pitch.
fn stadium_map() -> SeatMap {
    let bowl = Bowl { centre: (1160.0, 975.0), a: 445.0, b: 260.0, corner: 120.0 };
    let never = |_: usize, _: usize| false;
    let price = |base: [u64; 3]| {
        move |piece: usize, part: usize, parts: usize| match piece {
            0 | 4 if near_middle(part, parts) => base[0],
            0 | 4 => base[1],
            _ => base[2],
        }
    };
    let lower = price([15_000, 11_000, 8_500]);
    let middle = price([9_500, 7_500, 6_000]);
    let upper = price([5_500, 4_500, 3_500]);
    let mut sections = Vec::new();
    let lower_rows = 22;
    let middle_first = 60.0 + lower_rows as f32 * 8.0 + 50.0;
    let middle_rows = 16;
    let upper_first = middle_first + middle_rows as f32 * 8.0 + 50.0;
    sections.extend(tier_sections(&Tier {
        bowl,
        first: 60.0,
        rows: lower_rows,
        row_pitch: 8.0,
        splits: [8, 2, 4, 2, 8, 2, 4, 2],
        first_number: 101,
        skip: &never,
        price: &lower,
    }));
    sections.extend(tier_sections(&Tier {
        bowl,
        first: middle_first,
        rows: middle_rows,
        row_pitch: 8.0,
        splits: [8, 3, 4, 3, 8, 3, 4, 3],
        first_number: 201,
        skip: &never,
        price: &middle,
    }));
    sections.extend(tier_sections(&Tier {
        bowl,
        first: upper_first,
        rows: 12,
        row_pitch: 8.5,
        splits: [10, 3, 5, 3, 10, 3, 5, 3],
        first_number: 301,
        skip: &never,
        price: &upper,
    }));
    SeatMap { sections }
}

// ------------------------------------------------------------------------------------------
// Request bodies
// ------------------------------------------------------------------------------------------

/// A coordinate as short as JSON allows: `12` rather than `12.0`, `3.4` rather than the f64
/// expansion of the f32 3.4. Keeps a stadium's body well under 2 MB.
fn coordinate(v: f32) -> Value {
    let tenth = ((v as f64) * 10.0).round() / 10.0;
    if tenth.fract() == 0.0 && tenth.abs() < 1e15 {
        json!(tenth as i64)
    } else {
        json!(tenth)
    }
}

fn seat_map_json(map: &SeatMap) -> Value {
    let sections: Vec<Value> = map
        .sections
        .iter()
        .map(|section| {
            let rows: Vec<Value> = section
                .rows
                .iter()
                .map(|row| {
                    let seats: Vec<Value> = row
                        .seats
                        .iter()
                        .map(|s| json!({ "number": s.number, "x": coordinate(s.x), "y": coordinate(s.y) }))
                        .collect();
                    json!({ "name": row.name, "seats": seats })
                })
                .collect();
            json!({ "name": section.name, "priceCents": section.price_cents, "rows": rows })
        })
        .collect();
    json!({ "sections": sections })
}

/// The body of `POST /admin/venues`.
pub fn venue_body(venue: &DemoVenue) -> Value {
    json!({
        "name": venue.name,
        "address": venue.address,
        "city": venue.city,
        "seatMap": seat_map_json(&venue.seat_map),
    })
}

/// The body of `POST /admin/performers`.
pub fn performer_body(performer: &DemoPerformer) -> Value {
    json!({ "name": performer.name, "description": performer.description, "genre": performer.genre })
}

/// The body of `POST /admin/events`, given the ids the cluster gave the event's venue and
/// performers.
pub fn event_body(event: &DemoEvent, venue_id: u64, performer_ids: &[u64]) -> Value {
    let mut body = json!({
        "name": event.name,
        "description": event.description,
        "category": event.category,
        "startsAt": rfc3339(event.starts_at_ms),
        "venueId": venue_id,
        "performerIds": performer_ids,
    });
    if !event.prices.is_empty() {
        body["priceCents"] = json!(event.prices);
    }
    body
}

fn rfc3339(ms: u64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

// ------------------------------------------------------------------------------------------
// The loader
// ------------------------------------------------------------------------------------------

/// Limits of [`load_with`]; [`load`] uses the defaults ([`REQUEST_TIMEOUT`], [`RETRY_BUDGET`]).
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    pub request_timeout: Duration,
    /// How long one request keeps being retried on a refused connection or a 503.
    pub retry_budget: Duration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { request_timeout: REQUEST_TIMEOUT, retry_budget: RETRY_BUDGET }
    }
}

/// Fills an empty cluster with the demo catalog through the admin API at `base_url` (e.g.
/// `http://127.0.0.1:8080`), or loads nothing if it already lists an event.
pub async fn load(base_url: &str, admin_token: &str, now_ms: u64) -> anyhow::Result<DemoSummary> {
    load_with(base_url, admin_token, now_ms, LoadOptions::default()).await
}

/// [`load`] with chosen limits.
pub async fn load_with(
    base_url: &str,
    admin_token: &str,
    now_ms: u64,
    options: LoadOptions,
) -> anyhow::Result<DemoSummary> {
    let client = reqwest::Client::builder()
        .timeout(options.request_timeout)
        .build()
        .context("cannot build the http client of the demo loader")?;
    let api = Api { client, base: base_url.trim_end_matches('/').to_string(), token: admin_token.to_string(), options };

    let existing = api.call(reqwest::Method::GET, "/events?page=1&pageSize=1", None, "list events").await?;
    let listed = existing.get("events").and_then(Value::as_array).map(Vec::len).unwrap_or(0);
    if listed > 0 {
        info!(base_url = %api.base, "the cluster already has events, demo catalog not loaded");
        return Ok(DemoSummary { skipped: true, ..DemoSummary::default() });
    }

    let catalog = generate(now_ms);
    info!(
        base_url = %api.base,
        venues = catalog.venues.len(),
        performers = catalog.performers.len(),
        events = catalog.events.len(),
        "loading the demo catalog"
    );

    let mut venue_ids = Vec::with_capacity(catalog.venues.len());
    for (i, venue) in catalog.venues.iter().enumerate() {
        let what = format!("create venue `{}`", venue.name);
        let created = api.call(reqwest::Method::POST, "/admin/venues", Some(&venue_body(venue)), &what).await?;
        venue_ids.push(id_of(&created, &what)?);
        info!(
            loaded = i + 1,
            total = catalog.venues.len(),
            venue = %venue.name,
            seats = venue.seat_map.seat_count(),
            "loaded {}/{} venues",
            i + 1,
            catalog.venues.len()
        );
    }

    let mut performer_ids = Vec::with_capacity(catalog.performers.len());
    for (i, performer) in catalog.performers.iter().enumerate() {
        let what = format!("create performer `{}`", performer.name);
        let created =
            api.call(reqwest::Method::POST, "/admin/performers", Some(&performer_body(performer)), &what).await?;
        performer_ids.push(id_of(&created, &what)?);
        let loaded = i + 1;
        if loaded % 10 == 0 || loaded == catalog.performers.len() {
            info!(
                loaded,
                total = catalog.performers.len(),
                "loaded {}/{} performers",
                loaded,
                catalog.performers.len()
            );
        }
    }

    for (i, event) in catalog.events.iter().enumerate() {
        let what = format!("create event `{}` at {}", event.name, catalog.venues[event.venue].name);
        let performers: Vec<u64> = event.performers.iter().map(|&p| performer_ids[p]).collect();
        let body = event_body(event, venue_ids[event.venue], &performers);
        api.call(reqwest::Method::POST, "/admin/events", Some(&body), &what).await?;
        let loaded = i + 1;
        if loaded % 10 == 0 || loaded == catalog.events.len() {
            info!(loaded, total = catalog.events.len(), "loaded {}/{} events", loaded, catalog.events.len());
        }
    }

    let summary = DemoSummary {
        venues: venue_ids.len(),
        performers: performer_ids.len(),
        events: catalog.events.len(),
        skipped: false,
    };
    info!(venues = summary.venues, performers = summary.performers, events = summary.events, "demo catalog loaded");
    Ok(summary)
}

fn id_of(created: &Value, what: &str) -> anyhow::Result<u64> {
    match created.get("id").and_then(Value::as_u64) {
        Some(id) => Ok(id),
        None => bail!("{what}: the gateway answered without a numeric `id`: {}", truncate(&created.to_string(), 200)),
    }
}

struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
    options: LoadOptions,
}

impl Api {
    /// Sends one request and returns its JSON answer. Retries, with backoff and within the
    /// retry budget, when the connection is refused or the gateway answers 503 or 429 (nothing
    /// was done); fails at once on a timeout or any other error, naming what it was doing.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        what: &str,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{}", self.base, path);
        let body = body.map(serde_json::to_vec).transpose().context("cannot encode a request body")?;
        let started = Instant::now();
        let mut delay = Duration::from_millis(250);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut request = self.client.request(method.clone(), &url).bearer_auth(&self.token);
            if let Some(body) = &body {
                request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone());
            }
            let reason = match request.send().await {
                Ok(response) if response.status().is_success() => {
                    let text =
                        response.text().await.with_context(|| format!("{what}: reading the answer of {url} failed"))?;
                    return serde_json::from_str(&text).with_context(|| {
                        format!("{what}: {url} answered something that is not JSON: {}", truncate(&text, 200))
                    });
                }
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let detail = problem_detail(&response.text().await.unwrap_or_default());
                    if status != reqwest::StatusCode::SERVICE_UNAVAILABLE
                        && status != reqwest::StatusCode::TOO_MANY_REQUESTS
                    {
                        bail!("{what}: {method} {url} answered {status}: {detail}");
                    }
                    if let Some(wait) = retry_after {
                        delay = delay.max(wait.min(Duration::from_secs(5)));
                    }
                    format!("{method} {url} answered {status}: {detail}")
                }
                Err(e) if e.is_connect() => format!("cannot connect to {url}: {}", error_chain(&e)),
                Err(e) if e.is_timeout() => {
                    bail!(
                        "{what}: {method} {url} got no answer within {} s",
                        self.options.request_timeout.as_secs_f32()
                    )
                }
                Err(e) => bail!("{what}: {method} {url} failed: {}", error_chain(&e)),
            };
            if started.elapsed() + delay > self.options.retry_budget {
                bail!(
                    "{what}: gave up after {attempt} attempts in {:.1} s (is the cluster up and has it elected its leaders?): {reason}",
                    started.elapsed().as_secs_f32()
                );
            }
            warn!(attempt, delay_ms = delay.as_millis() as u64, %reason, "demo loader retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(4));
        }
    }
}

/// The `detail` (or `title`) of a problem+json body, or the start of whatever else it is.
fn problem_detail(body: &str) -> String {
    if let Ok(problem) = serde_json::from_str::<Value>(body) {
        for field in ["detail", "title"] {
            if let Some(text) = problem.get(field).and_then(Value::as_str) {
                return text.to_string();
            }
        }
    }
    if body.trim().is_empty() {
        "(empty body)".into()
    } else {
        truncate(body.trim(), 300)
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const NOW: u64 = 1_767_225_600_000 + 13 * HOUR_MS as u64; // 2026-01-01T13:00:00Z

    fn catalog() -> DemoCatalog {
        generate(NOW)
    }

    fn venue(catalog: &DemoCatalog, kind: VenueKind) -> Vec<&DemoVenue> {
        catalog.venues.iter().filter(|v| v.kind == kind).collect()
    }

    #[test]
    fn seat_counts_are_in_the_intended_ranges() {
        let catalog = catalog();
        let ranges = [
            (VenueKind::Club, 300..=600),
            (VenueKind::Theater, 1_500..=2_500),
            (VenueKind::Arena, 13_500..=16_500),
            (VenueKind::Stadium, 45_000..=55_000),
        ];
        for (kind, range) in ranges {
            let venues = venue(&catalog, kind);
            assert!(!venues.is_empty(), "no {kind:?}");
            for v in venues {
                let count = v.seat_map.seat_count();
                assert!(range.contains(&count), "{} ({kind:?}) has {count} seats", v.name);
            }
        }
        assert!((8..=12).contains(&catalog.venues.len()));
    }

    #[test]
    fn every_seat_map_is_valid_with_unique_sections_and_finite_coordinates() {
        for v in catalog().venues {
            assert_eq!(v.seat_map.problem(), None, "{}", v.name);
            let mut names = HashSet::new();
            for section in &v.seat_map.sections {
                assert!(names.insert(section.name.clone()), "{}: section {} twice", v.name, section.name);
                assert!(section.price_cents >= 500, "{}: {} is too cheap", v.name, section.name);
                let mut rows = HashSet::new();
                for row in &section.rows {
                    assert!(rows.insert(row.name.clone()), "{}: {} row {} twice", v.name, section.name, row.name);
                    assert!(!row.seats.is_empty());
                    let mut numbers = HashSet::new();
                    for seat in &row.seats {
                        assert!(seat.x.is_finite() && seat.y.is_finite());
                        assert!(seat.x >= 0.0 && seat.y >= 0.0, "{}: a seat at ({}, {})", v.name, seat.x, seat.y);
                        assert!(numbers.insert(seat.number.clone()));
                    }
                }
            }
        }
    }

    #[test]
    fn seats_do_not_overlap() {
        // Seats are 5 units wide: no two seats of a venue are closer than 4 units.
        for v in catalog().venues {
            let points: Vec<(f32, f32)> = v.seat_map.seats().map(|s| (s.seat.x, s.seat.y)).collect();
            let cell = 4.0f32;
            let mut grid: std::collections::HashMap<(i32, i32), Vec<usize>> = Default::default();
            for (i, p) in points.iter().enumerate() {
                grid.entry(((p.0 / cell) as i32, (p.1 / cell) as i32)).or_default().push(i);
            }
            for (i, p) in points.iter().enumerate() {
                let (gx, gy) = ((p.0 / cell) as i32, (p.1 / cell) as i32);
                for dx in -1..=1 {
                    for dy in -1..=1 {
                        for &j in grid.get(&(gx + dx, gy + dy)).map(Vec::as_slice).unwrap_or(&[]) {
                            if j != i {
                                let d = ((p.0 - points[j].0).powi(2) + (p.1 - points[j].1).powi(2)).sqrt();
                                assert!(d >= cell - 0.2, "{}: seats {i} and {j} are {d} apart", v.name);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn performers_are_about_thirty_with_unique_names() {
        let catalog = catalog();
        assert!((25..=40).contains(&catalog.performers.len()));
        let names: HashSet<_> = catalog.performers.iter().map(|p| &p.name).collect();
        assert_eq!(names.len(), catalog.performers.len());
        assert!(catalog.performers.iter().all(|p| !p.description.is_empty() && !p.genre.is_empty()));
        let venue_names: HashSet<_> = catalog.venues.iter().map(|v| &v.name).collect();
        assert_eq!(venue_names.len(), catalog.venues.len());
        let cities: HashSet<_> = catalog.venues.iter().map(|v| &v.city).collect();
        assert!(cities.len() >= 5);
    }

    #[test]
    fn at_least_sixty_events_within_six_months_of_now() {
        let catalog = catalog();
        assert!(catalog.events.len() >= 60, "{} events", catalog.events.len());
        let horizon = NOW + 183 * DAY_MS;
        let categories: HashSet<&str> = ["concert", "sports", "theater", "comedy", "family"].into();
        let mut seen = HashSet::new();
        for e in &catalog.events {
            assert!(e.starts_at_ms > NOW && e.starts_at_ms <= horizon, "{} starts at {}", e.name, e.starts_at_ms);
            assert!(categories.contains(e.category.as_str()), "{}", e.category);
            seen.insert(e.category.as_str());
            assert!((1..=3).contains(&e.performers.len()), "{}", e.name);
            assert!(e.performers.iter().all(|&p| p < catalog.performers.len()));
            let map = &catalog.venues[e.venue].seat_map;
            for name in e.prices.keys() {
                assert!(map.sections.iter().any(|s| &s.name == name), "{}: no section {name}", e.name);
            }
        }
        assert_eq!(seen, categories);
        assert!(catalog.events.iter().any(|e| !e.prices.is_empty()));
        assert!(catalog.events.windows(2).all(|w| w[0].starts_at_ms <= w[1].starts_at_ms));
        let stadium = catalog.venues.iter().position(|v| v.kind == VenueKind::Stadium).unwrap();
        let at_stadium = catalog.events.iter().filter(|e| e.venue == stadium).count();
        assert!((1..=4).contains(&at_stadium), "{at_stadium} stadium events");
        let used: HashSet<usize> = catalog.events.iter().map(|e| e.venue).collect();
        assert_eq!(used.len(), catalog.venues.len(), "every venue has an event");
    }

    #[test]
    fn events_start_in_the_local_afternoon_or_evening() {
        let catalog = catalog();
        for e in &catalog.events {
            let spec = VENUES.iter().find(|v| v.name == catalog.venues[e.venue].name).unwrap();
            let local_hour =
                ((e.starts_at_ms as i64 + spec.utc_offset_hours * HOUR_MS).rem_euclid(DAY_MS as i64)) / HOUR_MS;
            assert!((11..=22).contains(&local_hour), "{} at {local_hour}h", e.name);
        }
    }

    #[test]
    fn generation_is_deterministic() {
        assert_eq!(generate(NOW), generate(NOW));
        // The same UTC day gives the same times.
        assert_eq!(generate(NOW), generate(NOW - 12 * HOUR_MS as u64));
        // Another day shifts the times and nothing else.
        let later = generate(NOW + DAY_MS);
        let now = generate(NOW);
        assert_eq!(later.venues, now.venues);
        for (a, b) in later.events.iter().zip(&now.events) {
            assert_eq!(a.starts_at_ms, b.starts_at_ms + DAY_MS);
            assert_eq!(a.name, b.name);
        }
    }

    #[test]
    fn bodies_round_trip_into_the_model_and_stay_small() {
        let catalog = catalog();
        for v in &catalog.venues {
            let body = venue_body(v);
            let map: SeatMap = serde_json::from_value(body["seatMap"].clone()).unwrap();
            assert_eq!(map, v.seat_map, "{}", v.name);
            let size = serde_json::to_vec(&body).unwrap().len();
            // axum's default body limit is 2 MiB.
            assert!(size < 2 * 1024 * 1024 - 64 * 1024, "{}: {size} bytes", v.name);
        }
        let e = &catalog.events[0];
        let body = event_body(e, 7, &[1, 2]);
        assert_eq!(body["venueId"], 7);
        assert_eq!(body["performerIds"], json!([1, 2]));
        let starts = chrono::DateTime::parse_from_rfc3339(body["startsAt"].as_str().unwrap()).unwrap();
        assert_eq!(starts.timestamp_millis() as u64, e.starts_at_ms);
        let priced = catalog.events.iter().find(|e| !e.prices.is_empty()).unwrap();
        assert!(event_body(priced, 1, &[1])["priceCents"].is_object());
        assert!(event_body(&catalog.events.iter().find(|e| e.prices.is_empty()).unwrap().clone(), 1, &[1])
            .get("priceCents")
            .is_none());
    }

    #[test]
    fn row_letters_skip_i_and_o() {
        assert_eq!(row_letters(0), "A");
        assert_eq!(row_letters(7), "H");
        assert_eq!(row_letters(8), "J");
        assert_eq!(row_letters(23), "Z");
        assert_eq!(row_letters(24), "AA");
    }

    #[test]
    fn problem_details_are_read_from_problem_json() {
        assert_eq!(
            problem_detail(r#"{"type":"about:blank","title":"Conflict","status":409,"detail":"taken"}"#),
            "taken"
        );
        assert_eq!(problem_detail(r#"{"title":"Service Unavailable"}"#), "Service Unavailable");
        assert_eq!(problem_detail(""), "(empty body)");
        assert_eq!(problem_detail("oops"), "oops");
    }

    // --- The loader against a small fake gateway.

    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[derive(Default)]
    struct Fake {
        /// Answer this many requests with 503 first.
        unavailable: usize,
        /// What `GET /events` lists.
        events_listed: usize,
        /// Answer POSTs to this path with a 422 problem.
        refuse: Option<&'static str>,
        requests: Vec<(String, String, Value)>,
        next_id: u64,
    }

    async fn serve(fake: Arc<Mutex<Fake>>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                let fake = fake.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 65536];
                    loop {
                        // One request per connection is enough for these tests: read the head,
                        // then the body by Content-Length.
                        let head_end = buffer.windows(4).position(|w| w == b"\r\n\r\n");
                        if let Some(end) = head_end {
                            let head = String::from_utf8_lossy(&buffer[..end]).to_string();
                            let length = head
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse::<usize>().unwrap())
                                })
                                .unwrap_or(0);
                            if buffer.len() >= end + 4 + length {
                                let body = &buffer[end + 4..end + 4 + length];
                                let mut words = head.split_whitespace();
                                let (method, path) =
                                    (words.next().unwrap().to_string(), words.next().unwrap().to_string());
                                let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                                let (status, answer) = {
                                    let mut fake = fake.lock().unwrap();
                                    if fake.unavailable > 0 {
                                        fake.unavailable -= 1;
                                        (
                                            503,
                                            json!({"title": "Service Unavailable", "status": 503, "detail": "no leader yet"}),
                                        )
                                    } else if fake.refuse == Some(path.as_str()) {
                                        fake.requests.push((method, path, json));
                                        (
                                            422,
                                            json!({"title": "Unprocessable Content", "status": 422, "detail": "a seat map needs at least one seat"}),
                                        )
                                    } else if method == "GET" {
                                        let events: Vec<Value> =
                                            (0..fake.events_listed).map(|i| json!({"id": i})).collect();
                                        (200, json!({"events": events, "page": 1, "pageSize": 1, "hasMore": false}))
                                    } else {
                                        fake.next_id += 1;
                                        let id = fake.next_id;
                                        fake.requests.push((method, path, json));
                                        (201, json!({"id": id}))
                                    }
                                };
                                let text = answer.to_string();
                                let reply = format!(
                                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                                    text.len()
                                );
                                let _ = socket.write_all(reply.as_bytes()).await;
                                return;
                            }
                        }
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn loads_everything_into_an_empty_cluster_after_waiting_for_it() {
        let fake = Arc::new(Mutex::new(Fake { unavailable: 2, ..Fake::default() }));
        let base = serve(fake.clone()).await;
        let summary = load(&base, "secret", NOW).await.unwrap();
        let catalog = generate(NOW);
        assert_eq!(
            summary,
            DemoSummary {
                venues: catalog.venues.len(),
                performers: catalog.performers.len(),
                events: catalog.events.len(),
                skipped: false
            }
        );
        let fake = fake.lock().unwrap();
        let count = |path: &str| fake.requests.iter().filter(|r| r.0 == "POST" && r.1 == path).count();
        assert_eq!(count("/admin/venues"), catalog.venues.len());
        assert_eq!(count("/admin/performers"), catalog.performers.len());
        assert_eq!(count("/admin/events"), catalog.events.len());
        // Ids 1..=venues went to venues, the next ones to performers.
        let first_event = &fake.requests.iter().find(|r| r.1 == "/admin/events").unwrap().2;
        let venue_id = first_event["venueId"].as_u64().unwrap();
        assert!((1..=catalog.venues.len() as u64).contains(&venue_id));
        for id in first_event["performerIds"].as_array().unwrap() {
            assert!(id.as_u64().unwrap() > catalog.venues.len() as u64);
        }
    }

    #[tokio::test]
    async fn loads_nothing_when_events_exist() {
        let fake = Arc::new(Mutex::new(Fake { events_listed: 1, ..Fake::default() }));
        let base = serve(fake.clone()).await;
        let summary = load(&base, "secret", NOW).await.unwrap();
        assert_eq!(summary, DemoSummary { skipped: true, ..DemoSummary::default() });
        assert!(fake.lock().unwrap().requests.is_empty());
    }

    #[tokio::test]
    async fn gives_up_with_a_clear_message_when_nothing_answers() {
        // Bind and drop a listener to find a port nobody listens on.
        let port = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
        let options = LoadOptions { request_timeout: Duration::from_secs(2), retry_budget: Duration::from_millis(600) };
        let started = Instant::now();
        let error = load_with(&format!("http://127.0.0.1:{port}"), "t", NOW, options).await.unwrap_err().to_string();
        assert!(error.contains("list events") && error.contains("cannot connect"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_refusal_fails_at_once_with_the_problem_detail() {
        let fake = Arc::new(Mutex::new(Fake { refuse: Some("/admin/venues"), ..Fake::default() }));
        let base = serve(fake.clone()).await;
        let error = load(&base, "t", NOW).await.unwrap_err().to_string();
        assert!(error.contains("create venue `The Lantern Room`"), "{error}");
        assert!(error.contains("422") && error.contains("a seat map needs at least one seat"), "{error}");
        assert_eq!(fake.lock().unwrap().requests.len(), 1, "no retry after a refusal");
    }

    #[tokio::test]
    async fn unavailability_longer_than_the_budget_fails_naming_the_last_answer() {
        let fake = Arc::new(Mutex::new(Fake { unavailable: 1000, ..Fake::default() }));
        let base = serve(fake).await;
        let options = LoadOptions { request_timeout: Duration::from_secs(2), retry_budget: Duration::from_millis(700) };
        let started = Instant::now();
        let error = load_with(&base, "t", NOW, options).await.unwrap_err().to_string();
        assert!(error.contains("gave up") && error.contains("503") && error.contains("no leader yet"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
