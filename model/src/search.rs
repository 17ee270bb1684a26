//! Event search: what a fan asks and what a node's search shard answers.
//!
//! Each node indexes the events of the groups it hosts; a search names the groups it wants
//! answered, and any node that hosts them (with its index caught up) can answer.

use serde::{Deserialize, Serialize};

use crate::{EventId, GroupId, Millis};

/// Most hits one search returns (offset + limit).
pub const SEARCH_HITS_MAX: u32 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SearchSort {
    /// Best match first (BM25); without keywords, earliest first.
    #[default]
    Relevance,
    /// Earliest first.
    Date,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SearchQuery {
    /// Words to find in names, descriptions, performers and venues; typos forgiven, the last word
    /// may be a prefix.
    pub keyword: Option<String>,
    /// Events starting at or after `start`, before `end`.
    pub start: Option<Millis>,
    pub end: Option<Millis>,
    pub city: Option<String>,
    pub category: Option<String>,
    pub performer: Option<String>,
    pub venue: Option<String>,
    /// Only events with tickets left (or, with `false`, only sold-out ones).
    pub available: Option<bool>,
    pub sort: SearchSort,
    /// The hits wanted: `offset..offset + limit` of the merged order.
    pub offset: u32,
    pub limit: u32,
}

/// One matching event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    pub event: EventId,
    pub group: GroupId,
    pub score: f32,
    pub starts_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SearchResult {
    /// The best `offset + limit` hits in the asked order.
    pub hits: Vec<SearchHit>,
    /// How many events match.
    pub total: u64,
    /// Matching events per category and per city.
    pub categories: Vec<(String, u64)>,
    pub cities: Vec<(String, u64)>,
    /// The groups this answer covers.
    pub groups: Vec<GroupId>,
}

impl SearchResult {
    /// Merges the answers of several nodes (for disjoint groups) into one.
    pub fn merge(results: Vec<SearchResult>, sort: SearchSort, keep: usize) -> SearchResult {
        let mut merged = SearchResult::default();
        let mut categories = std::collections::BTreeMap::new();
        let mut cities = std::collections::BTreeMap::new();
        for result in results {
            merged.hits.extend(result.hits);
            merged.total += result.total;
            merged.groups.extend(result.groups);
            result.categories.into_iter().for_each(|(k, n)| *categories.entry(k).or_insert(0) += n);
            result.cities.into_iter().for_each(|(k, n)| *cities.entry(k).or_insert(0) += n);
        }
        merged.hits.sort_by(|a, b| order(a, b, sort));
        merged.hits.truncate(keep);
        merged.categories = by_count(categories);
        merged.cities = by_count(cities);
        merged.groups.sort_unstable();
        merged
    }
}

/// The order of hits: by score (ties by date), or by date; then by id so that it is total.
pub fn order(a: &SearchHit, b: &SearchHit, sort: SearchSort) -> std::cmp::Ordering {
    let by_date = a.starts_at.cmp(&b.starts_at).then(a.event.cmp(&b.event));
    match sort {
        SearchSort::Relevance => b.score.total_cmp(&a.score).then(by_date),
        SearchSort::Date => by_date,
    }
}

fn by_count(counts: std::collections::BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(event: EventId, score: f32, starts_at: Millis) -> SearchHit {
        SearchHit { event, group: 1, score, starts_at }
    }

    #[test]
    fn answers_of_several_nodes_merge_by_score_or_date() {
        let a = SearchResult {
            hits: vec![hit(1, 2.0, 30), hit(2, 1.0, 10)],
            total: 2,
            categories: vec![("concert".into(), 2)],
            cities: vec![("Oslo".into(), 2)],
            groups: vec![1],
        };
        let b = SearchResult {
            hits: vec![hit(3, 1.5, 20)],
            total: 1,
            categories: vec![("comedy".into(), 1)],
            cities: vec![("Oslo".into(), 1)],
            groups: vec![2],
        };
        let by_score = SearchResult::merge(vec![a.clone(), b.clone()], SearchSort::Relevance, 10);
        assert_eq!(by_score.hits.iter().map(|h| h.event).collect::<Vec<_>>(), vec![1, 3, 2]);
        assert_eq!(by_score.total, 3);
        assert_eq!(by_score.cities, vec![("Oslo".into(), 3)]);
        assert_eq!(by_score.categories, vec![("concert".into(), 2), ("comedy".into(), 1)]);
        let by_date = SearchResult::merge(vec![a, b], SearchSort::Date, 2);
        assert_eq!(by_date.hits.iter().map(|h| h.event).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(by_date.groups, vec![1, 2]);
    }
}
