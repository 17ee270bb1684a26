//! A collector that counts the matching events and tallies them by category and city in one
//! pass, on the columns' term ordinals: a counter per distinct value, turned into names once per
//! segment. (tantivy's aggregation framework does the same generically, several times slower.)

use std::collections::BTreeMap;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::StrColumn;
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use crate::columns::ColumnCache;

/// Matching events, and how many of them are in each category and city.
#[derive(Debug, Default)]
pub struct Tally {
    pub total: u64,
    pub categories: BTreeMap<String, u64>,
    pub cities: BTreeMap<String, u64>,
}

impl Tally {
    /// A facet's most frequent values, most frequent first (ties by name), at most `max`.
    pub fn top(counts: BTreeMap<String, u64>, max: usize) -> Vec<(String, u64)> {
        let mut counts: Vec<(String, u64)> = counts.into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        counts.truncate(max);
        counts
    }
}

/// Counts matches and tallies the string fast fields `category` and `city`, read from the
/// shard's opened columns.
pub struct TallyCollector<'a> {
    pub columns: &'a ColumnCache,
}

/// One string column and a counter per term ordinal in it.
struct Facet {
    column: Option<StrColumn>,
    counts: Vec<u64>,
}

impl Facet {
    fn new(column: Option<StrColumn>) -> Facet {
        let counts = vec![0; column.as_ref().map_or(0, |c| c.num_terms())];
        Facet { column, counts }
    }

    fn count(&mut self, doc: DocId) {
        let Some(column) = &self.column else { return };
        if let Some(ord) = column.ords().first(doc) {
            self.counts[ord as usize] += 1;
        }
    }

    /// The counts by name.
    fn named(self) -> BTreeMap<String, u64> {
        let mut named = BTreeMap::new();
        let Some(column) = self.column else { return named };
        let mut name = String::new();
        for (ord, &count) in self.counts.iter().enumerate().filter(|(_, &c)| c > 0) {
            if column.ord_to_str(ord as u64, &mut name).unwrap_or(false) {
                named.insert(name.clone(), count);
            }
        }
        named
    }
}

pub struct SegmentTally {
    total: u64,
    categories: Facet,
    cities: Facet,
}

impl Collector for TallyCollector<'_> {
    type Fruit = Tally;
    type Child = SegmentTally;

    fn for_segment(&self, _: SegmentOrdinal, segment: &SegmentReader) -> tantivy::Result<SegmentTally> {
        let columns = self.columns.get(segment)?;
        Ok(SegmentTally {
            total: 0,
            categories: Facet::new(columns.category.clone()),
            cities: Facet::new(columns.city.clone()),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, segments: Vec<Tally>) -> tantivy::Result<Tally> {
        let mut merged = Tally::default();
        for segment in segments {
            merged.total += segment.total;
            for (name, count) in segment.categories {
                *merged.categories.entry(name).or_default() += count;
            }
            for (name, count) in segment.cities {
                *merged.cities.entry(name).or_default() += count;
            }
        }
        Ok(merged)
    }
}

impl SegmentCollector for SegmentTally {
    type Fruit = Tally;

    fn collect(&mut self, doc: DocId, _: Score) {
        self.total += 1;
        self.categories.count(doc);
        self.cities.count(doc);
    }

    fn harvest(self) -> Tally {
        Tally { total: self.total, categories: self.categories.named(), cities: self.cities.named() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_values_come_first_and_are_bounded() {
        let counts = BTreeMap::from([("Oslo".to_string(), 2), ("Berlin".to_string(), 5), ("Austin".to_string(), 2)]);
        let top = Tally::top(counts, 2);
        assert_eq!(top, vec![("Berlin".to_string(), 5), ("Austin".to_string(), 2)]);
    }
}
