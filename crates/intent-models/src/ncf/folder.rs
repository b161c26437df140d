//! The NCF model folder and inference: `config.json` (kind `ncf`, architecture, training
//! settings, data facts, versions), `model.safetensors`, `ids.json` (user and item ids by
//! index), `split.json` (the training pairs, each user's held-out test item and its sampled
//! negatives, by index) and `metrics.json`.
//!
//! `recommend(user, k)` ranks every item the user has not interacted with in the training data.
//! An unknown user is an error, unless the popularity fallback is asked for: then the most
//! frequent training items are returned (scores are interaction counts).

use std::collections::HashSet;
use std::path::Path;

use intent_data::recsys::IdMap;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::folder::ModelKind;
use crate::folder::Versions;
use crate::ncf::{Ncf, NcfArchitecture};

/// `config.json` of an NCF folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NcfConfig {
    /// Always [`ModelKind::Ncf`].
    pub kind: ModelKind,
    /// Folder layout version.
    pub format_version: u32,
    /// GMF / MLP / NeuMF and sizes.
    pub architecture: NcfArchitecture,
    /// Training settings and run facts.
    pub training: serde_json::Value,
    /// Data facts: source, hash, users, items, pairs.
    pub data: serde_json::Value,
    /// SHA-256 of the interactions.
    pub data_hash: String,
    /// Software versions.
    pub versions: Versions,
    /// Creation time, Unix seconds.
    pub created_unix: u64,
}

/// True when `dir/config.json` says kind `ncf` (a recommender, not a classifier).
pub fn is_ncf_folder(dir: &Path) -> bool {
    matches!(crate::folder::read_kind(dir), Ok(Some(ModelKind::Ncf)))
}

/// `split.json`: what the model trained on and was tested with (indices).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SavedSplit {
    /// Training pairs `(user, item)`.
    pub train: Vec<(u32, u32)>,
    /// Held-out test item per user (`None`: none).
    pub test: Vec<Option<u32>>,
    /// Sampled negatives per user for the test item.
    pub negatives: Vec<Vec<u32>>,
}

/// When a user id is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownUser {
    /// An error naming the user.
    #[default]
    Error,
    /// The most popular training items.
    Popular,
}

/// One recommended item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// Item id.
    pub item: String,
    /// Model logit, or the interaction count for the popularity fallback.
    pub score: f32,
}

/// A loaded NCF folder.
#[derive(Debug, Clone)]
pub struct NcfModel {
    /// The config.
    pub config: NcfConfig,
    /// The model.
    pub model: Ncf,
    /// Id map.
    pub ids: IdMap,
    /// The split.
    pub split: SavedSplit,
    seen: Vec<HashSet<u32>>,
    popular: Vec<(u32, usize)>,
}

impl NcfModel {
    /// Wraps a trained model.
    pub fn new(config: NcfConfig, model: Ncf, ids: IdMap, split: SavedSplit) -> Self {
        let mut seen = vec![HashSet::new(); ids.users.len()];
        let mut counts = vec![0usize; ids.items.len()];
        for &(u, i) in &split.train {
            seen[u as usize].insert(i);
            counts[i as usize] += 1;
        }
        let mut popular: Vec<(u32, usize)> =
            counts.into_iter().enumerate().map(|(i, c)| (i as u32, c)).collect();
        popular.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        NcfModel { config, model, ids, split, seen, popular }
    }

    /// Writes the folder's files into `dir` (use [`crate::folder::write_model_dir`] for an atomic write).
    pub fn write(&self, dir: &Path) -> Result<()> {
        crate::folder::write_json(dir, "config.json", &self.config)?;
        crate::folder::write_json(dir, "ids.json", &self.ids)?;
        crate::folder::write_json(dir, "split.json", &self.split)?;
        self.model.save_weights(dir)
    }

    /// Loads a folder; inconsistent files are named.
    pub fn load(dir: &Path) -> Result<Self> {
        let read = |name: &str| -> Result<String> {
            std::fs::read_to_string(dir.join(name)).map_err(|e| ModelError::io(dir.join(name), e))
        };
        let parse =
            |name: &str, text: &str| ModelError::invalid(dir.join(name), format!("not valid: {text}"));
        let config: NcfConfig =
            serde_json::from_str(&read("config.json")?).map_err(|e| parse("config.json", &e.to_string()))?;
        if config.kind != ModelKind::Ncf {
            return Err(ModelError::invalid(
                dir.join("config.json"),
                format!("kind '{}': not an NCF model", config.kind),
            ));
        }
        let mut ids: IdMap =
            serde_json::from_str(&read("ids.json")?).map_err(|e| parse("ids.json", &e.to_string()))?;
        ids.reindex();
        let a = &config.architecture;
        if (ids.users.len(), ids.items.len()) != (a.num_users, a.num_items) {
            return Err(ModelError::invalid(
                dir.join("ids.json"),
                format!(
                    "{} users and {} items, the architecture has {} and {}",
                    ids.users.len(),
                    ids.items.len(),
                    a.num_users,
                    a.num_items
                ),
            ));
        }
        let split: SavedSplit =
            serde_json::from_str(&read("split.json")?).map_err(|e| parse("split.json", &e.to_string()))?;
        if split.train.iter().any(|&(u, i)| u as usize >= a.num_users || i as usize >= a.num_items) {
            return Err(ModelError::invalid(
                dir.join("split.json"),
                "a training pair names a user or item beyond the id map",
            ));
        }
        let model = Ncf::load_weights(config.architecture.clone(), dir)?;
        Ok(NcfModel::new(config, model, ids, split))
    }

    /// Whether `user` interacted with `item` in the training data.
    pub fn has_seen(&self, user: u32, item: u32) -> bool {
        self.seen[user as usize].contains(&item)
    }

    /// The top `k` items for `user_id` that the user has not interacted with.
    pub fn recommend(&self, user_id: &str, k: usize, unknown: UnknownUser) -> Result<Vec<Recommendation>> {
        let Some(u) = self.ids.user(user_id) else {
            return match unknown {
                UnknownUser::Error => Err(ModelError::Fit(format!(
                    "unknown user '{user_id}': the model knows {} users (ids in ids.json)",
                    self.ids.users.len()
                ))),
                UnknownUser::Popular => Ok(self
                    .popular
                    .iter()
                    .take(k)
                    .map(|&(i, c)| Recommendation {
                        item: self.ids.items[i as usize].clone(),
                        score: c as f32,
                    })
                    .collect()),
            };
        };
        Ok(self
            .top_unseen(u, k)
            .into_iter()
            .map(|(i, s)| Recommendation { item: self.ids.items[i as usize].clone(), score: s })
            .collect())
    }

    /// The `k` best-scored items (index, logit) that user index `u` has not interacted with in
    /// training; ties by item index, so the order is stable.
    pub fn top_unseen(&self, u: u32, k: usize) -> Vec<(u32, f32)> {
        let scores = self.model.score_all(u);
        let mut ranked: Vec<(u32, f32)> = scores
            .into_iter()
            .enumerate()
            .map(|(i, s)| (i as u32, s))
            .filter(|(i, _)| !self.has_seen(u, *i))
            .collect();
        let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if k < ranked.len() {
            ranked.select_nth_unstable_by(k, order);
            ranked.truncate(k);
        }
        ranked.sort_by(order);
        ranked
    }

    /// Logits of `(user id, item id)` pairs; an unknown id is an error naming it.
    pub fn score_pairs(&self, pairs: &[(String, String)]) -> Result<Vec<f32>> {
        let mut users = Vec::with_capacity(pairs.len());
        let mut items = Vec::with_capacity(pairs.len());
        for (u, i) in pairs {
            users.push(self.ids.user(u).ok_or_else(|| ModelError::Fit(format!("unknown user '{u}'")))?);
            items.push(self.ids.item(i).ok_or_else(|| ModelError::Fit(format!("unknown item '{i}'")))?);
        }
        Ok(self.model.score(&users, &items))
    }
}
