//! A tiny randomly initialised BERT written by the test in the Hugging Face layout (config.json,
//! vocab.txt, model.safetensors with PyTorch names and shapes): loading with and without the
//! `bert.` prefix and from bf16, padding masks, truncation of long inputs, and every loading error
//! (truncated weights, missing config field, unsupported model_type, tokenizer/vocabulary
//! mismatch, missing and mis-shaped tensors) naming what is wrong.

use std::path::Path;

use intent_models::bert::classifier::has_classification_head;
use intent_models::bert::{BertClassifier, SentenceEncoder};
use intent_models::CpuBackend as B;
use intent_testkit::bert::{tensor_shapes, TinyBertShape};
use safetensors::tensor::{Dtype, TensorView};

const H: usize = 8;
const I: usize = 16;
const P: usize = 16;
const LAYERS: usize = 2;
const CLASSES: usize = 3;
const WORDS: [&str; 12] =
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "card", "lost", "my", "the", "##s"];

/// Deterministic pseudo-random values in (−0.5, 0.5), rounded to bfloat16 so that an f32 and a
/// bf16 copy of the weights are the same numbers.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let v = ((s >> 33) as f64 / (1u64 << 31) as f64 - 0.5) as f32;
            f32::from_bits(v.to_bits() & 0xffff_0000)
        })
        .collect()
}

/// HF tensor names and shapes of the tiny model (PyTorch layout: Linear weights `[out, in]`),
/// with a sequence-classification head (BertForSequenceClassification's `classifier`).
fn tensors() -> Vec<(String, Vec<usize>)> {
    tensor_shapes(&TinyBertShape {
        vocab: WORDS.len(),
        hidden: H,
        intermediate: I,
        positions: P,
        layers: LAYERS,
        pooler: true,
        classes: Some(CLASSES),
    })
}

/// Renames, reshapes or drops (`None`) a tensor given its name and shape.
type Edit<'a> = &'a dyn Fn(&str, Vec<usize>) -> Option<Vec<usize>>;

/// Writes the weights; `edit` may rename, reshape or drop tensors (`None` drops).
fn write_weights(path: &Path, prefix: &str, dtype: Dtype, edit: Edit<'_>) {
    let mut bytes = Vec::new();
    for (i, (name, shape)) in tensors().into_iter().enumerate() {
        let Some(shape) = edit(&name, shape) else { continue };
        let n: usize = shape.iter().product();
        let v = values(n, i as u64);
        let b: Vec<u8> = match dtype {
            Dtype::BF16 => v.iter().flat_map(|x| ((x.to_bits() >> 16) as u16).to_le_bytes()).collect(),
            _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        };
        // The head sits beside the encoder (`classifier.*`), never under the `bert.` prefix.
        let prefix = if name.starts_with("classifier.") { "" } else { prefix };
        bytes.push((format!("{prefix}{name}"), shape, b));
    }
    let views: Vec<(String, TensorView<'_>)> =
        bytes.iter().map(|(n, s, b)| (n.clone(), TensorView::new(dtype, s.clone(), b).unwrap())).collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn config() -> serde_json::Value {
    serde_json::json!({
        "model_type": "bert", "vocab_size": WORDS.len(), "hidden_size": H, "num_hidden_layers": LAYERS,
        "num_attention_heads": 2, "intermediate_size": I, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
        "max_position_embeddings": P, "type_vocab_size": 2, "pad_token_id": 0
    })
}

/// A complete tiny model folder (WordPiece from vocab.txt, no tokenizer.json).
fn folder(dir: &Path, prefix: &str, dtype: Dtype) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), config().to_string()).unwrap();
    std::fs::write(dir.join("vocab.txt"), WORDS.join("\n") + "\n").unwrap();
    write_weights(&dir.join("model.safetensors"), prefix, dtype, &|_, s| Some(s));
}

fn load(dir: &Path) -> Result<SentenceEncoder<B>, String> {
    SentenceEncoder::<B>::load(dir, None, &Default::default()).map_err(|e| e.to_string())
}

fn flat(enc: &SentenceEncoder<B>, texts: &[&str]) -> (Vec<f32>, [usize; 3]) {
    let (h, _) = enc.hidden_states(texts).unwrap();
    let dims = h.dims();
    (h.into_data().convert::<f32>().into_vec().unwrap(), dims)
}

#[test]
fn loads_with_and_without_prefix_and_from_bf16_and_masks_padding() {
    let root = tempfile::tempdir().unwrap();
    let (plain, prefixed, half) =
        (root.path().join("plain"), root.path().join("prefixed"), root.path().join("bf16"));
    folder(&plain, "", Dtype::F32);
    folder(&prefixed, "bert.", Dtype::F32);
    folder(&half, "", Dtype::BF16);
    let a = load(&plain).unwrap();
    let texts = ["hello world", "my card lost the cards", "hello"];
    let (h, dims) = flat(&a, &texts);
    assert_eq!(dims, [3, 8, H], "[CLS] my card lost the card ##s [SEP] = 8 tokens");
    assert_eq!(a.tokenizer.ids("my cards").unwrap(), vec![2, 9, 7, 11, 3], "WordPiece from vocab.txt");
    assert_eq!(flat(&load(&prefixed).unwrap(), &texts).0, h, "the bert. prefix is optional");
    assert_eq!(flat(&load(&half).unwrap(), &texts).0, h, "bf16 weights are cast to f32");
    // Padding does not leak into real tokens: each row equals its sentence alone.
    for (r, t) in texts.iter().enumerate() {
        let (alone, [_, l, _]) = flat(&a, &[t]);
        let row = &h[r * 8 * H..(r * 8 + l) * H];
        let diff = row.iter().zip(&alone).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "row {r} differs by {diff}");
    }
    // Mean pooling without sentence-transformers files; 2-d output of the hidden width.
    let e = a.embed(&texts, 2).unwrap();
    assert_eq!((e.len(), e[0].len()), (3, H));
}

#[test]
fn long_input_is_truncated_and_reported_not_a_crash() {
    let root = tempfile::tempdir().unwrap();
    folder(root.path(), "", Dtype::F32);
    let enc = load(root.path()).unwrap();
    let long = vec!["hello"; 40].join(" ");
    let batch = enc.tokenizer.encode_batch(&[&long, "hello"]).unwrap();
    assert_eq!((batch.len, batch.truncated), (P, 1));
    assert_eq!(enc.embed(&[&long], 1).unwrap()[0].len(), H);
    // A user limit below max_position_embeddings, and one above it refused.
    let short = SentenceEncoder::<B>::load(root.path(), Some(6), &Default::default()).unwrap();
    assert_eq!(short.tokenizer.encode_batch(&[&long]).unwrap().len, 6);
    let e =
        SentenceEncoder::<B>::load(root.path(), Some(P + 1), &Default::default()).unwrap_err().to_string();
    assert!(e.contains("`max_len`") && e.contains("max_position_embeddings"), "{e}");
}

#[test]
fn loading_errors_name_the_problem() {
    let root = tempfile::tempdir().unwrap();
    let case = |name: &str, f: &dyn Fn(&Path)| -> String {
        let d = root.path().join(name);
        folder(&d, "", Dtype::F32);
        f(&d);
        load(&d).err().unwrap_or_else(|| panic!("{name}: loaded"))
    };
    let e = case("truncated", &|d| {
        let p = d.join("model.safetensors");
        let b = std::fs::read(&p).unwrap();
        std::fs::write(&p, &b[..b.len() / 2]).unwrap();
    });
    assert!(e.contains("model.safetensors"), "{e}");
    let e = case("nofield", &|d| {
        let mut c = config();
        c.as_object_mut().unwrap().remove("hidden_size");
        std::fs::write(d.join("config.json"), c.to_string()).unwrap();
    });
    assert!(e.contains("config.json") && e.contains("missing field `hidden_size`"), "{e}");
    let e = case("roberta", &|d| {
        let mut c = config();
        c["model_type"] = "roberta".into();
        std::fs::write(d.join("config.json"), c.to_string()).unwrap();
    });
    assert!(e.contains("model_type 'roberta' is not supported"), "{e}");
    let e = case("vocab", &|d| std::fs::write(d.join("vocab.txt"), WORDS[..10].join("\n") + "\n").unwrap());
    assert!(e.contains("vocab.txt") && e.contains("10 tokens") && e.contains("vocab_size = 12"), "{e}");
    let e = case("missing", &|d| {
        write_weights(&d.join("model.safetensors"), "", Dtype::F32, &|n, s| {
            (n != "encoder.layer.1.output.dense.weight").then_some(s)
        })
    });
    assert!(e.contains("missing") && e.contains("encoder.layer.1.output.dense.weight"), "{e}");
    let e = case("shape", &|d| {
        write_weights(&d.join("model.safetensors"), "", Dtype::F32, &|n, s| {
            Some(if n == "encoder.layer.0.attention.self.query.weight" { vec![H, H + 1] } else { s })
        })
    });
    assert!(e.contains("encoder.layer.0.attention.self.query.weight"), "{e}");
    let e = case("notok", &|d| std::fs::remove_file(d.join("vocab.txt")).unwrap());
    assert!(e.contains("no tokenizer.json and no vocab.txt"), "{e}");
}

#[test]
fn host_engine_equals_burn_forward_for_every_activation() {
    let root = tempfile::tempdir().unwrap();
    let texts = [
        "hello world",
        "my card lost the cards",
        "hello",
        "the the the the the the the the the the the the the the the",
    ];
    for act in ["gelu", "gelu_new", "relu"] {
        let d = root.path().join(act);
        folder(&d, "", Dtype::F32);
        let mut c = config();
        c["hidden_act"] = act.into();
        std::fs::write(d.join("config.json"), c.to_string()).unwrap();
        let host = load(&d).unwrap();
        assert!(host.uses_host_engine());
        let burn = load(&d).unwrap().without_host_engine();
        let ((a, da), (b, db)) = (flat(&host, &texts), flat(&burn, &texts));
        assert_eq!(da, db);
        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "{act}: hidden states differ by {diff}");
        // The host engine's pooling equals burn's.
        for (x, y) in host.embed(&texts, 3).unwrap().iter().zip(&burn.embed(&texts, 3).unwrap()) {
            let diff = x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
            assert!(diff < 1e-5, "{act}: pooled vectors differ by {diff}");
        }
    }
}

/// The values `write_weights` gives the tensor called `name`.
fn weights_of(name: &str) -> Vec<f32> {
    let (i, (_, shape)) =
        tensors().into_iter().enumerate().find(|(_, (n, _))| n == name).expect("known tensor");
    values(shape.iter().product(), i as u64)
}

#[test]
fn classification_head_computes_pooler_then_linear_and_reads_id2label() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path().join("cls");
    folder(&d, "bert.", Dtype::F32);
    let mut c = config();
    c["id2label"] = serde_json::json!({"0": "greeting", "1": "order_status", "2": "thanks"});
    c["architectures"] = serde_json::json!(["BertForSequenceClassification"]);
    std::fs::write(d.join("config.json"), c.to_string()).unwrap();
    assert!(has_classification_head(&d));
    let m = BertClassifier::<B>::load(&d, None, &Default::default()).unwrap();
    assert_eq!(m.config.labels, ["greeting", "order_status", "thanks"]);
    assert!(!m.config.multi_label);
    let texts = ["hello world", "my card lost the cards"];
    // By hand: logits = W_c · tanh(W_p · h_[CLS] + b_p) + b_c, PyTorch layout (weight [out, in]).
    let (h, l) = {
        let (h, [_, l, _]) = flat(&m.encoder, &texts);
        (h, l)
    };
    let lin = |w: &[f32], b: &[f32], x: &[f32]| -> Vec<f32> {
        w.chunks(x.len()).zip(b).map(|(r, b)| r.iter().zip(x).map(|(p, q)| p * q).sum::<f32>() + b).collect()
    };
    let logits = m.logits(&texts).unwrap();
    let scores = m.scores(&texts).unwrap();
    for (r, got) in logits.iter().enumerate() {
        let cls = &h[r * l * H..r * l * H + H];
        let pooled: Vec<f32> = lin(&weights_of("pooler.dense.weight"), &weights_of("pooler.dense.bias"), cls)
            .iter()
            .map(|v| v.tanh())
            .collect();
        let want = lin(&weights_of("classifier.weight"), &weights_of("classifier.bias"), &pooled);
        let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "row {r}: logits {got:?} vs {want:?}");
        let e: Vec<f32> = want.iter().map(|v| v.exp()).collect();
        let z: f32 = e.iter().sum();
        assert!(scores[r].iter().zip(&e).all(|(s, e)| (s - e / z).abs() < 1e-5), "softmax of the logits");
    }

    // Multi-label: sigmoids.
    c["problem_type"] = "multi_label_classification".into();
    std::fs::write(d.join("config.json"), c.to_string()).unwrap();
    let m = BertClassifier::<B>::load(&d, None, &Default::default()).unwrap();
    assert!(m.config.multi_label);
    let s = m.scores(&texts).unwrap();
    for (z, p) in logits.iter().flatten().zip(s.iter().flatten()) {
        assert!((p - 1.0 / (1.0 + (-z).exp())).abs() < 1e-5);
    }

    // Errors name the file and what is wrong.
    let err = |c: serde_json::Value| {
        std::fs::write(d.join("config.json"), c.to_string()).unwrap();
        BertClassifier::<B>::load(&d, None, &Default::default()).unwrap_err().to_string()
    };
    let mut bad = c.clone();
    bad["id2label"] = serde_json::json!({"0": "a", "1": "b"});
    let e = err(bad);
    assert!(
        e.contains("config.json") && e.contains("id2label has 2 labels but the classifier has 3 outputs"),
        "{e}"
    );
    let mut bad = c.clone();
    bad["id2label"] = serde_json::json!({"0": "a", "1": "b", "7": "c"});
    assert!(err(bad).contains("no entry \"2\""));
    let mut bad = c.clone();
    bad["problem_type"] = "regression".into();
    assert!(err(bad).contains("problem_type 'regression'"));

    // Without classifier weights the folder is an encoder, not a classifier.
    let plain = root.path().join("plain");
    folder(&plain, "", Dtype::F32);
    write_weights(&plain.join("model.safetensors"), "", Dtype::F32, &|n, s| {
        (!n.starts_with("classifier.")).then_some(s)
    });
    assert!(!has_classification_head(&plain));
}

fn max_abs(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max)
}

#[test]
fn sequence_classifier_loads_a_base_exports_a_hf_folder_and_serves_it_unchanged() {
    use intent_models::bert::sequence::INTENT_FILE;
    use intent_models::bert::HeadPooling;
    let root = tempfile::tempdir().unwrap();
    let base = root.path().join("base");
    folder(&base, "", Dtype::F32);
    let served = BertClassifier::<B>::load(&base, None, &Default::default()).unwrap();
    let texts = ["hello world", "my card lost the cards", "hello"];
    let batch = served.encoder.tokenizer.encode_batch(&texts).unwrap();
    let cfg = served.encoder.config.clone();
    for pooling in [HeadPooling::Pooler, HeadPooling::Mean] {
        let (model, head) = cfg
            .init_classifier::<B>(CLASSES, pooling, &Default::default())
            .load_weights(&base.join("model.safetensors"))
            .unwrap();
        assert!(head, "the file has classifier.*");
        let [ids, types, mask] = served.encoder.tensors(&batch);
        let flat: Vec<f32> = model.forward(ids, types, mask).into_data().convert::<f32>().into_vec().unwrap();
        let burn_logits: Vec<Vec<f32>> = flat.chunks(CLASSES).map(<[f32]>::to_vec).collect();
        if pooling == HeadPooling::Pooler {
            // burn's module computes what the served (host) classifier computes on the same file.
            assert!(max_abs(&burn_logits, &served.logits(&texts).unwrap()) < 1e-5);
        }
        // Export: a Hugging Face folder, served back with the same logits.
        let out = root.path().join(format!("out-{pooling:?}"));
        model.save_pretrained(&out, &cfg, &base, &served.config, None).unwrap();
        let hf: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
        assert_eq!(hf["architectures"][0], "BertForSequenceClassification");
        assert_eq!(hf["id2label"]["2"], "LABEL_2");
        assert_eq!(hf["problem_type"], "single_label_classification");
        assert!(out.join("vocab.txt").is_file() && out.join(INTENT_FILE).is_file());
        let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.tensor("classifier.weight").unwrap().shape(), [CLASSES, H], "PyTorch layout [out, in]");
        assert_eq!(st.tensor("bert.encoder.layer.0.intermediate.dense.weight").unwrap().shape(), [I, H]);
        for name in [
            "bert.embeddings.LayerNorm.weight",
            "bert.encoder.layer.1.attention.self.query.bias",
            "bert.encoder.layer.1.output.LayerNorm.bias",
        ] {
            assert!(st.tensor(name).is_ok(), "{name} in HF spelling");
        }
        assert_eq!(st.tensor("bert.pooler.dense.weight").is_ok(), pooling == HeadPooling::Pooler);
        let back = BertClassifier::<B>::load(&out, None, &Default::default()).unwrap();
        let diff = max_abs(&burn_logits, &back.logits(&texts).unwrap());
        assert!(diff < 1e-5, "{pooling:?}: exported folder serves other logits ({diff})");
        // And it loads back into the burn module as the same model.
        let (again, head) = cfg
            .init_classifier::<B>(CLASSES, pooling, &Default::default())
            .load_weights(&out.join("model.safetensors"))
            .unwrap();
        assert!(head);
        let [ids, types, mask] = served.encoder.tensors(&batch);
        let flat2: Vec<f32> =
            again.forward(ids, types, mask).into_data().convert::<f32>().into_vec().unwrap();
        assert_eq!(flat, flat2, "{pooling:?}: export → reload gives identical logits");
    }
    // A base encoder without a head: the head starts fresh, reported.
    write_weights(&base.join("model.safetensors"), "", Dtype::F32, &|n, s| {
        (!n.starts_with("classifier.")).then_some(s)
    });
    let (_, head) = cfg
        .init_classifier::<B>(CLASSES, HeadPooling::Pooler, &Default::default())
        .load_weights(&base.join("model.safetensors"))
        .unwrap();
    assert!(!head);
}
