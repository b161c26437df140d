//! Data augmentation: synthetic sentences per label from the synonyms and templates of outcome
//! definitions plus generic operations (synonym replacement, word swap, word deletion), as in
//! EDA (Wei & Zou 2019). Deterministic for a seed; originals are always kept; no generated text
//! duplicates another text (after [`normalize_text`]).

use std::collections::{BTreeMap, HashSet};

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::formats::outcomes::{template_slots, OutcomeDef};
use crate::record::{normalize_text, Dataset, Example};

/// A small English synonym table for generic synonym replacement (written for this project;
/// the outcome definitions add domain words).
const GENERIC_SYNONYMS: &[(&str, &[&str])] = &[
    ("want", &["need", "would like", "wish"]),
    ("need", &["want", "require"]),
    ("help", &["assist", "support"]),
    ("get", &["obtain", "receive"]),
    ("buy", &["purchase", "order"]),
    ("check", &["see", "verify", "look up"]),
    ("show", &["display", "tell me"]),
    ("tell", &["inform", "let know"]),
    ("please", &["kindly", "pls"]),
    ("change", &["modify", "update", "alter"]),
    ("cancel", &["stop", "call off"]),
    ("find", &["locate", "look for"]),
    ("know", &["find out", "learn"]),
    ("can", &["could"]),
    ("how", &["in what way"]),
    ("quick", &["fast", "rapid"]),
    ("problem", &["issue", "trouble"]),
    ("money", &["funds", "cash"]),
    ("send", &["transfer", "ship"]),
    ("my", &["my own"]),
    ("now", &["right now", "immediately"]),
    ("hello", &["hi", "hey"]),
    ("thanks", &["thank you", "cheers"]),
    ("start", &["begin"]),
    ("late", &["delayed", "overdue"]),
    ("wrong", &["incorrect", "mistaken"]),
    ("good", &["great", "nice"]),
    ("bad", &["poor", "terrible"]),
];

/// Settings of [`augment`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AugmentConfig {
    /// Synthetic sentences wanted per label.
    pub factor: usize,
    /// Seed of every random choice.
    pub seed: u64,
}

/// What [`augment`] produced.
#[derive(Debug, Clone)]
pub struct Augmented {
    /// Originals (in their order) followed by the synthetic examples.
    pub data: Dataset,
    /// Synthetic examples added per label.
    pub added: BTreeMap<String, usize>,
    /// Labels for which fewer than `factor` unique sentences could be made.
    pub short: BTreeMap<String, usize>,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Template,
    Synonym,
    Swap,
    Delete,
}

fn seed_for(seed: u64, key: &str) -> u64 {
    // FNV-1a of the label, mixed with the seed: each label gets its own stream, so adding a
    // label does not change what the others get.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Makes `config.factor` new sentences per label (or per label set, for multi-label data).
pub fn augment(data: &Dataset, outcomes: &[OutcomeDef], config: AugmentConfig) -> Augmented {
    augment_avoiding(data, outcomes, config, &[])
}

/// Like [`augment`], and never produces a text equal (normalized) to one of `avoid` (e.g. the
/// validation and test sentences, so that augmenting the training part cannot copy them).
pub fn augment_avoiding(
    data: &Dataset,
    outcomes: &[OutcomeDef],
    config: AugmentConfig,
    avoid: &[&str],
) -> Augmented {
    let mut seen: HashSet<String> = data.examples.iter().map(|e| normalize_text(&e.text)).collect();
    seen.extend(avoid.iter().map(|t| normalize_text(t)));
    let mut groups: BTreeMap<String, Vec<&Example>> = BTreeMap::new();
    for e in &data.examples {
        groups.entry(e.labels.join("+")).or_default().push(e);
    }
    let defs: BTreeMap<&str, &OutcomeDef> = outcomes.iter().map(|d| (d.name.as_str(), d)).collect();
    let generic: BTreeMap<&str, Vec<String>> =
        GENERIC_SYNONYMS.iter().map(|(w, alts)| (*w, alts.iter().map(|s| s.to_string()).collect())).collect();

    let mut out = data.examples.clone();
    let mut added = BTreeMap::new();
    let mut short = BTreeMap::new();
    for (key, originals) in &groups {
        let def = originals[0].labels.first().and_then(|l| defs.get(l.as_str()).copied());
        let mut synonyms: BTreeMap<&str, &Vec<String>> = generic.iter().map(|(k, v)| (*k, v)).collect();
        if let Some(d) = def {
            synonyms.extend(d.synonyms.iter().map(|(k, v)| (k.as_str(), v)));
        }
        let templates: &[String] = def.map_or(&[], |d| d.templates.as_slice());
        let mut rng = ChaCha8Rng::seed_from_u64(seed_for(config.seed, key));
        let mut made = 0usize;
        let mut attempts = 0usize;
        while made < config.factor && attempts < config.factor.saturating_mul(30).saturating_add(30) {
            attempts += 1;
            let mut ops = vec![Op::Synonym, Op::Swap, Op::Delete];
            if !templates.is_empty() {
                ops.push(Op::Template);
            }
            let op = *ops.choose(&mut rng).expect("non-empty");
            let base = originals.choose(&mut rng).expect("group is non-empty");
            let Some(text) = apply(op, &base.text, templates, &synonyms, &mut rng) else { continue };
            let norm = normalize_text(&text);
            if norm.is_empty() || !seen.insert(norm) {
                continue;
            }
            let mut ex = Example::multi(text, base.labels.clone());
            ex.source = Some(format!("augment:{}", format!("{op:?}").to_lowercase()));
            out.push(ex);
            made += 1;
        }
        added.insert(key.clone(), made);
        if made < config.factor {
            short.insert(key.clone(), made);
        }
    }
    Augmented { data: Dataset { examples: out, multi_label: data.multi_label }, added, short }
}

fn apply(
    op: Op,
    text: &str,
    templates: &[String],
    synonyms: &BTreeMap<&str, &Vec<String>>,
    rng: &mut ChaCha8Rng,
) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match op {
        Op::Template => {
            let t = templates.choose(rng)?;
            let mut s = t.clone();
            for slot in template_slots(t) {
                let alts = synonyms.get(slot)?;
                let choice = if rng.random_bool(0.5) || alts.is_empty() {
                    slot.to_string()
                } else {
                    alts.choose(rng)?.clone()
                };
                s = s.replacen(&format!("{{{slot}}}"), &choice, 1);
            }
            Some(s)
        }
        Op::Synonym => {
            let candidates: Vec<usize> = (0..words.len())
                .filter(|&i| {
                    synonyms
                        .get(words[i].to_lowercase().trim_matches(|c: char| !c.is_alphanumeric()))
                        .is_some()
                })
                .collect();
            let &i = candidates.choose(rng)?;
            let key = words[i].to_lowercase();
            let alts = synonyms.get(key.trim_matches(|c: char| !c.is_alphanumeric()))?;
            let mut w: Vec<String> = words.iter().map(|s| s.to_string()).collect();
            w[i] = alts.choose(rng)?.clone();
            Some(w.join(" "))
        }
        Op::Swap => {
            if words.len() < 2 {
                return None;
            }
            let i = rng.random_range(0..words.len());
            let j = (i + rng.random_range(1..words.len())) % words.len();
            let mut w = words.clone();
            w.swap(i, j);
            Some(w.join(" "))
        }
        Op::Delete => {
            if words.len() < 3 {
                return None;
            }
            let i = rng.random_range(0..words.len());
            let w: Vec<&str> = words.iter().enumerate().filter(|(k, _)| *k != i).map(|(_, w)| *w).collect();
            Some(w.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Dataset {
        Dataset::new(vec![
            Example::new("i want to cancel my order now", "cancel"),
            Example::new("please cancel the order", "cancel"),
            Example::new("hello there friend", "greet"),
        ])
    }

    #[test]
    fn deterministic_unique_and_keeps_originals() {
        let cfg = AugmentConfig { factor: 5, seed: 7 };
        let a = augment(&data(), &[], cfg);
        let b = augment(&data(), &[], cfg);
        assert_eq!(a.data, b.data);
        assert_eq!(&a.data.examples[..3], &data().examples[..]);
        let norms: HashSet<String> = a.data.examples.iter().map(|e| normalize_text(&e.text)).collect();
        assert_eq!(norms.len(), a.data.len(), "no duplicates");
        assert_eq!(a.added["cancel"], 5);
        let c = augment(&data(), &[], AugmentConfig { factor: 5, seed: 8 });
        assert_ne!(a.data, c.data, "another seed gives other sentences");
    }

    #[test]
    fn avoided_texts_are_never_produced() {
        let plain = augment(&data(), &[], AugmentConfig { factor: 30, seed: 3 });
        let made: Vec<&str> = plain.data.examples[3..].iter().map(|e| e.text.as_str()).collect();
        let again = augment_avoiding(&data(), &[], AugmentConfig { factor: 30, seed: 3 }, &made[..5]);
        let norms: HashSet<String> = made[..5].iter().map(|t| normalize_text(t)).collect();
        assert!(again.data.examples[3..].iter().all(|e| !norms.contains(&normalize_text(&e.text))));
    }

    #[test]
    fn templates_use_outcome_synonyms() {
        let def = OutcomeDef {
            name: "cancel".into(),
            examples: vec![],
            synonyms: [("order".to_string(), vec!["purchase".to_string()])].into(),
            templates: vec!["drop my {order}".into()],
            teach_hints: vec![],
        };
        let a = augment(&data(), &[def], AugmentConfig { factor: 20, seed: 1 });
        assert!(a.data.examples.iter().any(|e| e.text == "drop my purchase" || e.text == "drop my order"));
    }
}
