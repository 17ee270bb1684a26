//! Seat-map geometry: the builders of the four kinds of demo venue (clubs, theaters, the arena
//! and the stadium), made of sections of named rows of numbered seats with coordinates.
//!
//! Seat coordinates are in tenths of a metre (a seat is 5 units wide), origin top left, y down:
//! stages are at the top of clubs and theaters and at the left end of the arena, the stadium's
//! pitch is in its middle.

use std::f32::consts::PI;

use model::{Row, Seat, SeatMap, Section};

/// The width of one seat, in map units (tenths of a metre).
const SEAT_PITCH: f32 = 5.0;

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
pub(crate) struct ClubSpec {
    pub(crate) floor_rows: usize,
    pub(crate) floor_cols: usize,
    pub(crate) balcony_rows: usize,
    pub(crate) balcony_cols: usize,
    /// Seats along each side wall.
    pub(crate) rail: usize,
    /// Floor, Balcony, Rail.
    pub(crate) prices: [u64; 3],
}

pub(crate) fn club_map(spec: &ClubSpec) -> SeatMap {
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
pub(crate) struct TheaterSpec {
    /// Wall to wall, in map units, at the orchestra; the mezzanine and balcony are wider.
    pub(crate) house_width: f32,
    pub(crate) orchestra_rows: usize,
    pub(crate) mezzanine_rows: usize,
    pub(crate) balcony_rows: usize,
    /// Two boxes on each side wall.
    pub(crate) boxes: bool,
    /// Orchestra, Mezzanine, Balcony, Boxes.
    pub(crate) prices: [u64; 4],
}

pub(crate) fn theater_map(spec: &TheaterSpec) -> SeatMap {
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
pub(crate) fn arena_map() -> SeatMap {
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
pub(crate) fn stadium_map() -> SeatMap {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::tests::catalog;
    use crate::catalog::{DemoCatalog, DemoVenue, VenueKind};
    use std::collections::HashSet;

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
    fn row_letters_skip_i_and_o() {
        assert_eq!(row_letters(0), "A");
        assert_eq!(row_letters(7), "H");
        assert_eq!(row_letters(8), "J");
        assert_eq!(row_letters(23), "Z");
        assert_eq!(row_letters(24), "AA");
    }
}
