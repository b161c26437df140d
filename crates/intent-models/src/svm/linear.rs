//! One-vs-rest linear SVM on sparse TF-IDF rows, trained with [`super::dcd`] one class at a
//! time (in parallel), as scikit-learn's `LinearSVC` (`multi_class="ovr"`). Two classes give a
//! single binary problem, as in LIBLINEAR; its weights are stored as two rows `−w` and `w`.

use intent_data::text::SparseVec;
use rayon::prelude::*;

use super::dcd::{solve, Csr, DcdSettings};
use super::{ClassWeight, SvmParams};

/// Weights of a fitted linear SVM.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearWeights {
    /// Number of features.
    pub dim: usize,
    /// Number of outputs (classes).
    pub k: usize,
    /// Weights, feature-major (`[dim, k]`): a sparse row touches `nnz` contiguous blocks.
    pub coef_t: Vec<f32>,
    /// Intercepts, `[k]` (bias weight × intercept scaling).
    pub intercept: Vec<f32>,
}

/// Convergence facts of a fit.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct FitInfo {
    /// Binary problems solved.
    pub problems: usize,
    /// Largest number of passes of any problem.
    pub max_iterations: usize,
    /// Problems that stopped at `max_iter` before reaching the tolerance.
    pub not_converged: usize,
}

impl LinearWeights {
    /// Decision values (`wᵀx + b` per class) of one row.
    pub fn decision(&self, row: &SparseVec) -> Vec<f32> {
        let mut out = self.intercept.clone();
        for (&j, &v) in row.indices.iter().zip(&row.values) {
            let j = j as usize;
            if j < self.dim {
                let w = &self.coef_t[j * self.k..(j + 1) * self.k];
                out.iter_mut().zip(w).for_each(|(o, w)| *o += v * w);
            }
        }
        out
    }

    /// Weights as sklearn's `coef_` (`[k, dim]`, class-major).
    pub fn coef(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.k * self.dim];
        for j in 0..self.dim {
            for c in 0..self.k {
                out[c * self.dim + j] = self.coef_t[j * self.k + c];
            }
        }
        out
    }

    /// Builds weights from sklearn-shaped `coef` (`[k, dim]`) and intercepts.
    pub fn from_coef(coef: &[f32], intercept: Vec<f32>, dim: usize) -> Self {
        let k = intercept.len();
        let mut coef_t = vec![0.0; k * dim];
        for c in 0..k {
            for j in 0..dim {
                coef_t[j * k + c] = coef[c * dim + j];
            }
        }
        LinearWeights { dim, k, coef_t, intercept }
    }
}

/// Balanced class weights `n / (k · n_c)` (scikit-learn's `compute_class_weight("balanced")`);
/// for multi-label data, per label `n / (2 · n_c)` (the negatives' weight is
/// [`negative_weights`]), as `OneVsRestClassifier(LinearSVC(class_weight="balanced"))`.
pub fn class_weights(targets: &[Vec<usize>], k: usize, multi_label: bool, mode: ClassWeight) -> Vec<f64> {
    match mode {
        ClassWeight::None => vec![1.0; k],
        ClassWeight::Balanced => {
            let mut counts = vec![0usize; k];
            targets.iter().flatten().for_each(|&c| counts[c] += 1);
            let n = targets.len() as f64;
            let denom = if multi_label { 2.0 } else { k as f64 };
            counts.iter().map(|&c| if c == 0 { 1.0 } else { n / (denom * c as f64) }).collect()
        }
    }
}

/// Weights of each label's negative rows in multi-label one-vs-rest: `n / (2 · (n − n_c))` when
/// balanced, else 1. (Single-label one-vs-rest follows LIBLINEAR: negatives weigh 1.)
pub fn negative_weights(targets: &[Vec<usize>], k: usize, mode: ClassWeight) -> Vec<f64> {
    match mode {
        ClassWeight::None => vec![1.0; k],
        ClassWeight::Balanced => {
            let mut counts = vec![0usize; k];
            targets.iter().flatten().for_each(|&c| counts[c] += 1);
            let n = targets.len();
            counts.iter().map(|&c| if c == n { 1.0 } else { n as f64 / (2.0 * (n - c) as f64) }).collect()
        }
    }
}

/// Fits one-vs-rest (or one binary problem for two single-label classes). `targets[i]` holds
/// the class indices of row `i` (one for single-label data).
pub fn fit(
    x: &Csr,
    targets: &[Vec<usize>],
    k: usize,
    multi_label: bool,
    params: &SvmParams,
) -> (LinearWeights, FitInfo) {
    let weights = class_weights(targets, k, multi_label, params.class_weight);
    let neg = if multi_label { negative_weights(targets, k, params.class_weight) } else { vec![1.0; k] };
    let settings = |c: usize| DcdSettings {
        tol: params.tol,
        max_iter: params.max_iter,
        seed: params.seed.wrapping_add(c as u64),
    };
    let scale = params.intercept_scaling;
    let dim = x.n_cols;
    let mut info = FitInfo::default();
    let mut coef = vec![0.0f32; k * dim];
    let mut intercept = vec![0.0f32; k];
    if k == 2 && !multi_label {
        // LIBLINEAR's two-class case: one problem, class 1 positive, each class its own C.
        let y: Vec<bool> = targets.iter().map(|t| t[0] == 1).collect();
        let s = solve(x, &y, params.c * weights[1], params.c * weights[0], scale, &settings(0));
        for j in 0..dim {
            coef[dim + j] = s.w[j] as f32;
            coef[j] = -s.w[j] as f32;
        }
        intercept[1] = (s.bias * scale) as f32;
        intercept[0] = -intercept[1];
        info =
            FitInfo { problems: 1, max_iterations: s.iterations, not_converged: usize::from(!s.converged) };
    } else {
        // One class against the rest; as LIBLINEAR, the class weight scales the positives' C.
        let solutions: Vec<_> = (0..k)
            .into_par_iter()
            .map(|c| {
                let y: Vec<bool> = targets.iter().map(|t| t.contains(&c)).collect();
                solve(x, &y, params.c * weights[c], params.c * neg[c], scale, &settings(c))
            })
            .collect();
        for (c, s) in solutions.iter().enumerate() {
            coef[c * dim..(c + 1) * dim].iter_mut().zip(&s.w).for_each(|(o, w)| *o = *w as f32);
            intercept[c] = (s.bias * scale) as f32;
            info.max_iterations = info.max_iterations.max(s.iterations);
            info.not_converged += usize::from(!s.converged);
        }
        info.problems = k;
    }
    if info.not_converged > 0 {
        tracing::warn!(
            "the SVM solver stopped at --max-iter {} before reaching --tol {} in {} of {} problems; \
             the model may be less accurate (raise --max-iter)",
            params.max_iter,
            params.tol,
            info.not_converged,
            info.problems
        );
    }
    (LinearWeights::from_coef(&coef, intercept, dim), info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_weights_as_sklearn() {
        // compute_class_weight("balanced", classes=[0,1,2], y=[0,0,0,1,2,2]) = [0.667, 2.0, 1.0]
        let t = vec![vec![0], vec![0], vec![0], vec![1], vec![2], vec![2]];
        let w = class_weights(&t, 3, false, ClassWeight::Balanced);
        assert!((w[0] - 2.0 / 3.0).abs() < 1e-12 && (w[1] - 2.0).abs() < 1e-12 && (w[2] - 1.0).abs() < 1e-12);
        assert_eq!(class_weights(&t, 3, false, ClassWeight::None), vec![1.0; 3]);
    }

    #[test]
    fn balanced_weights_match_sklearn_two_and_three_classes() {
        // scikit-learn 1.9.1, LinearSVC(C=0.5, class_weight="balanced", tol=1e-12, max_iter=10**6)
        // on X = [[1,0,2],[0,1,1],[2,1,0],[0,0,1],[1,2,0],[3,0,1],[0,2,2]]:
        // y = [1,0,0,0,0,1,0] → coef_ [[0.33032188, -0.63942173, 0.41616728]], intercept_ [-0.49787255];
        // y = [0,1,1,2,1,0,1] → coef_ [[0.34055681, -0.61700527, 0.39668924],
        //   [-0.11503325, 0.82854975, -0.3605983], [-0.57480315, -0.64566934, -0.1417323]],
        //   intercept_ [-0.61339353, -0.08965289, 0.43307089].
        let rows: Vec<SparseVec> = [
            [1.0f32, 0.0, 2.0],
            [0.0, 1.0, 1.0],
            [2.0, 1.0, 0.0],
            [0.0, 0.0, 1.0],
            [1.0, 2.0, 0.0],
            [3.0, 0.0, 1.0],
            [0.0, 2.0, 2.0],
        ]
        .iter()
        .map(|r| {
            let nz: Vec<usize> = (0..3).filter(|&j| r[j] != 0.0).collect();
            SparseVec {
                indices: nz.iter().map(|&j| j as u32).collect(),
                values: nz.iter().map(|&j| r[j]).collect(),
            }
        })
        .collect();
        let x = Csr::from_rows(&rows.iter().collect::<Vec<_>>(), 3);
        let params = SvmParams {
            c: 0.5,
            tol: 1e-12,
            max_iter: 1_000_000,
            class_weight: ClassWeight::Balanced,
            ..SvmParams::default()
        };
        let close = |got: &[f32], want: &[f32]| got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-5);
        let t2: Vec<Vec<usize>> = [1, 0, 0, 0, 0, 1, 0].iter().map(|&c| vec![c]).collect();
        let (w, _) = fit(&x, &t2, 2, false, &params);
        let coef = w.coef();
        assert!(close(&coef[3..], &[0.33032188, -0.639_421_7, 0.416_167_3]), "{coef:?}");
        assert!(close(&w.intercept[1..], &[-0.49787255]), "{:?}", w.intercept);
        let t3: Vec<Vec<usize>> = [0, 1, 1, 2, 1, 0, 1].iter().map(|&c| vec![c]).collect();
        let (w, _) = fit(&x, &t3, 3, false, &params);
        let want = [
            0.340_556_8,
            -0.617_005_3,
            0.39668924,
            -0.11503325,
            0.82854975,
            -0.3605983,
            -0.574_803_2,
            -0.64566934,
            -0.1417323,
        ];
        assert!(close(&w.coef(), &want), "{:?}", w.coef());
        assert!(close(&w.intercept, &[-0.61339353, -0.08965289, 0.433_070_9]), "{:?}", w.intercept);
    }

    #[test]
    fn coef_layout_round_trip() {
        let w = LinearWeights::from_coef(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], vec![0.5, -0.5], 3);
        assert_eq!(w.coef(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let d = w.decision(&SparseVec { indices: vec![0, 2], values: vec![1.0, 2.0] });
        assert_eq!(d, vec![0.5 + 1.0 + 6.0, -0.5 + 4.0 + 12.0]);
    }
}
