//! Prometheus metrics of the server (text exposition format at `GET /metrics`).

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Every metric the server exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route (the matched pattern) and status code.
    pub requests: IntCounterVec,
    /// Request latency in seconds by route.
    pub latency: HistogramVec,
    /// Predictions by predicted label.
    pub predictions: IntCounterVec,
    /// Predictions under the fallback threshold.
    pub low_confidence: IntCounter,
    /// 1 for the model (name, version) serving now.
    pub model_info: IntGaugeVec,
    /// The registry version number of the model serving now (0 when it is not numbered).
    pub model_version: IntGauge,
    /// Successful swaps (reloads and rollbacks).
    pub swaps: IntCounter,
    /// Refused swaps (the new model failed to load or its smoke test).
    pub swap_failures: IntCounter,
    /// Requests refused because the server was at its concurrency bound.
    pub rejected: IntCounter,
    /// Texts per batch of the batcher.
    pub batch_texts: Histogram,
    /// Connections open now.
    pub open_connections: IntGauge,
    /// Connections closed at once because the server was at its connection cap.
    pub refused_connections: IntCounter,
    /// Requests answered 408 (a body or a whole request too slow).
    pub timeouts: IntCounter,
    /// Query-log rows dropped (queue full, or lost at shutdown).
    pub query_log_dropped_rows: IntCounter,
    /// Query-log rows waiting to be written.
    pub query_log_queued_rows: IntGauge,
    /// 1 while the query log cannot write.
    pub query_log_degraded: IntGauge,
    /// Retrain runs in the server by outcome (`deployed`, `rejected`, `skipped`, `failed`, …).
    pub retrains: IntCounterVec,
    /// Questions to the `--fallback-url` service by outcome (answered, timeout, failed).
    pub fallback_requests: IntCounterVec,
}

fn check<T>(r: prometheus::Result<T>) -> T {
    // Metric names and label sets are constants of this file: an error is a bug here.
    r.expect("metric definition")
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new() -> Self {
        let registry = Registry::new();
        let latency_buckets =
            vec![0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0];
        let m = Metrics {
            requests: check(IntCounterVec::new(
                Opts::new("intent_http_requests_total", "HTTP requests by route and status"),
                &["route", "status"],
            )),
            latency: check(HistogramVec::new(
                HistogramOpts::new("intent_http_request_duration_seconds", "HTTP request latency by route")
                    .buckets(latency_buckets),
                &["route"],
            )),
            predictions: check(IntCounterVec::new(
                Opts::new("intent_predictions_total", "Predictions by predicted label"),
                &["label"],
            )),
            low_confidence: check(IntCounter::new(
                "intent_low_confidence_total",
                "Predictions under the fallback threshold",
            )),
            model_info: check(IntGaugeVec::new(
                Opts::new("intent_model_info", "The model serving now (value 1)"),
                &["model", "version"],
            )),
            model_version: check(IntGauge::new(
                "intent_model_version",
                "Registry version number of the model serving now (0: not numbered)",
            )),
            swaps: check(IntCounter::new("intent_model_swaps_total", "Model swaps (reloads and rollbacks)")),
            swap_failures: check(IntCounter::new("intent_model_swap_failures_total", "Refused model swaps")),
            rejected: check(IntCounter::new(
                "intent_rejected_requests_total",
                "Requests refused at the concurrency bound (429)",
            )),
            batch_texts: check(Histogram::with_opts(
                HistogramOpts::new("intent_batch_texts", "Texts per model batch")
                    .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
            )),
            open_connections: check(IntGauge::new("intent_open_connections", "HTTP connections open now")),
            refused_connections: check(IntCounter::new(
                "intent_refused_connections_total",
                "Connections closed at once at the connection cap",
            )),
            timeouts: check(IntCounter::new("intent_request_timeouts_total", "Requests answered 408")),
            query_log_dropped_rows: check(IntCounter::new(
                "intent_query_log_dropped_rows_total",
                "Query-log rows dropped (queue full, or lost at shutdown)",
            )),
            query_log_queued_rows: check(IntGauge::new(
                "intent_query_log_queued_rows",
                "Query-log rows waiting to be written",
            )),
            query_log_degraded: check(IntGauge::new(
                "intent_query_log_degraded",
                "1 while the query log cannot write (disk full, database locked)",
            )),
            retrains: check(IntCounterVec::new(
                Opts::new("intent_retrains_total", "Retrain runs in the server by outcome"),
                &["outcome"],
            )),
            fallback_requests: check(IntCounterVec::new(
                Opts::new("intent_fallback_requests_total", "Questions to the fallback service by outcome"),
                &["outcome"],
            )),
            registry,
        };
        for c in [&m.requests, &m.predictions, &m.retrains, &m.fallback_requests] {
            check(m.registry.register(Box::new(c.clone())));
        }
        check(m.registry.register(Box::new(m.latency.clone())));
        for c in [&m.low_confidence, &m.swaps, &m.swap_failures, &m.rejected] {
            check(m.registry.register(Box::new(c.clone())));
        }
        check(m.registry.register(Box::new(m.model_info.clone())));
        check(m.registry.register(Box::new(m.model_version.clone())));
        check(m.registry.register(Box::new(m.batch_texts.clone())));
        for c in [&m.refused_connections, &m.timeouts, &m.query_log_dropped_rows] {
            check(m.registry.register(Box::new(c.clone())));
        }
        for g in [&m.open_connections, &m.query_log_queued_rows, &m.query_log_degraded] {
            check(m.registry.register(Box::new(g.clone())));
        }
        m
    }

    /// Marks `(name, version)` as the model serving now.
    pub fn set_model(&self, name: &str, version: &str) {
        self.model_info.reset();
        self.model_info.with_label_values(&[name, version]).set(1);
        self.model_version.set(version.parse().unwrap_or(0));
    }

    /// Copies the query log's health into its metrics.
    pub fn observe_query_log(&self, status: &crate::QueryLogStatus) {
        let seen = self.query_log_dropped_rows.get();
        self.query_log_dropped_rows.inc_by(status.dropped_rows.saturating_sub(seen));
        self.query_log_queued_rows.set(status.queued_rows as i64);
        self.query_log_degraded.set(i64::from(status.degraded));
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# error encoding metrics: {e}\n"))
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
