//! An event's document: the index's fields, how an event fills them, and how text splits into
//! the words the index holds. The shard writes documents with it and `query` reads
//! them with it; it uses neither.

use std::collections::BTreeSet;

use model::{Event, GroupId};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED, STRING,
};
use tantivy::{doc, TantivyDocument};

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

/// The index's schema and its fields. An index written with another schema is rebuilt.
pub fn schema() -> (Schema, Fields) {
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

/// Splits text as the index's default tokenizer does: lowercase runs of letters and digits.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

/// The prefixes of `text`'s words a fan may type, each once: every word's, however many words
/// the text has.
fn prefixes(text: &str) -> BTreeSet<String> {
    let mut prefixes = BTreeSet::new();
    for word in words(text) {
        let ends = word.char_indices().map(|(i, _)| i).skip(1).chain([word.len()]);
        for end in ends.take(PREFIX_CHARS_MAX) {
            prefixes.insert(word[..end].to_string());
        }
    }
    prefixes
}

impl Fields {
    /// The document of `event` of `group`, `sold` of whose tickets are sold.
    pub fn document(&self, group: GroupId, event: &Event, sold: u32) -> TantivyDocument {
        let f = self;
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

    #[test]
    fn a_long_text_has_the_prefixes_of_its_last_words_too() {
        // An event's name, venue and performers run past the number of keywords a search looks
        // at; a fan typing the last performer's name must still find it.
        let found = prefixes("The Long Night of the Midnight Rivers Live Grand Hall Oslo Zephyr");
        assert!(found.contains("zep") && found.contains("zephyr"), "{found:?}");
    }
}
