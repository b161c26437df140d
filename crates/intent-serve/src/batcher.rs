//! Dynamic batching for transformer models, in the manner of text-embeddings-inference: requests
//! wait in a queue; one worker thread takes as many queued requests as fit a token budget, runs
//! them as one batch, and answers each. While a batch runs, new requests queue up, so the batch
//! size follows the load without a timer.
//!
//! Hand-written: the batching queues of the field (TEI's router, candle examples) are parts of
//! applications rather than crates to depend on.

use std::sync::mpsc;
use std::sync::Arc;

use crate::{Classifier, Prediction, ServeError};

/// Receives the answer to one submitted request, on the worker thread. A server passes a
/// closure that completes its own future (a tokio `oneshot`, say); this crate needs no runtime.
pub type Reply = Box<dyn FnOnce(Result<Vec<Prediction>, ServeError>) + Send>;

/// Batching limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// At most this many tokens (word pieces, padding not counted) per batch. A single request
    /// over the budget still runs, alone.
    pub max_batch_tokens: usize,
    /// At most this many texts per batch.
    pub max_batch_texts: usize,
}

impl Default for BatchConfig {
    /// 16384 tokens and 256 texts: a full batch of 64-token texts is 256 rows.
    fn default() -> Self {
        BatchConfig { max_batch_tokens: 16384, max_batch_texts: 256 }
    }
}

struct Job {
    texts: Vec<String>,
    tokens: usize,
    top_k: usize,
    reply: Reply,
}

/// Called after each batch with its number of texts and tokens (for metrics).
pub type BatchObserver = Arc<dyn Fn(usize, usize) + Send + Sync>;

/// The queue in front of one model's worker thread. Dropping it stops the worker once the
/// queued requests are answered.
pub struct Batcher {
    tx: mpsc::Sender<Job>,
    model: Arc<Classifier>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl Batcher {
    /// Starts the worker thread of `model`.
    pub fn start(model: Arc<Classifier>, config: BatchConfig, observer: Option<BatchObserver>) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let worker = model.clone();
        std::thread::Builder::new()
            .name("intent-batcher".into())
            .spawn(move || run_worker(&worker, &rx, config, observer.as_deref()))
            .expect("spawning the batcher thread");
        Batcher { tx, model }
    }

    /// Queues `texts` (with `top_k` labels each) for the next batch that has room; `reply` is
    /// called with their predictions, or with the error of this request alone (a text the
    /// tokenizer rejects fails its own request, not the others of its batch).
    pub fn submit(&self, texts: Vec<String>, top_k: usize, reply: Reply) -> Result<(), ServeError> {
        let tokens = texts.iter().map(|t| self.model.token_count(t)).sum();
        self.tx.send(Job { texts, tokens, top_k, reply }).map_err(|_| ServeError::WorkerGone)
    }

    /// [`Self::submit`], waiting on the calling thread for the answer.
    pub fn predict_blocking(&self, texts: Vec<String>, top_k: usize) -> Result<Vec<Prediction>, ServeError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(texts, top_k, Box::new(move |r| drop(tx.send(r))))?;
        rx.recv().map_err(|_| ServeError::WorkerGone)?
    }
}

fn run_worker(
    model: &Classifier,
    rx: &mpsc::Receiver<Job>,
    config: BatchConfig,
    observer: Option<&(dyn Fn(usize, usize) + Send + Sync)>,
) {
    let mut carried: Option<Job> = None;
    loop {
        let first = match carried.take() {
            Some(job) => job,
            None => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        let (mut tokens, mut texts) = (first.tokens, first.texts.len());
        let mut jobs = vec![first];
        while tokens < config.max_batch_tokens && texts < config.max_batch_texts {
            match rx.try_recv() {
                Ok(job)
                    if tokens + job.tokens > config.max_batch_tokens
                        || texts + job.texts.len() > config.max_batch_texts =>
                {
                    carried = Some(job);
                    break;
                }
                Ok(job) => {
                    tokens += job.tokens;
                    texts += job.texts.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let all: Vec<&str> = jobs.iter().flat_map(|j| j.texts.iter().map(String::as_str)).collect();
        let top_k = jobs.iter().map(|j| j.top_k).max().unwrap_or(1);
        let batch = model.predict_batch(&all, top_k);
        if let Some(observe) = observer {
            observe(texts, tokens);
        }
        match batch {
            Ok(predictions) => {
                let mut predictions = predictions.into_iter();
                for job in jobs {
                    let mut mine: Vec<Prediction> = predictions.by_ref().take(job.texts.len()).collect();
                    for p in &mut mine {
                        p.top_k.truncate(job.top_k.max(1));
                    }
                    // The requester may have gone (client disconnected): the reply goes nowhere.
                    (job.reply)(Ok(mine));
                }
            }
            // Some text failed: each request again on its own, so only the bad one fails.
            Err(_) => {
                for job in jobs {
                    let refs: Vec<&str> = job.texts.iter().map(String::as_str).collect();
                    (job.reply)(model.predict_batch(&refs, job.top_k));
                }
            }
        }
    }
}
