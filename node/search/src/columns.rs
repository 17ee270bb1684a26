//! The columns a search reads, opened once per segment and kept while the segment lives.
//!
//! Opening a tantivy column decodes its header, and for a blockwise-linear column (event ids,
//! start times) every block's parameters: at a million events that is thousands of blocks, and
//! a search that opened its columns for every hit spent most of its time there. Segments never
//! change, so their opened columns are kept here, keyed by segment, and dropped once a reload
//! no longer shows the segment (after a merge).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tantivy::columnar::{Column, StrColumn};
use tantivy::index::SegmentId;
use tantivy::{DocId, Searcher, SegmentReader};

/// One segment's opened columns.
pub struct SegmentColumns {
    id: Column<u64>,
    starts_at: Column<i64>,
    group: Column<u64>,
    /// `None` in a segment where no document has the field.
    pub category: Option<StrColumn>,
    pub city: Option<StrColumn>,
}

impl SegmentColumns {
    fn open(segment: &SegmentReader) -> tantivy::Result<SegmentColumns> {
        let fast = segment.fast_fields();
        Ok(SegmentColumns {
            id: fast.u64("id")?,
            starts_at: fast.i64("starts_at")?,
            group: fast.u64("group")?,
            category: fast.str("category")?,
            city: fast.str("city")?,
        })
    }

    pub fn id(&self, doc: DocId) -> u64 {
        self.id.first(doc).unwrap_or_default()
    }

    pub fn starts_at(&self, doc: DocId) -> i64 {
        self.starts_at.first(doc).unwrap_or_default()
    }

    pub fn group(&self, doc: DocId) -> u64 {
        self.group.first(doc).unwrap_or_default()
    }
}

/// Opened columns of the segments searches see.
#[derive(Default)]
pub struct ColumnCache {
    segments: Mutex<HashMap<SegmentId, Arc<SegmentColumns>>>,
}

/// Segments whose columns are kept, most; past it the cache starts over (a reload after many
/// small commits; the columns of live segments are opened again as searches need them).
const SEGMENTS_MAX: usize = 1_024;

impl ColumnCache {
    /// The columns of `segment`, opened now if this is the first search to need them.
    pub fn get(&self, segment: &SegmentReader) -> tantivy::Result<Arc<SegmentColumns>> {
        let id = segment.segment_id();
        if let Some(columns) = self.segments.lock().expect("column cache lock").get(&id) {
            return Ok(columns.clone());
        }
        // Opened outside the lock: two searches may both open a new segment's columns once.
        let columns = Arc::new(SegmentColumns::open(segment)?);
        let mut segments = self.segments.lock().expect("column cache lock");
        if segments.len() >= SEGMENTS_MAX {
            segments.clear();
        }
        segments.insert(id, columns.clone());
        Ok(columns)
    }

    /// Drops the columns of segments `searcher` no longer has; called after each reload.
    pub fn retain_live(&self, searcher: &Searcher) {
        let live: Vec<SegmentId> = searcher.segment_readers().iter().map(|s| s.segment_id()).collect();
        self.segments.lock().expect("column cache lock").retain(|id, _| live.contains(id));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.segments.lock().expect("column cache lock").len()
    }
}

#[cfg(test)]
mod tests {
    use tantivy::{doc, Index, IndexWriter, TantivyDocument};

    use super::*;
    use crate::schema::{schema, Fields};

    fn add(writer: &mut IndexWriter, fields: &Fields, id: u64) {
        let document: TantivyDocument = doc!(
            fields.id => id, fields.group => 3u64, fields.starts_at => 1_000 * id as i64,
            fields.city => "Oslo", fields.category => "jazz",
        );
        writer.add_document(document).unwrap();
        writer.commit().unwrap();
    }

    #[test]
    fn a_segment_opens_its_columns_once_and_they_go_with_it() {
        let (schema, fields) = schema();
        let index = Index::create_in_ram(schema);
        let mut writer: IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
        add(&mut writer, &fields, 7);
        add(&mut writer, &fields, 8);
        let reader = index.reader().unwrap();
        let searcher = reader.searcher();
        let cache = ColumnCache::default();
        let first = cache.get(searcher.segment_reader(0)).unwrap();
        assert!(Arc::ptr_eq(&first, &cache.get(searcher.segment_reader(0)).unwrap()), "opened once");
        let second = cache.get(searcher.segment_reader(1)).unwrap();
        let mut read =
            [(first.id(0), first.starts_at(0), first.group(0)), (second.id(0), second.starts_at(0), second.group(0))];
        read.sort();
        assert_eq!(read, [(7, 7_000, 3), (8, 8_000, 3)]);
        assert_eq!(cache.len(), 2);

        let segments = index.searchable_segment_ids().unwrap();
        writer.merge(&segments).wait().unwrap();
        reader.reload().unwrap();
        cache.retain_live(&reader.searcher());
        assert_eq!(cache.len(), 0, "the merged segments' columns are dropped");
    }
}
