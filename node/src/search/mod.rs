//! The node's search shard: a tantivy index of the events of the groups this node hosts.
//!
//! The state machine is the source of truth and the index is derived from it: [`indexer`]
//! follows the state machines' change stream (events created, tickets sold), and rebuilds a group
//! from its state machine when the index is missing it or has fallen behind. [`query`] turns a
//! fan's search into a tantivy query: keywords over names, performers, venues and descriptions,
//! ranked by BM25, typos forgiven and the last word taken as a prefix; date range and filters;
//! facet counts. The shard answers only for groups it has caught up with, so that a search
//! never misses events silently: the raft host asks another replica for the others.
//!
//! The index lives in `<data_dir>/search`; its commit payload records, per group, the applied
//! log index it reflects.

pub mod indexer;
pub mod query;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;

use model::{Event, GroupId, SearchQuery, SearchResult};
use serde::{Deserialize, Serialize};
use tantivy::directory::MmapDirectory;
use tantivy::schema::{Field, NumericOptions, Schema, FAST, INDEXED, STORED, STRING, TEXT};
use tantivy::{doc, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

/// Memory the index writer may use before it flushes a segment.
const WRITER_HEAP_BYTES: usize = 64 << 20;

/// The fields of an event's document.
#[derive(Clone, Copy)]
pub struct Fields {
    pub id: Field,
    pub group: Field,
    pub starts_at: Field,
    pub available: Field,
    pub name: Field,
    pub performers: Field,
    pub venue: Field,
    pub description: Field,
    /// As shown (facets count them).
    pub city: Field,
    pub category: Field,
    /// Lowercased, for exact filters.
    pub city_key: Field,
    pub category_key: Field,
    pub performer_key: Field,
    pub venue_key: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let number = || NumericOptions::default().set_indexed().set_fast();
    let fields = Fields {
        id: b.add_u64_field("id", number().set_stored()),
        group: b.add_u64_field("group", number()),
        starts_at: b.add_i64_field("starts_at", number().set_stored()),
        available: b.add_u64_field("available", INDEXED),
        name: b.add_text_field("name", TEXT),
        performers: b.add_text_field("performers", TEXT),
        venue: b.add_text_field("venue", TEXT),
        description: b.add_text_field("description", TEXT),
        city: b.add_text_field("city", STRING | FAST | STORED),
        category: b.add_text_field("category", STRING | FAST | STORED),
        city_key: b.add_text_field("city_key", STRING),
        category_key: b.add_text_field("category_key", STRING),
        performer_key: b.add_text_field("performer_key", STRING),
        venue_key: b.add_text_field("venue_key", STRING),
    };
    (b.build(), fields)
}

/// What the index's commit payload records.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Payload {
    /// Per group, the applied log index the index reflects.
    applied: BTreeMap<GroupId, u64>,
}

pub struct SearchShard {
    reader: IndexReader,
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
        let directory = MmapDirectory::open(dir).map_err(|e| SearchError(e.to_string()))?;
        let index = Index::open_or_create(directory, schema)?;
        let writer = index.writer(WRITER_HEAP_BYTES)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let payload: Payload =
            index.load_metas()?.payload.and_then(|p| serde_json::from_str(&p).ok()).unwrap_or_default();
        Ok(SearchShard {
            reader,
            writer: Mutex::new(writer),
            fields,
            caught_up: Mutex::new(BTreeSet::new()),
            applied: Mutex::new(payload.applied),
        })
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
            f.city => event.venue.city.as_str(),
            f.category => event.category.as_str(),
            f.city_key => event.venue.city.to_lowercase(),
            f.category_key => event.category.to_lowercase(),
            f.venue_key => event.venue.name.to_lowercase(),
        );
        for performer in &event.performers {
            document.add_text(f.performers, &performer.name);
            document.add_text(f.performer_key, performer.name.to_lowercase());
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
        Ok(())
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
        query::run(&searcher, &self.fields, query, limit, covered.clone())
    }
}

impl raft::Searcher for SearchShard {
    fn search(&self, groups: &[GroupId], query: &SearchQuery) -> Result<SearchResult, String> {
        SearchShard::search(self, groups, query).map_err(|e| e.to_string())
    }
}
