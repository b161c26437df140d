//! Writing a report folder: `report.json`, `report.md`, `errors.jsonl`, and the SVG plots.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use crate::evaluate::{PredictionRow, Report};
use crate::gate::GateResult;
use crate::html::CurvePoint;
use crate::EvalError;

/// A short human summary of a report (a few lines).
pub fn summary(report: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "examples      {}", report.n);
    if let Some(m) = report.micro_f1 {
        let _ = writeln!(s, "micro F1      {m:.4}");
        let _ = writeln!(s, "exact match   {:.4}", report.exact_match.unwrap_or(0.0));
    } else {
        let _ = writeln!(s, "accuracy      {:.4}", report.accuracy);
    }
    let _ = writeln!(s, "macro F1      {:.4}", report.macro_f1);
    let _ = writeln!(s, "weighted F1   {:.4}", report.weighted_f1);
    if let Some(v) = report.in_scope_accuracy {
        let _ = writeln!(s, "in-scope acc  {v:.4}");
    }
    if let Some(v) = report.oos_recall {
        let _ = writeln!(s, "OOS recall    {v:.4}");
    }
    if let Some(t) = report.threshold {
        let _ = writeln!(s, "threshold     {t:.4}");
    }
    for (k, v) in &report.top_k_accuracy {
        if k != "top_1" {
            let _ = writeln!(s, "{:<13} {v:.4}", k.replace('_', "-"));
        }
    }
    if let Some(e) = report.ece {
        let _ = writeln!(s, "ECE           {e:.4}");
    }
    s
}

/// The report as Markdown: the summary, then one table row per class (worst F1 first).
pub fn markdown(report: &Report, gate: Option<&GateResult>) -> String {
    let mut s = String::from("# Evaluation report\n\n```\n");
    s.push_str(&summary(report));
    s.push_str("```\n\n");
    if let Some(g) = gate {
        let _ = writeln!(s, "**{}**\n", g.summary);
    }
    s.push_str(
        "| class | precision | recall | F1 | support | confused with |\n|---|---:|---:|---:|---:|---|\n",
    );
    let mut rows: Vec<_> = report.per_class.iter().collect();
    rows.sort_by(|a, b| a.1.f1.total_cmp(&b.1.f1).then_with(|| a.0.cmp(b.0)));
    for (label, m) in rows {
        let conf: Vec<String> = m.confused_with.iter().map(|(l, n)| format!("{l} ({n})")).collect();
        let _ = writeln!(
            s,
            "| {label} | {:.3} | {:.3} | {:.3} | {} | {} |",
            m.precision,
            m.recall,
            m.f1,
            m.support,
            conf.join(", ")
        );
    }
    let _ = writeln!(
        s,
        "| **macro avg** | {:.3} | {:.3} | {:.3} | {} | |\n| **weighted avg** | {:.3} | {:.3} | {:.3} | \
            {} | |",
        report.macro_avg.precision,
        report.macro_avg.recall,
        report.macro_avg.f1,
        report.macro_avg.support,
        report.weighted_avg.precision,
        report.weighted_avg.recall,
        report.weighted_avg.f1,
        report.weighted_avg.support
    );
    s
}

/// Writes `report.json`, `report.md`, `errors.jsonl` (wrong predictions: text, gold, predicted,
/// confidence) and, for single-label reports, `confusion_matrix.svg`, plus
/// `confidence_histogram.svg`, `oos_curve.svg` when a tuned threshold's curve is given, and
/// `report.html` (all of it in one page) into `dir` (created if needed).
pub fn write_report(
    dir: &Path,
    report: &Report,
    rows: &[PredictionRow],
    gate: Option<&GateResult>,
    oos_curve: Option<&[CurvePoint]>,
) -> Result<(), EvalError> {
    fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, e))?;
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        fs::write(&p, text).map_err(|e| EvalError::io(&p, e))
    };
    let mut json = serde_json::to_value(report).map_err(|e| EvalError::Report(e.to_string()))?;
    if let (Some(g), Some(obj)) = (gate, json.as_object_mut()) {
        obj.insert("gate".into(), serde_json::to_value(g).map_err(|e| EvalError::Report(e.to_string()))?);
    }
    write("report.json", serde_json::to_string_pretty(&json).map_err(|e| EvalError::Report(e.to_string()))?)?;
    write("report.md", markdown(report, gate))?;
    let mut errors = String::new();
    for r in rows.iter().filter(|r| r.gold != r.predicted) {
        errors.push_str(&serde_json::to_string(r).map_err(|e| EvalError::Report(e.to_string()))?);
        errors.push('\n');
    }
    write("errors.jsonl", errors)?;
    if let Some(cm) = &report.confusion_matrix {
        let p = dir.join("confusion_matrix.svg");
        crate::plots::confusion_matrix_svg(&p, cm)
            .map_err(|m| EvalError::Plot { path: p.clone(), message: m })?;
    }
    let conf: Vec<f32> = rows.iter().map(|r| r.confidence).collect();
    let ok: Vec<bool> = rows.iter().map(|r| r.gold == r.predicted).collect();
    let p = dir.join("confidence_histogram.svg");
    crate::plots::confidence_histogram_svg(&p, &conf, &ok)
        .map_err(|m| EvalError::Plot { path: p.clone(), message: m })?;
    let curve = oos_curve.filter(|c| !c.is_empty());
    if let Some(c) = curve {
        let p = dir.join("oos_curve.svg");
        let svg =
            crate::plots::oos_curve_svg(c).map_err(|m| EvalError::Plot { path: p.clone(), message: m })?;
        write("oos_curve.svg", svg)?;
    }
    // The plots written above (a file left from an earlier report in this folder is not one).
    let mut shown = vec![("confidence_histogram.svg", "Confidence of predictions")];
    if report.confusion_matrix.is_some() {
        shown.insert(0, ("confusion_matrix.svg", "Confusion matrix"));
    }
    if curve.is_some() {
        shown.push(("oos_curve.svg", "Out-of-scope threshold"));
    }
    let mut plots = Vec::new();
    for (file, title) in shown {
        let p = dir.join(file);
        plots.push((title, fs::read(&p).map_err(|e| EvalError::io(&p, e))?));
    }
    write("report.html", crate::html::report_html(report, rows, gate, &plots, curve))
}
