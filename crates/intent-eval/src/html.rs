//! `report.html`: one self-contained page per report folder, readable offline from the file
//! system — the summary, a sortable per-class table, the SVG plots inlined as data URIs, the 50
//! most confident errors, and the out-of-scope threshold curve when one was tuned; for
//! recommenders, HR and NDCG by cut-off.
//!
//! Texts are user data: every one is escaped (html-escape). The page's only script (the table
//! sort) is allowed by its SHA-256 in the page's Content-Security-Policy, so markup that slipped
//! into a text could run nothing.

use std::fmt::Write as _;

use base64::Engine as _;
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
use sha2::{Digest, Sha256};

use crate::evaluate::{PredictionRow, Report};
use crate::gate::GateResult;
use crate::ranking::RankingReport;

/// Errors shown at most.
pub const WORST_ERRORS: usize = 50;

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:70rem;\
padding:1rem;color:#1f2328}table{border-collapse:collapse;margin:0.5rem 0 1.5rem}\
th,td{border-bottom:1px solid #d8dee4;padding:0.3rem 0.6rem;text-align:left;vertical-align:top}\
th{background:#f6f8fa}table.sortable th{cursor:pointer}td.num{text-align:right;\
font-variant-numeric:tabular-nums}td.text{max-width:36rem;overflow-wrap:anywhere}\
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}img{max-width:100%;\
border:1px solid #d0d7de;margin:0.5rem 1rem 0.5rem 0}";

/// Sorts a `table.sortable` by the clicked column (numbers by `data-v`), toggling direction.
const SCRIPT: &str = "for(const t of document.querySelectorAll('table.sortable')){\
const hs=[...t.tHead.rows[0].cells];hs.forEach((h,i)=>h.addEventListener('click',()=>{\
const up=h.dataset.up!=='1';hs.forEach(x=>delete x.dataset.up);if(up)h.dataset.up='1';\
const b=t.tBodies[0];const rows=[...b.rows];rows.sort((a,c)=>{const x=a.cells[i],y=c.cells[i];\
const r=('v' in x.dataset)?Number(x.dataset.v)-Number(y.dataset.v):\
x.textContent.localeCompare(y.textContent);\
return up?r:-r});b.append(...rows)}))}";

/// A point of the out-of-scope threshold curve.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CurvePoint {
    /// Confidence threshold: below it a prediction counts as out-of-scope.
    pub threshold: f32,
    /// Accuracy on in-scope examples at this threshold.
    pub in_scope_accuracy: f64,
    /// Recall of the out-of-scope examples at this threshold.
    pub oos_recall: f64,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The page around `body`, with the CSP that allows exactly its style and script.
fn page(title: &str, body: &str) -> String {
    let hash = |s: &str| b64(&Sha256::digest(s.as_bytes()));
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; \
style-src 'sha256-{}'; script-src 'sha256-{}'\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n\
<style>{STYLE}</style>\n</head>\n<body>\n{body}<script>{SCRIPT}</script>\n</body>\n</html>\n",
        hash(STYLE),
        hash(SCRIPT),
        text(title)
    )
}

/// An `<img>` of an SVG document, as a data URI.
pub fn svg_img(svg: &[u8], alt: &str) -> String {
    format!("<img alt=\"{}\" src=\"data:image/svg+xml;base64,{}\">", attr(alt), b64(svg))
}

fn num_cell(v: f64, digits: usize) -> String {
    format!("<td class=\"num\" data-v=\"{v}\">{v:.digits$}</td>")
}

/// The page of a classification report. `plots` are `(title, svg)` pairs shown in order;
/// `oos_curve` the threshold curve when a threshold was tuned.
pub fn report_html(
    report: &Report,
    rows: &[PredictionRow],
    gate: Option<&GateResult>,
    plots: &[(&str, Vec<u8>)],
    oos_curve: Option<&[CurvePoint]>,
) -> String {
    let mut b = String::from("<h1>Evaluation report</h1>\n");
    if let Some(g) = gate {
        let class = if g.passed { "pass" } else { "fail" };
        let _ = writeln!(b, "<p class=\"{class}\">{}</p>", text(&g.summary));
    }
    b.push_str("<table id=\"summary\">\n");
    for line in crate::report::summary(report).lines() {
        let (k, v) = line.split_at(line.len().min(14));
        let _ = writeln!(b, "<tr><th>{}</th><td class=\"num\">{}</td></tr>", text(k.trim()), text(v.trim()));
    }
    b.push_str(
        "</table>\n<h2>Per class</h2>\n<table id=\"per-class\" class=\"sortable\">\n<thead><tr>\
<th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th><th>confused with</th></tr>\
</thead>\n<tbody>\n",
    );
    let mut classes: Vec<_> = report.per_class.iter().collect();
    classes.sort_by(|a, b| a.1.f1.total_cmp(&b.1.f1).then_with(|| a.0.cmp(b.0)));
    for (label, m) in classes {
        let confused: Vec<String> = m.confused_with.iter().map(|(l, n)| format!("{l} ({n})")).collect();
        let _ = writeln!(
            b,
            "<tr><td>{}</td>{}{}{}{}<td>{}</td></tr>",
            text(label),
            num_cell(m.precision, 3),
            num_cell(m.recall, 3),
            num_cell(m.f1, 3),
            num_cell(m.support as f64, 0),
            text(&confused.join(", "))
        );
    }
    b.push_str("</tbody>\n</table>\n");
    if !plots.is_empty() {
        b.push_str("<h2>Plots</h2>\n<div>");
        for (title, svg) in plots {
            b.push_str(&svg_img(svg, title));
        }
        b.push_str("</div>\n");
    }
    if let Some(curve) = oos_curve.filter(|c| !c.is_empty()) {
        b.push_str(
            "<h2>Out-of-scope threshold (tuning data)</h2>\n<table id=\"oos-curve\" class=\"sortable\">\n\
<thead><tr><th>threshold</th><th>in-scope accuracy</th><th>OOS recall</th><th>mean</th></tr>\
</thead>\n<tbody>\n",
        );
        for p in curve {
            let _ = writeln!(
                b,
                "<tr>{}{}{}{}</tr>",
                num_cell(p.threshold as f64, 2),
                num_cell(p.in_scope_accuracy, 4),
                num_cell(p.oos_recall, 4),
                num_cell((p.in_scope_accuracy + p.oos_recall) / 2.0, 4)
            );
        }
        b.push_str("</tbody>\n</table>\n");
    }
    let mut errors: Vec<&PredictionRow> = rows.iter().filter(|r| r.gold != r.predicted).collect();
    errors.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    let _ = writeln!(
        b,
        "<h2>The {} most confident errors (of {})</h2>\n<table id=\"errors\" class=\"sortable\">\n\
<thead><tr><th>text</th><th>gold</th><th>predicted</th><th>confidence</th></tr></thead>\n<tbody>",
        errors.len().min(WORST_ERRORS),
        errors.len()
    );
    for r in errors.iter().take(WORST_ERRORS) {
        let _ = writeln!(
            b,
            "<tr><td class=\"text\">{}</td><td>{}</td><td>{}</td>{}</tr>",
            text(&r.text),
            text(&r.gold),
            text(&r.predicted),
            num_cell(r.confidence as f64, 3)
        );
    }
    b.push_str("</tbody>\n</table>\n");
    page("Evaluation report", &b)
}

/// The page of a recommender's report: HR, NDCG and recall at each cut-off.
pub fn ranking_html(model: &str, protocol: &str, by_k: &[RankingReport], plot: Option<&[u8]>) -> String {
    let mut b = format!(
        "<h1>Recommendation report</h1>\n<table id=\"summary\">\n<tr><th>model</th><td>{}</td></tr>\n\
<tr><th>protocol</th><td>{}</td></tr>\n<tr><th>users</th><td class=\"num\">{}</td></tr>\n</table>\n\
<h2>By cut-off</h2>\n<table id=\"by-k\" class=\"sortable\">\n<thead><tr><th>K</th><th>HR@K</th>\
<th>NDCG@K</th><th>recall@K</th></tr></thead>\n<tbody>\n",
        text(model),
        text(protocol),
        by_k.first().map_or(0, |r| r.users)
    );
    for r in by_k {
        let _ = writeln!(
            b,
            "<tr>{}{}{}{}</tr>",
            num_cell(r.k as f64, 0),
            num_cell(r.hr, 4),
            num_cell(r.ndcg, 4),
            num_cell(r.recall, 4)
        );
    }
    b.push_str("</tbody>\n</table>\n");
    if let Some(svg) = plot {
        b.push_str(&svg_img(svg, "HR and NDCG by K"));
    }
    page("Recommendation report", &b)
}

/// One row of a model leaderboard (`intent compare`).
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderboardRow {
    /// Model kind.
    pub kind: String,
    /// Accuracy, or micro-F1 for multi-label data.
    pub score: f64,
    /// Macro-averaged F1.
    pub macro_f1: f64,
    /// Expected calibration error (single-label).
    pub ece: Option<f64>,
    /// Seconds to train.
    pub train_seconds: f64,
    /// Median milliseconds to classify one query.
    pub p50_latency_ms: f64,
    /// Bytes on disk.
    pub folder_bytes: u64,
    /// Whether the quality gate passed.
    pub gate_passed: bool,
}

/// The page of a leaderboard: rows best first (a sortable table), then the kinds skipped with
/// the reason. `data` says what the models were trained and tested on; `metric` names `score`.
pub fn leaderboard_html(
    data: &str,
    metric: &str,
    rows: &[LeaderboardRow],
    skipped: &[(String, String)],
) -> String {
    let mut b = format!(
        "<h1>Model leaderboard</h1>\n<p>{}</p>\n<table id=\"leaderboard\" class=\"sortable\">\n<thead><tr>\
<th>rank</th><th>model</th><th>{}</th><th>macro-F1</th><th>ECE</th><th>train s</th><th>p50 ms</th>\
<th>folder MB</th><th>gate</th></tr></thead>\n<tbody>\n",
        text(data),
        text(metric)
    );
    for (i, r) in rows.iter().enumerate() {
        let _ = writeln!(
            b,
            "<tr>{}<td>{}</td>{}{}{}{}{}{}<td>{}</td></tr>",
            num_cell((i + 1) as f64, 0),
            text(&r.kind),
            num_cell(r.score, 4),
            num_cell(r.macro_f1, 4),
            r.ece.map_or("<td class=\"num\" data-v=\"-1\">–</td>".to_string(), |e| num_cell(e, 4)),
            num_cell(r.train_seconds, 1),
            num_cell(r.p50_latency_ms, 2),
            num_cell(r.folder_bytes as f64 / 1e6, 1),
            if r.gate_passed { "passed" } else { "failed" }
        );
    }
    b.push_str("</tbody>\n</table>\n");
    if !skipped.is_empty() {
        b.push_str("<h2>Skipped</h2>\n<ul id=\"skipped\">\n");
        for (kind, why) in skipped {
            let _ = writeln!(b, "<li>{}: {}</li>", text(kind), text(why));
        }
        b.push_str("</ul>\n");
    }
    page("Model leaderboard", &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csp_hashes(html: &str) -> (String, String) {
        let csp = html.split("content=\"default-src").nth(1).unwrap().split('"').next().unwrap();
        let get = |kind: &str| {
            csp.split(';')
                .find_map(|d| d.trim().strip_prefix(kind))
                .unwrap()
                .trim()
                .trim_matches('\'')
                .trim_start_matches("sha256-")
                .to_string()
        };
        (get("style-src"), get("script-src"))
    }

    #[test]
    fn texts_are_escaped_and_the_csp_allows_exactly_the_page_script_and_style() {
        let rows = vec![PredictionRow {
            text: "<img src=x onerror=alert(1)> & <script>alert(2)</script>".into(),
            gold: "a\"b".into(),
            predicted: "c".into(),
            confidence: 0.9,
        }];
        let report: Report = serde_json::from_value(serde_json::json!({
            "n": 1, "accuracy": 0.0, "macro_f1": 0.0, "weighted_f1": 0.0, "top_k_accuracy": {},
            "per_class": {}, "macro avg": {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 1},
            "weighted avg": {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 1}
        }))
        .unwrap();
        let html = report_html(&report, &rows, None, &[], None);
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt; &amp; &lt;script&gt;alert(2)&lt;/script&gt;")
        );
        assert_eq!(html.matches("<script>").count(), 1, "one script: the table sort");
        let (style, script) = csp_hashes(&html);
        assert_eq!(style, b64(&Sha256::digest(STYLE.as_bytes())));
        assert_eq!(script, b64(&Sha256::digest(SCRIPT.as_bytes())));
        assert!(html.contains(&format!("<script>{SCRIPT}</script>")));
        assert!(html.contains(&format!("<style>{STYLE}</style>")));
    }

    #[test]
    fn a_leaderboard_ranks_escapes_and_lists_what_was_skipped() {
        let row = |kind: &str, score: f64| LeaderboardRow {
            kind: kind.into(),
            score,
            macro_f1: score - 0.01,
            ece: None,
            train_seconds: 1.5,
            p50_latency_ms: 0.25,
            folder_bytes: 2_500_000,
            gate_passed: score > 0.9,
        };
        let html = leaderboard_html(
            "train.jsonl <&> test.jsonl",
            "accuracy",
            &[row("mlp", 0.95), row("<b>svm</b>", 0.85)],
            &[("bert".into(), "estimated 900 s > 60 s left".into())],
        );
        assert!(html.contains("train.jsonl &lt;&amp;&gt; test.jsonl") && !html.contains("<b>svm"), "{html}");
        let first = html.find("<td>mlp</td>").unwrap();
        assert!(first < html.find("<td>&lt;b&gt;svm&lt;/b&gt;</td>").unwrap(), "best first");
        assert!(html.contains("<td class=\"num\" data-v=\"0.95\">0.9500</td>"), "{html}");
        assert!(html.contains("<td>passed</td>") && html.contains("<td>failed</td>"));
        assert!(html.contains("<li>bert: estimated 900 s &gt; 60 s left</li>"), "{html}");
        let (style, script) = csp_hashes(&html);
        assert_eq!((style.len(), script.len()), (44, 44), "the page's own style and script only");
    }

    #[test]
    fn errors_are_the_most_confident_fifty() {
        let rows: Vec<PredictionRow> = (0..80)
            .map(|i| PredictionRow {
                text: format!("t{i}"),
                gold: "a".into(),
                predicted: if i % 2 == 0 { "b".into() } else { "a".into() },
                confidence: i as f32 / 100.0,
            })
            .collect();
        let report: Report = serde_json::from_value(serde_json::json!({
            "n": 80, "accuracy": 0.5, "macro_f1": 0.0, "weighted_f1": 0.0, "top_k_accuracy": {},
            "per_class": {}, "macro avg": {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 80},
            "weighted avg": {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 80}
        }))
        .unwrap();
        let html = report_html(&report, &rows, None, &[], None);
        assert!(html.contains("The 40 most confident errors (of 40)"));
        let first = html.find("<td class=\"text\">t78</td>").unwrap();
        let later = html.find("<td class=\"text\">t0</td>").unwrap();
        assert!(first < later, "most confident first");
        assert!(!html.contains("<td class=\"text\">t79</td>"), "right answers are not errors");
    }
}
