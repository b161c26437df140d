//! [`Predictor`]: what every classifier kind offers the inference library (class probabilities
//! of a batch of texts, the folder's config, batching hints). [`crate::Classifier`] wraps the
//! kinds in one enum; code that knows its kind can use the model type directly.

use intent_models::bert::{BertClassifier, BertTokenizer};
use intent_models::zero_shot::ZeroShot;
use intent_models::{BowMlp, CpuBackend, ModelConfig, SvmModel};

use crate::ServeError;

/// A loaded classifier of one kind.
pub trait Predictor: Send + Sync {
    /// The model folder's `config.json` (labels, thresholds, out-of-scope policy).
    fn config(&self) -> &ModelConfig;

    /// Class probabilities of each text, one row per text in label order. An input the model
    /// cannot take (a text its tokenizer rejects) is [`ServeError::Input`].
    fn scores(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ServeError>;

    /// The values [`Predictor::scores`] maps to probabilities (text-embeddings-inference's
    /// `raw_scores`): logits of the MLP and BERT, decision values of the SVM, cosine
    /// similarities of zero-shot.
    fn raw_scores(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ServeError>;

    /// Whether concurrent requests should be batched (transformer encoders, whose matrix
    /// products grow better with more rows).
    fn batches(&self) -> bool {
        false
    }

    /// Tokens `text` costs in a batch (the batcher's budget): whitespace-separated words unless
    /// the kind has a tokenizer.
    fn token_count(&self, text: &str) -> usize {
        text.split_whitespace().count().max(1)
    }
}

/// Word pieces of `text`, capped at the encoder's length (the whole length when it cannot be
/// tokenized: the batch it joins will report the error).
fn word_pieces(tokenizer: &BertTokenizer, text: &str) -> usize {
    tokenizer.ids(text).map(|ids| ids.len().min(tokenizer.max_len())).unwrap_or_else(|_| tokenizer.max_len())
}

impl Predictor for BowMlp<CpuBackend> {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn scores(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ServeError> {
        Ok(BowMlp::scores(self, texts))
    }

    fn raw_scores(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ServeError> {
        Ok(BowMlp::logits(self, texts))
    }
}

impl Predictor for SvmModel {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn scores(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ServeError> {
        Ok(SvmModel::scores(self, texts))
    }

    fn raw_scores(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ServeError> {
        Ok(SvmModel::decision_function(self, texts))
    }
}

impl Predictor for ZeroShot<CpuBackend> {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn scores(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ServeError> {
        ZeroShot::scores(self, texts).map_err(ServeError::from_model)
    }

    fn raw_scores(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ServeError> {
        ZeroShot::similarities(self, texts).map_err(ServeError::from_model)
    }

    fn batches(&self) -> bool {
        true
    }

    fn token_count(&self, text: &str) -> usize {
        word_pieces(&self.encoder.tokenizer, text)
    }
}

impl Predictor for BertClassifier<CpuBackend> {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn scores(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ServeError> {
        BertClassifier::scores(self, texts).map_err(ServeError::from_model)
    }

    fn raw_scores(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ServeError> {
        BertClassifier::logits(self, texts).map_err(ServeError::from_model)
    }

    fn batches(&self) -> bool {
        true
    }

    fn token_count(&self, text: &str) -> usize {
        word_pieces(&self.encoder.tokenizer, text)
    }
}
