//! The MLP learns a separable problem, is deterministic for a seed on CPU, and survives a
//! save → load round trip with identical predictions; mismatched folders are refused with a
//! message saying what differs.

use burn::backend::{Autodiff, Flex};
use intent_data::{Dataset, Example};
use intent_models::BowMlp;
use intent_train::{train_mlp, EngineConfig, MlpOptions};

use intent_testkit::keyword_data;

fn options() -> MlpOptions {
    MlpOptions {
        hidden_size: 32,
        hidden_layers: 1,
        dropout: 0.1,
        engine: EngineConfig {
            epochs: 15,
            batch_size: 16,
            lr: 1e-2,
            patience: None,
            seed: 7,
            progress: false,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn accuracy(model: &BowMlp<Flex>, data: &Dataset) -> f64 {
    let scores = model.scores(&data.texts());
    let ok = scores
        .iter()
        .zip(&data.examples)
        .filter(|(s, e)| model.config.labels[intent_eval::metrics::argmax(s).0] == e.labels[0])
        .count();
    ok as f64 / data.len() as f64
}

#[test]
fn learns_separable_data_and_round_trips() {
    let train = keyword_data(40, 0);
    let test = keyword_data(20, 1000);
    let device = Default::default();
    let trained = train_mlp::<Autodiff<Flex>>(&train, Some(&test), &options(), &device).unwrap();
    let acc = accuracy(&trained.model, &test);
    assert!(acc > 0.95, "accuracy {acc}");
    assert!(trained.history.len() == 15 && trained.history[0].loss > trained.history[14].loss);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    trained.model.save(&out, &trained.metrics_json()).unwrap();
    for f in ["config.json", "model.safetensors", "vocab.txt", "metrics.json"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let loaded = BowMlp::<Flex>::load(&out, &device).unwrap();
    let texts = test.texts();
    assert_eq!(loaded.scores(&texts), trained.model.scores(&texts), "identical predictions after reload");
    assert_eq!(loaded.config, trained.model.config);

    // Same seed, same model (CPU); another seed, another model.
    let again = train_mlp::<Autodiff<Flex>>(&train, Some(&test), &options(), &device).unwrap();
    assert_eq!(again.model.scores(&texts), trained.model.scores(&texts));
    let mut other = options();
    other.engine.seed = 8;
    let other = train_mlp::<Autodiff<Flex>>(&train, Some(&test), &other, &device).unwrap();
    assert_ne!(other.model.scores(&texts), trained.model.scores(&texts));
}

#[test]
fn every_parameter_is_trained() {
    let train = keyword_data(10, 0);
    let mut opts = options();
    opts.hidden_layers = 2;
    opts.engine.epochs = 1;
    let device = Default::default();
    let trained = train_mlp::<Autodiff<Flex>>(&train, None, &opts, &device).unwrap();
    let initial = trained.model.architecture.init_seeded::<Flex>(&device, opts.engine.seed);
    let net = &trained.model.network;
    let pairs = [
        (net.hidden[0].weight.val(), initial.hidden[0].weight.val()),
        (net.hidden[1].weight.val(), initial.hidden[1].weight.val()),
        (net.output.weight.val(), initial.output.weight.val()),
    ];
    for (i, (after, before)) in pairs.into_iter().enumerate() {
        let diff: f32 = (after - before).abs().max().into_scalar();
        assert!(diff > 1e-4, "parameter {i} did not move");
    }
    let bias_diff: f32 = (net.output.bias.as_ref().unwrap().val()
        - initial.output.bias.as_ref().unwrap().val())
    .abs()
    .max()
    .into_scalar();
    assert!(bias_diff > 1e-4, "output bias did not move");
}

#[test]
fn mismatched_folders_say_what_differs() {
    let train = keyword_data(10, 0);
    let mut opts = options();
    opts.engine.epochs = 1;
    let device = Default::default();
    let trained = train_mlp::<Autodiff<Flex>>(&train, None, &opts, &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m");
    trained.model.save(&out, &serde_json::json!({})).unwrap();

    // A vocabulary with a term less than config.json says.
    let vocab = std::fs::read_to_string(out.join("vocab.txt")).unwrap();
    let fewer: Vec<&str> = vocab.lines().skip(1).collect();
    std::fs::write(out.join("vocab.txt"), fewer.join("\n")).unwrap();
    let err = BowMlp::<Flex>::load(&out, &device).unwrap_err().to_string();
    assert!(err.contains("vocab.txt") && err.contains("vocab_size"), "{err}");
    std::fs::write(out.join("vocab.txt"), &vocab).unwrap();

    // Weights of another architecture: hidden size 32 in the file, 16 in config.json.
    let cfg_text = std::fs::read_to_string(out.join("config.json")).unwrap();
    let mut cfg: serde_json::Value = serde_json::from_str(&cfg_text).unwrap();
    cfg["architecture"]["hidden_size"] = 16.into();
    std::fs::write(out.join("config.json"), cfg.to_string()).unwrap();
    let err = BowMlp::<Flex>::load(&out, &device).unwrap_err().to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("hidden.0.weight") && err.contains("16"),
        "{err}"
    );

    // Thresholds that do not match the labels.
    let mut cfg: serde_json::Value = serde_json::from_str(&cfg_text).unwrap();
    cfg["thresholds"] = serde_json::json!([0.5]);
    std::fs::write(out.join("config.json"), cfg.to_string()).unwrap();
    let err = BowMlp::<Flex>::load(&out, &device).unwrap_err().to_string();
    assert!(err.contains("1 thresholds for 4 labels"), "{err}");

    // Truncated weights file.
    std::fs::write(out.join("config.json"), &cfg_text).unwrap();
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    std::fs::write(out.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let err = BowMlp::<Flex>::load(&out, &device).unwrap_err().to_string();
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn multi_label_training_predicts_label_sets() {
    let mut v = Vec::new();
    for i in 0..30 {
        v.push(Example::multi(format!("card lost {i}"), vec!["card".into(), "lost".into()]));
        v.push(Example::multi(format!("card new {i}"), vec!["card".into()]));
        v.push(Example::multi(format!("phone lost {i}"), vec!["lost".into()]));
        v.push(Example::multi(format!("hello there {i}"), vec![]));
    }
    let data = Dataset { examples: v, multi_label: true };
    let device = Default::default();
    let trained = train_mlp::<Autodiff<Flex>>(&data, Some(&data), &options(), &device).unwrap();
    assert!(trained.model.config.multi_label);
    let th = trained.model.config.thresholds.clone().unwrap();
    assert_eq!(th.len(), 2);
    let s = trained.model.scores(&["card lost 99", "hello there 99"]);
    assert!(s[0][0] > th[0] && s[0][1] > th[1], "{s:?}");
    assert!(s[1][0] < th[0] && s[1][1] < th[1], "{s:?}");
    assert!(trained.val_report.unwrap().micro_f1.unwrap() > 0.95);
}

#[test]
fn bad_hyperparameters_and_one_label_data_are_refused() {
    let device = Default::default();
    let one = Dataset::new(vec![Example::new("a", "x"), Example::new("b", "x")]);
    let err = train_mlp::<Autodiff<Flex>>(&one, None, &options(), &device).err().unwrap().to_string();
    assert!(err.contains("1 label"), "{err}");
    let mut bad = options();
    bad.dropout = 1.5;
    let err =
        train_mlp::<Autodiff<Flex>>(&keyword_data(5, 0), None, &bad, &device).err().unwrap().to_string();
    assert!(err.contains("`dropout`"), "{err}");
    let mut bad = options();
    bad.engine.batch_size = 0;
    let err =
        train_mlp::<Autodiff<Flex>>(&keyword_data(5, 0), None, &bad, &device).err().unwrap().to_string();
    assert!(err.contains("`batch_size`"), "{err}");
}
