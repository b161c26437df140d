//! Single-query latency (p50/p99) and batch-32 throughput of the BERT encoder, measured the way
//! `../shared/anchors/hf_infer.py` measures Hugging Face eager and ONNX Runtime (same five
//! queries × 40, 10 warm-up queries, tokenize + encode + mean-pool per query; 192 queries in
//! batches of 32), so the figures can be set side by side in one sitting.
//!
//! `cargo run --release --example bert_latency [MODEL_DIR]` (default `models/all-MiniLM-L6-v2`,
//! from `cargo xtask fetch-model minilm`). `INTENT_BERT_ENGINE=burn` times burn's own forward
//! pass instead of the CPU engine.

use std::time::Instant;

use intent::models::bert::SentenceEncoder;
use intent::models::CpuBackend;

const QUERIES: [&str; 5] = [
    "I think my card is broken",
    "Is there a way to know when my card will arrive?",
    "Book a flight to Denver in March",
    "what's the weather like in Boston right now",
    "Remind me to pay the electric bill tomorrow",
];

fn main() -> anyhow::Result<()> {
    // As the `intent` binary does: keep freed buffers in the heap (see the burn primer, §6).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
    let dir = std::env::args().nth(1).unwrap_or_else(|| "models/all-MiniLM-L6-v2".into());
    let enc = SentenceEncoder::<CpuBackend>::load(dir.as_ref(), None, &Default::default())?;
    let queries: Vec<&str> = QUERIES.iter().cycle().take(200).copied().collect();
    for q in &queries[..10] {
        enc.embed(&[q], 1)?;
    }
    let mut ms = Vec::with_capacity(queries.len());
    for q in &queries {
        let t = Instant::now();
        enc.embed(&[q], 1)?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    let p50 = (ms[99] + ms[100]) / 2.0;
    let p99 = ms[(0.99 * ms.len() as f64) as usize - 1];
    let engine = if enc.uses_host_engine() { "host engine" } else { "burn forward" };
    let threads = rayon::current_num_threads();
    println!("intent {engine} threads={threads}: p50={p50:.2}ms p99={p99:.2}ms");
    let t = Instant::now();
    for k in (0..192).step_by(32) {
        enc.embed(&queries[k..k + 32], 32)?;
    }
    println!("intent batch32 throughput: {:.0} queries/s", 192.0 / t.elapsed().as_secs_f64());
    Ok(())
}
