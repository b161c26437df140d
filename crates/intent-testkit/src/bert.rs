//! A tiny BERT sequence classifier in the Hugging Face layout (`config.json` with `id2label`,
//! `model.safetensors` with PyTorch names and shapes, a tokenizer), with deterministic weights.

use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

/// Hidden size.
pub const H: usize = 8;
const I: usize = 16;
const P: usize = 16;
const LAYERS: usize = 2;
/// The vocabulary of the tiny model (it holds the words of the server's smoke test, so a model
/// with the strict tokenizer still loads in the server).
pub const WORDS: [&str; 17] = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "card", "lost", "my", "the", "##s",
    "what", "is", "account", "balance", "greeting",
];
/// Its labels.
pub const LABELS: [&str; 3] = ["greeting", "order_status", "thanks"];

/// Deterministic pseudo-random values in (−0.5, 0.5).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f64 / (1u64 << 31) as f64 - 0.5) as f32
        })
        .collect()
}

/// Sizes of a tiny BERT.
#[derive(Debug, Clone, Copy)]
pub struct TinyBertShape {
    /// Vocabulary size.
    pub vocab: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Feed-forward size.
    pub intermediate: usize,
    /// Position embeddings.
    pub positions: usize,
    /// Encoder layers.
    pub layers: usize,
    /// With `pooler.dense`.
    pub pooler: bool,
    /// With a `classifier` head of this many labels.
    pub classes: Option<usize>,
}

/// Hugging Face tensor names (without the `bert.` prefix) and PyTorch shapes (`Linear` weights
/// `[out, in]`) of a tiny BERT, in a fixed order: embeddings, pooler, layers, classifier. Tests
/// seed each tensor's values by its index here.
pub fn tensor_shapes(s: &TinyBertShape) -> Vec<(String, Vec<usize>)> {
    let (h, i) = (s.hidden, s.intermediate);
    let mut t = vec![
        ("embeddings.word_embeddings.weight".to_string(), vec![s.vocab, h]),
        ("embeddings.position_embeddings.weight".into(), vec![s.positions, h]),
        ("embeddings.token_type_embeddings.weight".into(), vec![2, h]),
        ("embeddings.LayerNorm.weight".into(), vec![h]),
        ("embeddings.LayerNorm.bias".into(), vec![h]),
    ];
    if s.pooler {
        t.push(("pooler.dense.weight".into(), vec![h, h]));
        t.push(("pooler.dense.bias".into(), vec![h]));
    }
    for l in 0..s.layers {
        let p = format!("encoder.layer.{l}.");
        for n in
            ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"]
        {
            t.push((format!("{p}{n}.weight"), vec![h, h]));
            t.push((format!("{p}{n}.bias"), vec![h]));
        }
        for n in ["attention.output.LayerNorm", "output.LayerNorm"] {
            t.push((format!("{p}{n}.weight"), vec![h]));
            t.push((format!("{p}{n}.bias"), vec![h]));
        }
        t.push((format!("{p}intermediate.dense.weight"), vec![i, h]));
        t.push((format!("{p}intermediate.dense.bias"), vec![i]));
        t.push((format!("{p}output.dense.weight"), vec![h, i]));
        t.push((format!("{p}output.dense.bias"), vec![h]));
    }
    if let Some(c) = s.classes {
        t.push(("classifier.weight".into(), vec![c, h]));
        t.push(("classifier.bias".into(), vec![c]));
    }
    t
}

/// The classifier's tensors, the encoder's under the `bert.` prefix; without `head`, an
/// encoder alone (a sentence-embedding folder: no prefix, no classifier).
fn tensors(head: bool, vocab: usize) -> Vec<(String, Vec<usize>)> {
    let shape = TinyBertShape {
        vocab,
        hidden: H,
        intermediate: I,
        positions: P,
        layers: LAYERS,
        pooler: true,
        classes: head.then_some(LABELS.len()),
    };
    tensor_shapes(&shape)
        .into_iter()
        .map(|(n, s)| if !head || n.starts_with("classifier.") { (n, s) } else { (format!("bert.{n}"), s) })
        .collect()
}

/// Writes a sentence-embedding folder into `dir`: the tiny encoder without a classification
/// head, WordPiece tokenizer, mean pooling (the default of a folder without
/// sentence-transformers settings).
pub fn write_tiny_encoder(dir: &Path) {
    write_tiny(dir, false, false, &[]);
}

/// [`write_tiny_encoder`] with every word of `data` in the vocabulary as well (lower-case,
/// split at spaces) and its layer norms at identity: an encoder that a fine-tune on `data` can
/// learn from.
pub fn write_tiny_encoder_for(dir: &Path, data: &intent_data::Dataset) {
    let mut extra: Vec<String> = Vec::new();
    for e in &data.examples {
        for w in e.text.to_lowercase().split_whitespace() {
            if !WORDS.contains(&w) && !extra.iter().any(|x| x == w) {
                extra.push(w.to_string());
            }
        }
    }
    write_tiny(dir, false, false, &extra);
}

/// Writes the classifier folder into `dir`. With `strict_tokenizer`, the tokenizer is a
/// `tokenizer.json` word-level model without an unknown token, so any word outside
/// [`WORDS`] makes it fail (a text the tokenizer rejects); otherwise WordPiece from `vocab.txt`.
pub fn write_tiny_classifier(dir: &Path, strict_tokenizer: bool) {
    write_tiny(dir, strict_tokenizer, true, &[]);
}

fn write_tiny(dir: &Path, strict_tokenizer: bool, head: bool, extra: &[String]) {
    let words: Vec<&str> = WORDS.iter().copied().chain(extra.iter().map(String::as_str)).collect();
    std::fs::create_dir_all(dir).unwrap();
    let id2label: serde_json::Map<String, serde_json::Value> =
        LABELS.iter().enumerate().map(|(i, l)| (i.to_string(), serde_json::Value::from(*l))).collect();
    let mut config = serde_json::json!({
        "model_type": "bert", "vocab_size": words.len(), "hidden_size": H, "num_hidden_layers": LAYERS,
        "num_attention_heads": 2, "intermediate_size": I, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
        "max_position_embeddings": P, "type_vocab_size": 2, "pad_token_id": 0,
    });
    if head {
        config["architectures"] = serde_json::json!(["BertForSequenceClassification"]);
        config["id2label"] = id2label.into();
    } else {
        config["architectures"] = serde_json::json!(["BertModel"]);
    }
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    if strict_tokenizer {
        // "[UNK]" is left out of the vocabulary on purpose: an unknown word is an error.
        let vocab: serde_json::Map<String, serde_json::Value> = WORDS
            .iter()
            .enumerate()
            .map(|(i, w)| (if *w == "[UNK]" { "[unk-absent]".to_string() } else { w.to_string() }, i.into()))
            .collect();
        let tokenizer = serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": null, "pre_tokenizer": { "type": "Whitespace" },
            "post_processor": { "type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2] },
            "decoder": null,
            "model": { "type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]" }
        });
        std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    } else {
        std::fs::write(dir.join("vocab.txt"), words.join("\n") + "\n").unwrap();
    }
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors(head, words.len())
        .into_iter()
        .enumerate()
        .map(|(i, (name, shape))| {
            let n = shape.iter().product();
            // An encoder for fine-tuning starts as a trained one would: layer norms at identity.
            let v = match (
                extra.is_empty(),
                name.ends_with("LayerNorm.weight"),
                name.ends_with("LayerNorm.bias"),
            ) {
                (false, true, _) => vec![1.0; n],
                (false, _, true) => vec![0.0; n],
                _ => values(n, i as u64),
            };
            (name, shape, v.iter().flat_map(|x| x.to_le_bytes()).collect())
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, s, b)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(dir.join("model.safetensors"), safetensors::serialize(views, None).unwrap()).unwrap();
}

/// Twelve labelled texts of three intents that [`write_learnable_tiny_bert`] learns (the
/// fine-tuning tests' data set).
pub const TINY_INTENTS: [(&str, &str); 12] = [
    ("where is my package", "order_status"),
    ("has my order shipped yet", "order_status"),
    ("track my parcel please", "order_status"),
    ("when will my delivery arrive", "order_status"),
    ("hello there", "greeting"),
    ("hi good morning", "greeting"),
    ("hey how are you", "greeting"),
    ("good evening to you", "greeting"),
    ("i want to return this jacket", "return_item"),
    ("how do i send back a product", "return_item"),
    ("can i get a refund for these shoes", "return_item"),
    ("return the blender i bought", "return_item"),
];

/// Deterministic pseudo-random values in (−`scale`, `scale`).
fn symmetric_values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f64 / (1u64 << 31) as f64 * 2.0 - 1.0) as f32 * scale
        })
        .collect()
}

/// Writes a tiny BERT base that fine-tuning learns from quickly (hidden 16, feed-forward 32, 2
/// layers, 2 heads, 32 positions, no pooler or head; weights uniform in ±0.3, layer norms at
/// identity, `dropout` in the encoder) whose vocabulary holds every word of `texts` (split at
/// spaces, in order of appearance): config.json, vocab.txt, model.safetensors.
pub fn write_learnable_tiny_bert(dir: &Path, texts: &[&str], dropout: f64) {
    const H: usize = 16;
    const I: usize = 32;
    const LAYERS: usize = 2;
    let mut words: Vec<String> =
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].iter().map(|s| s.to_string()).collect();
    for w in texts.iter().flat_map(|t| t.split_whitespace()) {
        if !words.iter().any(|x| x == w) {
            words.push(w.to_string());
        }
    }
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("vocab.txt"), words.join("\n") + "\n").unwrap();
    let config = serde_json::json!({
        "model_type": "bert", "vocab_size": words.len(), "hidden_size": H, "num_hidden_layers": LAYERS,
        "num_attention_heads": 2, "intermediate_size": I, "max_position_embeddings": 32, "type_vocab_size": 2,
        "hidden_act": "gelu", "layer_norm_eps": 1e-12, "hidden_dropout_prob": dropout,
        "attention_probs_dropout_prob": dropout, "pad_token_id": 0, "initializer_range": 0.02
    });
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let shape = TinyBertShape {
        vocab: words.len(),
        hidden: H,
        intermediate: I,
        positions: 32,
        layers: LAYERS,
        pooler: false,
        classes: None,
    };
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = tensor_shapes(&shape)
        .into_iter()
        .enumerate()
        .map(|(i, (name, shape))| {
            let n: usize = shape.iter().product();
            let v = if name.ends_with("LayerNorm.weight") {
                vec![1.0; n]
            } else if name.ends_with("LayerNorm.bias") {
                vec![0.0; n]
            } else {
                symmetric_values(n, i as u64, 0.3)
            };
            (name, shape, v.iter().flat_map(|x| x.to_le_bytes()).collect())
        })
        .collect();
    let views: Vec<(String, TensorView)> = data
        .iter()
        .map(|(n, s, b)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
}
