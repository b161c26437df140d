//! Rasa NLU training data (Rasa 3 YAML, `nlu.yml`): a file, or a folder whose `*.yml` / `*.yaml`
//! files are read in name order (those without an `nlu` key, such as `domain.yml` or
//! `stories.yml`, are passed over).
//!
//! ```yaml
//! version: "3.1"
//! nlu:
//! - intent: check_balance
//!   examples: |
//!     - what is my [savings](account) balance
//!     - how much is in my [credit account]{"entity": "account", "value": "credit"}
//! - synonym: credit
//!   examples: |
//!     - credit card account
//! ```
//!
//! Each intent becomes an outcome ([`OutcomeDef`]) with its examples as plain text: entity
//! annotations (`[text](entity)`, `[text](entity:value)`, `[text]{"entity": …}`) are reduced to
//! their text. Synonyms (the `synonym:` blocks, and annotations whose value differs from their
//! text) become outcome synonyms of the intents whose examples use one of their words, for
//! augmentation. `regex:` and `lookup:` blocks describe entities and are left out. An intent in
//! several blocks or files gathers all its examples.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;

use crate::error::{DataError, Location, Result};
use crate::formats::outcomes::OutcomeDef;
use crate::io::read_text;

/// `[text](…)` or `[text]{…}`: an entity annotation.
static ANNOTATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[([^\]]+)\](\(([^)]*)\)|(\{[^}]*\}))").expect("a valid pattern"));

#[derive(Debug, Deserialize)]
struct RasaFile {
    #[serde(default)]
    nlu: Option<Vec<NluItem>>,
}

#[derive(Debug, Deserialize)]
struct NluItem {
    intent: Option<String>,
    synonym: Option<String>,
    regex: Option<String>,
    lookup: Option<String>,
    examples: Option<Examples>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Examples {
    /// The usual block of `- text` lines.
    Block(String),
    /// Examples with metadata: `- text: …` entries.
    List(Vec<ExampleEntry>),
}

#[derive(Debug, Deserialize)]
struct ExampleEntry {
    text: String,
}

/// The files a path names: itself, or the YAML files of a folder, sorted.
fn yaml_files(path: &Path) -> Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| DataError::io(path, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(DataError::invalid(Location::file(path), "no .yml or .yaml file in this folder"));
    }
    Ok(files)
}

/// The 1-based line of the first line of `text` that contains `needle`.
fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

/// An example with its entity annotations reduced to their text; `synonym` receives
/// (text, value) for annotations that name another value.
fn strip_annotations(example: &str, mut synonym: impl FnMut(&str, &str)) -> String {
    ANNOTATION
        .replace_all(example, |c: &regex::Captures<'_>| {
            let text = c[1].to_string();
            let value = match (c.get(3), c.get(4)) {
                // `(entity:value)`
                (Some(m), _) => m.as_str().split_once(':').map(|(_, v)| v.trim().to_string()),
                // `{"entity": …, "value": …}`
                (_, Some(m)) => serde_json::from_str::<serde_json::Value>(m.as_str())
                    .ok()
                    .and_then(|v| v.get("value").and_then(|v| v.as_str()).map(str::to_string)),
                _ => None,
            };
            if let Some(v) = value.filter(|v| !v.is_empty() && v != &text) {
                synonym(&text, &v);
            }
            text
        })
        .into_owned()
}

/// The example texts of a block: one `- text` per line.
/// `first_line` is the file line of the block's first line, when known.
fn block_examples(block: &str, file: &Path, first_line: Option<usize>, owner: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (i, raw) in block.lines().enumerate() {
        let l = raw.trim();
        if l.is_empty() {
            continue;
        }
        let Some(text) = l.strip_prefix("- ").or_else(|| (l == "-").then_some("")) else {
            let loc = first_line.map_or_else(|| Location::file(file), |n| Location::line(file, n + i));
            return Err(DataError::invalid(loc, format!("{owner}: example line '{l}': expected '- text'")));
        };
        if !text.trim().is_empty() {
            out.push(text.trim().to_string());
        }
    }
    Ok(out)
}

/// Whether `word` occurs in `text` as whole words (case-insensitive).
fn uses(text: &str, word: &str) -> bool {
    let (t, w) = (text.to_lowercase(), word.to_lowercase());
    t.match_indices(&w).any(|(i, _)| {
        let before = t[..i].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
        let after = t[i + w.len()..].chars().next().is_none_or(|c| !c.is_alphanumeric());
        before && after
    })
}

/// Reads Rasa NLU data (a file or a folder) into one outcome per intent, in order of first
/// appearance. Errors name the file, the line of the block and what was expected.
pub fn read_rasa_nlu(path: &Path) -> Result<Vec<OutcomeDef>> {
    let mut outcomes: Vec<OutcomeDef> = Vec::new();
    // Canonical value → every term that means it (the value itself included).
    let mut synonyms: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut add_synonym = |value: &str, term: &str| {
        let terms = synonyms.entry(value.to_string()).or_insert_with(|| vec![value.to_string()]);
        if !terms.iter().any(|t| t == term) {
            terms.push(term.to_string());
        }
    };
    let mut any_nlu = false;
    for file in yaml_files(path)? {
        let text = read_text(&file)?;
        let parsed: RasaFile = yaml_serde::from_str(&text).map_err(|e| {
            let loc = e.location().map_or_else(|| Location::file(&file), |l| Location::line(&file, l.line()));
            DataError::invalid(loc, format!("not Rasa YAML: {e}"))
        })?;
        let Some(items) = parsed.nlu else { continue };
        any_nlu = true;
        for (i, item) in items.into_iter().enumerate() {
            let (owner, key) = match (&item.intent, &item.synonym, &item.regex, &item.lookup) {
                (Some(n), None, None, None) => (format!("intent '{n}'"), format!("intent: {n}")),
                (None, Some(n), None, None) => (format!("synonym '{n}'"), format!("synonym: {n}")),
                (None, None, Some(_), None) | (None, None, None, Some(_)) => continue,
                _ => {
                    return Err(DataError::invalid(
                        Location::json(&file, format!("nlu[{i}]")),
                        "expected exactly one of `intent`, `synonym`, `regex` or `lookup`",
                    ))
                }
            };
            let line = line_of(&text, &key);
            // The block's first example is on the line after the `examples:` that follows.
            let first = line.and_then(|n| {
                text.lines()
                    .skip(n - 1)
                    .position(|l| l.trim_start().starts_with("examples:"))
                    .map(|k| n + k + 1)
            });
            let examples = match item.examples {
                Some(Examples::Block(b)) => block_examples(&b, &file, first, &owner)?,
                Some(Examples::List(entries)) => {
                    entries.into_iter().map(|e| e.text.trim().to_string()).collect()
                }
                None => {
                    let loc = line.map_or_else(
                        || Location::json(&file, format!("nlu[{i}]")),
                        |n| Location::line(&file, n),
                    );
                    return Err(DataError::invalid(loc, format!("{owner} has no `examples`")));
                }
            };
            if let Some(value) = item.synonym {
                for e in &examples {
                    add_synonym(&value, e);
                }
                continue;
            }
            let name = item.intent.expect("matched above").trim().to_string();
            let plain: Vec<String> =
                examples.iter().map(|e| strip_annotations(e, |t, v| add_synonym(v, t))).collect();
            match outcomes.iter_mut().find(|o| o.name == name) {
                Some(o) => o.examples.extend(plain),
                None => outcomes.push(OutcomeDef { name, examples: plain, ..Default::default() }),
            }
        }
    }
    if !any_nlu {
        return Err(DataError::invalid(
            Location::file(path),
            "no `nlu:` section: not Rasa NLU training data",
        ));
    }
    if outcomes.is_empty() {
        return Err(DataError::invalid(Location::file(path), "no intent with examples"));
    }
    // Each intent gets the synonyms whose words its examples use: every term → the others.
    for o in &mut outcomes {
        for terms in synonyms.values() {
            for t in terms.iter().filter(|t| o.examples.iter().any(|e| uses(e, t))) {
                let others: Vec<String> = terms.iter().filter(|x| *x != t).cloned().collect();
                o.synonyms.insert(t.clone(), others);
            }
        }
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_become_their_text_and_values_become_synonyms() {
        let mut pairs = Vec::new();
        let s = strip_annotations(
            concat!(
                r#"move [50](amount) from [savings](account:saving) "#,
                r#"to [my card]{"entity": "account", "value": "credit"}"#
            ),
            |t, v| pairs.push((t.to_string(), v.to_string())),
        );
        assert_eq!(s, "move 50 from savings to my card");
        assert_eq!(pairs, [("savings".into(), "saving".into()), ("my card".into(), "credit".into())]);
    }

    #[test]
    fn whole_words_only() {
        assert!(uses("Is my Credit card blocked", "credit card"));
        assert!(!uses("accredited", "credit"));
    }
}
