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

fn tensors() -> Vec<(String, Vec<usize>)> {
    let mut t = vec![
        ("bert.embeddings.word_embeddings.weight".to_string(), vec![WORDS.len(), H]),
        ("bert.embeddings.position_embeddings.weight".into(), vec![P, H]),
        ("bert.embeddings.token_type_embeddings.weight".into(), vec![2, H]),
        ("bert.embeddings.LayerNorm.weight".into(), vec![H]),
        ("bert.embeddings.LayerNorm.bias".into(), vec![H]),
        ("bert.pooler.dense.weight".into(), vec![H, H]),
        ("bert.pooler.dense.bias".into(), vec![H]),
    ];
    for l in 0..LAYERS {
        let p = format!("bert.encoder.layer.{l}.");
        for n in
            ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"]
        {
            t.push((format!("{p}{n}.weight"), vec![H, H]));
            t.push((format!("{p}{n}.bias"), vec![H]));
        }
        for n in ["attention.output.LayerNorm", "output.LayerNorm"] {
            t.push((format!("{p}{n}.weight"), vec![H]));
            t.push((format!("{p}{n}.bias"), vec![H]));
        }
        t.push((format!("{p}intermediate.dense.weight"), vec![I, H]));
        t.push((format!("{p}intermediate.dense.bias"), vec![I]));
        t.push((format!("{p}output.dense.weight"), vec![H, I]));
        t.push((format!("{p}output.dense.bias"), vec![H]));
    }
    t.push(("classifier.weight".into(), vec![LABELS.len(), H]));
    t.push(("classifier.bias".into(), vec![LABELS.len()]));
    t
}

/// Writes the classifier folder into `dir`. With `strict_tokenizer`, the tokenizer is a
/// `tokenizer.json` word-level model without an unknown token, so any word outside
/// [`WORDS`] makes it fail (a text the tokenizer rejects); otherwise WordPiece from `vocab.txt`.
pub fn write_tiny_classifier(dir: &Path, strict_tokenizer: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let id2label: serde_json::Map<String, serde_json::Value> =
        LABELS.iter().enumerate().map(|(i, l)| (i.to_string(), serde_json::Value::from(*l))).collect();
    let config = serde_json::json!({
        "model_type": "bert", "vocab_size": WORDS.len(), "hidden_size": H, "num_hidden_layers": LAYERS,
        "num_attention_heads": 2, "intermediate_size": I, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
        "max_position_embeddings": P, "type_vocab_size": 2, "pad_token_id": 0,
        "architectures": ["BertForSequenceClassification"], "id2label": id2label
    });
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
        std::fs::write(dir.join("vocab.txt"), WORDS.join("\n") + "\n").unwrap();
    }
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors()
        .into_iter()
        .enumerate()
        .map(|(i, (name, shape))| {
            let v = values(shape.iter().product(), i as u64);
            (name, shape, v.iter().flat_map(|x| x.to_le_bytes()).collect())
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, s, b)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(dir.join("model.safetensors"), safetensors::serialize(views, None).unwrap()).unwrap();
}
