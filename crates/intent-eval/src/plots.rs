//! SVG plots of a report: confusion matrix and confidence histogram (plotters).

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::metrics::ConfusionMatrix;

/// Most labels drawn in the confusion matrix; above this, the labels with the most errors are
/// drawn (a 150×150 matrix is unreadable).
pub const MAX_MATRIX_LABELS: usize = 40;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Draws the row-normalised confusion matrix as a heat map.
pub fn confusion_matrix_svg(path: &Path, cm: &ConfusionMatrix) -> Result<(), String> {
    let k = cm.labels.len();
    let mut keep: Vec<usize> = (0..k)
        .filter(|&i| cm.matrix[i].iter().sum::<usize>() > 0 || (0..k).any(|g| cm.matrix[g][i] > 0))
        .collect();
    let title = if keep.len() > MAX_MATRIX_LABELS {
        let errors = |i: usize| {
            cm.matrix[i].iter().sum::<usize>() - cm.matrix[i][i]
                + (0..k).map(|g| cm.matrix[g][i]).sum::<usize>()
                - cm.matrix[i][i]
        };
        keep.sort_by_key(|&i| std::cmp::Reverse(errors(i)));
        keep.truncate(MAX_MATRIX_LABELS);
        keep.sort_unstable();
        format!("Confusion matrix ({MAX_MATRIX_LABELS} most confused labels, row-normalised)")
    } else {
        "Confusion matrix (row-normalised)".to_string()
    };
    let n = keep.len().max(1);
    let side = (260 + n * 18) as u32;
    let root = SVGBackend::new(path, (side + 40, side)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let names: Vec<String> = keep.iter().map(|&i| cm.labels[i].chars().take(24).collect()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(170)
        .y_label_area_size(170)
        .build_cartesian_2d((0..n as i32).into_segmented(), (0..n as i32).into_segmented())
        .map_err(err)?;
    // Labels sit at the centre of each cell; rows are drawn top to bottom.
    let name_at = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let row_name = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) if (*i as usize) < n => names[n - 1 - *i as usize].clone(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(n)
        .y_labels(n)
        .x_label_formatter(&name_at)
        .y_label_formatter(&row_name)
        .x_label_style(
            ("sans-serif", 10)
                .into_font()
                .transform(FontTransform::Rotate270)
                .into_text_style(&root)
                .pos(Pos::new(HPos::Right, VPos::Center)),
        )
        .y_label_style(("sans-serif", 10))
        .x_desc("predicted")
        .y_desc("gold")
        .draw()
        .map_err(err)?;
    let mut cells = Vec::new();
    for (r, &g) in keep.iter().enumerate() {
        let total = cm.matrix[g].iter().sum::<usize>().max(1) as f64;
        for (c, &p) in keep.iter().enumerate() {
            let v = cm.matrix[g][p] as f64 / total;
            let shade = (255.0 * (1.0 - v)) as u8;
            let y = (n - 1 - r) as i32;
            let corner = |x: i32, y: i32| (SegmentValue::Exact(x), SegmentValue::Exact(y));
            cells.push(Rectangle::new(
                [corner(c as i32, y), corner(c as i32 + 1, y + 1)],
                RGBColor(shade, shade, 255).filled(),
            ));
        }
    }
    chart.draw_series(cells).map_err(err)?;
    root.present().map_err(err)
}

/// Draws histograms of the confidence of correct and of wrong predictions (20 bins).
pub fn confidence_histogram_svg(path: &Path, confidence: &[f32], correct: &[bool]) -> Result<(), String> {
    const BINS: u32 = 20;
    let bin = |c: f32| ((c.clamp(0.0, 1.0) * BINS as f32) as u32).min(BINS - 1);
    let mut counts = vec![[0u32; 2]; BINS as usize];
    for (&c, &ok) in confidence.iter().zip(correct) {
        counts[bin(c) as usize][ok as usize] += 1;
    }
    let max = counts.iter().map(|c| c[0].max(c[1])).max().unwrap_or(1).max(1);
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Confidence of predictions", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0f32..1.0f32, 0u32..max + max / 10 + 1)
        .map_err(err)?;
    chart.configure_mesh().x_desc("confidence").y_desc("predictions").draw().map_err(err)?;
    let w = 1.0 / BINS as f32;
    for (ok, color, label) in [(1usize, GREEN.mix(0.55), "correct"), (0usize, RED.mix(0.55), "wrong")] {
        chart
            .draw_series(counts.iter().enumerate().map(|(b, c)| {
                let x0 = b as f32 * w;
                Rectangle::new([(x0 + w * 0.05, 0), (x0 + w * 0.95, c[ok])], color.filled())
            }))
            .map_err(err)?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// A named curve: label, colour, points.
type Series<'a> = (&'a str, RGBColor, Vec<(f32, f32)>);

/// Curves over a common x axis, as an SVG document in memory.
fn lines_svg(
    caption: &str,
    x_desc: &str,
    y_desc: &str,
    x: (f32, f32),
    series: &[Series<'_>],
) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (640, 380)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(x.0..x.1, 0.0f32..1.0f32)
            .map_err(err)?;
        chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).draw().map_err(err)?;
        for (label, color, points) in series {
            let color = *color;
            chart
                .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))
                .map_err(err)?
                .label(*label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

/// In-scope accuracy and out-of-scope recall against the threshold.
pub fn oos_curve_svg(curve: &[crate::html::CurvePoint]) -> Result<String, String> {
    let pts = |f: fn(&crate::html::CurvePoint) -> f64| -> Vec<(f32, f32)> {
        curve.iter().map(|p| (p.threshold, f(p) as f32)).collect()
    };
    lines_svg(
        "Out-of-scope threshold",
        "threshold",
        "share",
        (0.0, 1.0),
        &[
            ("in-scope accuracy", BLUE, pts(|p| p.in_scope_accuracy)),
            ("OOS recall", RED, pts(|p| p.oos_recall)),
        ],
    )
}

/// HR@K and NDCG@K against K.
pub fn ranking_svg(by_k: &[crate::ranking::RankingReport]) -> Result<String, String> {
    let max_k = by_k.iter().map(|r| r.k).max().unwrap_or(1) as f32;
    let pts = |f: fn(&crate::ranking::RankingReport) -> f64| -> Vec<(f32, f32)> {
        by_k.iter().map(|r| (r.k as f32, f(r) as f32)).collect()
    };
    lines_svg(
        "Hit ratio and NDCG by cut-off",
        "K",
        "",
        (0.0, max_k + 1.0),
        &[("HR@K", BLUE, pts(|r| r.hr)), ("NDCG@K", RED, pts(|r| r.ndcg))],
    )
}
