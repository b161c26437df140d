//! [`Embedder`]: sentence vectors from a sentence-embedding folder (a Hugging Face BERT-family
//! folder without a classification head, such as all-MiniLM-L6-v2), or from the encoder inside a
//! zero-shot or fine-tuned BERT classifier.

use std::path::Path;

use intent_models::bert::{Pooling, SentenceEncoder};
use intent_models::CpuBackend;

use crate::{Classifier, ServeError};

/// Texts per forward pass.
const BATCH: usize = 32;

/// A sentence-embedding model.
#[derive(Debug)]
pub struct Embedder {
    encoder: SentenceEncoder<CpuBackend>,
}

impl Embedder {
    /// Loads a sentence-embedding folder (its sentence-transformers pooling when it has one).
    pub fn load(dir: &Path) -> Result<Self, ServeError> {
        Ok(Embedder { encoder: SentenceEncoder::load(dir, None, &Default::default())? })
    }

    /// The pooled sentence vector of each text, L2-normalised when `normalize` (whatever the
    /// folder's own pooling says), else as pooled. A text the tokenizer rejects is
    /// [`ServeError::Input`].
    pub fn embed(&self, texts: &[&str], normalize: bool) -> Result<Vec<Vec<f32>>, ServeError> {
        embed(&self.encoder, texts, normalize)
    }

    /// Length of the vectors.
    pub fn dim(&self) -> usize {
        self.encoder.config.hidden_size
    }

    /// Longest input in tokens (longer texts are cut).
    pub fn max_len(&self) -> usize {
        self.encoder.tokenizer.max_len()
    }
}

fn embed(
    encoder: &SentenceEncoder<CpuBackend>,
    texts: &[&str],
    normalize: bool,
) -> Result<Vec<Vec<f32>>, ServeError> {
    let pooling = Pooling { normalize, ..encoder.pooling };
    encoder.embed_with(texts, BATCH, pooling).map_err(ServeError::from_model)
}

impl Classifier {
    /// Sentence vectors from the classifier's encoder: zero-shot and fine-tuned BERT models have
    /// one (`None` for the bag-of-words kinds).
    pub fn embed(&self, texts: &[&str], normalize: bool) -> Option<Result<Vec<Vec<f32>>, ServeError>> {
        let encoder = match self {
            Classifier::ZeroShot(z) => &z.encoder,
            Classifier::Bert(b) => &b.encoder,
            Classifier::Mlp(_) | Classifier::Svm(_) => return None,
        };
        Some(embed(encoder, texts, normalize))
    }
}
