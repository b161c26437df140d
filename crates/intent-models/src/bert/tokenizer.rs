//! Tokenization through the `tokenizers` crate: a folder's `tokenizer.json`, or a BERT WordPiece
//! tokenizer built from `vocab.txt` (lowercasing from `tokenizer_config.json`'s `do_lower_case`).
//! Batches are padded to their longest member (dynamic padding) and truncated at a limit; the
//! number of truncated texts is reported.

use std::path::Path;

use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::{ModelError, Result};

/// A tokenized, padded batch (row-major `[rows, len]`).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    /// Token ids.
    pub input_ids: Vec<i64>,
    /// Segment ids.
    pub token_type_ids: Vec<i64>,
    /// 1 for tokens, 0 for padding.
    pub attention_mask: Vec<i64>,
    /// Rows.
    pub rows: usize,
    /// Padded length.
    pub len: usize,
    /// Texts cut at the length limit.
    pub truncated: usize,
}

impl TokenBatch {
    /// The real (unpadded) length of each row.
    pub fn lengths(&self) -> Vec<usize> {
        self.attention_mask.chunks(self.len).map(|m| m.iter().filter(|&&v| v != 0).count()).collect()
    }

    /// The rows `rows`, in that order, padded to the longest of them.
    pub fn select(&self, rows: &[usize]) -> TokenBatch {
        let lengths = self.lengths();
        let len = rows.iter().map(|&r| lengths[r]).max().unwrap_or(0).max(1);
        let mut b = TokenBatch {
            input_ids: Vec::with_capacity(rows.len() * len),
            token_type_ids: Vec::with_capacity(rows.len() * len),
            attention_mask: Vec::with_capacity(rows.len() * len),
            rows: rows.len(),
            len,
            truncated: 0,
        };
        for &r in rows {
            let span = r * self.len..r * self.len + len;
            b.input_ids.extend_from_slice(&self.input_ids[span.clone()]);
            b.token_type_ids.extend_from_slice(&self.token_type_ids[span.clone()]);
            b.attention_mask.extend_from_slice(&self.attention_mask[span]);
        }
        b
    }
}

/// A BERT tokenizer with a length limit.
#[derive(Debug, Clone)]
pub struct BertTokenizer {
    inner: Tokenizer,
    max_len: usize,
    pad_id: u32,
}

fn err(path: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::invalid(path, e.to_string())
}

impl BertTokenizer {
    /// The tokenizer of a model folder: `tokenizer.json`, else WordPiece from `vocab.txt`.
    /// `vocab_size` (from `config.json`) must equal the tokenizer's, or ids would index outside
    /// the embedding. Inputs are cut at `max_len` tokens.
    pub fn from_dir(dir: &Path, vocab_size: usize, max_len: usize) -> Result<Self> {
        let json = dir.join("tokenizer.json");
        let (mut inner, source) = if json.is_file() {
            (Tokenizer::from_file(&json).map_err(|e| err(&json, format!("not a tokenizer file: {e}")))?, json)
        } else {
            let vocab = dir.join("vocab.txt");
            if !vocab.is_file() {
                return Err(ModelError::invalid(
                    dir,
                    "no tokenizer.json and no vocab.txt: the folder has no tokenizer",
                ));
            }
            (wordpiece_from_vocab(&vocab, lowercase_of(dir))?, vocab)
        };
        let n = inner.get_vocab_size(true);
        if n != vocab_size {
            return Err(ModelError::invalid(
                &source,
                format!(
                    "the tokenizer has {n} tokens but config.json says vocab_size = {vocab_size}: \
                    tokenizer and weights do not belong together"
                ),
            ));
        }
        let pad_id =
            inner.get_padding().map(|p| p.pad_id).or_else(|| inner.token_to_id("[PAD]")).unwrap_or(0);
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| err(&source, e))?;
        Ok(BertTokenizer { inner, max_len, pad_id })
    }

    /// The length limit in tokens.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Token ids of one text (with `[CLS]`/`[SEP]`), truncated.
    pub fn ids(&self, text: &str) -> Result<Vec<u32>> {
        let e = self
            .inner
            .encode(text, true)
            .map_err(|e| ModelError::Input(format!("the tokenizer rejected the text: {e}")))?;
        Ok(e.get_ids().to_vec())
    }

    /// Tokenizes and pads a batch to its longest member.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<TokenBatch> {
        let enc = self
            .inner
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| ModelError::Input(format!("the tokenizer rejected the text: {e}")))?;
        let len = enc.iter().map(|e| e.get_ids().len()).max().unwrap_or(0).max(1);
        let rows = enc.len();
        let mut b = TokenBatch {
            input_ids: vec![self.pad_id as i64; rows * len],
            token_type_ids: vec![0; rows * len],
            attention_mask: vec![0; rows * len],
            rows,
            len,
            truncated: enc.iter().filter(|e| !e.get_overflowing().is_empty()).count(),
        };
        for (r, e) in enc.iter().enumerate() {
            for (t, ((&id, &ty), &m)) in
                e.get_ids().iter().zip(e.get_type_ids()).zip(e.get_attention_mask()).enumerate()
            {
                b.input_ids[r * len + t] = id as i64;
                b.token_type_ids[r * len + t] = ty as i64;
                b.attention_mask[r * len + t] = m as i64;
            }
        }
        if b.truncated > 0 {
            tracing::warn!(
                "{} of {} texts were longer than {} tokens and were truncated",
                b.truncated,
                rows,
                self.max_len
            );
        }
        Ok(b)
    }
}

fn lowercase_of(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("tokenizer_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("do_lower_case").and_then(|b| b.as_bool()))
        .unwrap_or(true)
}

/// BERT's tokenizer from a WordPiece vocabulary: BERT normalizer (clean text, CJK spacing,
/// accents stripped with lowercasing), BERT pre-tokenizer, `[CLS] … [SEP]`.
fn wordpiece_from_vocab(vocab: &Path, lowercase: bool) -> Result<Tokenizer> {
    let path = vocab.to_string_lossy().into_owned();
    let wp = WordPiece::from_file(&path).unk_token("[UNK]".into()).build().map_err(|e| err(vocab, e))?;
    let mut t = Tokenizer::new(wp);
    let id = |tok: &str| {
        t.token_to_id(tok)
            .ok_or_else(|| ModelError::invalid(vocab, format!("the vocabulary has no {tok} token")))
    };
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    t.with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase))).map_err(|e| err(vocab, e))?;
    t.with_pre_tokenizer(Some(BertPreTokenizer));
    t.with_post_processor(Some(BertProcessing::new(("[SEP]".into(), sep), ("[CLS]".into(), cls))));
    Ok(t)
}
