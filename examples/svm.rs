//! Library use of the SVMs: the linear SVM (scikit-learn's `LinearSVC` recipe) and the RBF
//! kernel SVC on the same split, their decision values and calibrated confidences, saved and
//! served through `Classifier::load`.
//!
//! ```text
//! cargo run --release --example svm -- data/intents
//! ```

use intent::data::split::{stratified_split, SplitConfig};
use intent::data::{load_dataset, LoadOptions};
use intent::models::svm::{KernelChoice, SvmParams};
use intent::serve::Classifier;
use intent::train::{train_svm, SvmOptions};

fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "crates/intent-cli/data/intents".into());
    let data = load_dataset(path.as_ref(), None, &LoadOptions::default())?.data;
    let split = stratified_split(
        &data,
        SplitConfig { train_fraction: 0.8, test_fraction: 0.0, min_val_per_label: 2, seed: 1 },
    )?;
    for kernel in [KernelChoice::Linear, KernelChoice::Rbf { gamma: None }] {
        let opts =
            SvmOptions { params: SvmParams { kernel, ..SvmParams::default() }, ..SvmOptions::default() };
        let trained = train_svm(&split.train, Some(&split.val), &opts)?;
        println!(
            "{kernel:?}: fit {:.3} s, validation accuracy {:.3}, calibration {:?}",
            trained.fit_seconds,
            trained.val_report.as_ref().map_or(0.0, |r| r.accuracy),
            trained.model.calibration
        );
        let dir = std::env::temp_dir().join("intent-svm-example");
        trained.model.save(&dir, &trained.metrics_json())?;
        let classifier = Classifier::load(&dir)?;
        for text in ["where is my package", "I forgot my password", "thanks a lot"] {
            let p = classifier.predict(text)?;
            println!("  {text:<25} → {} ({:.2})", p.label, p.confidence);
        }
    }
    Ok(())
}
