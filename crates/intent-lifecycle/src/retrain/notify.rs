//! `[notify]`: a JSON message to each webhook when a run deploys, is rejected or fails — Slack's
//! and Discord's incoming webhooks read `text` and `content`; other receivers get the whole
//! history line under `retrain`. A webhook that is down or slow is logged and never fails the
//! run. Webhook URLs often carry a secret in their path, so logs show only scheme and host.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::outcome::{RetrainOutcome, RunStatus};

/// `[notify]` of `retrain.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// URLs to POST the message to (`http://` or `https://`).
    pub webhooks: Vec<String>,
    /// The outcomes that send a message (default: deployed, rejected, failed).
    #[serde(default = "default_on")]
    pub on: Vec<RunStatus>,
    /// Seconds each webhook gets to answer (default 5, at most 60).
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
}

fn default_on() -> Vec<RunStatus> {
    vec![RunStatus::Deployed, RunStatus::Rejected, RunStatus::Failed]
}

fn default_timeout() -> f64 {
    5.0
}

impl Notify {
    /// Checks the values; the message names the bad one.
    pub(super) fn check(&self) -> Result<(), String> {
        if let Some(bad) =
            self.webhooks.iter().find(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            return Err(format!("notify.webhooks: '{}' is not an http:// or https:// URL", shown(bad)));
        }
        // NaN fails the check.
        if !(self.timeout_s > 0.0 && self.timeout_s <= 60.0) {
            return Err(format!(
                "notify.timeout_s = {}: expected more than 0 and at most 60",
                self.timeout_s
            ));
        }
        Ok(())
    }
}

/// `scheme://host[:port]` of a URL: what logs may show of a webhook.
pub(super) fn shown(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = host.rsplit('@').next().unwrap_or_default();
            format!("{scheme}://{host}/…")
        }
        None => "(not a URL)".into(),
    }
}

/// The message of a run.
pub fn message(line: &RetrainOutcome) -> serde_json::Value {
    let versions = match (line.versions.before, line.versions.current) {
        (Some(b), Some(c)) if b != c => format!(" (version {b} → {c})"),
        (_, Some(c)) => format!(" (current: version {c})"),
        _ => String::new(),
    };
    let text = format!("intent retrain · {}: {}{versions} — {}", line.model, line.status, line.reason);
    serde_json::json!({ "text": text, "content": text, "retrain": line })
}

/// Sends `line` to every webhook when its status is one of `on`; returns one log line per
/// webhook (sent, or why not). Never fails.
pub(super) fn send(cfg: &Notify, line: &RetrainOutcome) -> Vec<String> {
    if !cfg.on.contains(&line.status) {
        return Vec::new();
    }
    let body = message(line);
    let timeout = Duration::from_secs_f64(cfg.timeout_s);
    let agent = ureq::AgentBuilder::new().timeout(timeout).build();
    cfg.webhooks
        .iter()
        .map(|url| match agent.post(url).send_json(body.clone()) {
            Ok(r) => format!("notified {} ({})", shown(url), r.status()),
            Err(ureq::Error::Status(code, _)) => format!("webhook {} answered {code}", shown(url)),
            Err(e) => format!("webhook {} failed: {}", shown(url), e.kind()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_show_no_webhook_secret() {
        assert_eq!(shown("https://hooks.slack.com/services/T0/B0/SECRET"), "https://hooks.slack.com/…");
        assert_eq!(shown("http://user:pw@127.0.0.1:9/x?token=s"), "http://127.0.0.1:9/…");
        let n = Notify { webhooks: vec!["ftp://x/SECRET".into()], on: default_on(), timeout_s: 5.0 };
        let e = n.check().unwrap_err();
        assert!(e.contains("ftp://x/…") && !e.contains("SECRET"), "{e}");
        let n = Notify { webhooks: vec![], on: default_on(), timeout_s: f64::NAN };
        assert!(n.check().unwrap_err().contains("timeout_s"));
    }
}
