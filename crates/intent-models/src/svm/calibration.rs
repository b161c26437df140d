//! From SVM decision values to probabilities.
//!
//! - Single-label: a softmax over the per-class decision values divided by a temperature `T`
//!   fitted on held-out data by minimising the negative log-likelihood (temperature scaling,
//!   Guo et al. 2017). It keeps the argmax, so accuracy is unchanged. The targets are smoothed
//!   as in Platt's method (the gold class gets `1 − ε`, `ε = 1/(n + 2)`, the rest share `ε`), so
//!   held-out data without a single error still gives a finite temperature instead of driving
//!   it to zero and every confidence to 1.
//! - Multi-label: Platt scaling, `p = σ(a·f + b)`, one `(a, b)` shared by all labels, fitted by
//!   Newton's method on the binary cross-entropy (Platt 1999; Lin, Lin & Weng 2007).
//!
//! Both are one- or two-parameter fits written here: too small to warrant a dependency.

use serde::{Deserialize, Serialize};

/// How decision values become probabilities; stored in the model's `config.json`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum Calibration {
    /// `softmax(f / temperature)`.
    Temperature {
        /// The fitted temperature.
        temperature: f64,
    },
    /// `σ(a·f + b)` per label.
    Platt {
        /// Slope.
        a: f64,
        /// Offset.
        b: f64,
    },
}

impl Calibration {
    /// Probabilities of one row of decision values.
    pub fn apply(&self, f: &[f32]) -> Vec<f32> {
        match *self {
            Calibration::Temperature { temperature } => softmax(f, temperature),
            Calibration::Platt { a, b } => f.iter().map(|&v| sigmoid(a * f64::from(v) + b) as f32).collect(),
        }
    }
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

fn softmax(f: &[f32], t: f64) -> Vec<f32> {
    let max = f.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f64> = f.iter().map(|&v| ((f64::from(v) - f64::from(max)) / t).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| (v / sum) as f32).collect()
}

/// Mean negative log-likelihood of the gold classes under `softmax(f / t)`.
pub fn temperature_nll(decisions: &[Vec<f32>], gold: &[usize], t: f64) -> f64 {
    smoothed_nll(decisions, gold, t, 0.0)
}

/// Mean cross-entropy under `softmax(f / t)` with targets `1 − eps` on the gold class and
/// `eps / (k − 1)` on each other class.
fn smoothed_nll(decisions: &[Vec<f32>], gold: &[usize], t: f64, eps: f64) -> f64 {
    let total: f64 = decisions
        .iter()
        .zip(gold)
        .map(|(f, &g)| {
            let max = f.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = f.iter().map(|&v| ((f64::from(v) - max) / t).exp()).sum::<f64>().ln();
            let logp = |c: usize| (f64::from(f[c]) - max) / t - lse;
            let others = if f.len() > 1 && eps > 0.0 {
                eps / (f.len() - 1) as f64 * (0..f.len()).filter(|&c| c != g).map(|c| -logp(c)).sum::<f64>()
            } else {
                0.0
            };
            -(1.0 - eps) * logp(g) + others
        })
        .sum();
    total / decisions.len().max(1) as f64
}

/// Fits the temperature minimising the smoothed NLL of `gold` (golden-section search on `ln T`
/// over `[1e-3, 1e3]`; the loss is unimodal in `T` for a fixed argmax). `None` without data.
pub fn fit_temperature(decisions: &[Vec<f32>], gold: &[usize]) -> Option<f64> {
    if decisions.is_empty() {
        return None;
    }
    let eps = 1.0 / (decisions.len() as f64 + 2.0);
    let f = |log_t: f64| smoothed_nll(decisions, gold, log_t.exp(), eps);
    let (mut lo, mut hi) = ((1e-3f64).ln(), (1e3f64).ln());
    let r = (5f64.sqrt() - 1.0) / 2.0;
    let (mut x1, mut x2) = (hi - r * (hi - lo), lo + r * (hi - lo));
    let (mut f1, mut f2) = (f(x1), f(x2));
    for _ in 0..80 {
        if f1 <= f2 {
            hi = x2;
            (x2, f2) = (x1, f1);
            x1 = hi - r * (hi - lo);
            f1 = f(x1);
        } else {
            lo = x1;
            (x1, f1) = (x2, f2);
            x2 = lo + r * (hi - lo);
            f2 = f(x2);
        }
    }
    Some(((lo + hi) / 2.0).exp())
}

/// Fits Platt's `(a, b)` on decision values `f` with binary targets (Newton's method with
/// backtracking, Platt's smoothed targets `(N₊+1)/(N₊+2)` and `1/(N₋+2)`). `None` without data
/// or without both classes.
pub fn fit_platt(f: &[f64], target: &[bool]) -> Option<(f64, f64)> {
    let n_pos = target.iter().filter(|&&t| t).count() as f64;
    let n_neg = target.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return None;
    }
    let (hi, lo) = ((n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0));
    let t: Vec<f64> = target.iter().map(|&p| if p { hi } else { lo }).collect();
    // Loss with p = σ(a f + b): Σ −t ln p − (1 − t) ln(1 − p), computed stably.
    let loss = |a: f64, b: f64| -> f64 {
        f.iter()
            .zip(&t)
            .map(|(&fi, &ti)| {
                let z = a * fi + b;
                // −t ln σ(z) − (1−t) ln σ(−z) = ln(1 + e^z) − t z
                let softplus = if z > 0.0 { z + (-z).exp().ln_1p() } else { z.exp().ln_1p() };
                softplus - ti * z
            })
            .sum()
    };
    let (mut a, mut b) = (1.0, -((n_neg + 1.0) / (n_pos + 1.0)).ln());
    let mut current = loss(a, b);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-12, 0.0, 1e-12);
        for (&fi, &ti) in f.iter().zip(&t) {
            let p = sigmoid(a * fi + b);
            let d = p - ti;
            let w = p * (1.0 - p);
            ga += d * fi;
            gb += d;
            haa += w * fi * fi;
            hab += w * fi;
            hbb += w;
        }
        if ga.abs() < 1e-9 && gb.abs() < 1e-9 {
            break;
        }
        let det = haa * hbb - hab * hab;
        let (da, db) = (-(hbb * ga - hab * gb) / det, -(-hab * ga + haa * gb) / det);
        let mut step = 1.0;
        loop {
            let next = loss(a + step * da, b + step * db);
            if next < current + 1e-4 * step * (ga * da + gb * db) {
                a += step * da;
                b += step * db;
                current = next;
                break;
            }
            step /= 2.0;
            if step < 1e-10 {
                return Some((a, b));
            }
        }
    }
    Some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temperature_minimises_nll() {
        // Over-confident scores: wrong 1 time in 4 with a large margin → T > 1 spreads them.
        let d = vec![vec![4.0, 0.0], vec![4.0, 0.0], vec![4.0, 0.0], vec![4.0, 0.0]];
        let gold = [0, 0, 0, 1];
        let t = fit_temperature(&d, &gold).unwrap();
        // Smoothed targets (ε = 1/6): class 0 gets (3·5/6 + 1/6)/4 = 2/3 on average, so the
        // optimum gives p = 2/3 for class 0: 4 / T = ln 2.
        assert!((t - 4.0 / 2f64.ln()).abs() < 1e-6, "T = {t}");
        let p = Calibration::Temperature { temperature: t }.apply(&[4.0, 0.0]);
        assert!((p[0] - 2.0 / 3.0).abs() < 1e-5 && (p[0] + p[1] - 1.0).abs() < 1e-6);
        assert!(fit_temperature(&[], &[]).is_none());
        // No error at all: still a finite temperature, confidences below 1.
        let t = fit_temperature(&d[..3], &gold[..3]).unwrap();
        assert!(t > 0.5 && t < 10.0, "T = {t}");
        let p = Calibration::Temperature { temperature: t }.apply(&[4.0, 0.0]);
        assert!((p[0] - 0.8).abs() < 1e-5, "ε = 1/5 → p = 0.8: {p:?}");
    }

    #[test]
    fn platt_recovers_a_logistic_relation() {
        // Targets drawn so that P(y | f) = σ(2f − 1) exactly in frequency: for each f, 1000
        // examples of which round(1000 σ(2f − 1)) are positive.
        let mut f = Vec::new();
        let mut y = Vec::new();
        for k in -10..=10 {
            let v = k as f64 / 4.0;
            let pos = (1000.0 * sigmoid(2.0 * v - 1.0)).round() as usize;
            for i in 0..1000 {
                f.push(v);
                y.push(i < pos);
            }
        }
        let (a, b) = fit_platt(&f, &y).unwrap();
        assert!((a - 2.0).abs() < 0.02 && (b + 1.0).abs() < 0.02, "a={a} b={b}");
        assert!(fit_platt(&[1.0], &[true]).is_none());
    }
}
