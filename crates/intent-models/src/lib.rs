//! intent-models: model definitions and model folders.
//!
//! - [`architecture`]: the kind of a classifier folder with its typed architecture;
//! - [`folder`]: the self-describing model folder (`config.json`, `model.safetensors`,
//!   vocabulary, `metrics.json`), written atomically;
//! - [`mlp`]: the bag-of-words MLP (burn), its architecture and inference wrapper;
//! - [`bert`]: BERT-family encoders from Hugging Face folders (burn), tokenizer, pooling;
//! - [`hub`]: model folders by local path or Hugging Face hub repo id (cache, revision, offline);
//! - [`zero_shot`]: label descriptions + sentence embeddings → zero-shot classifier;
//! - [`svm`]: linear SVM (dual coordinate descent on sparse rows) and kernel SVC (smartcore),
//!   with calibrated probabilities;
//! - [`ncf`]: Neural Collaborative Filtering (GMF, MLP, NeuMF) on the host, as a burn module
//!   ([`ncf::burn_module`]) and as a model folder ([`ncf::folder`]).
//!
//! Options are checked once ([`checked`]: `check()` makes a `Checked` that trainers take).
//!
//! The inference backend is a type parameter; [`CpuBackend`] is the default.
//!
//! ```
//! use intent_models::checked::Check;
//! use intent_models::{ModelKind, SvmParams};
//! // A model folder says what it holds; unknown kinds are errors that list the known ones.
//! assert_eq!("zero-shot".parse::<ModelKind>(), Ok(ModelKind::ZeroShot));
//! let unknown = "perceptron".parse::<ModelKind>().unwrap_err();
//! assert!(unknown.contains("mlp, svm, zero-shot, bert, ncf"), "{unknown}");
//! // Options are checked once; the error names the field.
//! assert!(SvmParams { max_iter: 0, ..SvmParams::default() }.check().is_err());
//! ```

pub mod architecture;
pub mod bert;
pub mod checked;
pub mod error;
pub mod folder;
pub mod hub;
pub mod mlp;
pub mod ncf;
pub mod svm;
pub mod tensors;
pub mod zero_shot;

pub use architecture::{Architecture, BertArchitecture};
pub use error::{ModelError, Result};
pub use folder::{ModelConfig, ModelKind, OosConfig, Preprocessing, Versions};
pub use mlp::{BowMlp, Mlp, MlpArchitecture};
pub use svm::{SvmModel, SvmParams};

/// The default CPU backend for inference (pure Rust, multi-threaded, SIMD).
pub type CpuBackend = burn::backend::Flex;

/// True for burn's CPU backends (flex, ndarray, with or without autodiff); false for the
/// accelerators (cubecl's CUDA, Vulkan, …). On the CPU a tensor read is a copy; on an
/// accelerator it waits for every kernel queued before it, so hot loops there never read one.
pub fn is_cpu_backend<B: burn::tensor::backend::Backend>(device: &B::Device) -> bool {
    let name = B::name(device);
    name.contains("flex") || name.contains("ndarray")
}
