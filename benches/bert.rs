//! Criterion benchmarks of the BERT encoder (all-MiniLM-L6-v2 on the CPU backend): one query
//! (tokenize, encode, mean-pool; as `../shared/anchors/hf_infer.py` times HF eager) and a batch
//! of 32 (dynamically padded). The model is read from `$INTENT_MINILM` (default
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
    let dir = std::env::var_os("INTENT_MINILM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("models/all-MiniLM-L6-v2"));
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
    g.finish();
}

criterion_group!(bert, benches);
criterion_main!(bert);
