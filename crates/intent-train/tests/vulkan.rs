//! The accelerator code path on a real cubecl runtime without a GPU (feature `vulkan`): burn's
//! wgpu backend on Mesa's lavapipe, a Vulkan driver that runs on the CPU. CI has no GPU; this is
//! where the GPU path's fusion, JIT-compiled kernels, autotuning, device-side optimizer and
//! static shapes actually run (`.ci/run` installs `mesa-vulkan-drivers`).
//!
//! - the MLP trains on it to an accuracy near the CPU's, with the same options;
//! - a tiny BERT fine-tunes on it (AdamW and gradient clipping on the device, lengths padded to
//!   a multiple of 16) as it does on the CPU: it learns its 12 texts (the MLP's run covers the
//!   filled-up last batch);
//! - NeuMF trains on it for 3 epochs, compiling kernels in the first only;
//! - kernels are compiled (and matmuls autotuned) during the first epoch only: the later epochs,
//!   validation included, reuse them; the final validation report (same batches of
//!   `SCORE_BATCH`) compiles little more;
//! - the kernel caches are where `kernels::configure` put them, and the timing counts entries and
//!   how much longer the first epoch took.
//!
//! (cubecl's autotune keys round matrix sizes, so on this runtime the MLP would also compile
//! nothing new after its first epoch with dynamic shapes; what the shapes test guards, the
//! batchers' shapes, is checked on the CPU in `shapes.rs`.)
//!
//! `CUBECL_WGPU_DEFAULT_DEVICE=Cpu` (set here when unset) makes wgpu pick lavapipe even where a
//! GPU exists. Without a Vulkan driver the tests say so and pass, unless `INTENT_REQUIRE_VULKAN`
//! is set (`.ci/run` sets it: there they must run). BANKING77 comes from
//! `../shared/datasets/banking77` (`INTENT_BANKING77`).
#![cfg(feature = "vulkan")]

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};

use intent_data::{Dataset, Example, LoadOptions};
use intent_train::{
    kernels, train_bert_to_dir, train_mlp_to_dir, train_ncf_to_dir, BertOptions, DeviceSpec, EngineConfig,
    MlpOptions, NcfOptions,
};

/// The kernel cache of this process (cubecl reads its configuration once), and a turn at it:
/// kernel counts are differences of cache entries, so runs must not overlap. `None` (the test
/// says so and passes) where no Vulkan driver works, unless `INTENT_REQUIRE_VULKAN` is set (CI).
fn lavapipe() -> Option<(MutexGuard<'static, ()>, &'static std::path::Path)> {
    static CACHE: OnceLock<Option<tempfile::TempDir>> = OnceLock::new();
    static TURN: Mutex<()> = Mutex::new(());
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let cache = CACHE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        // Set under the lock, before any kernel: no other thread reads the environment meanwhile.
        std::env::set_var(kernels::CACHE_ENV, dir.path());
        if std::env::var_os("CUBECL_WGPU_DEFAULT_DEVICE").is_none() {
            std::env::set_var("CUBECL_WGPU_DEFAULT_DEVICE", "Cpu");
        }
        // Fewer matmul candidates (still autotuned); and cubecl's variables must survive the
        // configuration `kernels::configure` sets.
        std::env::set_var("CUBECL_AUTOTUNE_LEVEL", "minimal");
        if let Err(e) = DeviceSpec::Vulkan(None).check() {
            let why = format!("{e}: install mesa-vulkan-drivers (lavapipe)");
            assert!(std::env::var_os("INTENT_REQUIRE_VULKAN").is_none(), "{why}");
            eprintln!("skipped: {why}");
            return None;
        }
        assert_eq!(
            kernels::configure().as_deref(),
            Some(dir.path()),
            "the caches go where the variable says"
        );
        use burn::cubecl::config::{autotune::AutotuneLevel, CubeClRuntimeConfig, RuntimeConfig};
        let config = CubeClRuntimeConfig::get();
        let level = &config.autotune.level;
        assert!(matches!(level, AutotuneLevel::Minimal), "CUBECL_AUTOTUNE_LEVEL is ignored: {level:?}");
        Some(dir)
    });
    cache.as_ref().map(|c| (turn, c.path()))
}

fn banking77(file: &str, take: usize) -> Dataset {
    let path = std::env::var_os("INTENT_BANKING77")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/banking77")
        })
        .join(file);
    assert!(path.is_file(), "{} is missing (the shared datasets sit beside the clone)", path.display());
    let mut data = intent_data::load_dataset(&path, None, &LoadOptions::default()).expect("loads").data;
    // Every third example keeps all 77 labels in a smaller, quicker set.
    data.examples = data.examples.into_iter().step_by(3).take(take).collect();
    data
}

#[test]
fn the_mlp_trains_on_a_cubecl_device_and_compiles_kernels_in_the_first_epoch_only() {
    let Some((_turn, _cache)) = lavapipe() else { return };
    let device = DeviceSpec::Vulkan(None);
    let (train, val) = (banking77("train.csv", 3000), banking77("test.csv", 600));
    let engine =
        EngineConfig { epochs: 3, batch_size: 128, patience: None, progress: false, ..Default::default() };
    let opts = MlpOptions { engine, ..Default::default() };
    let (gpu_out, cpu_out) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let entries_before = kernels::entries_so_far().unwrap();
    let gpu = train_mlp_to_dir(device, &train, Some(&val), &opts, gpu_out.path()).expect("trains on vulkan");

    let timing = &gpu.timing;
    let first_epoch = timing.kernels_first_epoch.expect("kernels are counted where the cache is ours");
    assert!(first_epoch > 0, "a cold cache compiles kernels in the first epoch");
    assert!(timing.kernels_before_first_step.unwrap() <= first_epoch);
    assert_eq!(
        timing.kernels_all_epochs,
        Some(first_epoch),
        "nothing compiled or autotuned after epoch 1: epochs 2–3 and their validation reuse its shapes"
    );
    // After the loop, the report's softmax is all that may still compile.
    let after = kernels::entries_so_far().unwrap() - entries_before - timing.kernels_all_epochs.unwrap();
    assert!(after < 10, "{after} kernels compiled after training");
    assert_eq!(gpu.history.len(), 3);
    assert!(gpu.history[2].loss < gpu.history[0].loss, "{:?}", gpu.history);
    assert!(timing.time_to_first_step_s > 0.0 && timing.steady_samples_per_second > 0.0, "{timing:?}");
    // Epoch 1 against the median of epochs 2–3 (of two: their mean): longer by what compiling cost.
    let s: Vec<f64> = gpu.history.iter().map(|h| h.seconds).collect();
    let extra = timing.first_epoch_extra_s.expect("three epochs");
    assert!((extra - (s[0] - (s[1] + s[2]) / 2.0).max(0.0)).abs() < 1e-9, "{extra} {s:?}");
    assert!(extra > 0.0, "compiling {first_epoch} kernels made epoch 1 longer: {s:?}");

    let cpu = train_mlp_to_dir(DeviceSpec::Cpu, &train, Some(&val), &opts, cpu_out.path()).expect("trains");
    let (g, c) = (gpu.history[2].val_score.unwrap(), cpu.history[2].val_score.unwrap());
    assert!(c > 0.6, "CPU validation accuracy {c}");
    assert!((g - c).abs() < 0.05, "validation accuracy: vulkan {g}, cpu {c}");
}

#[test]
fn a_tiny_bert_fine_tunes_on_a_cubecl_device_as_on_the_cpu() {
    let Some((_turn, _cache)) = lavapipe() else { return };
    let rows = intent_testkit::bert::TINY_INTENTS;
    let train = Dataset::new(rows.iter().map(|(t, l)| Example::new(*t, *l)).collect());
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("tiny");
    intent_testkit::bert::write_learnable_tiny_bert(&base, &rows.map(|r| r.0), 0.0);
    let mut o = BertOptions { max_len: 16, ..Default::default() };
    o.engine = EngineConfig {
        epochs: 25,
        batch_size: 4,
        lr: 3e-3,
        warmup_ratio: 0.0,
        min_steps: Some(0),
        patience: None,
        progress: false,
        max_grad_norm: Some(1.0), // on the device: scaled there, no read-back
        ..o.engine
    };
    let mut runs = Vec::new();
    for device in [DeviceSpec::Vulkan(None), DeviceSpec::Cpu] {
        let out = dir.path().join(device.to_string());
        let run = train_bert_to_dir(device, &base, &train, Some(&train), &o, &out).expect("fine-tunes");
        let losses: Vec<f64> = run.history.iter().map(|h| h.loss).collect();
        assert!(losses[0] > 4.0 * losses.last().unwrap(), "{device}: {losses:?}");
        assert_eq!(run.val_report.as_ref().unwrap().accuracy, 1.0, "{device}: {losses:?}");
        runs.push(run);
    }
    let t = &runs[0].timing;
    assert!(runs[0].backend.contains("wgpu"), "{}", runs[0].backend);
    assert!(t.kernels_first_epoch.unwrap() > 0);
    assert_eq!(t.kernels_all_epochs, t.kernels_first_epoch, "padded lengths, filled batches: no new shapes");
}

/// NeuMF on the device compiles nothing after its first epoch either. It did before the best
/// model got buffers of its own: at epoch 2's first step the parameters were still held by the
/// best model (kept after epoch 1), and burn's fusion gave the one-value output bias's AdamW
/// update a kernel of its own there (fused with another bias's in every other step).
#[test]
fn neumf_compiles_kernels_in_the_first_epoch_only() {
    let Some((_turn, _cache)) = lavapipe() else { return };
    let device = DeviceSpec::Vulkan(None);
    let data = intent_data::recsys::synthetic_interactions(120, 80, 12, 6, 5);
    let (batch_size, lr) = intent_train::ncf::BATCH_DEFAULTS.resolve(device, Some(512), None);
    let mut opts = NcfOptions { device: Some(device), test_negatives: 20, ..Default::default() };
    opts.train = intent_train::ncf::NcfTrainConfig {
        epochs: 3,
        batch_size,
        lr,
        progress: false,
        ..Default::default()
    };
    let out = tempfile::tempdir().unwrap();
    let run = train_ncf_to_dir(&data, "synthetic", &opts, out.path()).expect("trains on vulkan");
    let t = &run.timing;
    assert!(t.kernels_first_epoch.unwrap() > 0, "a cold cache compiles kernels in the first epoch");
    assert_eq!(t.kernels_all_epochs, t.kernels_first_epoch, "epochs 2–3 reuse epoch 1's kernels");
    assert_eq!(run.history.len(), 3);
    assert!(run.history[2].loss < run.history[0].loss, "{:?}", run.history);
}

/// The global gradient norm that clipping divides by is exact for a 12-million-value weight on
/// this runtime, where one `sum` over that many values drops most of them (burn 0.21: `sum` of
/// a `[120000, 100]` tensor of ones gives 6,553,200); `global_grad_norm` reduces along rows short
/// enough to be summed whole. ∂/∂W of `Σ (x·W + b)` is `x` in every column, ∂/∂b is 1.
#[test]
fn the_global_norm_of_large_gradients_is_exact() {
    use burn::backend::{Autodiff, Vulkan};
    use burn::prelude::*;
    type AD = Autodiff<Vulkan>;
    let Some((_turn, _cache)) = lavapipe() else { return };
    let device = Default::default();
    let (inputs, outputs) = (3_000usize, 4_000usize);
    let lin = burn::nn::LinearConfig::new(inputs, outputs).init::<AD>(&device);
    let x: Vec<f32> = (0..inputs).map(|i| ((i % 7) as f32 - 3.0) * 0.01).collect();
    let xs = Tensor::<AD, 2>::from_data(burn::tensor::TensorData::new(x.clone(), [1, inputs]), &device);
    let grads = burn::optim::GradientsParams::from_grads(lin.forward(xs).sum().backward(), &lin);
    let norm: f32 =
        intent_train::device_adamw::global_grad_norm::<AD, _>(&lin, &grads).unwrap().into_scalar().elem();
    let expect = (outputs as f64 * (x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() + 1.0)).sqrt();
    assert!(((norm as f64) - expect).abs() < 1e-4 * expect, "norm {norm}, by hand {expect}");
}
