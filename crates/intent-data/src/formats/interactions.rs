//! Interactions JSON for recommenders: `{"metadata": {num_users, num_items, num_interactions,
//! density}, "interactions": [{"user_id", "item_id", "timestamp"?, "interaction_type"?,
//! "implicit_rating"}]}`. Ids may be strings or numbers; they are kept as strings.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{DataError, Result};
use crate::io::{atomic_write, read_text};

fn id<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) if !s.is_empty() => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => {
            Err(serde::de::Error::custom(format!("expected a non-empty string or number id, found {other}")))
        }
    }
}

/// One user–item interaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    /// User id.
    #[serde(deserialize_with = "id")]
    pub user_id: String,
    /// Item id.
    #[serde(deserialize_with = "id")]
    pub item_id: String,
    /// Unix seconds, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// Kind of interaction (view, purchase, rating…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interaction_type: Option<String>,
    /// Strength of the implicit signal (1.0 for a plain interaction).
    #[serde(default = "one")]
    pub implicit_rating: f32,
}

fn one() -> f32 {
    1.0
}

/// Summary block of an interactions file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InteractionsMeta {
    /// Distinct users.
    pub num_users: usize,
    /// Distinct items.
    pub num_items: usize,
    /// Rows.
    pub num_interactions: usize,
    /// `num_interactions / (num_users · num_items)`.
    pub density: f64,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Interactions {
    /// Summary (recomputed by [`Interactions::new`]).
    pub metadata: InteractionsMeta,
    /// The rows.
    pub interactions: Vec<Interaction>,
}

impl Interactions {
    /// Wraps rows, computing the metadata.
    pub fn new(interactions: Vec<Interaction>) -> Self {
        let users: BTreeSet<&str> = interactions.iter().map(|i| i.user_id.as_str()).collect();
        let items: BTreeSet<&str> = interactions.iter().map(|i| i.item_id.as_str()).collect();
        let cells = (users.len() * items.len()).max(1) as f64;
        let metadata = InteractionsMeta {
            num_users: users.len(),
            num_items: items.len(),
            num_interactions: interactions.len(),
            density: interactions.len() as f64 / cells,
        };
        Interactions { metadata, interactions }
    }
}

/// Loads an interactions JSON file.
pub fn load_interactions(path: &Path) -> Result<Interactions> {
    let text = read_text(path)?;
    let file: Interactions = serde_json::from_str(&text).map_err(|e| DataError::json(path, &e))?;
    Ok(Interactions::new(file.interactions))
}

/// Writes interactions JSON, atomically, with fresh metadata.
pub fn write_interactions(path: &Path, data: &Interactions) -> Result<()> {
    let fresh = Interactions::new(data.interactions.clone());
    atomic_write(path, serde_json::to_string_pretty(&fresh).expect("serializes").as_bytes())
}
