//! Bag-of-words MLP: `input → [Linear → ReLU → Dropout] × hidden_layers → Linear`, over binary,
//! count or TF-IDF vectors. Softmax head for single-label data, sigmoid with per-label
//! thresholds for multi-label data.

use std::path::Path;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::IndexingUpdateOp;
use intent_data::text::{SparseVec, Vectorizer};
use serde::{Deserialize, Serialize};

use crate::architecture::Architecture;
use crate::error::{ModelError, Result};
use crate::folder::{self, ModelConfig, WEIGHTS_FILE};

/// Architecture of the MLP, stored under `architecture` in `config.json`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MlpArchitecture {
    /// Input features (vocabulary size).
    pub input_dim: usize,
    /// Units per hidden layer.
    pub hidden_size: usize,
    /// Number of hidden layers (0 = a linear model).
    pub hidden_layers: usize,
    /// Dropout after each hidden layer, during training.
    pub dropout: f64,
    /// Output units (labels).
    pub num_classes: usize,
}

impl MlpArchitecture {
    /// Checks the numbers once, so later code can rely on them.
    pub fn validate(&self) -> Result<()> {
        let check = |ok: bool, name: &'static str, message: String| {
            if ok {
                Ok(())
            } else {
                Err(ModelError::Hyperparameter { name, message })
            }
        };
        check(self.input_dim > 0, "input_dim", "the vocabulary is empty".into())?;
        check(self.hidden_size > 0, "hidden_size", format!("{} must be at least 1", self.hidden_size))?;
        check(self.hidden_layers <= 64, "hidden_layers", format!("{} is more than 64", self.hidden_layers))?;
        check((0.0..1.0).contains(&self.dropout), "dropout", format!("{} is not in [0, 1)", self.dropout))?;
        check(self.num_classes >= 1, "num_classes", "no label".into())
    }

    /// Creates a network initialised from `seed` alone, as PyTorch initialises `nn.Linear`
    /// (weights and biases uniform in ±1/√fan_in). The values come from a ChaCha generator on
    /// the host, not from the backend's global generator, so the same seed gives the same
    /// network whatever else runs in the process.
    pub fn init_seeded<B: Backend>(&self, device: &B::Device, seed: u64) -> Mlp<B> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut fill = |layer: &mut Linear<B>| {
            let [fan_in, fan_out] = layer.weight.dims();
            let bound = 1.0 / (fan_in as f32).sqrt();
            let w: Vec<f32> = (0..fan_in * fan_out).map(|_| rng.random_range(-bound..bound)).collect();
            let id = layer.weight.id;
            let w = Tensor::from_data(TensorData::new(w, [fan_in, fan_out]), device).require_grad();
            layer.weight = burn::module::Param::initialized(id, w);
            if let Some(bias) = &layer.bias {
                let b: Vec<f32> = (0..fan_out).map(|_| rng.random_range(-bound..bound)).collect();
                let id = bias.id;
                let b = Tensor::from_data(TensorData::new(b, [fan_out]), device).require_grad();
                layer.bias = Some(burn::module::Param::initialized(id, b));
            }
        };
        let mut net = self.init::<B>(device);
        for layer in &mut net.hidden {
            fill(layer);
        }
        fill(&mut net.output);
        net
    }

    /// Creates a network with burn's default initialisation (the backend's generator); used
    /// when loading weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Mlp<B> {
        let mut hidden = Vec::with_capacity(self.hidden_layers);
        let mut d = self.input_dim;
        for _ in 0..self.hidden_layers {
            hidden.push(LinearConfig::new(d, self.hidden_size).init(device));
            d = self.hidden_size;
        }
        Mlp { hidden, output: LinearConfig::new(d, self.num_classes).init(device), relu: Relu::new() }
    }
}

/// The network. The first layer reads sparse input (see [`SparseBatch`]); dropout masks are
/// passed in by the trainer (see [`Mlp::forward`]).
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// Hidden layers.
    pub hidden: Vec<Linear<B>>,
    /// Output layer (logits).
    pub output: Linear<B>,
    relu: Relu,
}

/// A batch of sparse feature rows in coordinate form: entry `i` is feature `cols[i]` of row
/// `rows[i]` with value `values[i]` (all ones for binary features).
#[derive(Debug, Clone)]
pub struct SparseBatch<B: Backend> {
    /// Row of each entry, `[nnz]`.
    pub rows: Tensor<B, 1, Int>,
    /// Feature of each entry, `[nnz]`.
    pub cols: Tensor<B, 1, Int>,
    /// Value of each entry, `[nnz, 1]`; `None` when every value is 1.
    pub values: Option<Tensor<B, 2>>,
    /// Number of rows.
    pub batch: usize,
    /// Number of entries.
    pub nnz: usize,
}

impl<B: Backend> SparseBatch<B> {
    /// Packs sparse rows for the device.
    pub fn new(rows: &[&SparseVec], device: &B::Device) -> Self {
        let (r_idx, c_idx, vals) = Self::entries(rows, 0);
        let binary = vals.iter().all(|&v| v == 1.0);
        Self::from_parts(r_idx, c_idx, vals, binary, rows.len(), device)
    }

    /// Like [`SparseBatch::new`] with exactly `capacity` entries (at least the rows' own): the
    /// extra entries are feature 0 of row 0 with value 0, which change neither the output nor
    /// the gradients. One tensor shape for every batch, for backends that compile kernels per
    /// shape.
    pub fn with_capacity(rows: &[&SparseVec], capacity: usize, device: &B::Device) -> Self {
        let (r_idx, c_idx, vals) = Self::entries(rows, capacity);
        Self::from_parts(r_idx, c_idx, vals, false, rows.len(), device)
    }

    /// Row, feature and value of each entry, padded with (0, 0, 0) up to `capacity`.
    fn entries(rows: &[&SparseVec], capacity: usize) -> (Vec<i64>, Vec<i64>, Vec<f32>) {
        let nnz: usize = rows.iter().map(|r| r.indices.len()).sum();
        let total = capacity.max(nnz);
        let mut r_idx = Vec::with_capacity(total);
        let mut c_idx = Vec::with_capacity(total);
        let mut vals = Vec::with_capacity(total);
        for (r, row) in rows.iter().enumerate() {
            for (&c, &v) in row.indices.iter().zip(&row.values) {
                r_idx.push(r as i64);
                c_idx.push(c as i64);
                vals.push(v);
            }
        }
        r_idx.resize(total, 0);
        c_idx.resize(total, 0);
        vals.resize(total, 0.0);
        (r_idx, c_idx, vals)
    }

    fn from_parts(
        r_idx: Vec<i64>,
        c_idx: Vec<i64>,
        vals: Vec<f32>,
        binary: bool,
        batch: usize,
        device: &B::Device,
    ) -> Self {
        let nnz = r_idx.len();
        SparseBatch {
            rows: Tensor::from_data(TensorData::new(r_idx, [nnz]), device),
            cols: Tensor::from_data(TensorData::new(c_idx, [nnz]), device),
            values: (!binary).then(|| Tensor::from_data(TensorData::new(vals, [nnz, 1]), device)),
            batch,
            nnz,
        }
    }
}

impl<B: Backend> Mlp<B> {
    /// Sparse features → `[batch, num_classes]` logits. `masks`, when given, holds one dropout
    /// mask per hidden layer (`[batch, hidden_size]`, already scaled by 1/(1-p)).
    ///
    /// The first layer is computed as a gather of the weight rows of the features present plus
    /// a scatter-add into the batch rows: the same result as a dense `x·W` but proportional to
    /// the number of non-zero features, not to the vocabulary size (PyTorch's anchor multiplies
    /// the dense bag-of-words matrix).
    pub fn forward(&self, x: SparseBatch<B>, masks: Option<&[Tensor<B, 2>]>) -> Tensor<B, 2> {
        let picked = (x.nnz > 0).then(|| self.first_layer().weight.val().select(0, x.cols.clone()));
        self.forward_picked(x, picked, masks)
    }

    /// The same network with the first layer's weight replaced (same parameter id).
    pub fn with_first_weight(mut self, weight: Tensor<B, 2>) -> Self {
        let first = match self.hidden.first_mut() {
            Some(l) => l,
            None => &mut self.output,
        };
        let id = first.weight.id;
        first.weight = burn::module::Param::initialized(id, weight.require_grad());
        self
    }

    /// The layer that reads the features (the first hidden layer, or the output layer of a
    /// network without hidden layers).
    pub fn first_layer(&self) -> &Linear<B> {
        self.hidden.first().unwrap_or(&self.output)
    }

    /// Like [`Mlp::forward`], with the first layer's weight rows of the batch's features
    /// already gathered (`picked`: `[nnz, width]`, row `i` for entry `i` of `x`). A trainer that
    /// keeps the input weights outside the module (see intent-train's sparse input table)
    /// passes them here.
    pub fn forward_picked(
        &self,
        x: SparseBatch<B>,
        picked: Option<Tensor<B, 2>>,
        masks: Option<&[Tensor<B, 2>]>,
    ) -> Tensor<B, 2> {
        let first = self.first_layer();
        let [_, width] = first.weight.dims();
        let device = first.weight.device();
        let mut h = Tensor::<B, 2>::zeros([x.batch, width], &device);
        if let Some(mut picked) = picked {
            if let Some(v) = x.values {
                picked = picked * v;
            }
            h = h.select_assign(0, x.rows, picked, IndexingUpdateOp::Add);
        }
        if let Some(b) = &first.bias {
            h = h + b.val().unsqueeze::<2>();
        }
        if self.hidden.is_empty() {
            return h;
        }
        let mut h = self.relu.forward(h);
        if let Some(m) = masks {
            h = h * m[0].clone();
        }
        for (i, layer) in self.hidden.iter().enumerate().skip(1) {
            h = self.relu.forward(layer.forward(h));
            if let Some(m) = masks {
                h = h * m[i].clone();
            }
        }
        self.output.forward(h)
    }
}

/// Texts per forward pass when scoring many ([`BowMlp::scores`]), also the trainer's validation
/// batches: the same rows in the same batches give the same tensor shapes, so on a GPU the final
/// validation report reuses the kernels validation compiled during training.
pub const SCORE_BATCH: usize = 1024;

/// A trained bag-of-words MLP with its vectorizer and configuration: what a model folder holds.
#[derive(Debug)]
pub struct BowMlp<B: Backend> {
    /// The folder's `config.json`.
    pub config: ModelConfig,
    /// Parsed architecture.
    pub architecture: MlpArchitecture,
    /// Text → features.
    pub vectorizer: Vectorizer,
    /// The network.
    pub network: Mlp<B>,
    device: B::Device,
}

impl<B: Backend> BowMlp<B> {
    /// Wraps a trained network.
    pub fn new(
        config: ModelConfig,
        vectorizer: Vectorizer,
        network: Mlp<B>,
        device: B::Device,
    ) -> Result<Self> {
        let Architecture::Mlp(architecture) = config.architecture else {
            let kind = config.kind();
            return Err(ModelError::invalid(folder::CONFIG_FILE, format!("kind is '{kind}', not 'mlp'")));
        };
        Ok(BowMlp { config, architecture, vectorizer, network, device })
    }

    /// Class scores of each text: softmax probabilities (single-label) or per-label sigmoid
    /// probabilities (multi-label). Texts are processed in batches of [`SCORE_BATCH`].
    pub fn scores(&self, texts: &[&str]) -> Vec<Vec<f32>> {
        let multi = self.config.multi_label;
        self.outputs(texts, |logits| if multi { sigmoid(logits) } else { softmax(logits, 1) })
    }

    /// The network's outputs before the softmax or sigmoid, one row per text.
    pub fn logits(&self, texts: &[&str]) -> Vec<Vec<f32>> {
        self.outputs(texts, |logits| logits)
    }

    /// Outputs of the network mapped by `activation`, in batches of [`SCORE_BATCH`] texts.
    fn outputs(&self, texts: &[&str], activation: impl Fn(Tensor<B, 2>) -> Tensor<B, 2>) -> Vec<Vec<f32>> {
        let mut out = Vec::with_capacity(texts.len());
        let c = self.architecture.num_classes;
        for chunk in texts.chunks(SCORE_BATCH) {
            let rows: Vec<SparseVec> = chunk.iter().map(|t| self.vectorizer.transform(t)).collect();
            let refs: Vec<&SparseVec> = rows.iter().collect();
            let logits = self.network.forward(SparseBatch::new(&refs, &self.device), None);
            let values = activation(logits);
            let flat: Vec<f32> = values.into_data().convert::<f32>().to_vec().expect("f32 after convert");
            out.extend(flat.chunks(c).map(<[f32]>::to_vec));
        }
        out
    }

    /// Saves the model folder atomically: config.json, model.safetensors, vocab.txt (+ idf.json),
    /// and `metrics` as metrics.json.
    pub fn save(&self, dir: &Path, metrics: &serde_json::Value) -> Result<()> {
        folder::write_model_dir(dir, |tmp| {
            folder::write_json(tmp, folder::CONFIG_FILE, &self.config)?;
            folder::write_vocab(tmp, &self.vectorizer)?;
            folder::write_json(tmp, folder::METRICS_FILE, metrics)?;
            let path = tmp.join(WEIGHTS_FILE);
            let mut store = SafetensorsStore::from_file(&path).overwrite(true);
            self.network.save_into(&mut store).map_err(|e| ModelError::invalid(&path, e.to_string()))
        })
    }

    /// Loads a model folder, checking that config.json, the vocabulary and the weights agree and
    /// saying exactly what differs when they do not.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        Self::from_config(dir, ModelConfig::read(dir)?, device)
    }

    /// Loads the folder `dir` whose `config.json` is `config` (already read).
    pub fn from_config(dir: &Path, config: ModelConfig, device: &B::Device) -> Result<Self> {
        let cfg_path = dir.join(folder::CONFIG_FILE);
        let Architecture::Mlp(architecture) = config.architecture else {
            return Err(ModelError::invalid(&cfg_path, format!("kind is '{}', not 'mlp'", config.kind())));
        };
        architecture.validate()?;
        if config.labels.len() != architecture.num_classes {
            return Err(ModelError::invalid(
                &cfg_path,
                format!(
                    "{} labels but architecture.num_classes = {}",
                    config.labels.len(),
                    architecture.num_classes
                ),
            ));
        }
        config.check_labels(&cfg_path)?;
        let vectorizer = folder::read_vocab(dir, &config.preprocessing)?;
        if vectorizer.dim() != architecture.input_dim {
            return Err(ModelError::invalid(
                &cfg_path,
                format!(
                    "vocabulary has {} terms but architecture.input_dim = {}",
                    vectorizer.dim(),
                    architecture.input_dim
                ),
            ));
        }
        let mut network = architecture.init::<B>(device);
        let path = dir.join(WEIGHTS_FILE);
        if !path.is_file() {
            return Err(ModelError::io(
                &path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "weights file missing"),
            ));
        }
        let mut store = SafetensorsStore::from_file(&path).allow_partial(true).validate(false);
        let result = network.load_from(&mut store).map_err(|e| ModelError::invalid(&path, e.to_string()))?;
        let mut problems: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
        if !result.missing.is_empty() {
            let names: Vec<&str> = result.missing.iter().map(|(p, _)| p.as_str()).collect();
            problems.push(format!("tensors missing from the file: {}", names.join(", ")));
        }
        if !result.unused.is_empty() {
            problems.push(format!(
                "tensors in the file that the architecture does not have: {}",
                result.unused.join(", ")
            ));
        }
        if !problems.is_empty() {
            return Err(ModelError::invalid(
                &path,
                format!(
                    "weights do not match config.json's architecture {architecture:?}: {}",
                    problems.join("; ")
                ),
            ));
        }
        Ok(BowMlp { config, architecture, vectorizer, network, device: device.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};

    /// A sparse batch padded to a fixed number of entries gives the same logits and the same
    /// gradient of the input weight as the unpadded one.
    #[test]
    fn padded_sparse_batches_change_neither_output_nor_gradient() {
        type A = Autodiff<Flex>;
        let device = Default::default();
        let arch =
            MlpArchitecture { input_dim: 6, hidden_size: 4, hidden_layers: 1, dropout: 0.0, num_classes: 3 };
        let model = arch.init_seeded::<A>(&device, 3);
        let rows = [
            SparseVec { indices: vec![0, 2, 5], values: vec![1.0, 1.0, 1.0] },
            SparseVec { indices: vec![1, 2], values: vec![0.5, 2.0] },
        ];
        let refs: Vec<&SparseVec> = rows.iter().collect();
        let run = |x: SparseBatch<A>| {
            let z = model.forward(x, None);
            let grads = (z.clone() * z.clone()).sum().backward();
            let g = model.first_layer().weight.val().grad(&grads).unwrap();
            (z.into_data().to_vec::<f32>().unwrap(), g.into_data().to_vec::<f32>().unwrap())
        };
        let (z, g) = run(SparseBatch::new(&refs, &device));
        let padded = SparseBatch::with_capacity(&refs, 12, &device);
        assert_eq!(padded.nnz, 12);
        let (zp, gp) = run(padded);
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        assert!(close(&z, &zp), "{z:?} vs {zp:?}");
        assert!(close(&g, &gp), "{g:?} vs {gp:?}");
        assert!(g.iter().any(|&x| x != 0.0));
        // A capacity below the entries keeps them all.
        assert_eq!(SparseBatch::<A>::with_capacity(&refs, 2, &device).nnz, 5);
    }
}
