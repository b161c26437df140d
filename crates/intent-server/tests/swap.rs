//! Hot-swap: reload to a new version, refuse broken models (the old one keeps serving),
//! rollback, registry aliases (reload and watcher), and requests holding the old model.

mod common;

use std::path::Path;
use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use intent_serve::ModelSpec;
use intent_server::server::{spawn_watcher, AppState, ServerOptions};
use intent_server::ModelSlot;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A copy of `model` whose weights are all NaN: it loads, but its predictions are garbage.
fn nan_model(model: &Path, to: &Path) {
    copy_dir(model, to);
    let bytes = std::fs::read(model.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(name, v)| {
            let n = v.data().len() / 4;
            (name, v.shape().to_vec(), f32::NAN.to_le_bytes().repeat(n))
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = data
        .iter()
        .map(|(n, s, d)| {
            (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap())
        })
        .collect();
    std::fs::write(to.join("model.safetensors"), safetensors::serialize(views, None).unwrap()).unwrap();
}

async fn reload(s: &AppState, model: Option<&str>) -> Reply {
    let body = model.map(|m| serde_json::json!({ "model": m }).to_string());
    call(s, "POST", "/admin/reload", body.as_deref(), Some(TOKEN)).await
}

async fn version(s: &AppState) -> String {
    call(s, "GET", "/ready", None, None).await.json["version"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn reload_refuses_broken_models_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let a = model(dir.path(), "a", 1);
    model(dir.path(), "b", 2);
    let root = dir.path().to_path_buf();
    let s = state(&a, dir.path(), false, ServerOptions { models_root: Some(root.clone()), ..with_token() });
    let va = version(&s).await;

    // Broken candidates: missing, unreadable config, truncated weights, NaN weights.
    let missing = dir.path().join("missing");
    let bad_config = dir.path().join("bad_config");
    copy_dir(&a, &bad_config);
    std::fs::write(bad_config.join("config.json"), "{ not json").unwrap();
    let truncated = dir.path().join("truncated");
    copy_dir(&a, &truncated);
    let w = std::fs::read(a.join("model.safetensors")).unwrap();
    std::fs::write(truncated.join("model.safetensors"), &w[..w.len() / 2]).unwrap();
    let nan = dir.path().join("nan");
    nan_model(&a, &nan);
    for (broken, needle) in [
        (&missing, "no model 'missing' under the models root"),
        (&bad_config, "config.json"),
        (&truncated, "model.safetensors"),
        (&nan, "smoke test"),
    ] {
        let name = broken.file_name().unwrap().to_str().unwrap();
        let r = reload(&s, Some(name)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        let msg = r.json["error"].as_str().unwrap();
        assert!(msg.contains(needle), "{}: {msg}", broken.display());
        assert!(!r.text.contains(root.to_str().unwrap()), "the answer shows the host path: {msg}");
        if broken != &missing {
            assert_eq!(r.json["serving"]["version"], va.as_str());
        }
        assert_eq!(version(&s).await, va);
        assert_eq!(predict(&s, r#"{"text": "reset my password"}"#).await.status, StatusCode::OK);
    }

    // A good one swaps in; the old one becomes previous.
    let r = reload(&s, Some("b")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let vb = r.json["to"]["version"].as_str().unwrap().to_string();
    assert_ne!(vb, va);
    assert_eq!(r.json["from"]["version"], va.as_str());
    assert_eq!(version(&s).await, vb);
    let models = call(&s, "GET", "/v1/models", None, None).await.json;
    assert_eq!(models["previous"]["version"], va.as_str());
    assert_eq!(models["swaps"], 1);

    // Reload without a body reloads the served spec (the same folder, same version).
    let r = reload(&s, None).await;
    assert_eq!((r.status, r.json["to"]["version"].as_str()), (StatusCode::OK, Some(vb.as_str())));
    assert_eq!(reload(&s, Some("x")).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = call(&s, "POST", "/admin/reload", Some(r#"{"path": "x"}"#), Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.json["error"].as_str().unwrap().contains("unknown field"), "{}", r.text);

    // Rollback goes back and forth.
    s.slot().reload(Some(ModelSpec::Dir(a.clone())), s.load_options()).await.unwrap();
    let r = call(&s, "POST", "/admin/rollback", None, Some(TOKEN)).await;
    assert_eq!((r.status, r.json["to"]["version"].as_str()), (StatusCode::OK, Some(vb.as_str())));
    assert_eq!(version(&s).await, vb);
    let metrics = call(&s, "GET", "/metrics", None, None).await.text;
    assert!(metrics.lines().any(|l| l == "intent_model_swap_failures_total 3"), "{metrics}");
    assert!(
        metrics.lines().any(|l| l == format!(r#"intent_model_info{{model="b",version="{vb}"}} 1"#)),
        "{metrics}"
    );

    let empty = AppState::new(ModelSlot::default(), None, with_token());
    assert_eq!(call(&empty, "POST", "/admin/rollback", None, Some(TOKEN)).await.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn requests_in_flight_finish_on_their_model() {
    let dir = tempfile::tempdir().unwrap();
    let a = model(dir.path(), "a", 1);
    let b = model(dir.path(), "b", 2);
    let s = state(&a, dir.path(), false, with_token());
    let held = s.slot().current().unwrap();
    s.slot().reload(Some(ModelSpec::Dir(b)), s.load_options()).await.unwrap();
    assert_ne!(s.slot().current().unwrap().source.version, held.source.version);
    // The request that took the old model before the swap still predicts with it.
    let p = held.predict(vec!["reset my password".into()], 2).await.unwrap();
    assert_eq!(p[0].label, "password");
    assert_eq!(held.source.name, "a");
}

#[tokio::test]
async fn registry_alias_reload_and_watch() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("models/faq");
    model(&reg.join("versions"), "1", 1);
    model(&reg.join("versions"), "2", 2);
    std::fs::create_dir_all(reg.join("aliases")).unwrap();
    std::fs::write(reg.join("aliases/current"), "1\n").unwrap();
    let spec = format!("{}@current", reg.display());

    let s = AppState::new(ModelSlot::default(), None, with_token());
    let info = s.load(&ModelSpec::parse(&spec)).unwrap();
    assert_eq!((info.name.as_str(), info.version.as_str()), ("faq", "1"));
    assert!(call(&s, "GET", "/metrics", None, None)
        .await
        .text
        .lines()
        .any(|l| l == "intent_model_version 1"));

    // The alias moves (write + rename, as the registry does); a plain reload follows it.
    std::fs::write(reg.join("aliases/.current.tmp"), "2\n").unwrap();
    std::fs::rename(reg.join("aliases/.current.tmp"), reg.join("aliases/current")).unwrap();
    let r = reload(&s, None).await;
    assert_eq!((r.status, r.json["to"]["version"].as_str()), (StatusCode::OK, Some("2")), "{}", r.text);

    // The watcher notices the alias moving back.
    let watcher = spawn_watcher(s.clone(), Duration::from_millis(50));
    std::fs::write(reg.join("aliases/current"), "1\n").unwrap();
    let mut v = String::new();
    for _ in 0..200 {
        v = version(&s).await;
        if v == "1" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    watcher.abort();
    assert_eq!(v, "1");
    // An alias pointing nowhere is refused.
    std::fs::write(reg.join("aliases/current"), "9\n").unwrap();
    let r = reload(&s, None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.json["error"].as_str().unwrap().contains("version 9"), "{}", r.text);
    assert_eq!(version(&s).await, "1");
}

/// `/admin/reload {"model": …}` loads only under `--models-root`, and its answers are the same
/// whether a path outside exists or not, naming no host path.
#[tokio::test]
async fn reload_by_name_stays_under_the_models_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("models");
    std::fs::create_dir_all(&root).unwrap();
    let a = model(&root, "a", 1);
    let outside = model(dir.path(), "outside", 2);
    std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();

    // Without a root, no model can be named.
    let s = state(&a, dir.path(), false, with_token());
    let r = reload(&s, Some("a")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.json["error"].as_str().unwrap().contains("--models-root"));

    let s = state(&a, dir.path(), false, ServerOptions { models_root: Some(root.clone()), ..with_token() });
    let va = version(&s).await;
    let host = dir.path().to_str().unwrap();
    for (name, needle) in [
        ("../outside", "without '..'"),
        ("../../etc", "without '..'"),
        ("/etc", "without '..'"),
        (outside.to_str().unwrap(), "without '..'"),
        ("link", "no model 'link' under the models root"),
        ("nothing-here", "no model 'nothing-here' under the models root"),
        ("hf://org/model", "at start only"),
    ] {
        let r = reload(&s, Some(name)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {}", r.text);
        assert!(r.json["error"].as_str().unwrap().contains(needle), "{name}: {}", r.text);
        assert!(!r.text.contains(host) || name == outside.to_str().unwrap(), "{name}: {}", r.text);
        assert_eq!(version(&s).await, va);
    }
    // Inside the root, by a relative name: it loads.
    let r = reload(&s, Some("./a")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let models = call(&s, "GET", "/v1/models", None, None).await;
    assert!(!models.text.contains(host), "{}", models.text);
}
