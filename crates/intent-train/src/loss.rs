//! Losses the trainers share beyond burn's: multi-label BCE with per-label weights of the
//! positives (PyTorch's `BCEWithLogitsLoss(pos_weight=…)`; burn 0.21's BCE weighs whole labels,
//! not their positives), and how those weights come from label frequencies.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// How much a positive example of label c weighs in multi-label BCE, with n_c positives among N
/// examples ([`crate::BertOptions::pos_weight`], [`crate::MlpOptions::pos_weight`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum PosWeight {
    /// 1 (plain BCE).
    #[default]
    Off,
    /// √((N − n_c) / n_c).
    Sqrt,
    /// (N − n_c) / n_c (PyTorch's `pos_weight` as usually set).
    Balanced,
}

impl PosWeight {
    /// The weight of each of `k` labels over `targets` (label indices per example).
    pub fn weights(self, targets: &[Vec<usize>], k: usize) -> Option<Vec<f32>> {
        if self == PosWeight::Off {
            return None;
        }
        let mut n = vec![0usize; k];
        targets.iter().flatten().for_each(|&c| n[c] += 1);
        let total = targets.len() as f64;
        Some(
            n.iter()
                .map(|&p| {
                    let ratio = (total - p as f64).max(1.0) / (p as f64).max(1.0);
                    (if self == PosWeight::Sqrt { ratio.sqrt() } else { ratio }) as f32
                })
                .collect(),
        )
    }
}

/// Mean BCE on logits with the positives of label c weighted by `w[c]` (PyTorch's
/// `BCEWithLogitsLoss(pos_weight=w)`): `w·y·softplus(−z) + (1 − y)·softplus(z)`, with softplus in
/// its stable form `max(z, 0) + ln(1 + e^{−|z|})` and `softplus(−z) = softplus(z) − z`.
pub fn bce_with_pos_weight<B: Backend>(z: Tensor<B, 2>, y: Tensor<B, 2>, w: Tensor<B, 2>) -> Tensor<B, 1> {
    let softplus = z.clone().clamp_min(0.0) + z.clone().abs().neg().exp().log1p();
    let pos = (softplus.clone() - z) * y.clone() * w;
    let neg = softplus * (y.neg() + 1.0);
    (pos + neg).mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::nn::loss::BinaryCrossEntropyLossConfig;

    #[test]
    fn weighted_bce_matches_a_hand_computation_and_burn_at_weight_one() {
        let d = Default::default();
        let z = Tensor::<Flex, 2>::from_floats([[2.0, -1.0], [0.5, 3.0]], &d);
        let y = Tensor::<Flex, 2>::from_floats([[1.0, 0.0], [0.0, 1.0]], &d);
        let w = Tensor::<Flex, 2>::from_floats([[3.0, 0.5]], &d);
        let sp = |x: f64| (1.0 + x.exp()).ln(); // softplus
                                                // Positives: w·softplus(−z); negatives: softplus(z).
        let want = (3.0 * sp(-2.0) + sp(-1.0) + sp(0.5) + 0.5 * sp(-3.0)) / 4.0;
        let got = bce_with_pos_weight(z.clone(), y.clone(), w).into_scalar() as f64;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        let ones = Tensor::<Flex, 2>::ones([1, 2], &d);
        let plain = BinaryCrossEntropyLossConfig::new()
            .with_logits(true)
            .init(&d)
            .forward(z.clone(), y.clone().int());
        let ours = bce_with_pos_weight(z, y, ones);
        assert!((plain.into_scalar() - ours.into_scalar()).abs() < 1e-6);
    }

    #[test]
    fn weights_follow_label_frequencies() {
        // 4 examples: label 0 in 1 of them, label 1 in 3, label 2 in none.
        let targets = vec![vec![0, 1], vec![1], vec![1], vec![]];
        assert_eq!(PosWeight::Off.weights(&targets, 3), None);
        assert_eq!(PosWeight::Balanced.weights(&targets, 3), Some(vec![3.0, 1.0 / 3.0, 4.0]));
        let s = PosWeight::Sqrt.weights(&targets, 3).unwrap();
        assert!((s[0] - 3f32.sqrt()).abs() < 1e-6 && (s[1] - (1.0f32 / 3.0).sqrt()).abs() < 1e-6);
    }
}
