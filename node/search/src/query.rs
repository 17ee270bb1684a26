//! A fan's search as a tantivy query, and its answer.
//!
//! Every keyword must match somewhere: exactly (BM25, in the name most, then performers, venue,
//! description), within one or two typos (in names, performers and venues), or, for the last
//! word, as a prefix (the fan is still typing). Filters and the date range must all hold.
//!
//! Typos are looked for only when a word is in no name, performer or venue as typed: walking the
//! term dictionary with a Levenshtein automaton is the dearest part of a search, and a word that
//! exists is almost always the word meant. Prefixes are terms of their own (see
//! [`crate::schema::PREFIX_CHARS_MAX`]), so the last word costs one lookup too.

use std::cmp::Reverse;
use std::ops::Bound;
use std::sync::Arc;

use model::{GroupId, SearchHit, SearchQuery, SearchResult, SearchSort};
use tantivy::collector::{Collector, TopDocs};
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, Query, RangeQuery, TermQuery,
    TermSetQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocAddress, DocId, Searcher, SegmentReader, Term};

use crate::columns::ColumnCache;
use crate::error::SearchError;
use crate::schema::{self, Fields, PREFIX_CHARS_MAX};
use crate::tally::{Tally, TallyCollector};

/// Most keywords a search looks at.
const KEYWORDS_MAX: usize = 8;
/// Facet values returned per facet.
const FACET_VALUES_MAX: usize = 20;
/// The score of a match by prefix only: below a whole word in a name.
const PREFIX_SCORE: f32 = 1.0;
/// A word in more than this share of the events ("the", "live") is left out of a search that
/// has rarer words: it narrows nothing, ranks almost nothing (BM25 gives it a tiny weight), and
/// walking its postings costs more than the rest of the search.
const COMMON_WORD_SHARE: f64 = 0.2;

/// The words of a fan's keywords, as the index splits text, the first `KEYWORDS_MAX` of them.
fn words(keyword: &str) -> Vec<String> {
    schema::words(keyword).take(KEYWORDS_MAX).collect()
}

/// Typos forgiven in a word: none in short ones, one from four letters, two from eight.
fn typos(word: &str) -> u8 {
    match word.chars().count() {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

fn boosted(query: Box<dyn Query>, boost: f32) -> Box<dyn Query> {
    Box::new(BoostQuery::new(query, boost))
}

/// The clause one word adds: it must match in at least one way.
fn word_clause(f: &Fields, word: &Word, last: bool) -> Box<dyn Query> {
    let (known, word) = (word.in_names > 0, word.text.as_str());
    let mut ways: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    let weighted = [(f.name, 3.0), (f.performers, 2.5), (f.venue, 1.5), (f.description, 0.5)];
    for (field, weight) in weighted {
        let term = Term::from_field_text(field, word);
        ways.push((Occur::Should, boosted(Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs)), weight)));
    }
    let distance = typos(word);
    let as_typed = Term::from_field_text(f.words, word);
    if distance > 0 && !known {
        ways.push((Occur::Should, Box::new(FuzzyTermQuery::new(as_typed.clone(), distance, true))));
    }
    if last {
        let prefix: Box<dyn Query> = if word.chars().count() <= PREFIX_CHARS_MAX {
            let term = Term::from_field_text(f.prefixes, word);
            Box::new(TermQuery::new(term, IndexRecordOption::Basic))
        } else {
            Box::new(FuzzyTermQuery::new_prefix(as_typed, 0, false))
        };
        ways.push((Occur::Should, Box::new(ConstScoreQuery::new(prefix, PREFIX_SCORE))));
    }
    Box::new(BooleanQuery::new(ways))
}

fn exact(field: Field, value: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(Term::from_field_text(field, &value.trim().to_lowercase()), IndexRecordOption::Basic))
}

/// A keyword, and in how many events it is as a whole word, looked up once.
struct Word {
    text: String,
    /// In names, performers or venues (`words`): none means it may be a typo.
    in_names: u64,
    in_descriptions: u64,
}

impl Word {
    fn look_up(searcher: &Searcher, f: &Fields, text: String) -> Word {
        // A failed lookup counts as a missing word: the search is then broader, never narrower.
        let events = |field| searcher.doc_freq(&Term::from_field_text(field, &text)).unwrap_or(0);
        let (in_names, in_descriptions) = (events(f.words), events(f.description));
        Word { text, in_names, in_descriptions }
    }

    /// In how many events the word is, at most, in any one field.
    fn events(&self) -> u64 {
        self.in_names.max(self.in_descriptions)
    }
}

/// The words a search looks for: all of them, less the common ones when a rare word remains
/// ("the midnight rivers" looks for "midnight rivers"; "rock festival", both common, for both).
/// The last word stays whatever it is: the fan may still be typing it.
fn telling_words(searcher: &Searcher, words: Vec<Word>) -> Vec<Word> {
    let common = (searcher.num_docs() as f64 * COMMON_WORD_SHARE) as u64;
    let is_common: Vec<bool> = words.iter().map(|w| w.events() > common).collect();
    if is_common.iter().all(|&c| c) {
        return words;
    }
    let last = words.len() - 1;
    let keep = |(n, common): &(usize, bool)| !common || *n == last;
    words.into_iter().zip(is_common.into_iter().enumerate()).filter(|(_, c)| keep(c)).map(|(w, _)| w).collect()
}

/// The whole query: keywords, filters, date range, groups.
pub fn build(searcher: &Searcher, f: &Fields, query: &SearchQuery, groups: Option<&[GroupId]>) -> Box<dyn Query> {
    let mut must: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    if let Some(keyword) = &query.keyword {
        let looked_up = words(keyword).into_iter().map(|w| Word::look_up(searcher, f, w)).collect();
        let words = telling_words(searcher, looked_up);
        let count = words.len();
        for (n, word) in words.iter().enumerate() {
            must.push((Occur::Must, word_clause(f, word, n + 1 == count)));
        }
    }
    let filters = [
        (f.city_key, &query.city),
        (f.category_key, &query.category),
        (f.performer_key, &query.performer),
        (f.venue_key, &query.venue),
    ];
    for (field, value) in filters {
        if let Some(value) = value {
            must.push((Occur::Must, exact(field, value)));
        }
    }
    if query.start.is_some() || query.end.is_some() {
        let bound = |at: Option<u64>, include: bool| match at {
            Some(at) if include => Bound::Included(Term::from_field_i64(f.starts_at, at as i64)),
            Some(at) => Bound::Excluded(Term::from_field_i64(f.starts_at, at as i64)),
            None => Bound::Unbounded,
        };
        must.push((Occur::Must, Box::new(RangeQuery::new(bound(query.start, true), bound(query.end, false)))));
    }
    if let Some(available) = query.available {
        let term = Term::from_field_u64(f.available, u64::from(available));
        must.push((Occur::Must, Box::new(TermQuery::new(term, IndexRecordOption::Basic))));
    }
    if let Some(groups) = groups {
        let terms = groups.iter().map(|g| Term::from_field_u64(f.group, u64::from(*g)));
        must.push((Occur::Must, Box::new(TermSetQuery::new(terms))));
    }
    if must.is_empty() {
        return Box::new(AllQuery);
    }
    Box::new(BooleanQuery::new(must))
}

/// Runs a search on one searcher; `groups` limits it to some groups (all when `None`), and
/// `covered` is what the answer says it covers.
pub fn run(
    searcher: &Searcher,
    f: &Fields,
    columns: &Arc<ColumnCache>,
    query: &SearchQuery,
    groups: Option<&[GroupId]>,
    covered: Vec<GroupId>,
) -> Result<SearchResult, SearchError> {
    let tantivy_query = build(searcher, f, query, groups);
    let wanted = (query.offset + query.limit).clamp(1, model::SEARCH_HITS_MAX) as usize;
    let by_date = query.sort == SearchSort::Date || query.keyword.is_none();
    let tally = TallyCollector { columns };
    let (addresses, tally): (Vec<(f32, DocAddress)>, Tally) = if by_date {
        let (top, tally) = searcher.search(&tantivy_query, &(earliest_first(columns.clone(), wanted), tally))?;
        (top.into_iter().map(|(_, a)| (0.0, a)).collect(), tally)
    } else {
        searcher.search(&tantivy_query, &(TopDocs::with_limit(wanted), tally))?
    };
    let mut hits = Vec::with_capacity(addresses.len());
    for (score, address) in addresses {
        // Read from the columns, not the document store: no block to decompress per hit.
        let segment = columns.get(searcher.segment_reader(address.segment_ord))?;
        let doc = address.doc_id;
        let starts_at = segment.starts_at(doc).max(0) as u64;
        hits.push(SearchHit { event: segment.id(doc), group: segment.group(doc) as GroupId, score, starts_at });
    }
    Ok(SearchResult {
        hits,
        total: tally.total,
        categories: Tally::top(tally.categories, FACET_VALUES_MAX),
        cities: Tally::top(tally.cities, FACET_VALUES_MAX),
        groups: covered,
    })
}

/// The `wanted` earliest matches, by the start time in the shard's opened columns.
fn earliest_first(columns: Arc<ColumnCache>, wanted: usize) -> impl Collector<Fruit = Vec<(Reverse<i64>, DocAddress)>> {
    TopDocs::with_limit(wanted).custom_score(move |segment: &SegmentReader| {
        let opened = columns.get(segment);
        if let Err(error) = &opened {
            // Cannot happen with this index's schema; the segment's order is then arbitrary.
            tracing::warn!(%error, "no start time column in a search segment");
        }
        move |doc: DocId| Reverse(opened.as_ref().map_or(i64::MAX, |c| c.starts_at(doc)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_split_like_the_index() {
        assert_eq!(words("Tayler  SWIFT!"), vec!["tayler", "swift"]);
        assert_eq!(words("AC/DC 2027"), vec!["ac", "dc", "2027"]);
        assert!(words(" -- ").is_empty());
    }

    #[test]
    fn common_words_are_left_out_when_rarer_ones_remain() {
        let (schema, f) = schema::schema();
        let index = tantivy::Index::create_in_ram(schema);
        let mut writer: tantivy::IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
        for n in 0..10 {
            let name = if n == 0 { "The Midnight Rivers" } else { "The Paper Wolves" };
            let document: tantivy::TantivyDocument =
                tantivy::doc!(f.words => name, f.description => "live at the hall");
            writer.add_document(document).unwrap();
        }
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        let telling = |text: &str| -> Vec<String> {
            let looked_up = words(text).into_iter().map(|w| Word::look_up(&searcher, &f, w)).collect();
            telling_words(&searcher, looked_up).into_iter().map(|w| w.text).collect()
        };
        assert_eq!(telling("the midnight rivers"), vec!["midnight", "rivers"]);
        assert_eq!(telling("the hall"), vec!["the", "hall"], "all common: all kept");
        assert_eq!(telling("midnight the"), vec!["midnight", "the"], "the last word may be a prefix: kept");
        assert_eq!(telling("paper wolves"), vec!["paper", "wolves"], "both common: both kept");
        assert_eq!(telling("the paper midnight"), vec!["midnight"]);
    }

    #[test]
    fn longer_words_forgive_more_typos() {
        assert_eq!((typos("ab"), typos("swift"), typos("philharmonic")), (0, 1, 2));
    }
}
