//! The quality-drift trigger: the served version's answers, read from the server's query log
//! (`GET /admin/querylog/quality`), against the same version's first answers after deployment.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ServerNotify;

/// `[triggers.drift]`: retrain when the current version answers worse than when it was deployed.
/// Needs `[server]` (its query log holds the answers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Drift {
    /// Queries in each window: the version's first answers and its latest (200). Both windows
    /// must be full and apart (at least twice this many answers) before the trigger can fire.
    pub window: usize,
    /// Fire when the mean confidence fell by more than this (0.05).
    pub max_confidence_drop: f64,
    /// Fire when the share of fallbacks rose by more than this (0.05).
    pub max_fallback_increase: f64,
}

impl Default for Drift {
    fn default() -> Self {
        Drift { window: 200, max_confidence_drop: 0.05, max_fallback_increase: 0.05 }
    }
}

impl Drift {
    /// Checks the numbers; the message names the key.
    pub fn check(&self) -> Result<(), String> {
        if self.window == 0 {
            return Err("triggers.drift.window must be at least 1".into());
        }
        for (name, x) in [
            ("max_confidence_drop", self.max_confidence_drop),
            ("max_fallback_increase", self.max_fallback_increase),
        ] {
            if !(0.0..=1.0).contains(&x) {
                return Err(format!("triggers.drift.{name} {x}: expected a number in [0, 1]"));
            }
        }
        Ok(())
    }

    /// Asks `server` for the windows of `version` of `model`; returns the trigger's reason when
    /// the answers drifted, and the windows (kept in the history line).
    pub(super) fn assess(
        &self,
        server: &ServerNotify,
        model: &str,
        version: u32,
    ) -> Result<(Option<String>, Value), String> {
        let q = super::server_calls::quality(server, model, version, self.window)?;
        Ok((self.reason(&q, version), q))
    }

    /// Why the windows in `q` (the answer of `/admin/querylog/quality`) count as a drift.
    fn reason(&self, q: &Value, version: u32) -> Option<String> {
        let (b, r) = (&q["baseline"], &q["recent"]);
        let full = |w: &Value| w["queries"].as_u64().is_some_and(|n| n >= self.window as u64);
        // The windows must not share queries: the latest begin after the first end.
        let apart = b["to_ms"].as_i64().zip(r["from_ms"].as_i64()).is_some_and(|(end, start)| start > end);
        if !(full(b) && full(r) && apart) {
            return None;
        }
        let f = |w: &Value, k: &str| w[k].as_f64();
        let over = self.window;
        if let (Some(then), Some(now)) = (f(b, "mean_confidence"), f(r, "mean_confidence")) {
            if then - now > self.max_confidence_drop {
                return Some(format!(
                    "quality drift of version {version}: mean confidence {then:.3} over its first {over} \
                     queries, {now:.3} over the latest {over} (a drop of {:.3} > {})",
                    then - now,
                    self.max_confidence_drop
                ));
            }
        }
        if let (Some(then), Some(now)) = (f(b, "fallback_rate"), f(r, "fallback_rate")) {
            if now - then > self.max_fallback_increase {
                return Some(format!(
                    "quality drift of version {version}: fallback rate {then:.3} over its first {over} \
                     queries, {now:.3} over the latest {over} (a rise of {:.3} > {})",
                    now - then,
                    self.max_fallback_increase
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(first: (u64, f64, f64, i64), latest: (u64, f64, f64, i64)) -> Value {
        let w = |(n, c, f, t): (u64, f64, f64, i64)| {
            serde_json::json!({
                "queries": n, "mean_confidence": c, "fallback_rate": f, "from_ms": t, "to_ms": t + 99
            })
        };
        serde_json::json!({"baseline": w(first), "recent": w(latest)})
    }

    #[test]
    fn fires_on_a_confidence_drop_or_a_fallback_rise_over_full_separate_windows() {
        let d = Drift { window: 100, ..Drift::default() };
        let same = windows((100, 0.9, 0.1, 0), (100, 0.88, 0.12, 500));
        assert_eq!(d.reason(&same, 3), None, "within the margins");
        let drop = windows((100, 0.9, 0.1, 0), (100, 0.8, 0.12, 500));
        assert_eq!(
            d.reason(&drop, 3).unwrap(),
            "quality drift of version 3: mean confidence 0.900 over its first 100 queries, 0.800 over the \
             latest 100 (a drop of 0.100 > 0.05)"
        );
        let rise = windows((100, 0.9, 0.1, 0), (100, 0.88, 0.3, 500));
        assert!(d
            .reason(&rise, 3)
            .unwrap()
            .contains("fallback rate 0.100 over its first 100 queries, 0.300"));
        assert_eq!(d.reason(&windows((100, 0.9, 0.1, 0), (60, 0.5, 0.9, 500)), 3), None, "too few queries");
        assert_eq!(
            d.reason(&windows((100, 0.9, 0.1, 0), (100, 0.5, 0.9, 50)), 3),
            None,
            "overlapping windows"
        );
        assert!(Drift { window: 0, ..d.clone() }.check().is_err());
        assert!(Drift { max_confidence_drop: 1.5, ..d }
            .check()
            .unwrap_err()
            .contains("max_confidence_drop 1.5"));
    }
}
