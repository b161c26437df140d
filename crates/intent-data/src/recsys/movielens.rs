//! The MovieLens `u.data` format: `user \t item \t rating \t timestamp` per line (tabs or
//! spaces). Every rating is an implicit interaction, as in He et al. (2017); the rating is kept
//! as `implicit_rating`.

use std::path::Path;

use crate::error::{DataError, Location, Result};
use crate::formats::interactions::{Interaction, Interactions};
use crate::io::read_text;

/// Loads a MovieLens ratings file; a bad line is an error naming the file and line.
pub fn load_movielens(path: &Path) -> Result<Interactions> {
    let text = read_text(path)?;
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |what: String| DataError::invalid(Location::line(path, n + 1), what);
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 4 {
            return Err(bad(format!(
                "expected 4 fields (user, item, rating, timestamp) separated by tabs, found {}",
                f.len()
            )));
        }
        let rating: f32 = f[2].parse().map_err(|_| bad(format!("rating '{}' is not a number", f[2])))?;
        let timestamp: i64 =
            f[3].parse().map_err(|_| bad(format!("timestamp '{}' is not an integer", f[3])))?;
        rows.push(Interaction {
            user_id: f[0].to_string(),
            item_id: f[1].to_string(),
            timestamp: Some(timestamp),
            interaction_type: Some("rating".into()),
            implicit_rating: rating,
        });
    }
    if rows.is_empty() {
        return Err(DataError::invalid(Location::file(path), "no interactions"));
    }
    Ok(Interactions::new(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_names_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("u.data");
        std::fs::write(&p, "196\t242\t3\t881250949\n186\t302\t3\t891717742\n").unwrap();
        let d = load_movielens(&p).unwrap();
        assert_eq!((d.metadata.num_users, d.metadata.num_items, d.metadata.num_interactions), (2, 2, 2));
        assert_eq!(
            (
                d.interactions[1].user_id.as_str(),
                d.interactions[1].timestamp,
                d.interactions[1].implicit_rating
            ),
            ("186", Some(891717742), 3.0)
        );
        std::fs::write(&p, "196\t242\t3\t881250949\n186\t302\tgood\t891717742\n").unwrap();
        let e = load_movielens(&p).unwrap_err().to_string();
        assert!(e.contains("u.data:2") && e.contains("rating 'good'"), "{e}");
        std::fs::write(&p, "196\t242\t3\n").unwrap();
        assert!(load_movielens(&p).unwrap_err().to_string().contains("expected 4 fields"));
    }
}
