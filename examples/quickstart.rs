//! Library quick start: load labeled data, train a small MLP, save it, load it back through
//! `Classifier::load` and predict.
//!
//! ```text
//! cargo run --example quickstart -- data/intents
//! ```

use burn::backend::{Autodiff, Flex};
use intent::data::split::{stratified_split, SplitConfig};
use intent::data::{load_dataset, LoadOptions};
use intent::serve::Classifier;
use intent::train::{train_mlp, EngineConfig, MlpOptions};

fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "crates/intent-cli/data/intents".into());
    let data = load_dataset(path.as_ref(), None, &LoadOptions::default())?.data;
    let split = stratified_split(
        &data,
        SplitConfig { train_fraction: 0.8, test_fraction: 0.0, min_val_per_label: 2, seed: 1 },
    )?;
    let opts = MlpOptions {
        hidden_size: 128,
        hidden_layers: 2,
        dropout: 0.2,
        engine: EngineConfig { epochs: 30, batch_size: 16, patience: Some(5), ..Default::default() },
        ..Default::default()
    };
    let trained = train_mlp::<Autodiff<Flex>>(&split.train, Some(&split.val), &opts, &Default::default())?;
    println!("validation accuracy {:.3}", trained.val_report.as_ref().map_or(0.0, |r| r.accuracy));
    let dir = std::env::temp_dir().join("intent-quickstart-model");
    trained.model.save(&dir, &trained.metrics_json())?;
    let classifier = Classifier::load(&dir)?;
    for text in ["where is my package", "I forgot my password", "thanks a lot"] {
        let p = classifier.predict(text)?;
        println!("{text:<25} → {} ({:.2})", p.label, p.confidence);
    }
    Ok(())
}
