//! Neural Collaborative Filtering (He et al., 2017): GMF, MLP and NeuMF on implicit feedback.
//!
//! - GMF: `σ(hᵀ (p_u ⊙ q_i))` with user and item factors of size `factors`.
//! - MLP: user and item embeddings of size `layers[0] / 2`, concatenated, through the tower
//!   `layers[0] → layers[1] → … → layers[last]` with ReLU, then `h`.
//! - NeuMF: both, with separate embeddings; the GMF vector and the tower's output are
//!   concatenated before `h`.
//!
//! Weights are host `f32` buffers in PyTorch's layouts (`Linear` weights `[out, in]`), named in
//! `model.safetensors` after the module tree: `gmf.user.weight`, `gmf.item.weight`,
//! `mlp.user.weight`, `mlp.item.weight`, `mlp.layers.K.{weight,bias}`, `out.{weight,bias}`.
//! The model is a handful of small matrices, so scoring runs on the host with `matrixmultiply`'s
//! GEMM; a burn module would add per-op dispatch costs larger than the arithmetic.

pub mod burn_module;
pub mod folder;

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::tensors::{self, HostTensor, TensorFile};

/// Which NCF model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum NcfKind {
    /// Generalized matrix factorization.
    Gmf,
    /// Multi-layer perceptron on concatenated embeddings.
    Mlp,
    /// GMF and MLP fused.
    Neumf,
}

impl std::str::FromStr for NcfKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "gmf" => Ok(NcfKind::Gmf),
            "mlp" => Ok(NcfKind::Mlp),
            "neumf" => Ok(NcfKind::Neumf),
            other => Err(format!("'{other}': expected gmf, mlp or neumf")),
        }
    }
}

/// Architecture of an NCF model, as stored in `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NcfArchitecture {
    /// GMF, MLP or NeuMF.
    pub kind: NcfKind,
    /// Users (embedding rows).
    pub num_users: usize,
    /// Items (embedding rows).
    pub num_items: usize,
    /// GMF factors (the predictive factors of the paper).
    pub factors: usize,
    /// MLP tower sizes; `layers[0]` is the concatenated embedding (even), each next one a
    /// `Linear` + ReLU.
    pub layers: Vec<usize>,
}

impl NcfArchitecture {
    /// Checks the sizes; errors name the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |name, message: String| Err(ModelError::Hyperparameter { name, message });
        if self.num_users == 0 || self.num_items == 0 {
            return bad(
                "num_users",
                format!("{} users and {} items: both must be at least 1", self.num_users, self.num_items),
            );
        }
        if self.kind != NcfKind::Mlp && self.factors == 0 {
            return bad("factors", "must be at least 1".into());
        }
        if self.kind != NcfKind::Gmf {
            if self.layers.len() < 2 || self.layers.contains(&0) {
                return bad(
                    "layers",
                    format!("{:?}: expected at least two positive sizes such as 64,32,16,8", self.layers),
                );
            }
            if !self.layers[0].is_multiple_of(2) {
                return bad(
                    "layers",
                    format!(
                        "the first size {} is the user and item embeddings concatenated: it must be even",
                        self.layers[0]
                    ),
                );
            }
        }
        Ok(())
    }

    fn uses_gmf(&self) -> bool {
        self.kind != NcfKind::Mlp
    }

    fn uses_mlp(&self) -> bool {
        self.kind != NcfKind::Gmf
    }

    /// Width of the vector the output layer reads.
    pub fn out_in(&self) -> usize {
        (if self.uses_gmf() { self.factors } else { 0 })
            + (if self.uses_mlp() { *self.layers.last().expect("validated") } else { 0 })
    }
}

/// A `Linear` layer: `weight` `[out, in]` row-major, `bias` `[out]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// Input width.
    pub inp: usize,
    /// Output width.
    pub out: usize,
    /// `[out, in]`.
    pub weight: Vec<f32>,
    /// `[out]`.
    pub bias: Vec<f32>,
}

impl Dense {
    /// PyTorch's default initialisation: weight and bias uniform in ±1/√in.
    fn init(inp: usize, out: usize, rng: &mut ChaCha8Rng) -> Self {
        let a = 1.0 / (inp as f32).sqrt();
        Dense {
            inp,
            out,
            weight: (0..inp * out).map(|_| rng.random_range(-a..a)).collect(),
            bias: (0..out).map(|_| rng.random_range(-a..a)).collect(),
        }
    }

    /// `y[n, out] = x[n, in] · Wᵀ + b`.
    pub fn forward(&self, x: &[f32], n: usize, y: &mut Vec<f32>) {
        y.clear();
        y.reserve(n * self.out);
        for _ in 0..n {
            y.extend_from_slice(&self.bias);
        }
        gemm(n, self.inp, self.out, x, (self.inp, 1), &self.weight, (1, self.inp), y, 1.0);
    }
}

/// `c[m, n] = beta · c + a[m, k] · b[k, n]`, with (row, column) strides of `a` and `b`.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    sa: (usize, usize),
    b: &[f32],
    sb: (usize, usize),
    c: &mut [f32],
    beta: f32,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    // The last element each operand's strides reach.
    let last = |rows: usize, cols: usize, (r, c): (usize, usize)| (rows - 1) * r + (cols - 1) * c;
    assert!(
        c.len() >= m * n && a.len() > last(m, k, sa) && b.len() > last(k, n, sb),
        "gemm operands too short"
    );
    // SAFETY: the bounds above cover every element the strides reach.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            sa.0 as isize,
            sa.1 as isize,
            b.as_ptr(),
            sb.0 as isize,
            sb.1 as isize,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// An NCF model with its weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Ncf {
    /// The architecture.
    pub arch: NcfArchitecture,
    /// GMF user factors `[users, factors]` (empty for MLP).
    pub gmf_user: Vec<f32>,
    /// GMF item factors `[items, factors]`.
    pub gmf_item: Vec<f32>,
    /// MLP user embeddings `[users, layers[0] / 2]` (empty for GMF).
    pub mlp_user: Vec<f32>,
    /// MLP item embeddings `[items, layers[0] / 2]`.
    pub mlp_item: Vec<f32>,
    /// The tower.
    pub tower: Vec<Dense>,
    /// The output layer `[1, out_in]`.
    pub out: Dense,
}

/// Activations of a batch, kept for the backward pass.
#[derive(Debug, Default)]
pub struct Activations {
    /// GMF products `[n, factors]`.
    pub gmf: Vec<f32>,
    /// Tower inputs and outputs: `xs[0]` `[n, layers[0]]`, `xs[k + 1]` after layer k and ReLU.
    pub xs: Vec<Vec<f32>>,
    /// The output layer's input `[n, out_in]`.
    pub head: Vec<f32>,
    /// Logits `[n]`.
    pub logits: Vec<f32>,
}

impl Ncf {
    /// A freshly initialised model: embeddings N(0, 0.01²) as in the paper, `Linear` layers as
    /// PyTorch initialises them; drawn from `seed`.
    pub fn init(arch: NcfArchitecture, seed: u64) -> Result<Self> {
        arch.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut normal = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    // Box–Muller: one N(0, 1) draw from two uniforms.
                    let (u1, u2): (f32, f32) = (rng.random_range(f32::EPSILON..1.0), rng.random());
                    0.01 * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
                })
                .collect()
        };
        let (f, e) = (
            if arch.uses_gmf() { arch.factors } else { 0 },
            if arch.uses_mlp() { arch.layers[0] / 2 } else { 0 },
        );
        let (gmf_user, gmf_item, mlp_user, mlp_item) = (
            normal(arch.num_users * f),
            normal(arch.num_items * f),
            normal(arch.num_users * e),
            normal(arch.num_items * e),
        );
        let tower = if arch.uses_mlp() {
            arch.layers.windows(2).map(|w| Dense::init(w[0], w[1], &mut rng)).collect()
        } else {
            Vec::new()
        };
        let out = Dense::init(arch.out_in(), 1, &mut rng);
        Ok(Ncf { arch, gmf_user, gmf_item, mlp_user, mlp_item, tower, out })
    }

    /// MLP embedding width.
    pub fn mlp_dim(&self) -> usize {
        if self.arch.uses_mlp() {
            self.arch.layers[0] / 2
        } else {
            0
        }
    }

    /// GMF factor width (0 for MLP).
    pub fn gmf_dim(&self) -> usize {
        if self.arch.uses_gmf() {
            self.arch.factors
        } else {
            0
        }
    }

    /// Forward pass of the pairs `(users[k], items[k])`, keeping activations in `act`.
    pub fn forward(&self, users: &[u32], items: &[u32], act: &mut Activations) {
        let n = users.len();
        let (f, e) = (self.gmf_dim(), self.mlp_dim());
        act.gmf.clear();
        if f > 0 {
            for (&u, &i) in users.iter().zip(items) {
                let (p, q) = (&self.gmf_user[u as usize * f..][..f], &self.gmf_item[i as usize * f..][..f]);
                act.gmf.extend(p.iter().zip(q).map(|(a, b)| a * b));
            }
        }
        act.xs.resize_with(self.tower.len() + 1, Vec::new);
        if e > 0 {
            let x0 = &mut act.xs[0];
            x0.clear();
            for (&u, &i) in users.iter().zip(items) {
                x0.extend_from_slice(&self.mlp_user[u as usize * e..][..e]);
                x0.extend_from_slice(&self.mlp_item[i as usize * e..][..e]);
            }
            for (k, layer) in self.tower.iter().enumerate() {
                let (before, after) = act.xs.split_at_mut(k + 1);
                layer.forward(&before[k], n, &mut after[0]);
                for v in after[0].iter_mut() {
                    *v = v.max(0.0);
                }
            }
        }
        let last = act.xs.last().filter(|_| e > 0);
        let width = self.out.inp;
        act.head.clear();
        act.head.reserve(n * width);
        for r in 0..n {
            act.head.extend_from_slice(&act.gmf[r * f..(r + 1) * f]);
            if let Some(x) = last {
                let w = x.len() / n.max(1);
                act.head.extend_from_slice(&x[r * w..(r + 1) * w]);
            }
        }
        self.out.forward(&act.head, n, &mut act.logits);
    }

    /// Logits of `(user, item)` pairs (indices).
    pub fn score(&self, users: &[u32], items: &[u32]) -> Vec<f32> {
        let mut act = Activations::default();
        let mut out = Vec::with_capacity(users.len());
        for (u, i) in users.chunks(4096).zip(items.chunks(4096)) {
            self.forward(u, i, &mut act);
            out.extend_from_slice(&act.logits);
        }
        out
    }

    /// Logits of every item for `user`.
    pub fn score_all(&self, user: u32) -> Vec<f32> {
        let items: Vec<u32> = (0..self.arch.num_items as u32).collect();
        self.score(&vec![user; items.len()], &items)
    }

    /// The named tensors, in the layout of `model.safetensors`.
    pub fn tensors(&self) -> Vec<(String, HostTensor)> {
        let a = &self.arch;
        let (f, e) = (self.gmf_dim(), self.mlp_dim());
        let mut out = Vec::new();
        if f > 0 {
            out.push((
                "gmf.user.weight".to_string(),
                HostTensor::F32(self.gmf_user.clone(), vec![a.num_users, f]),
            ));
            out.push((
                "gmf.item.weight".to_string(),
                HostTensor::F32(self.gmf_item.clone(), vec![a.num_items, f]),
            ));
        }
        if e > 0 {
            out.push((
                "mlp.user.weight".to_string(),
                HostTensor::F32(self.mlp_user.clone(), vec![a.num_users, e]),
            ));
            out.push((
                "mlp.item.weight".to_string(),
                HostTensor::F32(self.mlp_item.clone(), vec![a.num_items, e]),
            ));
        }
        for (k, l) in self.tower.iter().enumerate() {
            out.push((
                format!("mlp.layers.{k}.weight"),
                HostTensor::F32(l.weight.clone(), vec![l.out, l.inp]),
            ));
            out.push((format!("mlp.layers.{k}.bias"), HostTensor::F32(l.bias.clone(), vec![l.out])));
        }
        out.push(("out.weight".to_string(), HostTensor::F32(self.out.weight.clone(), vec![1, self.out.inp])));
        out.push(("out.bias".to_string(), HostTensor::F32(self.out.bias.clone(), vec![1])));
        out
    }

    /// Writes `model.safetensors` into `dir`.
    pub fn save_weights(&self, dir: &Path) -> Result<()> {
        let t = self.tensors();
        let names: Vec<String> = t.iter().map(|(n, _)| n.clone()).collect();
        tensors::write(
            &dir.join("model.safetensors"),
            names.iter().map(String::as_str).zip(t.into_iter().map(|(_, t)| t)).collect(),
        )
    }

    /// Reads `dir/model.safetensors` for `arch`; a missing tensor or a wrong shape is named.
    pub fn load_weights(arch: NcfArchitecture, dir: &Path) -> Result<Self> {
        arch.validate()?;
        let file = TensorFile::open(&dir.join("model.safetensors"))?;
        let mut m = Ncf::init(arch, 0)?;
        let (f, e, a) = (m.gmf_dim(), m.mlp_dim(), m.arch.clone());
        if f > 0 {
            m.gmf_user = file.f32("gmf.user.weight", &[a.num_users, f])?;
            m.gmf_item = file.f32("gmf.item.weight", &[a.num_items, f])?;
        }
        if e > 0 {
            m.mlp_user = file.f32("mlp.user.weight", &[a.num_users, e])?;
            m.mlp_item = file.f32("mlp.item.weight", &[a.num_items, e])?;
        }
        for (k, l) in m.tower.iter_mut().enumerate() {
            l.weight = file.f32(&format!("mlp.layers.{k}.weight"), &[l.out, l.inp])?;
            l.bias = file.f32(&format!("mlp.layers.{k}.bias"), &[l.out])?;
        }
        m.out.weight = file.f32("out.weight", &[1, m.out.inp])?;
        m.out.bias = file.f32("out.bias", &[1])?;
        Ok(m)
    }

    /// NeuMF from trained GMF and MLP models (the paper's pre-training): their embeddings and
    /// tower are copied, and the output layer is `[α·h_gmf, (1−α)·h_mlp]` with the bias
    /// `α·b_gmf + (1−α)·b_mlp`.
    pub fn neumf_from(gmf: &Ncf, mlp: &Ncf, alpha: f32) -> Result<Self> {
        if gmf.arch.kind != NcfKind::Gmf || mlp.arch.kind != NcfKind::Mlp {
            return Err(ModelError::Fit(format!(
                "pre-training needs a GMF and an MLP model, got {:?} and {:?}",
                gmf.arch.kind, mlp.arch.kind
            )));
        }
        if (gmf.arch.num_users, gmf.arch.num_items) != (mlp.arch.num_users, mlp.arch.num_items) {
            return Err(ModelError::Fit(
                "the GMF and MLP models were trained on different users or items".into(),
            ));
        }
        let arch = NcfArchitecture {
            kind: NcfKind::Neumf,
            factors: gmf.arch.factors,
            layers: mlp.arch.layers.clone(),
            ..gmf.arch.clone()
        };
        let mut weight: Vec<f32> = gmf.out.weight.iter().map(|w| alpha * w).collect();
        weight.extend(mlp.out.weight.iter().map(|w| (1.0 - alpha) * w));
        let out = Dense {
            inp: arch.out_in(),
            out: 1,
            weight,
            bias: vec![alpha * gmf.out.bias[0] + (1.0 - alpha) * mlp.out.bias[0]],
        };
        Ok(Ncf {
            arch,
            gmf_user: gmf.gmf_user.clone(),
            gmf_item: gmf.gmf_item.clone(),
            mlp_user: mlp.mlp_user.clone(),
            mlp_item: mlp.mlp_item.clone(),
            tower: mlp.tower.clone(),
            out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch(kind: NcfKind) -> NcfArchitecture {
        NcfArchitecture { kind, num_users: 3, num_items: 5, factors: 2, layers: vec![4, 3, 2] }
    }

    #[test]
    fn forward_by_hand_and_save_load() {
        let mut m = Ncf::init(arch(NcfKind::Neumf), 1).unwrap();
        // Hand-set weights: user 1 / item 2.
        m.gmf_user[2..4].copy_from_slice(&[1.0, 2.0]);
        m.gmf_item[4..6].copy_from_slice(&[3.0, -1.0]);
        m.mlp_user[2..4].copy_from_slice(&[1.0, -1.0]);
        m.mlp_item[4..6].copy_from_slice(&[0.5, 2.0]);
        m.tower[0].weight = vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        m.tower[0].bias = vec![0.0, 0.0, 0.0];
        m.tower[1].weight = vec![1.0, 1.0, 1.0, -1.0, 0.0, 0.0];
        m.tower[1].bias = vec![0.5, 0.0];
        m.out.weight = vec![1.0, 1.0, 1.0, 1.0];
        m.out.bias = vec![0.25];
        // x0 = [1, -1, 0.5, 2] → layer 0: [1, -1 + 0.5, 2] → ReLU [1, 0, 2]
        //    → layer 1: [3.5, -1] → ReLU [3.5, 0].
        // GMF: [3, -2]. Logit: 3 − 2 + 3.5 + 0 + 0.25 = 4.75.
        assert_eq!(m.score(&[1], &[2]), vec![4.75]);
        let dir = tempfile::tempdir().unwrap();
        m.save_weights(dir.path()).unwrap();
        let back = Ncf::load_weights(arch(NcfKind::Neumf), dir.path()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.score_all(1), m.score_all(1));
        let e = Ncf::load_weights(NcfArchitecture { num_items: 6, ..arch(NcfKind::Neumf) }, dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("gmf.item.weight") && e.contains("[6, 2]"), "{e}");
    }

    #[test]
    fn kinds_widths_and_pretraining() {
        assert_eq!(Ncf::init(arch(NcfKind::Gmf), 1).unwrap().out.inp, 2);
        assert_eq!(Ncf::init(arch(NcfKind::Mlp), 1).unwrap().out.inp, 2);
        assert_eq!(Ncf::init(arch(NcfKind::Neumf), 1).unwrap().out.inp, 4);
        assert_eq!(
            Ncf::init(arch(NcfKind::Neumf), 1).unwrap(),
            Ncf::init(arch(NcfKind::Neumf), 1).unwrap(),
            "seeded"
        );
        let e = Ncf::init(NcfArchitecture { layers: vec![5, 2], ..arch(NcfKind::Mlp) }, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`layers`") && e.contains("even"), "{e}");
        let (g, p) = (Ncf::init(arch(NcfKind::Gmf), 2).unwrap(), Ncf::init(arch(NcfKind::Mlp), 3).unwrap());
        let n = Ncf::neumf_from(&g, &p, 0.5).unwrap();
        // With α = 0.5 the NeuMF logit is the mean of the two models' logits.
        for (u, i) in [(0, 0), (2, 4), (1, 3)] {
            let want = 0.5 * (g.score(&[u], &[i])[0] + p.score(&[u], &[i])[0]);
            assert!((n.score(&[u], &[i])[0] - want).abs() < 1e-6);
        }
        assert!(Ncf::neumf_from(&p, &g, 0.5).is_err());
    }
}
