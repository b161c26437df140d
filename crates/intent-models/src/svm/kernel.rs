//! Kernel SVC, one-vs-one, trained with smartcore's binary `SVC` (LaSVM) for each pair of
//! classes; for small data sets (the solver's cost grows with the square of the examples).
//!
//! smartcore 0.7 copies each training row through `get_row(i).iterator(0).take(n_samples)`,
//! silently truncating rows to `n_samples` features, so text rows (far more features than
//! examples) cannot be given to it as they are. The SVC dual depends on the data only through the
//! kernel, so each pair's rows are handed over as an exact factor `Z` of their Gram matrix
//! (`Z Zᵀ = X Xᵀ`, from smartcore's symmetric eigendecomposition): `n_pair` columns, the same
//! dot products and distances, hence the same linear and RBF kernel values and the same
//! solution. The support vectors are then mapped back to the original sparse rows, which is what
//! the model stores and predicts with.

use std::collections::HashMap;

use intent_data::text::SparseVec;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linalg::traits::evd::EVDDecomposable;
use smartcore::svm::svc::{SVCParameters, SVC};
use smartcore::svm::Kernels;

use crate::error::{ModelError, Result};

/// Kernel of a kernel SVC.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Kernel {
    /// `xᵀy`.
    Linear,
    /// `exp(−γ‖x − y‖²)`.
    Rbf {
        /// γ.
        gamma: f64,
    },
}

impl Kernel {
    /// Kernel value from `xᵀy`, `‖x‖²` and `‖y‖²`.
    fn value(&self, dot: f64, xx: f64, yy: f64) -> f64 {
        match *self {
            Kernel::Linear => dot,
            Kernel::Rbf { gamma } => (-gamma * (xx + yy - 2.0 * dot).max(0.0)).exp(),
        }
    }
}

/// scikit-learn's `gamma="scale"`: `1 / (n_features · Var(X))`, the variance over all entries
/// of the (dense) matrix.
pub fn gamma_scale(rows: &[&SparseVec], dim: usize) -> f64 {
    let n = (rows.len() * dim) as f64;
    let (s, s2) = rows
        .iter()
        .flat_map(|r| &r.values)
        .fold((0.0f64, 0.0f64), |(a, b), &v| (a + v as f64, b + (v as f64).powi(2)));
    let var = s2 / n - (s / n).powi(2);
    if var > 0.0 {
        1.0 / (dim as f64 * var)
    } else {
        1.0
    }
}

fn sparse_dot(a: &SparseVec, b: &SparseVec) -> f64 {
    let (mut i, mut j, mut s) = (0, 0, 0.0f64);
    while i < a.indices.len() && j < b.indices.len() {
        match a.indices[i].cmp(&b.indices[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                s += a.values[i] as f64 * b.values[j] as f64;
                i += 1;
                j += 1;
            }
        }
    }
    s
}

/// Estimated training seconds of the one-vs-one kernel SVC for single-label `target` over `k`
/// classes, and the size of the largest pair: `1e-7 s × Σ n_pair³`. The constant is twice what
/// was measured on a 2-core Xeon (one pair of 300 / 600 / 1,200 examples: 1.6 / 11.8 / 81 s;
/// the embedded intents, 105 pairs of ~90: 2.7 s).
pub fn estimated_seconds(target: &[usize], k: usize) -> (f64, usize) {
    let mut counts = vec![0usize; k];
    target.iter().for_each(|&c| counts[c] += 1);
    let (mut total, mut largest) = (0.0f64, 0usize);
    for i in 0..k {
        for j in i + 1..k {
            let n = counts[i] + counts[j];
            largest = largest.max(n);
            total += (n as f64).powi(3);
        }
    }
    (1e-7 * total, largest)
}

/// Weights of a fitted one-vs-one kernel SVC.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelWeights {
    /// The kernel.
    pub kernel: Kernel,
    /// Number of classes.
    pub k: usize,
    /// Support vectors (training rows), each stored once.
    pub support: Vec<SparseVec>,
    /// Per pair `(i, j)`, `i < j`, in order: (support vector index, coefficient) terms.
    pub pair_terms: Vec<Vec<(u32, f32)>>,
    /// Per pair, the intercept. A positive decision value votes for `j`.
    pub pair_intercept: Vec<f32>,
}

/// Number of pairs of `k` classes.
pub fn n_pairs(k: usize) -> usize {
    k * k.saturating_sub(1) / 2
}

impl KernelWeights {
    /// Decision values of the pairs (positive: the pair's second class).
    pub fn pair_decisions(&self, row: &SparseVec) -> Vec<f64> {
        let xx = sparse_dot(row, row);
        let kv: Vec<f64> = self
            .support
            .iter()
            .map(|s| self.kernel.value(sparse_dot(row, s), xx, sparse_dot(s, s)))
            .collect();
        self.pair_terms
            .iter()
            .zip(&self.pair_intercept)
            .map(|(terms, &b)| b as f64 + terms.iter().map(|&(s, c)| c as f64 * kv[s as usize]).sum::<f64>())
            .collect()
    }

    /// Per-class scores as scikit-learn's `decision_function_shape="ovr"` for one-vs-one
    /// models: votes plus the summed pair confidences squashed into `(−⅓, ⅓)`, so ties between
    /// vote counts are broken by confidence and the argmax is the voted class.
    pub fn decision(&self, row: &SparseVec) -> Vec<f32> {
        let d = self.pair_decisions(row);
        let mut votes = vec![0.0f64; self.k];
        let mut conf = vec![0.0f64; self.k];
        let mut p = 0;
        for i in 0..self.k {
            for j in i + 1..self.k {
                conf[i] -= d[p];
                conf[j] += d[p];
                if d[p] > 0.0 {
                    votes[j] += 1.0;
                } else {
                    votes[i] += 1.0;
                }
                p += 1;
            }
        }
        votes.iter().zip(&conf).map(|(v, c)| (v + c / (3.0 * (c.abs() + 1.0))) as f32).collect()
    }
}

/// Solver settings of the kernel SVC.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KernelSettings {
    /// Penalty.
    pub c: f64,
    /// Tolerance of smartcore's solver.
    pub tol: f64,
    /// LaSVM passes over each pair's data.
    pub epochs: usize,
    /// Seed of the visiting order.
    pub seed: u64,
}

/// An exact Gram factor of `rows` (`Z Zᵀ = X Xᵀ`), dropping directions with eigenvalues below
/// `1e-10 · λ_max`; row-major, `rows.len() × r`.
fn gram_factor(rows: &[&SparseVec]) -> Result<(Vec<Vec<f64>>, usize)> {
    let n = rows.len();
    let mut g = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let v = sparse_dot(rows[i], rows[j]);
            g[i * n + j] = v;
            g[j * n + i] = v;
        }
    }
    let m = DenseMatrix::new(n, n, g, false).map_err(|e| ModelError::Fit(e.to_string()))?;
    let evd = m.evd(true).map_err(|e| ModelError::Fit(format!("eigendecomposition failed: {e}")))?;
    let lmax = evd.d.iter().copied().fold(0.0f64, f64::max);
    let keep: Vec<usize> = (0..n).filter(|&c| evd.d[c] > 1e-10 * lmax.max(1e-300)).collect();
    use smartcore::linalg::basic::arrays::Array;
    let z = (0..n).map(|i| keep.iter().map(|&c| evd.V.get((i, c)) * evd.d[c].sqrt()).collect()).collect();
    Ok((z, keep.len().max(1)))
}

/// What smartcore's fitted `SVC` holds, read through its serde form (its fields are private).
#[derive(Deserialize)]
struct SvcParts {
    instances: Option<Vec<Vec<f64>>>,
    w: Option<Vec<f64>>,
    b: Option<f64>,
}

/// Fits one binary SVC for the rows `idx` (labels `positive[i]` = second class of the pair).
/// Returns `(row index, coefficient)` terms and the intercept.
fn fit_pair(
    rows: &[SparseVec],
    idx: &[usize],
    positive: &[bool],
    kernel: Kernel,
    s: &KernelSettings,
) -> Result<(Vec<(usize, f64)>, f64)> {
    let pair_rows: Vec<&SparseVec> = idx.iter().map(|&i| &rows[i]).collect();
    let (z, r) = gram_factor(&pair_rows)?;
    // Rows exactly as handed to smartcore (a pair without any feature gets one zero column).
    let z: Vec<Vec<f64>> = z.into_iter().map(|row| if row.is_empty() { vec![0.0; r] } else { row }).collect();
    let flat: Vec<f64> = z.concat();
    let x = DenseMatrix::new(idx.len(), r, flat, false).map_err(|e| ModelError::Fit(e.to_string()))?;
    let y: Vec<i32> = positive.iter().map(|&p| i32::from(p)).collect();
    let smart_kernel = match kernel {
        Kernel::Linear => Kernels::linear(),
        Kernel::Rbf { gamma } => Kernels::rbf().with_gamma(gamma),
    };
    let params = SVCParameters::default()
        .with_c(s.c)
        .with_tol(s.tol)
        .with_epoch(s.epochs)
        .with_seed(Some(s.seed))
        .with_kernel(smart_kernel);
    let svc = SVC::fit(&x, &y, &params).map_err(|e| ModelError::Fit(format!("smartcore SVC: {e}")))?;
    let parts: SvcParts = serde_json::to_value(&svc)
        .and_then(serde_json::from_value)
        .map_err(|e| ModelError::Fit(format!("reading smartcore's SVC: {e}")))?;
    // Map each support vector (a copy of a row of Z) back to its row.
    let key = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<u64>>();
    let by_row: HashMap<Vec<u64>, usize> =
        z.iter().enumerate().rev().map(|(i, v)| (key(v), idx[i])).collect();
    let mut terms = Vec::new();
    for (inst, &coef) in
        parts.instances.unwrap_or_default().iter().zip(parts.w.as_deref().unwrap_or_default())
    {
        let row = by_row.get(&key(inst)).ok_or_else(|| {
            ModelError::Fit("smartcore returned a support vector that is not a training row".into())
        })?;
        if coef != 0.0 {
            terms.push((*row, coef));
        }
    }
    Ok((terms, parts.b.unwrap_or(0.0)))
}

/// Fits the one-vs-one kernel SVC on sparse rows with single class indices.
pub fn fit(
    rows: &[SparseVec],
    target: &[usize],
    k: usize,
    kernel: Kernel,
    s: &KernelSettings,
) -> Result<KernelWeights> {
    let pairs: Vec<(usize, usize)> = (0..k).flat_map(|i| (i + 1..k).map(move |j| (i, j))).collect();
    let fitted: Vec<(Vec<(usize, f64)>, f64)> = pairs
        .par_iter()
        .enumerate()
        .map(|(p, &(i, j))| {
            let idx: Vec<usize> = (0..rows.len()).filter(|&r| target[r] == i || target[r] == j).collect();
            let positive: Vec<bool> = idx.iter().map(|&r| target[r] == j).collect();
            fit_pair(
                rows,
                &idx,
                &positive,
                kernel,
                &KernelSettings { seed: s.seed.wrapping_add(p as u64), ..*s },
            )
        })
        .collect::<Result<_>>()?;
    // Store each support vector once.
    let mut slot: HashMap<usize, u32> = HashMap::new();
    let mut support = Vec::new();
    let mut pair_terms = Vec::with_capacity(pairs.len());
    let mut pair_intercept = Vec::with_capacity(pairs.len());
    for (terms, b) in fitted {
        let mut out = Vec::with_capacity(terms.len());
        for (row, coef) in terms {
            let id = *slot.entry(row).or_insert_with(|| {
                support.push(rows[row].clone());
                (support.len() - 1) as u32
            });
            out.push((id, coef as f32));
        }
        pair_terms.push(out);
        pair_intercept.push(b as f32);
    }
    Ok(KernelWeights { kernel, k, support, pair_terms, pair_intercept })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sv(pairs: &[(u32, f32)]) -> SparseVec {
        SparseVec {
            indices: pairs.iter().map(|p| p.0).collect(),
            values: pairs.iter().map(|p| p.1).collect(),
        }
    }

    #[test]
    fn gram_factor_preserves_dot_products() {
        let rows = [
            sv(&[(0, 1.0), (5, 2.0)]),
            sv(&[(5, 1.0), (9, 1.0)]),
            sv(&[(0, 1.0), (5, 2.0)]),
            sv(&[(2, 3.0)]),
        ];
        let refs: Vec<&SparseVec> = rows.iter().collect();
        let (z, r) = gram_factor(&refs).unwrap();
        assert_eq!(r, 3, "rank 3: rows 0 and 2 are equal");
        for i in 0..4 {
            for j in 0..4 {
                let d: f64 = z[i].iter().zip(&z[j]).map(|(a, b)| a * b).sum();
                assert!((d - sparse_dot(&rows[i], &rows[j])).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn decisions_on_original_rows_match_smartcore_on_the_gram_factor() {
        let rows: Vec<SparseVec> =
            (0..10u32).map(|i| sv(&[(i, 1.0), (20 + i % 3, 0.7), (40 + i / 5, 0.4)])).collect();
        let target: Vec<usize> = (0..10).map(|i| usize::from(i % 2 == 1 || i == 4)).collect();
        let s = KernelSettings { c: 1.0, tol: 1e-3, epochs: 2, seed: 11 };
        for kernel in [Kernel::Linear, Kernel::Rbf { gamma: 0.7 }] {
            let w = fit(&rows, &target, 2, kernel, &s).unwrap();
            let refs: Vec<&SparseVec> = rows.iter().collect();
            let (z, r) = gram_factor(&refs).unwrap();
            let x = DenseMatrix::new(10, r, z.concat(), false).unwrap();
            let y: Vec<i32> = target.iter().map(|&t| t as i32).collect();
            let sk = match kernel {
                Kernel::Linear => Kernels::linear(),
                Kernel::Rbf { gamma } => Kernels::rbf().with_gamma(gamma),
            };
            let params = SVCParameters::default()
                .with_c(1.0)
                .with_tol(1e-3)
                .with_epoch(2)
                .with_seed(Some(11))
                .with_kernel(sk);
            let svc = SVC::fit(&x, &y, &params).unwrap();
            let theirs = svc.decision_function(&x).unwrap();
            for (row, t) in rows.iter().zip(theirs) {
                let ours = w.pair_decisions(row)[0];
                assert!((ours - t).abs() < 1e-5, "{kernel:?}: ours {ours} smartcore {t}");
            }
        }
    }

    #[test]
    fn separable_three_classes() {
        // Three clusters on separate features, far more features than rows per pair.
        let mut rows = Vec::new();
        let mut target = Vec::new();
        for c in 0..3u32 {
            for i in 0..6u32 {
                rows.push(sv(&[(c * 100 + i, 1.0), (c * 100 + 50, 0.5)]));
                target.push(c as usize);
            }
        }
        let s = KernelSettings { c: 10.0, tol: 1e-3, epochs: 2, seed: 3 };
        for kernel in [Kernel::Linear, Kernel::Rbf { gamma: 0.5 }] {
            let w = fit(&rows, &target, 3, kernel, &s).unwrap();
            for (r, &t) in rows.iter().zip(&target) {
                let d = w.decision(r);
                let best = (0..3).max_by(|&a, &b| d[a].total_cmp(&d[b])).unwrap();
                assert_eq!(best, t, "{kernel:?}: {d:?}");
            }
        }
    }
}
