//! The served model and its atomic swap.
//!
//! A [`LoadedModel`] is a classifier, a recommender or an embedding model ([`Served`]) plus what
//! the server reports about it. [`ModelSlot`] holds the current one behind an `ArcSwap`: a
//! request takes an `Arc` to the model when it starts and finishes on that model even if a swap
//! happens meanwhile; the old model is freed when its last request ends. Loading and the smoke
//! test run before the swap, so a broken model never serves.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use intent_models::ncf::folder::{NcfModel, UnknownUser};
use serde::Serialize;

use intent_serve::{
    BatchConfig, BatchObserver, Batcher, Classifier, Embedder, ModelSpec, Prediction, Resolved, ServeError,
};

/// Rasa's default fallback threshold: predictions less confident than this are flagged.
pub const DEFAULT_FALLBACK_THRESHOLD: f32 = 0.3;

/// How models are loaded: fallback threshold and batching.
#[derive(Clone, Default)]
pub struct LoadOptions {
    /// Confidence under which a prediction is flagged `fallback`, for models whose config has
    /// no tuned out-of-scope threshold. `None`: [`DEFAULT_FALLBACK_THRESHOLD`].
    pub fallback_threshold: Option<f32>,
    /// Batching of transformer models.
    pub batch: BatchConfig,
    /// Called after each batch (metrics).
    pub batch_observer: Option<BatchObserver>,
}

/// What a server can serve: a classifier (`/v1/predict`), a recommender (`/v1/recommend`) or a
/// sentence-embedding model (`/embed`).
#[derive(Debug, Clone)]
pub enum Served {
    /// A classifier of any kind.
    Classifier(Arc<Classifier>),
    /// An NCF recommender.
    Recommender(Arc<NcfModel>),
    /// A sentence-embedding folder (no classification head).
    Encoder(Arc<Embedder>),
}

impl Served {
    /// What `/v1/models` calls it: the classifier's kind, `ncf` or `embedding`.
    pub fn kind(&self) -> String {
        match self {
            Served::Classifier(c) => c.config().kind().to_string(),
            Served::Recommender(_) => "ncf".into(),
            Served::Encoder(_) => "embedding".into(),
        }
    }

    /// Sentence vectors, when the model has an encoder (embedding models, zero-shot and BERT
    /// classifiers).
    pub fn embed(&self, texts: &[&str], normalize: bool) -> Option<Result<Vec<Vec<f32>>, ServeError>> {
        match self {
            Served::Encoder(e) => Some(e.embed(texts, normalize)),
            Served::Classifier(c) => c.embed(texts, normalize),
            Served::Recommender(_) => None,
        }
    }
}

/// A model ready to serve.
pub struct LoadedModel {
    /// The model.
    pub served: Served,
    /// Where it came from, name and version.
    pub source: Resolved,
    /// The spec it was loaded through (a reload re-resolves it).
    pub spec: ModelSpec,
    /// Confidence under which a prediction is flagged `fallback`.
    pub fallback_threshold: f32,
    /// The folder's `metrics.json`, when present.
    pub metrics: Option<serde_json::Value>,
    /// When it was loaded, Unix seconds.
    pub loaded_unix: u64,
    batcher: Option<Batcher>,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel").field("source", &self.source).finish_non_exhaustive()
    }
}

/// What `/v1/models` and the admin routes say about a model.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelInfo {
    /// Model name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Kind (`mlp`, `svm`, `zero-shot`, `bert`, `ncf`, `embedding`).
    pub kind: String,
    /// Folder (not in answers: a host path is nobody's business over HTTP).
    #[serde(skip)]
    #[schema(ignore)]
    pub path: PathBuf,
    /// Labels by output index.
    pub labels: Vec<String>,
    /// Multi-label model.
    pub multi_label: bool,
    /// Fallback threshold.
    pub fallback_threshold: f32,
    /// Requests are batched.
    pub batched: bool,
    /// `metrics.json`.
    #[schema(value_type = Option<Object>)]
    pub metrics: Option<serde_json::Value>,
    /// Load time, Unix seconds.
    pub loaded_unix: u64,
}

impl LoadedModel {
    /// Resolves `spec`, loads the model and checks it with a smoke prediction.
    pub fn load(spec: &ModelSpec, options: &LoadOptions) -> Result<Self, ServeError> {
        let source = spec.resolve()?;
        let loaded_unix = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        // Recommenders and embedding models: no threshold, no batcher.
        let unbatched = if intent_models::ncf::folder::is_ncf_folder(&source.path) {
            let rec = Arc::new(NcfModel::load(&source.path)?);
            smoke_test_recommender(&rec, &source.path)?;
            Some(Served::Recommender(rec))
        } else if is_embedding_folder(&source.path) {
            let encoder = Arc::new(Embedder::load(&source.path)?);
            smoke_test_encoder(&encoder, &source.path)?;
            Some(Served::Encoder(encoder))
        } else {
            None
        };
        if let Some(served) = unbatched {
            let metrics = read_metrics(&source.path);
            return Ok(LoadedModel {
                served,
                source,
                spec: spec.clone(),
                fallback_threshold: 0.0,
                metrics,
                loaded_unix,
                batcher: None,
            });
        }
        let classifier = Arc::new(Classifier::load(&source.path)?);
        smoke_test(&classifier, &source.path)?;
        let config = classifier.config();
        let fallback_threshold = config
            .oos
            .as_ref()
            .map(|o| o.threshold)
            .or(options.fallback_threshold)
            .unwrap_or(DEFAULT_FALLBACK_THRESHOLD);
        let metrics = read_metrics(&source.path);
        let batcher = classifier
            .batches()
            .then(|| Batcher::start(classifier.clone(), options.batch, options.batch_observer.clone()));
        Ok(LoadedModel {
            served: Served::Classifier(classifier),
            source,
            spec: spec.clone(),
            fallback_threshold,
            metrics,
            loaded_unix,
            batcher,
        })
    }

    /// Predicts texts: through the batcher for transformer models, on a blocking thread
    /// otherwise.
    pub async fn predict(&self, texts: Vec<String>, top_k: usize) -> Result<Vec<Prediction>, ServeError> {
        if let Some(b) = &self.batcher {
            let (tx, rx) = tokio::sync::oneshot::channel();
            b.submit(texts, top_k, Box::new(move |r| drop(tx.send(r))))?;
            return rx.await.map_err(|_| ServeError::WorkerGone)?;
        }
        let Served::Classifier(model) = self.served.clone() else {
            let kind = self.served.kind();
            return Err(ServeError::Spec {
                spec: self.spec.display(),
                message: format!("a model of kind '{kind}', not a classifier"),
            });
        };
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            model.predict_batch(&refs, top_k)
        })
        .await
        .map_err(|_| ServeError::WorkerGone)?
    }

    /// What the server reports about this model.
    pub fn info(&self) -> ModelInfo {
        let (labels, multi_label) = match &self.served {
            Served::Classifier(c) => (c.config().labels.clone(), c.config().multi_label),
            Served::Recommender(_) | Served::Encoder(_) => (Vec::new(), false),
        };
        let kind = self.served.kind();
        ModelInfo {
            name: self.source.name.clone(),
            version: self.source.version.clone(),
            kind,
            path: self.source.path.clone(),
            labels,
            multi_label,
            fallback_threshold: self.fallback_threshold,
            batched: self.batcher.is_some(),
            metrics: self.metrics.clone(),
            loaded_unix: self.loaded_unix,
        }
    }
}

/// True for a Hugging Face folder without a classification head: a sentence-embedding model.
fn is_embedding_folder(dir: &Path) -> bool {
    matches!(
        intent_models::folder::FolderConfig::read(dir),
        Ok(intent_models::folder::FolderConfig::HuggingFace { model_type: Some(_) })
    ) && !intent_models::bert::classifier::has_classification_head(dir)
}

/// The vector of a short text is finite and not all zero.
fn smoke_test_encoder(encoder: &Embedder, path: &Path) -> Result<(), ServeError> {
    let fail = |message: String| ServeError::SmokeTest { path: path.to_path_buf(), message };
    let v = encoder.embed(&["hello"], false)?.pop().ok_or_else(|| fail("no vector".into()))?;
    if v.len() != encoder.dim() || !v.iter().all(|x| x.is_finite()) || v.iter().all(|x| *x == 0.0) {
        return Err(fail(format!(
            "the vector of 'hello' is not finite and non-zero, or not of length {}",
            encoder.dim()
        )));
    }
    Ok(())
}

/// Scores of the first user's recommendations are finite and sorted.
fn smoke_test_recommender(model: &NcfModel, path: &Path) -> Result<(), ServeError> {
    let fail = |message: String| ServeError::SmokeTest { path: path.to_path_buf(), message };
    let user = model.ids.users.first().ok_or_else(|| fail("no users".into()))?;
    let recs = model.recommend(user, 10, UnknownUser::Error)?;
    if let Some(r) = recs.iter().find(|r| !r.score.is_finite()) {
        return Err(fail(format!("score {} for user '{user}', item '{}' is not finite", r.score, r.item)));
    }
    Ok(())
}

fn read_metrics(dir: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("metrics.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// One prediction on fixed texts: probabilities finite, in [0, 1], not all zero, summing to 1
/// for single-label models, and as many as there are labels.
fn smoke_test(model: &Classifier, path: &Path) -> Result<(), ServeError> {
    let fail = |message: String| ServeError::SmokeTest { path: path.to_path_buf(), message };
    let labels = model.labels();
    let texts = ["hello", "what is my account balance", labels.first().map(String::as_str).unwrap_or("test")];
    let all = model.scores(&texts).map_err(|e| fail(format!("the model could not score {texts:?}: {e}")))?;
    for (text, scores) in texts.iter().zip(all) {
        if scores.len() != labels.len() {
            return Err(fail(format!("{} scores for {} labels on '{text}'", scores.len(), labels.len())));
        }
        if let Some(s) = scores.iter().find(|s| !s.is_finite() || !(0.0..=1.0 + 1e-4).contains(*s)) {
            return Err(fail(format!("score {s} on '{text}' is not a probability")));
        }
        let sum: f32 = scores.iter().sum();
        if sum == 0.0 {
            return Err(fail(format!("all scores are zero on '{text}' (the model could not score it)")));
        }
        if !model.config().multi_label && (sum - 1.0).abs() > 1e-3 {
            return Err(fail(format!("scores on '{text}' sum to {sum}, expected 1")));
        }
    }
    Ok(())
}

/// The result of a swap: the model before and after.
#[derive(Debug, Clone, Serialize)]
pub struct Swap {
    /// The model that served before.
    pub from: Option<ModelInfo>,
    /// The model that serves now.
    pub to: ModelInfo,
}

/// Holds the served model; swaps are atomic and serialized.
#[derive(Default)]
pub struct ModelSlot {
    current: ArcSwapOption<LoadedModel>,
    previous: Mutex<Option<Arc<LoadedModel>>>,
    swaps: AtomicU64,
    /// One load or rollback at a time.
    swap_lock: tokio::sync::Mutex<()>,
}

impl ModelSlot {
    /// Installs `model` without the swap lock (for the first model, before serving).
    pub fn put(&self, model: LoadedModel) -> Swap {
        self.install(Arc::new(model), self.current(), false)
    }

    /// The model serving now (`None` before the first load).
    pub fn current(&self) -> Option<Arc<LoadedModel>> {
        self.current.load_full()
    }

    /// The model a rollback would return to.
    pub fn previous(&self) -> Option<Arc<LoadedModel>> {
        self.previous.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Swaps since start (reloads and rollbacks).
    pub fn swaps(&self) -> u64 {
        self.swaps.load(Ordering::Relaxed)
    }

    /// Loads `spec` (default: the spec of the current model, re-resolved) on a blocking thread,
    /// smoke-tests it and swaps it in. On any error the current model keeps serving.
    pub async fn reload(&self, spec: Option<ModelSpec>, options: &LoadOptions) -> Result<Swap, ServeError> {
        let _guard = self.swap_lock.lock().await;
        let old = self.current();
        let spec = match (spec, &old) {
            (Some(s), _) => s,
            (None, Some(m)) => m.spec.clone(),
            (None, None) => {
                return Err(ServeError::Spec {
                    spec: String::new(),
                    message: "no model to reload; name one".into(),
                })
            }
        };
        let opts = options.clone();
        let new = tokio::task::spawn_blocking(move || LoadedModel::load(&spec, &opts))
            .await
            .map_err(|_| ServeError::WorkerGone)??;
        Ok(self.install(Arc::new(new), old, true))
    }

    /// Swaps the previous model back in (the current one becomes previous).
    pub async fn rollback(&self) -> Option<Swap> {
        let _guard = self.swap_lock.lock().await;
        let back = self.previous()?;
        let old = self.current();
        Some(self.install(back, old, true))
    }

    fn install(&self, new: Arc<LoadedModel>, old: Option<Arc<LoadedModel>>, count: bool) -> Swap {
        let to = new.info();
        self.current.store(Some(new));
        *self.previous.lock().unwrap_or_else(|p| p.into_inner()) = old.clone();
        if count {
            self.swaps.fetch_add(1, Ordering::Relaxed);
        }
        tracing::info!("now serving {} version {}", to.name, to.version);
        Swap { from: old.map(|m| m.info()), to }
    }
}
