//! Outcome definitions: a folder of `*.json` (the embedded example:
//! `crates/intent-cli/data/outcomes`), each `{"name", "examples": [..],
//! "synonyms"?: {word: [alternatives]}, "templates"?: ["… {word} …"], "teach_hints"?: [..]}`.
//! Synonyms and templates feed augmentation; examples are labeled data.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Location, Result};
use crate::io::{atomic_write, json_files_in, read_text};
use crate::record::{Dataset, Example};

/// One outcome (label) with its examples and augmentation hints.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OutcomeDef {
    /// The label.
    pub name: String,
    /// Example utterances.
    pub examples: Vec<String>,
    /// Word → alternatives, used by synonym replacement and to fill templates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub synonyms: BTreeMap<String, Vec<String>>,
    /// Sentences with `{word}` slots, filled from `synonyms` (the word itself or an alternative).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<String>,
    /// Free-text hints for people labeling this outcome.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teach_hints: Vec<String>,
}

/// Reads one outcome file, checking that every template slot has synonyms.
pub fn read_outcome_file(path: &Path) -> Result<OutcomeDef> {
    let text = read_text(path)?;
    let def: OutcomeDef = serde_json::from_str(&text).map_err(|e| DataError::json(path, &e))?;
    if def.name.trim().is_empty() {
        return Err(DataError::invalid(Location::json(path, "$.name"), "empty outcome name"));
    }
    for (i, t) in def.templates.iter().enumerate() {
        for slot in template_slots(t) {
            if !def.synonyms.contains_key(slot) {
                return Err(DataError::invalid(
                    Location::json(path, format!("$.templates[{i}]")),
                    format!("template slot {{{slot}}} has no entry in `synonyms`"),
                ));
            }
        }
    }
    Ok(def)
}

/// The `{slot}` names of a template, in order.
pub fn template_slots(template: &str) -> Vec<&str> {
    let mut slots = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        match rest[start..].find('}') {
            Some(len) => {
                slots.push(&rest[start + 1..start + len]);
                rest = &rest[start + len + 1..];
            }
            None => break,
        }
    }
    slots
}

/// Reads outcome definitions from a file or every `*.json` of a folder.
pub fn read_outcomes(path: &Path) -> Result<Vec<OutcomeDef>> {
    if path.is_dir() {
        json_files_in(path)?.iter().map(|f| read_outcome_file(f)).collect()
    } else {
        Ok(vec![read_outcome_file(path)?])
    }
}

/// The examples of outcome definitions as a labeled data set.
pub fn outcomes_to_dataset(defs: &[OutcomeDef]) -> Dataset {
    Dataset::new(
        defs.iter()
            .flat_map(|d| {
                d.examples.iter().map(|t| Example::new(t.clone(), d.name.clone()).with_source("outcome"))
            })
            .collect(),
    )
}

/// Writes one outcome definition as `<dir>/<name>.json` (characters other than letters, digits,
/// `.`, `_` and `-` become `_` in the file name, so a name such as `faq/ask_name` stays one
/// file inside `dir`).
pub fn write_outcome(dir: &Path, def: &OutcomeDef) -> Result<()> {
    let json = serde_json::to_string_pretty(def).expect("outcome serializes");
    atomic_write(&dir.join(format!("{}.json", file_stem(&def.name))), json.as_bytes())
}

fn file_stem(name: &str) -> String {
    let stem: String = name
        .chars()
        .map(|c| if c.is_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .collect();
    if stem.starts_with('.') {
        format!("_{stem}")
    } else {
        stem
    }
}

/// Writes every definition into `dir` (created when missing), one file each; two names that
/// would share a file name are an error naming both.
pub fn write_outcomes(dir: &Path, defs: &[OutcomeDef]) -> Result<()> {
    let mut seen = BTreeMap::new();
    for d in defs {
        if let Some(other) = seen.insert(file_stem(&d.name), &d.name) {
            return Err(DataError::invalid(
                Location::file(dir),
                format!(
                    "outcomes '{other}' and '{}' would share the file {}.json",
                    d.name,
                    file_stem(&d.name)
                ),
            ));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    defs.iter().try_for_each(|d| write_outcome(dir, d))
}
