//! Implicit-feedback data for recommenders (NCF): string ids mapped to dense indices, the
//! leave-one-out split of He et al. (2017) (each user's latest interaction is the test item),
//! sampled negatives, density statistics, the MovieLens `u.data` importer and a seeded
//! synthetic generator.

mod movielens;
mod synthetic;

use std::collections::{HashMap, HashSet};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use movielens::load_movielens;
pub use synthetic::synthetic_interactions;

use crate::error::{DataError, Result};
use crate::formats::interactions::Interactions;

/// String ids ↔ dense indices, saved with a model (`ids.json`). Ids are ordered numerically
/// when they all are numbers (MovieLens), else lexically, so the same data gives the same map.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IdMap {
    /// User id of each index.
    pub users: Vec<String>,
    /// Item id of each index.
    pub items: Vec<String>,
    #[serde(skip)]
    user_index: HashMap<String, u32>,
    #[serde(skip)]
    item_index: HashMap<String, u32>,
}

fn sorted_ids<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut v: Vec<String> = ids.collect::<HashSet<_>>().into_iter().map(str::to_string).collect();
    if v.iter().all(|s| s.parse::<i64>().is_ok()) {
        v.sort_by_key(|s| s.parse::<i64>().expect("checked"));
    } else {
        v.sort();
    }
    v
}

impl IdMap {
    /// Builds the map from id lists (indices follow the order given).
    pub fn new(users: Vec<String>, items: Vec<String>) -> Self {
        let mut m = IdMap { users, items, ..Default::default() };
        m.reindex();
        m
    }

    /// Rebuilds the lookup tables (after deserializing).
    pub fn reindex(&mut self) {
        self.user_index = self.users.iter().enumerate().map(|(i, u)| (u.clone(), i as u32)).collect();
        self.item_index = self.items.iter().enumerate().map(|(i, u)| (u.clone(), i as u32)).collect();
    }

    /// Index of a user id.
    pub fn user(&self, id: &str) -> Option<u32> {
        self.user_index.get(id).copied()
    }

    /// Index of an item id.
    pub fn item(&self, id: &str) -> Option<u32> {
        self.item_index.get(id).copied()
    }
}

/// One interaction by indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// User index.
    pub user: u32,
    /// Item index.
    pub item: u32,
    /// Unix seconds (0 when unknown: file order decides).
    pub timestamp: i64,
}

/// Interactions by indices, with their id map.
#[derive(Debug, Clone)]
pub struct Indexed {
    /// The id map.
    pub ids: IdMap,
    /// The interactions, in file order.
    pub events: Vec<Event>,
}

impl Indexed {
    /// Maps the ids of `data` to indices.
    pub fn new(data: &Interactions) -> Self {
        let ids = IdMap::new(
            sorted_ids(data.interactions.iter().map(|i| i.user_id.as_str())),
            sorted_ids(data.interactions.iter().map(|i| i.item_id.as_str())),
        );
        let events = data
            .interactions
            .iter()
            .map(|i| Event {
                user: ids.user(&i.user_id).expect("mapped"),
                item: ids.item(&i.item_id).expect("mapped"),
                timestamp: i.timestamp.unwrap_or(0),
            })
            .collect();
        Indexed { ids, events }
    }

    /// Number of users.
    pub fn num_users(&self) -> usize {
        self.ids.users.len()
    }

    /// Number of items.
    pub fn num_items(&self) -> usize {
        self.ids.items.len()
    }
}

/// The leave-one-out split: per user, the latest interaction (by timestamp; among equal
/// timestamps the larger item index, as sorting `(timestamp, item)` pairs does) is the test
/// item; the rest is training data. A user with a single interaction keeps it for training and
/// has no test item. Repeated (user, item) pairs are kept once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaveOneOut {
    /// Training pairs `(user, item)`, grouped by user in index order, each user's in time order.
    pub train: Vec<(u32, u32)>,
    /// Test item of each user (`None`: the user has one interaction).
    pub test: Vec<Option<u32>>,
}

/// Splits `data` leave-one-out.
pub fn leave_one_out(data: &Indexed) -> LeaveOneOut {
    let mut by_user: Vec<Vec<(i64, u32)>> = vec![Vec::new(); data.num_users()];
    for e in &data.events {
        by_user[e.user as usize].push((e.timestamp, e.item));
    }
    let mut train = Vec::with_capacity(data.events.len());
    let mut test = Vec::with_capacity(by_user.len());
    for (u, mut list) in by_user.into_iter().enumerate() {
        // Stable sort on (time, item), then one entry per item (its latest time).
        list.sort();
        let mut seen = HashSet::new();
        let mut dedup: Vec<u32> =
            list.iter().rev().filter(|(_, i)| seen.insert(*i)).map(|&(_, i)| i).collect();
        dedup.reverse();
        if dedup.len() >= 2 {
            test.push(dedup.pop());
        } else {
            test.push(None);
        }
        train.extend(dedup.into_iter().map(|i| (u as u32, i)));
    }
    LeaveOneOut { train, test }
}

impl LeaveOneOut {
    /// The items of each user in the training part.
    pub fn seen(&self, num_users: usize) -> Vec<HashSet<u32>> {
        let mut seen = vec![HashSet::new(); num_users];
        for &(u, i) in &self.train {
            seen[u as usize].insert(i);
        }
        seen
    }
}

/// `n` items per user with a test item, drawn uniformly without replacement among the items
/// the user never interacted with (training or test), from `seed`: the paper's 99 negatives
/// that each test item is ranked against. Users without a test item get none.
pub fn test_negatives(split: &LeaveOneOut, num_items: usize, n: usize, seed: u64) -> Result<Vec<Vec<u32>>> {
    let seen = split.seen(split.test.len());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(split.test.len());
    for (u, t) in split.test.iter().enumerate() {
        let Some(t) = *t else {
            out.push(Vec::new());
            continue;
        };
        let free = num_items - seen[u].len() - usize::from(!seen[u].contains(&t));
        if free < n {
            return Err(DataError::Dataset(format!(
                "user index {u} has only {free} items left to draw {n} negatives from"
            )));
        }
        let mut picked = HashSet::with_capacity(n);
        let mut list = Vec::with_capacity(n);
        while list.len() < n {
            let j = rng.random_range(0..num_items as u32);
            if j != t && !seen[u].contains(&j) && picked.insert(j) {
                list.push(j);
            }
        }
        out.push(list);
    }
    Ok(out)
}

/// Reads test negatives from a file in the format of He et al.'s `*.test.negative`: one line per
/// user, `(USER,ITEM)` (the user's held-out item) then the negative item ids, tab-separated. Users
/// absent from the file get none (they are then not evaluated). Every problem names the line.
pub fn load_test_negatives(
    path: &std::path::Path,
    ids: &IdMap,
    split: &LeaveOneOut,
) -> Result<Vec<Vec<u32>>> {
    let text = crate::io::read_text(path)?;
    let mut out = vec![Vec::new(); split.test.len()];
    let seen_by = split.seen(split.test.len());
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |m: String| DataError::invalid(crate::error::Location::line(path, n + 1), m);
        let mut fields = line.split('\t');
        let head = fields.next().unwrap_or("").trim();
        let pair = head.strip_prefix('(').and_then(|h| h.strip_suffix(')')).and_then(|h| h.split_once(','));
        let Some((user, item)) = pair else {
            return Err(bad(format!(
                "expected '(USER,ITEM)' then negative item ids, tab-separated; found '{head}'"
            )));
        };
        let u = ids.user(user.trim()).ok_or_else(|| bad(format!("unknown user '{}'", user.trim())))?;
        let i = ids.item(item.trim()).ok_or_else(|| bad(format!("unknown item '{}'", item.trim())))?;
        if split.test[u as usize] != Some(i) {
            let held =
                split.test[u as usize].map_or("none".to_string(), |t| format!("'{}'", ids.items[t as usize]));
            return Err(bad(format!(
                "item '{}' is not the held-out item of user '{}' (that is {held})",
                item.trim(),
                user.trim()
            )));
        }
        let seen = &seen_by[u as usize];
        let mut negs = Vec::new();
        for id in fields.map(str::trim).filter(|f| !f.is_empty()) {
            let j = ids.item(id).ok_or_else(|| bad(format!("unknown item '{id}'")))?;
            if j == i || seen.contains(&j) {
                return Err(bad(format!(
                    "item '{id}' is not a negative: user '{}' interacted with it",
                    user.trim()
                )));
            }
            negs.push(j);
        }
        out[u as usize] = negs;
    }
    Ok(out)
}

/// SHA-256 of the interactions (ids and timestamps, in order), for the model's config.
pub fn interactions_hash(data: &Interactions) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for i in &data.interactions {
        h.update(i.user_id.as_bytes());
        h.update([0u8]);
        h.update(i.item_id.as_bytes());
        h.update([0u8]);
        h.update(i.timestamp.unwrap_or(0).to_le_bytes());
    }
    hex::encode(h.finalize())
}

/// Size, density and thin users of an interactions set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecStats {
    /// Distinct users.
    pub users: usize,
    /// Distinct items.
    pub items: usize,
    /// Distinct (user, item) pairs.
    pub pairs: usize,
    /// `pairs / (users · items)`.
    pub density: f64,
    /// Smallest, median and largest interactions per user.
    pub per_user: (usize, usize, usize),
    /// Users with fewer than `min_per_user` interactions.
    pub thin_users: usize,
    /// Items with a single interaction.
    pub single_items: usize,
    /// The threshold used for `thin_users`.
    pub min_per_user: usize,
    /// Warnings for the user (thin users, tiny data).
    pub warnings: Vec<String>,
}

/// Statistics of `data`; users under `min_per_user` interactions are warned about (leave-one-out
/// leaves them little or nothing to learn from).
pub fn rec_stats(data: &Indexed, min_per_user: usize) -> RecStats {
    let pairs: HashSet<(u32, u32)> = data.events.iter().map(|e| (e.user, e.item)).collect();
    let mut per_user = vec![0usize; data.num_users()];
    let mut per_item = vec![0usize; data.num_items()];
    for &(u, i) in &pairs {
        per_user[u as usize] += 1;
        per_item[i as usize] += 1;
    }
    let mut sorted = per_user.clone();
    sorted.sort_unstable();
    let thin_users = per_user.iter().filter(|&&n| n < min_per_user).count();
    let single_items = per_item.iter().filter(|&&n| n == 1).count();
    let (users, items) = (data.num_users(), data.num_items());
    let mut warnings = Vec::new();
    if thin_users > 0 {
        warnings.push(format!("{thin_users} of {users} users have fewer than {min_per_user} interactions"));
    }
    if users < 2 || items < 2 {
        warnings.push(format!("{users} users and {items} items: too few to learn from"));
    }
    RecStats {
        users,
        items,
        pairs: pairs.len(),
        density: pairs.len() as f64 / (users * items).max(1) as f64,
        per_user: (
            sorted.first().copied().unwrap_or(0),
            sorted.get(sorted.len() / 2).copied().unwrap_or(0),
            sorted.last().copied().unwrap_or(0),
        ),
        thin_users,
        single_items,
        min_per_user,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::interactions::Interaction;

    fn rows(r: &[(&str, &str, i64)]) -> Interactions {
        Interactions::new(
            r.iter()
                .map(|&(u, i, t)| Interaction {
                    user_id: u.into(),
                    item_id: i.into(),
                    timestamp: Some(t),
                    interaction_type: None,
                    implicit_rating: 1.0,
                })
                .collect(),
        )
    }

    #[test]
    fn ids_split_and_negatives() {
        let data = rows(&[
            ("10", "5", 3),
            ("2", "7", 1),
            ("10", "7", 9),
            ("10", "40", 2),
            ("2", "5", 4),
            ("2", "5", 5),
            ("3", "40", 1),
        ]);
        let ix = Indexed::new(&data);
        assert_eq!(ix.ids.users, ["2", "3", "10"], "numeric ids in numeric order");
        assert_eq!(ix.ids.items, ["5", "7", "40"]);
        assert_eq!((ix.ids.user("10"), ix.ids.item("40"), ix.ids.user("nope")), (Some(2), Some(2), None));
        let s = leave_one_out(&ix);
        // User "2": 7@1, 5@4, 5@5 → items [7, 5] (5 once), test 5. User "3": one interaction.
        // User "10": 40@2, 5@3, 7@9 → test 7.
        assert_eq!(s.test, vec![Some(0), None, Some(1)]);
        assert_eq!(s.train, vec![(0, 1), (1, 2), (2, 2), (2, 0)]);
        // Negatives: never a seen or test item, distinct, the same for the same seed.
        let negs = test_negatives(&s, 50, 20, 7).unwrap();
        assert_eq!(negs.iter().map(Vec::len).collect::<Vec<_>>(), [20, 0, 20]);
        for (u, banned) in [(0usize, [0u32, 1, 1]), (2, [0, 1, 2])] {
            let set: HashSet<u32> = negs[u].iter().copied().collect();
            assert_eq!(set.len(), 20);
            assert!(banned.iter().all(|b| !set.contains(b)) && set.iter().all(|&j| j < 50), "{:?}", negs[u]);
        }
        assert_eq!(negs, test_negatives(&s, 50, 20, 7).unwrap());
        assert_ne!(negs, test_negatives(&s, 50, 20, 8).unwrap());
        // User "10" (index 2) has seen every one of 3 items.
        assert!(test_negatives(&s, 3, 1, 7)
            .unwrap_err()
            .to_string()
            .contains("user index 2 has only 0 items left"));
        // Negatives from a file: ids, checked against the split.
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.negative");
        std::fs::write(&f, "(2,5)\t40\n(10,7)\n").unwrap();
        let from_file = load_test_negatives(&f, &ix.ids, &s).unwrap();
        assert_eq!(from_file, vec![vec![2], vec![], vec![]]);
        for (text, needle) in [
            ("(2,7)\t40\n", "t.negative:1: item '7' is not the held-out item of user '2' (that is '5')"),
            ("(2,5)\t7\n", "item '7' is not a negative"),
            ("\n(9,5)\t40\n", "t.negative:2: unknown user '9'"),
            ("2,5\t40\n", "expected '(USER,ITEM)'"),
        ] {
            std::fs::write(&f, text).unwrap();
            let e = load_test_negatives(&f, &ix.ids, &s).unwrap_err().to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
        let st = rec_stats(&ix, 3);
        assert_eq!((st.users, st.items, st.pairs, st.thin_users, st.single_items), (3, 3, 6, 2, 0));
        assert!((st.density - 6.0 / 9.0).abs() < 1e-12);
        assert_eq!(st.per_user, (1, 2, 3));
        assert!(st.warnings[0].starts_with("2 of 3 users have fewer than 3"));
    }
}
