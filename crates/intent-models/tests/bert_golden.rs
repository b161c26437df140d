//! Parity of the BERT encoder with PyTorch: all-MiniLM-L6-v2 against
//! `../shared/golden/minilm-l6-v2.json` (made by `../shared/anchors/minilm_golden.py` with
//! transformers on CPU, fp32): exact token ids, hidden states within 1e-4, pooled and normalised
//! embeddings within 1e-5, and a padded batch equal to its sentences run alone. Each test runs
//! both inference engines: the CPU engine (`HostBert`, the default on CPU) and burn's forward.
//!
//! The model comes from `cargo xtask fetch-model minilm` (the README's test command runs it
//! first, as `.ci/run` does); `INTENT_MINILM` and `INTENT_GOLDEN` override the paths.

use std::path::PathBuf;

use burn::tensor::Tensor;
use intent_models::bert::SentenceEncoder;
use intent_models::CpuBackend as B;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The encoder on the CPU engine, then on burn's forward pass.
fn encoders() -> [(&'static str, SentenceEncoder<B>); 2] {
    let dir = std::env::var_os("INTENT_MINILM")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models/all-MiniLM-L6-v2"));
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} has no model: run `cargo xtask fetch-model minilm` first",
        dir.display()
    );
    let load = || SentenceEncoder::<B>::load(&dir, Some(128), &Default::default()).expect("loads");
    let host = load();
    assert!(host.uses_host_engine(), "the CPU backend runs the host engine by default");
    [("host engine", host), ("burn", load().without_host_engine())]
}

fn golden() -> serde_json::Value {
    let path = std::env::var_os("INTENT_GOLDEN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/golden/minilm-l6-v2.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (set INTENT_GOLDEN)", path.display()));
    serde_json::from_str(&text).expect("golden JSON")
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number") as f32).collect()
}

fn ints(v: &serde_json::Value) -> Vec<i64> {
    v.as_array().expect("array").iter().map(|x| x.as_i64().expect("int")).collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn host(t: Tensor<B, 3>) -> (Vec<f32>, [usize; 3]) {
    let dims = t.dims();
    (t.into_data().convert::<f32>().into_vec().expect("f32"), dims)
}

#[test]
fn minilm_matches_pytorch() {
    let g = golden();
    for (engine, enc) in encoders() {
        let mut worst = (0.0f32, 0.0f32);
        for case in g["cases"].as_array().expect("cases") {
            let text = case["text"].as_str().expect("text");
            let batch = enc.tokenizer.encode_batch(&[text]).unwrap();
            assert_eq!(batch.input_ids, ints(&case["input_ids"]), "token ids of {text:?}");
            assert_eq!(batch.token_type_ids, ints(&case["token_type_ids"]));
            let (h, batch) = enc.hidden_states(&[text]).unwrap();
            let (h, [_, l, d]) = host(h);
            assert_eq!(l, batch.len);
            let cls = max_diff(&h[..8], &floats(&case["cls_hidden_first8"]));
            let last = max_diff(&h[(l - 1) * d..(l - 1) * d + 8], &floats(&case["last_token_hidden_first8"]));
            assert!(cls < 1e-4 && last < 1e-4, "{engine}, {text:?}: hidden differs by {cls} / {last}");
            let pooled = &enc.embed(&[text], 1).unwrap()[0];
            let p = max_diff(pooled, &floats(&case["mean_pooled_normalized"]));
            assert!(p < 1e-5, "{engine}, {text:?}: pooled embedding differs by {p}");
            worst = (worst.0.max(cls.max(last)), worst.1.max(p));
        }
        eprintln!("{engine}: max |diff| to PyTorch: hidden {:.2e}, pooled {:.2e}", worst.0, worst.1);
    }
}

#[test]
fn padded_batch_equals_sentences_alone() {
    let g = golden();
    for (engine, enc) in encoders() {
        let pb = &g["padded_batch_first4"];
        let texts: Vec<&str> =
            g["cases"].as_array().unwrap()[..4].iter().map(|c| c["text"].as_str().unwrap()).collect();
        let (h, batch) = enc.hidden_states(&texts).unwrap();
        let want_ids: Vec<i64> = pb["input_ids"].as_array().unwrap().iter().flat_map(ints).collect();
        let want_mask: Vec<i64> = pb["attention_mask"].as_array().unwrap().iter().flat_map(ints).collect();
        assert_eq!(batch.input_ids, want_ids, "dynamic padding pads to the longest sentence with [PAD] = 0");
        assert_eq!(batch.attention_mask, want_mask);
        let (h, [_, l, d]) = host(h);
        for (r, text) in texts.iter().enumerate() {
            let cls = &h[r * l * d..r * l * d + 8];
            let diff = max_diff(cls, &floats(&pb["cls_hidden_first8"][r]));
            assert!(diff < 1e-4, "{engine}, row {r}: CLS differs from PyTorch's padded batch by {diff}");
            // Every real token's state equals the sentence run alone.
            let (alone, [_, la, _]) = host(enc.hidden_states(&[text]).unwrap().0);
            assert_eq!(la, batch.attention_mask[r * l..(r + 1) * l].iter().filter(|&&m| m == 1).count());
            let diff = max_diff(&h[r * l * d..(r * l + la) * d], &alone);
            assert!(diff < 1e-5, "{engine}, row {r}: padded batch differs from the sentence alone by {diff}");
        }
        // Batched embeddings equal one-by-one embeddings.
        let batched = enc.embed(&texts, 32).unwrap();
        for (t, b) in texts.iter().zip(&batched) {
            assert!(max_diff(b, &enc.embed(&[t], 1).unwrap()[0]) < 1e-5, "{engine}");
        }
    }
}

/// Mixed precision (`Precision::Bf16`, the layers' products in bf16) stays close to PyTorch's
/// f32 embeddings, and is not silently f32.
#[test]
fn bf16_matrix_products_stay_close_to_pytorch() {
    let g = golden();
    let [_, (_, mut enc)] = encoders();
    enc.model.precision = intent_models::bert::Precision::Bf16;
    let (mut worst_cos, mut largest) = (1.0f32, 0.0f32);
    for case in g["cases"].as_array().expect("cases") {
        let text = case["text"].as_str().expect("text");
        let want = floats(&case["mean_pooled_normalized"]);
        let got = &enc.embed(&[text], 1).unwrap()[0];
        let cos: f32 = got.iter().zip(&want).map(|(a, b)| a * b).sum();
        worst_cos = worst_cos.min(cos);
        largest = largest.max(max_diff(got, &want));
    }
    eprintln!("bf16: lowest cosine to PyTorch f32 {worst_cos:.5}, max |diff| {largest:.2e}");
    assert!(worst_cos > 0.9995, "bf16 embeddings drift from f32: cosine {worst_cos}");
    assert!(largest > 1e-4, "bf16 products should not be f32-exact (max |diff| {largest})");
}
