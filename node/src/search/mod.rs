//! The node's search shard: a tantivy index of the events of the groups this node hosts.
//!
//! The state machine is the source of truth and the index is derived from it: [`indexer`]
//! follows the state machines' change stream (events created, tickets sold), and rebuilds a group
//! from its state machine when the index is missing it or has fallen behind. [`query`] turns a
//! fan's search into a tantivy query: keywords over names, performers, venues and descriptions,
//! ranked by BM25, typos forgiven and the last word taken as a prefix; date range and filters;
//! [`tally`] counts the matches and their facets in one pass. The shard answers only for groups it has caught up with, so that a search
//! never misses events silently: the raft host asks another replica for the others.
//!
//! The index lives in `<data_dir>/search`; its commit payload records, per group, the applied
//! log index it reflects.

pub mod columns;
pub mod indexer;
pub mod query;
pub mod tally;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use columns::ColumnCache;
use model::{Event, GroupId, SearchQuery, SearchResult};
use serde::{Deserialize, Serialize};
use tantivy::directory::MmapDirectory;
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED, STRING,
};
use tantivy::{doc, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, TantivyError, Term};

/// Memory the index writer may use before it flushes a segment.
const WRITER_HEAP_BYTES: usize = 64 << 20;
/// Longest word prefix indexed as a term of its own; a longer prefix is matched by walking the
/// term dictionary instead.
pub const PREFIX_CHARS_MAX: usize = 12;

/// The fields of an event's document.
#[derive(Clone, Copy)]
pub struct Fields {
    pub id: Field,
    pub group: Field,
    pub starts_at: Field,
    pub available: Field,
    /// Ranked by BM25 (term frequencies, no positions: no phrase queries).
    pub name: Field,
    pub performers: Field,
    pub venue: Field,
    pub description: Field,
    /// The words of the name, performers and venue, once: where typos are looked up.
    pub words: Field,
    /// Every prefix (up to `PREFIX_CHARS_MAX` characters) of those words: a fan still typing
    /// matches with one term lookup instead of a walk of the term dictionary.
    pub prefixes: Field,
    /// As shown (facets count them, by their column's term ordinals).
    pub city: Field,
    pub category: Field,
    /// Lowercased, for exact filters.
    pub city_key: Field,
    pub category_key: Field,
    pub performer_key: Field,
    pub venue_key: Field,
}

fn text(tokenizer: &str, record: IndexRecordOption, norms: bool) -> TextOptions {
    let indexing = TextFieldIndexing::default().set_tokenizer(tokenizer).set_index_option(record).set_fieldnorms(norms);
    TextOptions::default().set_indexing_options(indexing)
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let number = || NumericOptions::default().set_indexed().set_fast();
    let ranked = || text("default", IndexRecordOption::WithFreqs, true);
    let fields = Fields {
        id: b.add_u64_field("id", number()),
        group: b.add_u64_field("group", number()),
        starts_at: b.add_i64_field("starts_at", number()),
        available: b.add_u64_field("available", INDEXED),
        name: b.add_text_field("name", ranked()),
        performers: b.add_text_field("performers", ranked()),
        venue: b.add_text_field("venue", ranked()),
        description: b.add_text_field("description", ranked()),
        words: b.add_text_field("words", text("default", IndexRecordOption::Basic, false)),
        prefixes: b.add_text_field("prefixes", text("raw", IndexRecordOption::Basic, false)),
        city: b.add_text_field("city", STRING | FAST),
        category: b.add_text_field("category", STRING | FAST),
        city_key: b.add_text_field("city_key", STRING),
        category_key: b.add_text_field("category_key", STRING),
        performer_key: b.add_text_field("performer_key", STRING),
        venue_key: b.add_text_field("venue_key", STRING),
    };
    (b.build(), fields)
}

/// The prefixes of `text`'s words a fan may type, each once.
fn prefixes(text: &str) -> BTreeSet<String> {
    let mut prefixes = BTreeSet::new();
    for word in query::words(text) {
        let ends = word.char_indices().map(|(i, _)| i).skip(1).chain([word.len()]);
        for end in ends.take(PREFIX_CHARS_MAX) {
            prefixes.insert(word[..end].to_string());
        }
    }
    prefixes
}

/// What the index's commit payload records.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Payload {
    /// Per group, the applied log index the index reflects.
    applied: BTreeMap<GroupId, u64>,
}

pub struct SearchShard {
    index: Index,
    reader: IndexReader,
    /// Set while a merge of every segment runs (one at a time).
    merging: Arc<AtomicBool>,
    /// The columns searches read, opened once per segment.
    columns: Arc<ColumnCache>,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    /// Groups whose documents are complete and current: the only ones this shard answers for.
    caught_up: Mutex<BTreeSet<GroupId>>,
    /// The applied index each group is indexed up to (committed or about to be).
    applied: Mutex<BTreeMap<GroupId, u64>>,
}

#[derive(Debug, thiserror::Error)]
#[error("search index: {0}")]
pub struct SearchError(String);

impl From<tantivy::TantivyError> for SearchError {
    fn from(e: tantivy::TantivyError) -> Self {
        SearchError(e.to_string())
    }
}

impl SearchShard {
    /// Opens the index under `dir`, or makes an empty one.
    pub fn open(dir: &Path) -> Result<SearchShard, SearchError> {
        std::fs::create_dir_all(dir).map_err(|e| SearchError(format!("cannot create {}: {e}", dir.display())))?;
        let (schema, fields) = schema();
        let index = match Index::open_or_create(Self::directory(dir)?, schema.clone()) {
            Err(TantivyError::SchemaError(_)) => {
                // The index is derived: one of an older layout is dropped and rebuilt.
                tracing::warn!(dir = %dir.display(), "the search index has an older schema; rebuilding it");
                std::fs::remove_dir_all(dir)
                    .map_err(|e| SearchError(format!("cannot clear {}: {e}", dir.display())))?;
                std::fs::create_dir_all(dir)
                    .map_err(|e| SearchError(format!("cannot create {}: {e}", dir.display())))?;
                Index::open_or_create(Self::directory(dir)?, schema)?
            }
            opened => opened?,
        };
        let writer = index.writer(WRITER_HEAP_BYTES)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let payload: Payload =
            index.load_metas()?.payload.and_then(|p| serde_json::from_str(&p).ok()).unwrap_or_default();
        Ok(SearchShard {
            index,
            reader,
            merging: Arc::new(AtomicBool::new(false)),
            columns: Arc::new(ColumnCache::default()),
            writer: Mutex::new(writer),
            fields,
            caught_up: Mutex::new(BTreeSet::new()),
            applied: Mutex::new(payload.applied),
        })
    }

    fn directory(dir: &Path) -> Result<MmapDirectory, SearchError> {
        MmapDirectory::open(dir).map_err(|e| SearchError(e.to_string()))
    }

    /// How many events are searchable now (as last committed).
    pub fn searchable_events(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// The applied index the index holds for `group`, as last committed.
    pub fn indexed(&self, group: GroupId) -> Option<u64> {
        self.applied.lock().expect("applied lock").get(&group).copied()
    }

    pub fn set_caught_up(&self, group: GroupId, caught_up: bool) {
        let mut groups = self.caught_up.lock().expect("caught up lock");
        if caught_up {
            groups.insert(group);
        } else {
            groups.remove(&group);
        }
    }

    fn document(&self, group: GroupId, event: &Event, sold: u32) -> TantivyDocument {
        let f = &self.fields;
        let mut document = doc!(
            f.id => event.id,
            f.group => u64::from(group),
            f.starts_at => event.starts_at as i64,
            f.available => u64::from(sold < event.ticket_count),
            f.name => event.name.as_str(),
            f.venue => event.venue.name.as_str(),
            f.description => event.description.as_str(),
            f.words => event.name.as_str(),
            f.words => event.venue.name.as_str(),
            f.city => event.venue.city.as_str(),
            f.category => event.category.as_str(),
            f.city_key => event.venue.city.to_lowercase(),
            f.category_key => event.category.to_lowercase(),
            f.venue_key => event.venue.name.to_lowercase(),
        );
        let mut typed = format!("{} {}", event.name, event.venue.name);
        for performer in &event.performers {
            document.add_text(f.performers, &performer.name);
            document.add_text(f.words, &performer.name);
            document.add_text(f.performer_key, performer.name.to_lowercase());
            typed.push(' ');
            typed.push_str(&performer.name);
        }
        for prefix in prefixes(&typed) {
            document.add_text(f.prefixes, prefix);
        }
        document
    }

    /// Adds or replaces events' documents (not visible until [`SearchShard::commit`]).
    pub fn upsert(&self, group: GroupId, entries: &[(Event, u32)]) -> Result<(), SearchError> {
        let writer = self.writer.lock().expect("writer lock");
        for (event, sold) in entries {
            writer.delete_term(Term::from_field_u64(self.fields.id, event.id));
            writer.add_document(self.document(group, event, *sold))?;
        }
        Ok(())
    }

    /// Drops every document of a group (before a rebuild).
    pub fn clear(&self, group: GroupId) {
        self.writer.lock().expect("writer lock").delete_term(Term::from_field_u64(self.fields.group, u64::from(group)));
    }

    /// Makes everything written visible, recording the applied index of each group.
    pub fn commit(&self, applied: &BTreeMap<GroupId, u64>) -> Result<(), SearchError> {
        let payload = {
            let mut recorded = self.applied.lock().expect("applied lock");
            recorded.extend(applied.iter().map(|(g, i)| (*g, *i)));
            serde_json::to_string(&Payload { applied: recorded.clone() }).expect("payloads encode")
        };
        let mut writer = self.writer.lock().expect("writer lock");
        let mut commit = writer.prepare_commit()?;
        commit.set_payload(&payload);
        commit.commit()?;
        drop(writer);
        self.reader.reload()?;
        self.columns.retain_live(&self.reader.searcher());
        Ok(())
    }

    /// Starts merging every segment into one, unless a merge is already running: a search walks
    /// each segment's term dictionary, so fewer segments answer faster. The indexer asks for it
    /// when changes have stopped coming for a while.
    pub fn merge_all(&self) -> Result<(), SearchError> {
        let segments = self.index.searchable_segment_ids()?;
        if segments.len() < 2 || self.merging.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let merge = self.writer.lock().expect("writer lock").merge(&segments);
        let (reader, merging, columns) = (self.reader.clone(), self.merging.clone(), self.columns.clone());
        // The merge runs on tantivy's merge threads; this thread only waits for it.
        let waiter = std::thread::Builder::new().name("search-merge".into()).spawn(move || {
            match merge.wait() {
                Ok(_) => tracing::info!(segments = segments.len(), "search segments merged"),
                Err(error) => tracing::debug!(%error, "search segments not merged"),
            }
            match reader.reload() {
                Ok(()) => columns.retain_live(&reader.searcher()),
                Err(error) => tracing::warn!(%error, "search reader reload failed"),
            }
            merging.store(false, Ordering::Release);
        });
        if let Err(error) = waiter {
            self.merging.store(false, Ordering::Release);
            return Err(SearchError(format!("cannot start a merge waiter: {error}")));
        }
        Ok(())
    }

    /// The shard's gauges in Prometheus text: segments a search walks, documents, merging.
    pub fn metrics(&self) -> String {
        let searcher = self.reader.searcher();
        let caught_up = self.caught_up.lock().expect("caught up lock").len();
        let gauges = [
            ("search_segments", "segments a search walks", searcher.segment_readers().len() as u64),
            ("search_documents", "events in the search index", searcher.num_docs()),
            ("search_groups_caught_up", "groups the shard answers for", caught_up as u64),
            ("search_merging", "1 while segments are being merged", u64::from(self.merging.load(Ordering::Acquire))),
        ];
        let mut text = String::new();
        for (name, help, value) in gauges {
            text.push_str(&format!(
                "# HELP boxoffice_{name} {help}\n# TYPE boxoffice_{name} gauge\nboxoffice_{name} {value}\n"
            ));
        }
        text
    }

    /// Answers `query` for those of `groups` this shard has caught up with.
    pub fn search(&self, groups: &[GroupId], query: &SearchQuery) -> Result<SearchResult, SearchError> {
        let covered: Vec<GroupId> = {
            let caught_up = self.caught_up.lock().expect("caught up lock");
            groups.iter().copied().filter(|g| caught_up.contains(g)).collect()
        };
        if covered.is_empty() {
            return Ok(SearchResult::default());
        }
        let searcher = self.reader.searcher();
        let all =
            covered.len() == groups.len() && covered.len() == self.caught_up.lock().expect("caught up lock").len();
        let limit = if all { None } else { Some(covered.as_slice()) };
        query::run(&searcher, &self.fields, &self.columns, query, limit, covered.clone())
    }
}

impl raft::Searcher for SearchShard {
    fn search(&self, groups: &[GroupId], query: &SearchQuery) -> Result<SearchResult, String> {
        SearchShard::search(self, groups, query).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prefix_of_every_word_is_a_term_up_to_the_limit() {
        let found = prefixes("Taylor Swift at the Philharmonics");
        for prefix in ["t", "ta", "taylor", "s", "swift", "at", "the", "philharmonic"] {
            assert!(found.contains(prefix), "{prefix} missing");
        }
        assert!(!found.contains("philharmonics"), "a prefix longer than {PREFIX_CHARS_MAX} characters");
        assert!(found.iter().all(|p| p.chars().count() <= PREFIX_CHARS_MAX));
        assert_eq!(prefixes("Öl Ü").into_iter().collect::<Vec<_>>(), vec!["ö", "öl", "ü"]);
    }
}
