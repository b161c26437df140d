//! SVMs end to end through the library: separable data is learned perfectly (linear and RBF),
//! training is deterministic for a seed, save → load gives identical decisions, confidences are
//! calibrated probabilities, multi-label data works one-vs-rest, and bad hyperparameters or
//! unsuitable data are refused with messages naming the problem.

use intent_data::{Dataset, Example};
use intent_models::svm::{ClassWeight, KernelChoice, SvmModel, SvmParams};
use intent_train::{train_svm, SvmOptions};

use intent_testkit::keyword_data;

fn opts(kernel: KernelChoice) -> SvmOptions {
    SvmOptions { params: SvmParams { kernel, ..SvmParams::default() }, ..SvmOptions::default() }
}

fn accuracy(model: &SvmModel, data: &Dataset) -> f64 {
    let scores = model.scores(&data.texts());
    let ok = scores
        .iter()
        .zip(&data.examples)
        .filter(|(s, e)| {
            let best = (0..s.len()).max_by(|&a, &b| s[a].total_cmp(&s[b])).unwrap();
            Some(model.config.labels[best].as_str()) == e.label()
        })
        .count();
    ok as f64 / data.len() as f64
}

#[test]
fn separable_data_reaches_100_percent_and_round_trips() {
    let train = keyword_data(30, 0);
    let val = keyword_data(8, 100);
    let dir = tempfile::tempdir().unwrap();
    for kernel in [KernelChoice::Linear, KernelChoice::Rbf { gamma: None }, KernelChoice::LinearOvo] {
        let trained = train_svm(&train, Some(&val), &opts(kernel)).unwrap();
        assert_eq!(accuracy(&trained.model, &train), 1.0, "{kernel:?} on train");
        assert_eq!(accuracy(&trained.model, &val), 1.0, "{kernel:?} on held-out data");
        assert_eq!(trained.calibrated_on, "validation");
        // Probabilities: each row sums to 1.
        for s in trained.model.scores(&["my card please", "reset my login"]) {
            assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{s:?}");
        }
        let out = dir.path().join(format!("{kernel:?}").replace(|c: char| !c.is_alphanumeric(), "_"));
        trained.model.save(&out, &trained.metrics_json()).unwrap();
        let loaded = SvmModel::load(&out).unwrap();
        let texts: Vec<&str> = val.texts().into_iter().chain(["zzz unknown words", ""]).collect();
        assert_eq!(loaded.decision_function(&texts), trained.model.decision_function(&texts), "{kernel:?}");
        assert_eq!(loaded.scores(&texts), trained.model.scores(&texts));
        assert_eq!(loaded.config.oos, trained.model.config.oos);
        let metrics: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
        assert!(
            metrics["fit_seconds"].as_f64().is_some() && metrics["calibration"]["fitted_on"] == "validation"
        );
    }
}

#[test]
fn character_ngrams_learn_and_survive_typos() {
    let train = keyword_data(30, 0);
    let char_wb = intent_data::text::VectorizerConfig {
        analyzer: intent_data::text::Analyzer::CharWb,
        ngram_min: 2,
        ngram_max: 4,
        ..intent_data::text::VectorizerConfig::sklearn_tfidf()
    };
    let o = SvmOptions { vectorizer: char_wb, ..opts(KernelChoice::Linear) };
    let trained = train_svm(&train, None, &o).unwrap();
    assert_eq!(accuracy(&trained.model, &train), 1.0);
    assert!(trained.model.vectorizer.terms.iter().any(|t| t == " ca"), "char_wb terms are padded words");
    // Misspelled keywords still land on the right label through shared character n-grams.
    let typos =
        Dataset::new(vec![Example::new("pasword logn", "label_3"), Example::new("refnd mony", "label_2")]);
    assert_eq!(accuracy(&trained.model, &typos), 1.0);
}

#[test]
fn same_seed_same_model_and_holdout_calibration() {
    let train = keyword_data(30, 0);
    let a = train_svm(&train, None, &opts(KernelChoice::Linear)).unwrap();
    let b = train_svm(&train, None, &opts(KernelChoice::Linear)).unwrap();
    assert_eq!(a.model.body, b.model.body);
    assert_eq!(a.model.calibration, b.model.calibration);
    assert_eq!(a.calibrated_on, "holdout");
    // Without validation data and with calibration switched off, the temperature stays 1.
    let none = SvmOptions { calibration_holdout: 0.0, ..opts(KernelChoice::Linear) };
    let c = train_svm(&train, None, &none).unwrap();
    assert_eq!(c.calibrated_on, "none");
    assert_eq!(
        serde_json::to_value(c.model.calibration).unwrap(),
        serde_json::json!({"method": "temperature", "temperature": 1.0})
    );
    // Balanced class weights train too (equal class sizes: the same weights as none).
    let balanced = SvmOptions {
        params: SvmParams { class_weight: ClassWeight::Balanced, ..SvmParams::default() },
        ..none
    };
    assert_eq!(train_svm(&train, None, &balanced).unwrap().model.body, c.model.body);
}

#[test]
fn multi_label_one_vs_rest_with_platt_scaling() {
    let mut ex = Vec::new();
    for i in 0..20 {
        ex.push(Example { labels: vec!["card".into()], ..Example::new(format!("card problem {i}"), "card") });
        ex.push(Example {
            labels: vec!["refund".into()],
            ..Example::new(format!("refund please {i}"), "refund")
        });
        ex.push(Example {
            labels: vec!["card".into(), "refund".into()],
            ..Example::new(format!("card refund both {i}"), "card")
        });
    }
    let mut train = Dataset::new(ex);
    train.multi_label = true;
    let trained = train_svm(&train, Some(&train.clone()), &opts(KernelChoice::Linear)).unwrap();
    assert!(matches!(trained.model.calibration, intent_models::svm::Calibration::Platt { .. }));
    let s = trained.model.scores(&["card refund both 99"]);
    let th = trained.model.config.thresholds.clone().unwrap();
    assert!(s[0].iter().zip(&th).all(|(p, t)| p >= t), "both labels predicted: {s:?} vs {th:?}");
    // The kernel SVC is single-label and says so.
    let err = train_svm(&train, None, &opts(KernelChoice::Rbf { gamma: None })).unwrap_err().to_string();
    assert!(err.contains("single-label"), "{err}");
}

#[test]
fn bad_hyperparameters_and_unsuitable_data_are_refused() {
    let train = keyword_data(10, 0);
    for (params, flag) in [
        (SvmParams { c: 0.0, ..SvmParams::default() }, "`c`"),
        (SvmParams { c: -1.0, ..SvmParams::default() }, "`c`"),
        (SvmParams { c: f64::NAN, ..SvmParams::default() }, "`c`"),
        (SvmParams { tol: 0.0, ..SvmParams::default() }, "`tol`"),
        (SvmParams { max_iter: 0, ..SvmParams::default() }, "`max_iter`"),
        (SvmParams { kernel: KernelChoice::Rbf { gamma: Some(-2.0) }, ..SvmParams::default() }, "`gamma`"),
    ] {
        let err =
            train_svm(&train, None, &SvmOptions { params, ..SvmOptions::default() }).unwrap_err().to_string();
        assert!(err.contains(flag), "expected {flag} in: {err}");
    }
    // Texts with no token of two word characters: scikit-learn's pattern finds nothing.
    let empty = Dataset::new(vec![Example::new("a ?", "x"), Example::new("b !", "y")]);
    let err = train_svm(&empty, None, &SvmOptions::default()).unwrap_err().to_string();
    assert!(err.contains("empty vocabulary"), "{err}");
    // One label only.
    let one = Dataset::new(vec![Example::new("hello there", "x"), Example::new("hi there", "x")]);
    assert!(train_svm(&one, None, &SvmOptions::default()).unwrap_err().to_string().contains("at least two"));
    // The kernel SVC refuses sizes it would take too long on, and says why.
    let big = keyword_data(1000, 0);
    let err = train_svm(&big, None, &opts(KernelChoice::Rbf { gamma: None })).unwrap_err().to_string();
    assert!(err.contains("pair") && err.contains("--kernel linear"), "{err}");
}

#[test]
fn tampered_model_folders_are_refused_with_the_field_named() {
    let train = keyword_data(10, 0);
    let dir = tempfile::tempdir().unwrap();
    let trained = train_svm(&train, Some(&keyword_data(4, 50)), &opts(KernelChoice::Linear)).unwrap();
    // The temperature is fitted strictly inside its search range, and confidences stay below 1.
    let t = serde_json::to_value(trained.model.calibration).unwrap()["temperature"].as_f64().unwrap();
    assert!(t > 2e-3 && t < 500.0, "T = {t}");
    assert!(trained.model.scores(&["my card please"])[0].iter().all(|&p| p < 1.0));
    let good = dir.path().join("good");
    trained.model.save(&good, &serde_json::json!({})).unwrap();
    let edit = |name: &str, f: &dyn Fn(&mut serde_json::Value)| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        for e in std::fs::read_dir(&good).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
        }
        let mut c: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("config.json")).unwrap()).unwrap();
        f(&mut c);
        std::fs::write(d.join("config.json"), c.to_string()).unwrap();
        SvmModel::load(&d).unwrap_err().to_string()
    };
    let e = edit("t0", &|c| c["architecture"]["calibration"]["temperature"] = serde_json::json!(0.0));
    assert!(e.contains("temperature") && e.contains("config.json"), "{e}");
    let e = edit("th", &|c| c["thresholds"] = serde_json::json!([0.5]));
    assert!(e.contains("1 thresholds for 4 labels"), "{e}");
    let e = edit("labels", &|c| c["labels"] = serde_json::json!(["a", "b", "c"]));
    assert!(e.contains("4 classes") || e.contains("3 labels"), "{e}");
    let e = edit("kind", &|c| c["architecture"]["type"] = serde_json::json!("tree"));
    assert!(e.contains("architecture.type 'tree'"), "{e}");
    // Weights of the wrong shape: the tensor is named.
    let d = dir.path().join("shape");
    std::fs::create_dir_all(&d).unwrap();
    for e in std::fs::read_dir(&good).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
    }
    intent_models::tensors::write(
        &d.join("model.safetensors"),
        vec![("coef", intent_models::tensors::HostTensor::F32(vec![0.0; 4], vec![4, 1]))],
    )
    .unwrap();
    let e = SvmModel::load(&d).unwrap_err().to_string();
    assert!(e.contains("tensor 'coef' has shape [4, 1]"), "{e}");
    std::fs::write(d.join("model.safetensors"), b"not a tensor file").unwrap();
    assert!(SvmModel::load(&d).unwrap_err().to_string().contains("not a safetensors file"));
    // The kernel SVC has no class weights and says so.
    let p = SvmParams {
        kernel: KernelChoice::Rbf { gamma: None },
        class_weight: ClassWeight::Balanced,
        ..SvmParams::default()
    };
    let e =
        train_svm(&train, None, &SvmOptions { params: p, ..SvmOptions::default() }).unwrap_err().to_string();
    assert!(e.contains("no class weights"), "{e}");
}
