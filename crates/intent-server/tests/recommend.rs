//! `/v1/recommend` with an NCF model: top K unseen items, the popularity fallback, pair scores,
//! bad requests; `/v1/predict` on a recommender and `/v1/recommend` on a classifier are 422.

mod common;

use common::*;
use intent_data::recsys::synthetic_interactions;
use intent_serve::ModelSpec;
use intent_server::server::AppState;
use intent_server::ModelSlot;
use intent_train::ncf::NcfTrainConfig;
use intent_train::{train_ncf_to_dir, NcfOptions};

#[tokio::test]
async fn recommend_route() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_interactions(60, 40, 8, 4, 2);
    let opts = NcfOptions {
        layers: vec![16, 8],
        test_negatives: 20,
        train: NcfTrainConfig { epochs: 2, progress: false, ..Default::default() },
        ..Default::default()
    };
    let out = dir.path().join("ncf");
    train_ncf_to_dir(&data, "synthetic", &opts, &out).unwrap();
    let s = AppState::new(ModelSlot::default(), None, with_token());
    s.load(&ModelSpec::Dir(out.clone())).unwrap();

    let r = call(&s, "POST", "/v1/recommend", Some(r#"{"user": "u3", "k": 5}"#), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let recs = r.json["recommendations"].as_array().unwrap();
    assert_eq!(recs.len(), 5);
    let model = intent_models::ncf::folder::NcfModel::load(&out).unwrap();
    let u3 = model.ids.user("u3").unwrap();
    for rec in recs {
        let item = model.ids.item(rec["item"].as_str().unwrap()).unwrap();
        assert!(!model.has_seen(u3, item), "a seen item was recommended");
    }
    assert_eq!(recs[0]["item"], model.recommend("u3", 1, Default::default()).unwrap()[0].item.as_str());
    assert_eq!(r.json["known_user"], true);

    let r = call(&s, "POST", "/v1/recommend", Some(r#"{"user": "ghost"}"#), None).await;
    assert_eq!(r.status, 422);
    assert!(r.json["error"].as_str().unwrap().contains("unknown user 'ghost'"), "{}", r.text);
    let r =
        call(&s, "POST", "/v1/recommend", Some(r#"{"user": "ghost", "k": 3, "fallback": "popular"}"#), None)
            .await;
    assert_eq!(
        (
            r.status.as_u16(),
            r.json["recommendations"].as_array().unwrap().len(),
            r.json["known_user"].as_bool()
        ),
        (200, 3, Some(false))
    );

    let r = call(&s, "POST", "/v1/recommend", Some(r#"{"pairs": [["u3", "i1"], ["u4", "i2"]]}"#), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let want = model.score_pairs(&[("u3".into(), "i1".into()), ("u4".into(), "i2".into())]).unwrap();
    let got: Vec<f32> =
        r.json["scores"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    assert_eq!(got, want);

    for (body, needle) in [
        (r#"{"user": "u3", "k": 0}"#, "`k` must be between 1 and 40"),
        (r#"{"user": "u3", "fallback": "random"}"#, "expected 'error' or 'popular'"),
        (r#"{"user": "u3", "pairs": [["u3", "i1"]]}"#, "not both"),
        (r#"{}"#, "missing `user`"),
        (r#"{"pairs": [["u3", "nope"]]}"#, "unknown item 'nope'"),
        (r#"{"user": true}"#, "`user` must be a non-empty string or a number"),
    ] {
        let r = call(&s, "POST", "/v1/recommend", Some(body), None).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        assert!(r.json["error"].as_str().unwrap().contains(needle), "{body}: {}", r.text);
    }
    let r = predict(&s, r#"{"text": "hello"}"#).await;
    assert_eq!(r.status, 422);
    assert!(r.json["error"].as_str().unwrap().contains("use /v1/recommend"), "{}", r.text);
    let r = call(&s, "GET", "/v1/models", None, None).await;
    assert_eq!(r.json["models"][0]["kind"], "ncf");

    // A classifier on /v1/recommend.
    let m = model_dir(dir.path());
    s.load(&ModelSpec::Dir(m)).unwrap();
    let r = call(&s, "POST", "/v1/recommend", Some(r#"{"user": "u3"}"#), None).await;
    assert_eq!(r.status, 422);
    assert!(r.json["error"].as_str().unwrap().contains("is not a recommender (kind 'mlp')"), "{}", r.text);
}

fn model_dir(dir: &std::path::Path) -> std::path::PathBuf {
    common::model(dir, "clf", 1)
}
