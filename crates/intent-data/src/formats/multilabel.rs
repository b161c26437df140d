//! Multi-label classification JSON: `{"metadata": {num_samples, num_classes,
//! class_distribution}, "samples": [{"text", "taxonomy_codes": [..], "confidence"?}]}`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Location, Result, Skipped};
use crate::formats::{LoadOptions, Loaded};
use crate::io::{atomic_write, read_text};
use crate::record::{Dataset, Example};
use crate::validate::check_example;

/// Summary block of a multi-label file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MultiLabelMeta {
    /// Number of samples.
    pub num_samples: usize,
    /// Number of distinct codes.
    pub num_classes: usize,
    /// Samples per code.
    pub class_distribution: BTreeMap<String, usize>,
}

/// One sample: a text and its taxonomy codes (labels).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiLabelSample {
    /// The utterance.
    pub text: String,
    /// Its labels.
    pub taxonomy_codes: Vec<String>,
    /// Optional confidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiLabelFile {
    /// Summary (recomputed on write; checked, with a warning, on read).
    pub metadata: MultiLabelMeta,
    /// The samples.
    pub samples: Vec<MultiLabelSample>,
}

/// Loads a multi-label JSON file.
pub fn load_multilabel(path: &Path, opts: &LoadOptions) -> Result<Loaded<Dataset>> {
    let text = read_text(path)?;
    let file: MultiLabelFile = serde_json::from_str(&text).map_err(|e| DataError::json(path, &e))?;
    if file.metadata.num_samples != file.samples.len() {
        tracing::warn!(
            "{}: metadata.num_samples is {} but the file has {} samples",
            path.display(),
            file.metadata.num_samples,
            file.samples.len()
        );
    }
    let mut examples = Vec::with_capacity(file.samples.len());
    let mut skipped = Vec::new();
    let mut locations = Vec::new();
    for (i, s) in file.samples.into_iter().enumerate() {
        let ex = Example {
            text: s.text,
            labels: s.taxonomy_codes,
            confidence: s.confidence,
            source: None,
            timestamp: None,
        };
        let loc = Location::json(path, format!("$.samples[{i}]"));
        match check_example(&ex, true) {
            Ok(()) => {
                examples.push(ex);
                locations.push(loc);
            }
            Err(reason) => {
                if !opts.skip_invalid {
                    return Err(DataError::invalid(loc, reason));
                }
                skipped.push(Skipped { location: loc, reason });
            }
        }
    }
    Ok(Loaded { data: Dataset { examples, multi_label: true }, skipped, locations })
}

/// Builds the file form of a data set, metadata included.
pub fn to_multilabel_file(data: &Dataset) -> MultiLabelFile {
    let class_distribution = data.label_counts();
    MultiLabelFile {
        metadata: MultiLabelMeta {
            num_samples: data.len(),
            num_classes: class_distribution.len(),
            class_distribution,
        },
        samples: data
            .examples
            .iter()
            .map(|e| MultiLabelSample {
                text: e.text.clone(),
                taxonomy_codes: e.labels.clone(),
                confidence: e.confidence,
            })
            .collect(),
    }
}

/// Writes a data set as multi-label JSON, atomically.
pub fn write_multilabel(path: &Path, data: &Dataset) -> Result<()> {
    let json = serde_json::to_string_pretty(&to_multilabel_file(data)).expect("serializes");
    atomic_write(path, json.as_bytes())
}
