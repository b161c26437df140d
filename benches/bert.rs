#![allow(missing_docs)] // criterion's macros generate undocumented public functions
//! Criterion benchmarks of the BERT encoder (all-MiniLM-L6-v2 on the CPU backend): one query
//! (tokenize, encode, mean-pool; as `../shared/anchors/hf_infer.py` times HF eager) and a batch
//! of 32 (dynamically padded); and the forward and backward pass of one fine-tuning step
//! (classification head, cross-entropy, batch of 32, training mode with dropout) on burn's
//! autodiff CPU backend with this project's fused kernels. The model is read from `$INTENT_MINILM` (default
//! `models/all-MiniLM-L6-v2`, made by `cargo xtask fetch-model minilm`); without it the
//! benchmarks are skipped with a message.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use intent::models::bert::SentenceEncoder;
use intent::models::CpuBackend;

/// The anchor's queries.
const QUERIES: [&str; 5] = [
    "I think my card is broken",
    "Is there a way to know when my card will arrive?",
    "Book a flight to Denver in March",
    "what's the weather like in Boston right now",
    "Remind me to pay the electric bill tomorrow",
];

fn benches(c: &mut Criterion) {
    // As the `intent` binary does at start-up: keep freed tensor buffers in the heap instead of
    // returning them to the kernel after every op (see the burn primer, §6).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
    let dir = std::env::var_os("INTENT_MINILM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("models/all-MiniLM-L6-v2"));
    let Ok(enc) = SentenceEncoder::<CpuBackend>::load(&dir, None, &Default::default()) else {
        eprintln!("{}: no model (run `cargo xtask fetch-model minilm`); skipping", dir.display());
        return;
    };
    let mut g = c.benchmark_group("bert_minilm");
    g.bench_function("single_query", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % QUERIES.len();
            enc.embed(&QUERIES[i..i + 1], 1).expect("encodes")
        })
    });
    let batch: Vec<&str> = QUERIES.iter().cycle().take(32).copied().collect();
    g.throughput(Throughput::Elements(32));
    g.bench_function("batch32", |b| b.iter(|| enc.embed(&batch, 32).expect("encodes")));
    finetune_step(&mut g, &dir, &batch);
    g.finish();
}

/// Forward + backward of one training step (the optimizer update is the engine's, not timed).
fn finetune_step(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    dir: &std::path::Path,
    batch: &[&str],
) {
    use burn::backend::{Autodiff, Flex};
    use burn::nn::loss::CrossEntropyLossConfig;
    use burn::tensor::{Int, Tensor, TensorData};
    use intent::models::bert::{config::BertConfig, sequence::HeadPooling, tokenizer::BertTokenizer};
    type AD = Autodiff<Flex>;
    let device = Default::default();
    let config = BertConfig::read(&dir.join("config.json")).expect("config.json");
    let (model, _) = config
        .init_classifier::<AD>(77, HeadPooling::Mean, &device)
        .load_weights(&dir.join("model.safetensors"))
        .expect("weights");
    let tokens = BertTokenizer::from_dir(dir, config.vocab_size, 64)
        .expect("tokenizer")
        .encode_batch(batch)
        .expect("tokenizes");
    let t = |v: &Vec<i64>| {
        Tensor::<AD, 2, Int>::from_data(TensorData::new(v.clone(), [tokens.rows, tokens.len]), &device)
    };
    let targets = Tensor::<AD, 1, Int>::from_data(
        TensorData::new((0..tokens.rows as i64).map(|i| i % 77).collect::<Vec<_>>(), [tokens.rows]),
        &device,
    );
    let loss = CrossEntropyLossConfig::new().init(&device);
    g.bench_function("finetune_forward_backward32", |b| {
        b.iter(|| {
            let logits =
                model.forward(t(&tokens.input_ids), t(&tokens.token_type_ids), t(&tokens.attention_mask));
            loss.forward(logits, targets.clone()).backward()
        })
    });
}

criterion_group!(bert, benches);
criterion_main!(bert);
