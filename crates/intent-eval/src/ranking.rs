//! Ranking metrics of recommenders: the sampled protocol of He et al. (2017) (the test item
//! ranked against sampled negatives; HR@K and NDCG@K with log2 discounts) and full ranking
//! (the top K among every item the user has not interacted with; HR, NDCG and recall@K).

use serde::{Deserialize, Serialize};

/// Rank (0-based) of the test item's score among the negatives' scores: the number of
/// negatives scored strictly higher (ties count in the test item's favour, as in the
/// reference implementation).
pub fn rank_against(test: f32, negatives: &[f32]) -> usize {
    negatives.iter().filter(|&&s| s > test).count()
}

/// Metrics at one cut-off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankingReport {
    /// The cut-off K.
    pub k: usize,
    /// Users evaluated.
    pub users: usize,
    /// Hit ratio: share of users with a relevant item in their top K.
    pub hr: f64,
    /// Mean NDCG@K (log2 discount; 1 for a relevant item in first place).
    pub ndcg: f64,
    /// Mean recall@K (relevant items in the top K over relevant items); equals `hr` with one
    /// relevant item per user.
    pub recall: f64,
}

/// HR@K and NDCG@K from each user's rank of the single test item (0-based).
pub fn from_ranks(ranks: &[usize], k: usize) -> RankingReport {
    let n = ranks.len().max(1) as f64;
    let hits = ranks.iter().filter(|&&r| r < k).count() as f64;
    let ndcg: f64 = ranks.iter().filter(|&&r| r < k).map(|&r| 1.0 / ((r + 2) as f64).log2()).sum();
    RankingReport { k, users: ranks.len(), hr: hits / n, ndcg: ndcg / n, recall: hits / n }
}

/// Full-ranking metrics: `top[u]` is user u's ranked recommendation list (at least K long when
/// enough items exist), `relevant[u]` the user's held-out items. Users without relevant items
/// are skipped. NDCG uses binary relevance and the ideal DCG of min(K, |relevant|) hits.
pub fn full_ranking(top: &[Vec<u32>], relevant: &[Vec<u32>], k: usize) -> RankingReport {
    let (mut users, mut hr, mut ndcg, mut recall) = (0usize, 0.0, 0.0, 0.0);
    for (list, rel) in top.iter().zip(relevant) {
        if rel.is_empty() {
            continue;
        }
        users += 1;
        let hits: Vec<usize> =
            list.iter().take(k).enumerate().filter(|(_, i)| rel.contains(i)).map(|(r, _)| r).collect();
        if !hits.is_empty() {
            hr += 1.0;
        }
        let dcg: f64 = hits.iter().map(|&r| 1.0 / ((r + 2) as f64).log2()).sum();
        let idcg: f64 = (0..rel.len().min(k)).map(|r| 1.0 / ((r + 2) as f64).log2()).sum();
        ndcg += dcg / idcg;
        recall += hits.len() as f64 / rel.len() as f64;
    }
    let n = users.max(1) as f64;
    RankingReport { k, users, hr: hr / n, ndcg: ndcg / n, recall: recall / n }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_metrics_by_hand() {
        assert_eq!(rank_against(0.5, &[0.9, 0.5, 0.1, 0.7]), 2, "ties do not count against");
        // Ranks 0, 3, 12 with K = 10: hits 2 of 3; NDCG (1/log2(2) + 1/log2(5)) / 3.
        let r = from_ranks(&[0, 3, 12], 10);
        assert!((r.hr - 2.0 / 3.0).abs() < 1e-12);
        assert!((r.ndcg - (1.0 + 1.0 / 5f64.log2()) / 3.0).abs() < 1e-12, "{}", r.ndcg);
        assert_eq!(r.users, 3);
    }

    #[test]
    fn full_ranking_by_hand() {
        // User 0: relevant {7} at position 1 → hit, NDCG 1/log2(3), recall 1.
        // User 1: relevant {1, 2}, top-3 [2, 9, 1] → hits at 0 and 2: DCG 1 + 1/log2(4) = 1.5,
        //   IDCG 1 + 1/log2(3); recall 1. User 2: relevant {4}, not in top 3. User 3: none (skipped).
        let top = vec![vec![3, 7, 8], vec![2, 9, 1], vec![0, 1, 2], vec![5, 6, 7]];
        let rel = vec![vec![7], vec![1, 2], vec![4], vec![]];
        let r = full_ranking(&top, &rel, 3);
        assert_eq!(r.users, 3);
        assert!((r.hr - 2.0 / 3.0).abs() < 1e-12);
        let want = (1.0 / 3f64.log2() + 1.5 / (1.0 + 1.0 / 3f64.log2())) / 3.0;
        assert!((r.ndcg - want).abs() < 1e-12, "{} vs {want}", r.ndcg);
        assert!((r.recall - 2.0 / 3.0).abs() < 1e-12);
        // K = 1: only user 1's first item hits; recall 1/2 for that user.
        let r = full_ranking(&top, &rel, 1);
        assert!((r.hr - 1.0 / 3.0).abs() < 1e-12 && (r.recall - 0.5 / 3.0).abs() < 1e-12);
    }
}
