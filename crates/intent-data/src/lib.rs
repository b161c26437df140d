//! intent-data: the data layer of the intent toolkit.
//!
//! - [`record`]: [`Example`] and [`Dataset`], the in-memory form of labeled utterances;
//! - [`formats`]: loaders and writers for intents files, outcome definitions, labeled JSONL,
//!   multi-label JSON and interactions JSON, with format detection;
//! - [`import`]: CLINC150, BANKING77, NLU++ and MovieLens importers;
//! - [`validate`], [`stats`]: checks and statistics;
//! - [`augment`], [`split`]: augmentation, stratified splits, merging;
//! - [`text`]: tokenizer, vocabulary and sparse feature vectors;
//! - [`durable`]: the crash-safe file and folder writes every writer of the toolkit uses.
//!
//! Every error names the file and line (or JSON path) and what was expected.
//!
//! ```
//! use intent_data::split::{stratified_split, SplitConfig};
//! use intent_data::{load_dataset, LoadOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("train.jsonl");
//! let lines: Vec<String> = (0..10)
//!     .flat_map(|i| [format!(r#"{{"text": "where is order {i}", "label": "order_status"}}"#),
//!                    format!(r#"{{"text": "hello number {i}", "label": "greeting"}}"#)])
//!     .collect();
//! std::fs::write(&path, lines.join("\n"))?;
//! let data = load_dataset(&path, None, &LoadOptions::default())?.data; // format from the content
//! assert_eq!((data.len(), data.labels().len()), (20, 2));
//! let config = SplitConfig { train_fraction: 0.8, test_fraction: 0.0, min_val_per_label: 1, seed: 7 };
//! let split = stratified_split(&data, config)?;
//! assert_eq!(split.train.len() + split.val.len(), 20);
//! # Ok(())
//! # }
//! ```

pub mod augment;
pub mod durable;
pub mod error;
pub mod formats;
pub mod import;
pub mod io;
pub mod record;
pub mod recsys;
pub mod split;
pub mod stats;
pub mod text;
pub mod validate;

pub use error::{DataError, Location, Result, Skipped};
pub use formats::{detect_format, load_dataset, write_dataset, Format, LoadOptions, Loaded};
pub use record::{normalize_text, Dataset, Example};

use sha2::{Digest, Sha256};

/// SHA-256 (hex) of a data set's content: texts and labels in order. Stored with models so a
/// model can be traced to the exact data it was trained on.
pub fn data_hash(data: &Dataset) -> String {
    let mut h = Sha256::new();
    for e in &data.examples {
        h.update(e.text.as_bytes());
        h.update([0u8]);
        for l in &e.labels {
            h.update(l.as_bytes());
            h.update([1u8]);
        }
        h.update([2u8]);
    }
    hex::encode(h.finalize())
}
