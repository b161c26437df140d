//! Dual coordinate descent for the L2-regularised, L2-loss (squared hinge) linear SVM, as in
//! Hsieh et al., "A Dual Coordinate Descent Method for Large-scale Linear SVM" (ICML 2008) and
//! LIBLINEAR's `solve_l2r_l1l2_svc` (the solver behind scikit-learn's `LinearSVC`).
//!
//! Written by hand because no maintained Rust crate solves linear SVMs on sparse rows:
//! smartcore and linfa-svm run SMO on dense input, orders of magnitude slower on text.
//!
//! Primal: `min_w ½‖w‖² + Σᵢ Cᵢ max(0, 1 − yᵢ wᵀxᵢ)²`, with the bias as an extra feature of
//! value `bias_scale` (regularised, as LIBLINEAR and scikit-learn do).
//! Dual: `min_α ½αᵀQ̄α − eᵀα, α ≥ 0`, `Q̄ = Q + D`, `Qᵢⱼ = yᵢyⱼxᵢᵀxⱼ`, `Dᵢᵢ = 1/(2Cᵢ)`.
//! Each step minimises the dual exactly in one coordinate and keeps `w = Σ αᵢyᵢxᵢ` up to date;
//! coordinates whose projected gradient shows they will stay at zero are shrunk away, and the
//! solver stops when the projected gradients of a pass span at most `tol`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Rows in compressed sparse row form (feature values in `f64`, as LIBLINEAR).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Csr {
    /// Row `i` is `indices[indptr[i]..indptr[i + 1]]`.
    pub indptr: Vec<usize>,
    /// Column of each stored value.
    pub indices: Vec<u32>,
    /// Stored values.
    pub values: Vec<f64>,
    /// Number of columns.
    pub n_cols: usize,
}

impl Csr {
    /// Builds a matrix from sparse rows of `n_cols` columns.
    pub fn from_rows(rows: &[&intent_data::text::SparseVec], n_cols: usize) -> Self {
        let mut m = Csr { indptr: Vec::with_capacity(rows.len() + 1), n_cols, ..Default::default() };
        m.indptr.push(0);
        for r in rows {
            m.indices.extend_from_slice(&r.indices);
            m.values.extend(r.values.iter().map(|&v| f64::from(v)));
            m.indptr.push(m.indices.len());
        }
        m
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }

    /// Column indices and values of row `i`.
    pub fn row(&self, i: usize) -> (&[u32], &[f64]) {
        let (a, b) = (self.indptr[i], self.indptr[i + 1]);
        (&self.indices[a..b], &self.values[a..b])
    }
}

/// Stopping rule and shuffling seed of the solver.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DcdSettings {
    /// Stop when the projected gradients of one pass span at most this (LIBLINEAR's `eps`).
    pub tol: f64,
    /// Maximum passes over the data.
    pub max_iter: usize,
    /// Seed of the coordinate order.
    pub seed: u64,
}

/// The solution of one binary problem.
#[derive(Debug, Clone, PartialEq)]
pub struct DcdSolution {
    /// Feature weights.
    pub w: Vec<f64>,
    /// Bias weight (multiplies `bias_scale`).
    pub bias: f64,
    /// Dual variables, one per row.
    pub alpha: Vec<f64>,
    /// Passes made.
    pub iterations: usize,
    /// Whether the tolerance was reached before `max_iter`.
    pub converged: bool,
}

/// Solves one binary problem. `y[i]` is `true` for the positive class; `c_pos`/`c_neg` are the
/// penalties of positive and negative rows; `bias_scale` is the value of the bias feature
/// (0 = no bias, 1 = scikit-learn's default `intercept_scaling`).
pub fn solve(x: &Csr, y: &[bool], c_pos: f64, c_neg: f64, bias_scale: f64, s: &DcdSettings) -> DcdSolution {
    let l = x.n_rows();
    debug_assert_eq!(y.len(), l);
    let diag = |i: usize| if y[i] { 0.5 / c_pos } else { 0.5 / c_neg };
    let sign = |i: usize| if y[i] { 1.0 } else { -1.0 };
    let b2 = bias_scale * bias_scale;
    let qd: Vec<f64> = (0..l)
        .map(|i| {
            let (_, v) = x.row(i);
            diag(i) + v.iter().map(|a| a * a).sum::<f64>() + b2
        })
        .collect();
    let mut w = vec![0.0f64; x.n_cols];
    let mut bias = 0.0f64;
    let mut alpha = vec![0.0f64; l];
    let mut index: Vec<usize> = (0..l).collect();
    let mut active = l;
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
    // LIBLINEAR also tracks the smallest projected gradient of the previous pass to shrink
    // coordinates at the upper bound; the L2 loss has none, so only the largest is kept.
    let mut pg_max_old = f64::INFINITY;
    let mut iter = 0;
    let mut converged = false;
    while iter < s.max_iter {
        let (mut pg_max_new, mut pg_min_new) = (f64::NEG_INFINITY, f64::INFINITY);
        for i in 0..active {
            let j = rng.random_range(i..active);
            index.swap(i, j);
        }
        let mut k = 0;
        while k < active {
            let i = index[k];
            let (cols, vals) = x.row(i);
            let yi = sign(i);
            let dot: f64 =
                cols.iter().zip(vals).map(|(&c, &v)| w[c as usize] * v).sum::<f64>() + bias * bias_scale;
            let g = yi * dot - 1.0 + alpha[i] * diag(i);
            // The L2 loss has no upper bound on α, so only the lower bound (0) projects.
            let pg = if alpha[i] == 0.0 {
                if g > pg_max_old {
                    // Shrink: this coordinate is at its bound and will stay there.
                    active -= 1;
                    index.swap(k, active);
                    continue;
                }
                g.min(0.0)
            } else {
                g
            };
            pg_max_new = pg_max_new.max(pg);
            pg_min_new = pg_min_new.min(pg);
            if pg.abs() > 1e-12 {
                let old = alpha[i];
                alpha[i] = (old - g / qd[i]).max(0.0);
                let d = (alpha[i] - old) * yi;
                for (&c, &v) in cols.iter().zip(vals) {
                    w[c as usize] += d * v;
                }
                bias += d * bias_scale;
            }
            k += 1;
        }
        iter += 1;
        if pg_max_new - pg_min_new <= s.tol {
            if active == l {
                converged = true;
                break;
            }
            // Converged on the active set: check all coordinates once more.
            active = l;
            pg_max_old = f64::INFINITY;
            continue;
        }
        pg_max_old = if pg_max_new <= 0.0 { f64::INFINITY } else { pg_max_new };
    }
    DcdSolution { w, bias, alpha, iterations: iter, converged }
}

/// The primal objective `½(‖w‖² + bias²) + Σ Cᵢ max(0, 1 − yᵢ f(xᵢ))²` (for tests and logs).
pub fn primal_objective(
    x: &Csr,
    y: &[bool],
    c_pos: f64,
    c_neg: f64,
    bias_scale: f64,
    w: &[f64],
    bias: f64,
) -> f64 {
    let reg = 0.5 * (w.iter().map(|a| a * a).sum::<f64>() + bias * bias);
    let loss: f64 = (0..x.n_rows())
        .map(|i| {
            let (cols, vals) = x.row(i);
            let f: f64 =
                cols.iter().zip(vals).map(|(&c, &v)| w[c as usize] * v).sum::<f64>() + bias * bias_scale;
            let (yi, ci) = if y[i] { (1.0, c_pos) } else { (-1.0, c_neg) };
            ci * (1.0 - yi * f).max(0.0).powi(2)
        })
        .sum();
    reg + loss
}

#[cfg(test)]
mod tests {
    use super::*;
    use intent_data::text::SparseVec;

    fn csr(rows: &[&[(u32, f32)]], n_cols: usize) -> Csr {
        let rows: Vec<SparseVec> = rows
            .iter()
            .map(|r| SparseVec {
                indices: r.iter().map(|p| p.0).collect(),
                values: r.iter().map(|p| p.1).collect(),
            })
            .collect();
        Csr::from_rows(&rows.iter().collect::<Vec<_>>(), n_cols)
    }

    const TIGHT: DcdSettings = DcdSettings { tol: 1e-12, max_iter: 100_000, seed: 7 };

    #[test]
    fn two_points_known_optimum() {
        // x = ±1, no bias: minimise ½w² + C(1 − w)² + C(1 − w)² → w = 4C / (1 + 4C).
        let x = csr(&[&[(0, 1.0)], &[(0, -1.0)]], 1);
        for c in [0.1, 1.0, 10.0] {
            let s = solve(&x, &[true, false], c, c, 0.0, &TIGHT);
            assert!(s.converged);
            assert!((s.w[0] - 4.0 * c / (1.0 + 4.0 * c)).abs() < 1e-9, "C={c}: w={}", s.w[0]);
            // α = 2C·max(0, 1 − y w x) at the optimum (KKT of the L2 loss).
            assert!((s.alpha[0] - 2.0 * c * (1.0 - s.w[0])).abs() < 1e-9);
        }
    }

    #[test]
    fn matches_liblinear_on_a_small_problem() {
        // scikit-learn 1.9.1: LinearSVC(C=0.5, tol=1e-12, max_iter=10**6).fit(X, y) with
        // X = [[1,0,2],[0,1,1],[2,1,0],[0,0,1],[1,2,0],[3,0,1]], y = [1,0,1,0,0,1]
        // gives coef_ [[0.78723404, -0.5212766, 0.07446809]], intercept_ [-0.39361702].
        let x = csr(
            &[
                &[(0, 1.0), (2, 2.0)],
                &[(1, 1.0), (2, 1.0)],
                &[(0, 2.0), (1, 1.0)],
                &[(2, 1.0)],
                &[(0, 1.0), (1, 2.0)],
                &[(0, 3.0), (2, 1.0)],
            ],
            3,
        );
        let y = [true, false, true, false, false, true];
        let s = solve(&x, &y, 0.5, 0.5, 1.0, &TIGHT);
        let want = [0.78723404, -0.5212766, 0.07446809];
        for (a, b) in s.w.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{:?} vs {want:?}", s.w);
        }
        assert!((s.bias - -0.39361702).abs() < 1e-6, "bias {}", s.bias);
        // Any other w has a larger primal objective.
        let best = primal_objective(&x, &y, 0.5, 0.5, 1.0, &s.w, s.bias);
        let mut w2 = s.w.clone();
        w2[1] += 1e-3;
        assert!(primal_objective(&x, &y, 0.5, 0.5, 1.0, &w2, s.bias) > best);
    }

    #[test]
    #[allow(clippy::needless_range_loop)] // row i of x with label i of y
    fn separable_data_is_separated_and_seed_is_deterministic() {
        let x = csr(&[&[(0, 1.0)], &[(0, 0.8), (1, 0.2)], &[(1, 1.0)], &[(1, 0.9), (2, 0.1)]], 3);
        let y = [true, true, false, false];
        let s = solve(&x, &y, 10.0, 10.0, 1.0, &DcdSettings { tol: 1e-4, max_iter: 1000, seed: 1 });
        for i in 0..4 {
            let (c, v) = x.row(i);
            let f: f64 = c.iter().zip(v).map(|(&c, &v)| s.w[c as usize] * v).sum::<f64>() + s.bias;
            assert_eq!(f > 0.0, y[i]);
        }
        assert_eq!(s, solve(&x, &y, 10.0, 10.0, 1.0, &DcdSettings { tol: 1e-4, max_iter: 1000, seed: 1 }));
    }
}
