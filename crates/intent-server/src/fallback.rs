//! An external fallback for unsure answers (`intent serve --fallback-url`): a prediction under
//! the fallback threshold is sent to another service — a larger model, an LLM behind a small
//! adapter — which answers with a label. Within the time budget its label is the answer
//! (`source: "fallback"`) and is logged as a teacher label for the next retrain; a slow, failing
//! or off-list answer leaves the model's own. The retraining seed's loop: as retrains learn from
//! the teacher labels, fewer queries fall back.
//!
//! The service gets `POST URL` with `{"text", "top_k": [{"label", "score"}…], "labels": [every
//! label of the model]}` and answers `{"label": "…"}` (one of `labels`).

use std::time::Duration;

use intent_serve::LabelScore;
use serde_json::json;

/// Questions in flight at most (each holds a blocking thread until its answer or its
/// timeout); beyond them an unsure answer keeps the model's label at once.
pub const MAX_IN_FLIGHT: usize = 64;

/// Where and how long to ask.
#[derive(Debug, Clone)]
pub struct FallbackService {
    /// `http://` or `https://` URL of the service.
    pub url: String,
    /// How long a request waits for it at most.
    pub timeout: Duration,
    /// Questions in flight ([`MAX_IN_FLIGHT`]).
    permits: std::sync::Arc<tokio::sync::Semaphore>,
}

/// What the service answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FallbackAnswer {
    /// A label of the model.
    Label(String),
    /// No answer within the budget.
    Timeout,
    /// An error, a bad answer, or a label the model does not have.
    Failed(String),
}

impl FallbackAnswer {
    /// The metric label of the outcome.
    pub fn outcome(&self) -> &'static str {
        match self {
            FallbackAnswer::Label(_) => "answered",
            FallbackAnswer::Timeout => "timeout",
            FallbackAnswer::Failed(_) => "failed",
        }
    }
}

impl FallbackService {
    /// Checks the URL (scheme and host) and the budget; the error names the flag.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .ok_or_else(|| format!("--fallback-url {url}: expected an http:// or https:// URL"))?;
        if rest.split('/').next().is_none_or(str::is_empty) {
            return Err(format!("--fallback-url {url}: no host"));
        }
        if timeout.is_zero() {
            return Err("--fallback-timeout must be more than zero".into());
        }
        let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
        Ok(FallbackService { url: url.to_string(), timeout, permits })
    }

    /// Asks for the label of `text`; never waits longer than the budget.
    pub async fn ask(&self, text: &str, top_k: &[LabelScore], labels: &[String]) -> FallbackAnswer {
        let body = json!({ "text": text, "top_k": top_k, "labels": labels });
        let (url, budget) = (self.url.clone(), self.timeout);
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return FallbackAnswer::Failed(format!("{MAX_IN_FLIGHT} questions in flight already"));
        };
        // ureq (blocking, rustls) is already in the build; its own timeout frees the thread, and
        // the permit goes with it.
        let mut call = tokio::task::spawn_blocking(move || -> Result<String, String> {
            let _permit = permit;
            let r = ureq::post(&url).timeout(budget).send_json(body);
            let answer: serde_json::Value = match r {
                Ok(r) => r.into_json().map_err(|e| format!("the answer is not JSON: {e}"))?,
                Err(ureq::Error::Status(code, _)) => return Err(format!("status {code}")),
                Err(ureq::Error::Transport(t)) if t.to_string().contains("timed out") => {
                    return Err("timeout".into())
                }
                // Without the URL: its path or query may hold a key.
                Err(ureq::Error::Transport(t)) => {
                    return Err(format!(
                        "{}{}",
                        t.kind(),
                        t.message().map(|m| format!(": {m}")).unwrap_or_default()
                    ))
                }
            };
            answer["label"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| "the answer has no \"label\"".to_string())
        });
        match tokio::time::timeout(budget, &mut call).await {
            Err(_) => {
                // Not started yet: it never will be (a running call ends at its own timeout).
                call.abort();
                FallbackAnswer::Timeout
            }
            Ok(Err(e)) => FallbackAnswer::Failed(format!("fallback task: {e}")),
            Ok(Ok(Err(e))) if e == "timeout" => FallbackAnswer::Timeout,
            Ok(Ok(Err(e))) => FallbackAnswer::Failed(e),
            Ok(Ok(Ok(label))) if labels.contains(&label) => FallbackAnswer::Label(label),
            Ok(Ok(Ok(label))) => FallbackAnswer::Failed(format!("label {label:?} is not one of the model's")),
        }
    }
}
