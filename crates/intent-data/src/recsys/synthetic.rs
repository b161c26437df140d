//! Seeded synthetic implicit feedback with structure a recommender can learn: users and items
//! belong to latent groups, and a user picks items of their own group most of the time.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::formats::interactions::{Interaction, Interactions};

/// `users` users with `per_user` distinct items each among `items` items, in `groups` taste
/// groups (a user picks from their group with probability 0.8); timestamps increase per user.
/// The same arguments give the same data.
pub fn synthetic_interactions(
    users: usize,
    items: usize,
    per_user: usize,
    groups: usize,
    seed: u64,
) -> Interactions {
    let groups = groups.clamp(1, items.max(1));
    let per_user = per_user.min(items);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows = Vec::with_capacity(users * per_user);
    for u in 0..users {
        let g = u % groups;
        let mut picked = std::collections::HashSet::new();
        let mut t = 1_700_000_000 + rng.random_range(0..86_400i64);
        while picked.len() < per_user {
            let item = if rng.random::<f64>() < 0.8 {
                // An item of group g: indices ≡ g (mod groups).
                let k = rng.random_range(0..items.div_ceil(groups));
                (k * groups + g).min(items - 1)
            } else {
                rng.random_range(0..items)
            };
            if picked.insert(item) {
                t += rng.random_range(60..86_400i64);
                rows.push(Interaction {
                    user_id: format!("u{u}"),
                    item_id: format!("i{item}"),
                    timestamp: Some(t),
                    interaction_type: None,
                    implicit_rating: 1.0,
                });
            }
        }
    }
    Interactions::new(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_and_shaped() {
        let a = synthetic_interactions(30, 50, 10, 5, 1);
        assert_eq!(a, synthetic_interactions(30, 50, 10, 5, 1));
        assert_ne!(a, synthetic_interactions(30, 50, 10, 5, 2));
        assert_eq!((a.metadata.num_users, a.metadata.num_interactions), (30, 300));
        // Mostly in-group: item index ≡ user index (mod 5).
        let same = a
            .interactions
            .iter()
            .filter(|i| {
                i.user_id[1..].parse::<usize>().unwrap() % 5 == i.item_id[1..].parse::<usize>().unwrap() % 5
            })
            .count();
        assert!(same > 200, "{same}");
    }
}
