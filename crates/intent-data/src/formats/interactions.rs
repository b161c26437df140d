//! Interactions JSON for recommenders: `{"metadata": {num_users, num_items, num_interactions,
//! density}, "interactions": [{"user_id", "item_id", "timestamp"?, "interaction_type"?,
//! "implicit_rating"}]}`. Ids may be strings or numbers; they are kept as strings. Timestamps
//! may be Unix seconds or ISO-8601 date-times ([`parse_timestamp`]).

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

/// An ISO-8601 date-time (or date) as Unix seconds; no offset means UTC. A space may stand for
/// the `T`, as many exports write it.
pub fn parse_timestamp(s: &str) -> std::result::Result<i64, String> {
    use time::format_description::well_known::Iso8601;
    use time::{Date, OffsetDateTime, PrimitiveDateTime};
    let t = s.trim();
    let iso = if t.len() > 10 && t.as_bytes()[10] == b' ' {
        format!("{}T{}", &t[..10], &t[11..])
    } else {
        t.to_string()
    };
    OffsetDateTime::parse(&iso, &Iso8601::DEFAULT)
        .or_else(|_| PrimitiveDateTime::parse(&iso, &Iso8601::DEFAULT).map(PrimitiveDateTime::assume_utc))
        .or_else(|_| Date::parse(&iso, &Iso8601::DEFAULT).map(|d| d.midnight().assume_utc()))
        .map(OffsetDateTime::unix_timestamp)
        .map_err(|_| {
            format!(
                "timestamp '{s}': expected Unix seconds or an ISO-8601 date-time such as 2024-01-15T10:30:00"
            )
        })
}

fn timestamp<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<i64>, D::Error> {
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite() && f.fract() == 0.0).map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("timestamp {n}: expected whole Unix seconds"))),
        Some(serde_json::Value::String(s)) => parse_timestamp(&s).map(Some).map_err(serde::de::Error::custom),
        Some(other) => Err(serde::de::Error::custom(format!(
            "timestamp {other}: expected Unix seconds or an ISO-8601 date-time"
        ))),
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
    /// Unix seconds, when known. Read from an integer or an ISO-8601 date-time
    /// (`2024-01-15T10:30:00`, UTC when it has no offset; `…Z`, `…+02:00`, fractions of a
    /// second; a date alone is its midnight UTC); always written as an integer.
    #[serde(default, deserialize_with = "timestamp", skip_serializing_if = "Option::is_none")]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_timestamps_are_unix_seconds() {
        // 2024-01-15T10:30:00Z = 1705314600.
        for (s, want) in [
            ("2024-01-15T10:30:00", 1_705_314_600),
            ("2024-01-15T10:30:00Z", 1_705_314_600),
            ("2024-01-15 10:30:00", 1_705_314_600),
            ("2024-01-15T12:30:00+02:00", 1_705_314_600),
            ("2024-01-15T10:30:00.750Z", 1_705_314_600),
            ("2024-01-15", 1_705_276_800),
            ("1970-01-01T00:00:00", 0),
        ] {
            assert_eq!(parse_timestamp(s), Ok(want), "{s}");
        }
        for bad in ["yesterday", "2024-13-01T00:00:00", "15/01/2024"] {
            assert!(parse_timestamp(bad).unwrap_err().contains(bad), "{bad}");
        }
    }

    #[test]
    fn the_seed_example_with_iso_timestamps_loads() {
        // The interactions example of the multi-label/NCF seed document: ISO timestamps.
        let text = r#"{"metadata": {"num_users": 2, "num_items": 2, "num_interactions": 3, "density": 0.75},
            "interactions": [
                {"user_id": "user_001", "item_id": "item_042", "timestamp": "2024-01-15T10:30:00",
                 "interaction_type": "purchase", "implicit_rating": 1.0},
                {"user_id": "user_001", "item_id": "item_007", "timestamp": 1705314600,
                 "implicit_rating": 0.5},
                {"user_id": "user_002", "item_id": "item_042", "timestamp": null}
            ]}"#;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.json");
        std::fs::write(&path, text).unwrap();
        let i = load_interactions(&path).unwrap();
        let ts: Vec<Option<i64>> = i.interactions.iter().map(|r| r.timestamp).collect();
        assert_eq!(ts, [Some(1_705_314_600), Some(1_705_314_600), None]);
        // Written back as integers, and read again the same.
        write_interactions(&path, &i).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("\"timestamp\": 1705314600"));
        assert_eq!(load_interactions(&path).unwrap(), i);
        // A bad timestamp names the file, the line and the value.
        std::fs::write(&path, text.replace("2024-01-15T10:30:00", "next tuesday")).unwrap();
        let e = load_interactions(&path).unwrap_err().to_string();
        assert!(e.contains("i.json") && e.contains("next tuesday") && e.contains(":3"), "{e}");
    }
}
