//! The shard: the index on disk, its one writer and its reader, which groups it answers for,
//! and the applied index each group is indexed up to (kept in the index's commit payload).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use model::{Event, GroupId, SearchQuery, SearchResult};
use serde::{Deserialize, Serialize};
use tantivy::directory::MmapDirectory;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyError, Term};

use crate::columns::ColumnCache;
use crate::error::SearchError;
use crate::query;
use crate::schema::{schema, Fields};

/// Memory the index writer may use before it flushes a segment.
const WRITER_HEAP_BYTES: usize = 64 << 20;

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

impl SearchShard {
    /// Opens the index under `dir`, or makes an empty one. It answers for no group until the
    /// indexer says a group is caught up.
    pub fn open(dir: &Path) -> Result<SearchShard, SearchError> {
        let folder = |action| move |cause| SearchError::Folder { action, path: dir.to_path_buf(), cause };
        std::fs::create_dir_all(dir).map_err(folder("create"))?;
        let (schema, fields) = schema();
        let index = match Index::open_or_create(Self::directory(dir)?, schema.clone()) {
            Err(TantivyError::SchemaError(_)) => {
                // The index is derived: one of an older layout is dropped and rebuilt.
                tracing::warn!(dir = %dir.display(), "the search index has an older schema; rebuilding it");
                std::fs::remove_dir_all(dir).map_err(folder("clear"))?;
                std::fs::create_dir_all(dir).map_err(folder("create"))?;
                Index::open_or_create(Self::directory(dir)?, schema)?
            }
            opened => opened?,
        };
        let writer = index.writer(WRITER_HEAP_BYTES)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        // An unreadable payload is an index current for no group: every group is rebuilt.
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
        MmapDirectory::open(dir).map_err(|e| SearchError::from(TantivyError::from(e)))
    }

    /// How many events are searchable now (as last committed).
    pub fn searchable_events(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// The applied index the index holds for `group`, as last committed.
    pub fn indexed(&self, group: GroupId) -> Option<u64> {
        self.applied.lock().expect("applied lock").get(&group).copied()
    }

    /// Whether the shard answers for `group`: only once its documents are complete and current.
    pub fn set_caught_up(&self, group: GroupId, caught_up: bool) {
        let mut groups = self.caught_up.lock().expect("caught up lock");
        if caught_up {
            groups.insert(group);
        } else {
            groups.remove(&group);
        }
    }

    /// Adds or replaces events' documents (not visible until [`SearchShard::commit`]).
    pub fn upsert(&self, group: GroupId, entries: &[(Event, u32)]) -> Result<(), SearchError> {
        let writer = self.writer.lock().expect("writer lock");
        for (event, sold) in entries {
            writer.delete_term(Term::from_field_u64(self.fields.id, event.id));
            writer.add_document(self.fields.document(group, event, *sold))?;
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
        if let Err(cause) = waiter {
            self.merging.store(false, Ordering::Release);
            return Err(SearchError::Thread { name: "search-merge", cause });
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

    /// Answers `query` for those of `groups` this shard has caught up with; the result's
    /// `groups` names them, and a group left out is one another replica must answer for.
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
