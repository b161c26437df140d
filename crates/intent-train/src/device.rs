//! `--device` parsing: which burn backend and device a run uses.

use std::str::FromStr;

use crate::TrainError;

/// A compute device named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The default CPU backend (flex: pure Rust, multi-threaded, SIMD). `cpu` or `flex`.
    Cpu,
    /// burn's ndarray CPU backend (cargo feature `ndarray`; with `openblas`, BLAS matmul).
    Ndarray,
    /// An NVIDIA GPU through burn's CUDA backend (cargo feature `cuda`). `cuda` or `cuda:N`.
    Cuda(usize),
    /// A GPU through Vulkan (cargo feature `vulkan`: burn's wgpu backend with its SPIR-V
    /// compiler): `vulkan` for wgpu's default adapter (`CUBECL_WGPU_DEFAULT_DEVICE` picks another,
    /// e.g. `Cpu` for Mesa's lavapipe), `vulkan:N` for the N-th discrete GPU.
    Vulkan(Option<usize>),
    /// `auto`: CUDA device 0 when this build has CUDA and the device works, else the CPU.
    Auto,
}

impl DeviceSpec {
    /// The device `auto` stands for on this machine (others as they are).
    pub fn resolve(self) -> DeviceSpec {
        if self != DeviceSpec::Auto {
            return self;
        }
        #[cfg(feature = "cuda")]
        {
            crate::kernels::configure();
            match cuda_probe(0) {
                Ok(()) => {
                    tracing::info!("--device auto: CUDA device 0");
                    return DeviceSpec::Cuda(0);
                }
                Err(why) => tracing::info!("--device auto: no usable CUDA device ({why}), the CPU"),
            }
        }
        DeviceSpec::Cpu
    }

    /// True for devices other than the CPU backends (after [`DeviceSpec::resolve`]).
    pub fn is_accelerator(self) -> bool {
        matches!(self, DeviceSpec::Cuda(_) | DeviceSpec::Vulkan(_))
    }
}

impl FromStr for DeviceSpec {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self, TrainError> {
        let bad = |m: String| TrainError::Device(m);
        let (kind, index) = match s.split_once(':') {
            Some((k, i)) => (
                k,
                Some(
                    i.parse::<usize>()
                        .map_err(|_| bad(format!("'{s}': the index after ':' must be a number")))?,
                ),
            ),
            None => (s, None),
        };
        match (kind, index) {
            ("cpu" | "flex", None) => Ok(DeviceSpec::Cpu),
            ("ndarray", None) => Ok(DeviceSpec::Ndarray),
            ("auto", None) => Ok(DeviceSpec::Auto),
            ("cuda", i) => Ok(DeviceSpec::Cuda(i.unwrap_or(0))),
            ("vulkan", i) => Ok(DeviceSpec::Vulkan(i)),
            _ => Err(bad(format!(
                "unknown device '{s}': expected auto, cpu, ndarray, cuda, cuda:N, vulkan or vulkan:N"
            ))),
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Ndarray => write!(f, "ndarray"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
            DeviceSpec::Vulkan(None) => write!(f, "vulkan"),
            DeviceSpec::Vulkan(Some(i)) => write!(f, "vulkan:{i}"),
            DeviceSpec::Auto => write!(f, "auto"),
        }
    }
}

/// A training job generic over the backend, run by [`dispatch`] on the backend a
/// [`DeviceSpec`] names (a generic closure cannot be passed, hence the trait).
pub trait BackendJob {
    /// What the job returns.
    type Output;
    /// Runs on autodiff backend `B` and its `device`.
    fn run<B: burn::tensor::backend::AutodiffBackend>(
        self,
        device: B::Device,
    ) -> Result<Self::Output, TrainError>;
}

/// Runs `job` on the backend named by `spec`: flex on the CPU, ndarray, CUDA and Vulkan when
/// compiled in (features `ndarray`, `cuda`, `vulkan`); a GPU that cannot run a kernel is an
/// error, not a panic.
pub fn dispatch<J: BackendJob>(spec: DeviceSpec, job: J) -> Result<J::Output, TrainError> {
    use burn::backend::{Autodiff, Flex};
    let _clock = crate::timing::JobClock::start();
    match spec.check()? {
        #[cfg(feature = "ndarray")]
        DeviceSpec::Ndarray => job.run::<Autodiff<burn::backend::NdArray>>(Default::default()),
        #[cfg(feature = "cuda")]
        DeviceSpec::Cuda(i) => {
            job.run::<Autodiff<burn::backend::Cuda>>(burn::backend::cuda::CudaDevice::new(i))
        }
        #[cfg(feature = "vulkan")]
        DeviceSpec::Vulkan(i) => job.run::<Autodiff<burn::backend::Vulkan>>(vulkan_device(i)),
        _ => job.run::<Autodiff<Flex>>(Default::default()),
    }
}

impl DeviceSpec {
    /// The device this spec stands for here ([`DeviceSpec::resolve`]), after checking that it
    /// can be used: compiled into this build and, for a GPU, able to run a kernel. Trains
    /// nothing, so a configuration can be checked before any work.
    pub fn check(self) -> Result<DeviceSpec, TrainError> {
        match self.resolve() {
            DeviceSpec::Cpu => Ok(DeviceSpec::Cpu),
            #[cfg(feature = "ndarray")]
            DeviceSpec::Ndarray => Ok(DeviceSpec::Ndarray),
            #[cfg(feature = "cuda")]
            DeviceSpec::Cuda(i) => {
                crate::kernels::configure();
                cuda_probe(i)
                    .map(|()| DeviceSpec::Cuda(i))
                    .map_err(|why| TrainError::Device(format!("CUDA device {i} is not usable: {why}")))
            }
            #[cfg(feature = "vulkan")]
            DeviceSpec::Vulkan(i) => {
                crate::kernels::configure();
                probe::<burn::backend::Vulkan>(&vulkan_device(i))
                    .map(|()| DeviceSpec::Vulkan(i))
                    .map_err(|why| TrainError::Device(format!("device '{self}' is not usable: {why}")))
            }
            #[allow(unreachable_patterns)]
            other => Err(TrainError::Device(format!(
                "device '{other}' is not compiled into this build (rebuild with --features {})",
                match other {
                    DeviceSpec::Ndarray => "ndarray",
                    DeviceSpec::Vulkan(_) => "vulkan",
                    _ => "cuda",
                }
            ))),
        }
    }
}

/// A batch size and learning rate the user may have left unset, and the defaults to fill in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchDefaults {
    /// The CPU's default batch size.
    pub cpu_batch: usize,
    /// The default learning rate at `cpu_batch`.
    pub lr: f64,
    /// The default batch size on an accelerator: a GPU's step costs about the same for a few
    /// rows as for hundreds (kernel launches, not arithmetic), so small models want large ones.
    pub accelerator_batch: usize,
}

impl BatchDefaults {
    /// The batch size and learning rate of a run on `device`: what was given, else on an
    /// accelerator [`BatchDefaults::accelerator_batch`] with the rate scaled by √(its ratio to
    /// the CPU batch) when the rate is not given either (the square-root rule for Adam-type
    /// optimizers: a k× larger batch has √k× less gradient noise), else the CPU's defaults.
    pub fn resolve(self, device: DeviceSpec, batch: Option<usize>, lr: Option<f64>) -> (usize, f64) {
        match (batch, device.resolve().is_accelerator()) {
            (Some(b), _) => (b, lr.unwrap_or(self.lr)),
            (None, false) => (self.cpu_batch, lr.unwrap_or(self.lr)),
            (None, true) => {
                let ratio = self.accelerator_batch as f64 / self.cpu_batch as f64;
                (self.accelerator_batch, lr.unwrap_or(self.lr * ratio.sqrt()))
            }
        }
    }
}

/// Whether CUDA device `index` can run a kernel; the error says why not (see [`probe`]).
#[cfg(feature = "cuda")]
pub fn cuda_probe(index: usize) -> Result<(), String> {
    probe::<burn::backend::Cuda>(&burn::backend::cuda::CudaDevice::new(index))
}

/// wgpu's device for `vulkan` (its default adapter) and `vulkan:N` (the N-th discrete GPU).
#[cfg(feature = "vulkan")]
fn vulkan_device(index: Option<usize>) -> burn::backend::wgpu::WgpuDevice {
    use burn::backend::wgpu::WgpuDevice;
    index.map_or(WgpuDevice::DefaultDevice, WgpuDevice::DiscreteGpu)
}

/// Whether `dev` of GPU backend `B` can run a kernel; the error says why not. burn panics (in
/// its device thread) when there is no driver, no NVRTC library or no such GPU, so the probe
/// runs a tiny op under `catch_unwind` with a panic hook that keeps the messages instead of
/// printing them: the first one (e.g. cudarc's "Unable to dynamically load the \"nvrtc\" shared
/// library … LD_LIBRARY_PATH …") is the cause worth showing.
#[cfg(any(feature = "cuda", feature = "vulkan"))]
pub fn probe<B: burn::tensor::backend::Backend>(dev: &B::Device) -> Result<(), String> {
    use std::sync::{Arc, Mutex};

    use burn::tensor::Tensor;
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&seen);
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Ok(mut seen) = sink.lock() {
            seen.push(panic_text(info.payload()));
        }
    }));
    // The device is only read, and after a panic the probe's error is all that is used.
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Tensor::<B, 1>::zeros([1], dev).into_data()
    }));
    std::panic::set_hook(prev);
    match caught {
        Ok(_) => Ok(()),
        Err(payload) => {
            let first = seen.lock().ok().and_then(|s| s.first().cloned());
            Err(first.unwrap_or_else(|| panic_text(payload.as_ref())))
        }
    }
}

/// The message of a panic payload (`panic!` makes a `&str` or a `String`).
#[cfg_attr(not(any(feature = "cuda", feature = "vulkan")), allow(dead_code))]
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_read_from_either_payload() {
        let caught = std::panic::catch_unwind(|| panic!("no {} here", "driver")).unwrap_err();
        assert_eq!(panic_text(caught.as_ref()), "no driver here");
        let caught = std::panic::catch_unwind(|| std::panic::panic_any(7_u8)).unwrap_err();
        assert_eq!(panic_text(caught.as_ref()), "a panic without a message");
        assert_eq!(panic_text(&"plain"), "plain");
    }

    #[test]
    fn parses_devices() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda:1".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(1));
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("auto".parse::<DeviceSpec>().unwrap(), DeviceSpec::Auto);
        assert_eq!("vulkan".parse::<DeviceSpec>().unwrap(), DeviceSpec::Vulkan(None));
        assert_eq!("vulkan:1".parse::<DeviceSpec>().unwrap().to_string(), "vulkan:1");
        assert!(DeviceSpec::Vulkan(None).is_accelerator() && !DeviceSpec::Ndarray.is_accelerator());
        #[cfg(not(feature = "cuda"))]
        assert_eq!(DeviceSpec::Auto.resolve(), DeviceSpec::Cpu, "no CUDA in this build: the CPU");
        assert!("gpu".parse::<DeviceSpec>().unwrap_err().to_string().contains("unknown device 'gpu'"));
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
        assert_eq!(DeviceSpec::Cpu.check().unwrap(), DeviceSpec::Cpu);
        #[cfg(not(feature = "cuda"))]
        assert!(DeviceSpec::Cuda(0)
            .check()
            .unwrap_err()
            .to_string()
            .contains("not compiled into this build"));
        #[cfg(not(feature = "vulkan"))]
        assert!(DeviceSpec::Vulkan(None).check().unwrap_err().to_string().contains("--features vulkan"));
    }

    #[test]
    fn accelerators_default_to_larger_batches_at_a_square_root_scaled_rate() {
        let d = BatchDefaults { cpu_batch: 64, lr: 3e-3, accelerator_batch: 256 };
        assert_eq!(d.resolve(DeviceSpec::Cpu, None, None), (64, 3e-3));
        assert_eq!(d.resolve(DeviceSpec::Cuda(0), None, None), (256, 6e-3), "√(256/64) = 2");
        assert_eq!(d.resolve(DeviceSpec::Cuda(0), None, Some(1e-3)), (256, 1e-3), "a given rate holds");
        assert_eq!(d.resolve(DeviceSpec::Cuda(0), Some(32), None), (32, 3e-3), "a given batch: no scaling");
        assert_eq!(d.resolve(DeviceSpec::Cpu, Some(128), Some(1e-2)), (128, 1e-2));
    }
}
