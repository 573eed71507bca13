//! Device selection: from the caller's `requested_device` string to an ordered
//! list of devices to try, and from a device to its ONNX Runtime execution
//! provider.
//!
//! A provider missing from the loaded ONNX Runtime is a failed step with a reason,
//! never a silent CPU run: availability is checked first, and the provider is
//! registered with `error_on_failure` so a registration error fails the step too.

use std::ffi::CStr;

use ort::ep::{self, ExecutionProvider, ExecutionProviderDispatch};

use crate::env::{OPENVINO_GPU_GATE_ENV, TEST_OPENVINO_OPTIONS_ENV};
use crate::error::CreateError;
use crate::error_strings::{
    CUDA_UNAVAILABLE, OPENVINO_GPU_FALLBACK_DISABLED, OPENVINO_UNAVAILABLE, UNSUPPORTED_DEVICE,
};

/// A device a session can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// OpenVINO execution provider, device_type NPU.
    Npu,
    /// CUDA execution provider, device 0.
    Cuda,
    /// OpenVINO execution provider, device_type GPU (gated by `OPENVINO_GPU_GATE_ENV`).
    OpenVinoGpu,
    /// OpenVINO execution provider, device_type CPU (an addition to the
    /// contract: the OpenVINO path on any machine with the OpenVINO build).
    OpenVinoCpu,
    /// ONNX Runtime's CPU execution provider.
    Cpu,
}

impl Device {
    /// The `selected_device` string.
    pub fn name(self) -> &'static CStr {
        match self {
            Self::Npu => c"NPU",
            Self::Cuda => c"CUDA",
            Self::OpenVinoGpu => c"GPU",
            Self::OpenVinoCpu => c"OPENVINO_CPU",
            Self::Cpu => c"CPU",
        }
    }
}

/// The OpenVINO options of a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpenVinoOptions {
    /// Static shapes and the QDQ optimiser (the contract's NPU).
    Npu,
    /// Static shapes (the contract's OpenVINO-GPU).
    Gpu,
    /// OpenVINO's defaults (dynamic shapes).
    Cpu,
}

impl OpenVinoOptions {
    fn static_shapes(self) -> bool {
        self != Self::Cpu
    }
}

/// How a session opens on a device.
pub struct DeviceSetup {
    /// `None`: ONNX Runtime's CPU provider alone.
    pub provider: Option<ExecutionProviderDispatch>,
    /// The session was compiled for fixed input shapes: every run is one row
    /// at the full `seq_len` (rows padded, their mask 0).
    pub static_shapes: bool,
}

const AUTO: &[Device] = &[Device::Npu, Device::Cuda, Device::OpenVinoGpu, Device::Cpu];
const NPU: &[Device] = &[Device::Npu];
const GPU: &[Device] = &[Device::Cuda, Device::OpenVinoGpu];
const CPU: &[Device] = &[Device::Cpu];
const OPENVINO_CPU: &[Device] = &[Device::OpenVinoCpu];

/// The devices to try, in order, for a requested device (`None` or empty: AUTO).
/// Matching is case-insensitive; the bytes need not be UTF-8.
pub fn plan(requested: Option<&[u8]>) -> Result<&'static [Device], CreateError> {
    let requested = requested.unwrap_or_default();
    if requested.is_empty() {
        return Ok(AUTO);
    }
    let is = |name: &str| requested.eq_ignore_ascii_case(name.as_bytes());
    if is("AUTO") {
        Ok(AUTO)
    } else if is("NPU") || is("INTEL_NPU") {
        Ok(NPU)
    } else if is("GPU") || is("CUDA") || is("NVIDIA") || is("NVIDIA_GPU") {
        Ok(GPU)
    } else if is("CPU") || is("HOST") {
        Ok(CPU)
    } else if is("OPENVINO_CPU") {
        Ok(OPENVINO_CPU)
    } else {
        Err(CreateError::library(UNSUPPORTED_DEVICE))
    }
}

/// How to open a session on `device`, or why this step cannot be taken in
/// the loaded ONNX Runtime.
pub fn setup(device: Device) -> Result<DeviceSetup, CreateError> {
    let (provider, static_shapes) = match device {
        Device::Cpu => {
            return Ok(DeviceSetup {
                provider: None,
                static_shapes: false,
            })
        }
        Device::Npu => openvino("NPU", OpenVinoOptions::Npu)?,
        Device::Cuda => {
            require_available::<ep::CUDA>(CUDA_UNAVAILABLE)?;
            (ep::CUDA::default().with_device_id(0).build(), false)
        }
        Device::OpenVinoGpu => {
            if !crate::env::is_on(OPENVINO_GPU_GATE_ENV) {
                return Err(CreateError::library(OPENVINO_GPU_FALLBACK_DISABLED));
            }
            openvino("GPU", OpenVinoOptions::Gpu)?
        }
        Device::OpenVinoCpu => {
            let options = std::env::var(TEST_OPENVINO_OPTIONS_ENV).ok();
            openvino("CPU", test_options(options.as_deref())?)?
        }
    };
    Ok(DeviceSetup {
        provider: Some(provider.error_on_failure()),
        static_shapes,
    })
}

/// The OpenVINO provider on `device_type` with one option set, and whether its
/// shapes are static.
fn openvino(
    device_type: &str,
    options: OpenVinoOptions,
) -> Result<(ExecutionProviderDispatch, bool), CreateError> {
    require_available::<ep::OpenVINO>(OPENVINO_UNAVAILABLE)?;
    let mut provider = ep::OpenVINO::default().with_device_type(device_type);
    if options.static_shapes() {
        provider = provider.with_dynamic_shapes(false);
    }
    if options == OpenVinoOptions::Npu {
        provider = provider.with_qdq_optimizer(true);
    }
    Ok((provider.build(), options.static_shapes()))
}

/// The option set [`TEST_OPENVINO_OPTIONS_ENV`] asks `OPENVINO_CPU` to use.
fn test_options(value: Option<&str>) -> Result<OpenVinoOptions, CreateError> {
    match value.unwrap_or_default() {
        "" => Ok(OpenVinoOptions::Cpu),
        v if v.eq_ignore_ascii_case("npu") => Ok(OpenVinoOptions::Npu),
        v if v.eq_ignore_ascii_case("gpu") => Ok(OpenVinoOptions::Gpu),
        other => Err(CreateError::library(format!(
            "{TEST_OPENVINO_OPTIONS_ENV}={other:?} is not npu or gpu"
        ))),
    }
}

/// Fails with `unavailable` (the provider's own error string) when the loaded
/// ONNX Runtime lacks provider `E`.
fn require_available<E: ExecutionProvider>(unavailable: &'static str) -> Result<(), CreateError> {
    match E::is_available() {
        Ok(true) => Ok(()),
        Ok(false) => Err(CreateError::library(unavailable)),
        Err(e) => Err(CreateError::onnx_runtime(format!(
            "{} availability check failed: {e}",
            E::NAME
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unavailable_reasons_name_the_providers() {
        assert_eq!(CUDA_UNAVAILABLE, format!("{} unavailable", ep::CUDA::NAME));
        assert_eq!(
            OPENVINO_UNAVAILABLE,
            format!("{} unavailable", ep::OpenVINO::NAME)
        );
    }

    #[test]
    fn device_strings_map_to_the_contract_order() {
        assert_eq!(plan(None).unwrap(), AUTO);
        assert_eq!(plan(Some(b"")).unwrap(), AUTO);
        assert_eq!(plan(Some(b"auto")).unwrap(), AUTO);
        for npu in ["NPU", "intel_npu", "Npu"] {
            assert_eq!(plan(Some(npu.as_bytes())).unwrap(), NPU, "{npu}");
        }
        for gpu in ["GPU", "cuda", "Nvidia", "NVIDIA_GPU"] {
            assert_eq!(plan(Some(gpu.as_bytes())).unwrap(), GPU, "{gpu}");
        }
        for cpu in ["CPU", "host", "Cpu"] {
            assert_eq!(plan(Some(cpu.as_bytes())).unwrap(), CPU, "{cpu}");
        }
        for openvino_cpu in ["OPENVINO_CPU", "openvino_cpu"] {
            let got = plan(Some(openvino_cpu.as_bytes())).unwrap();
            assert_eq!(got, OPENVINO_CPU, "{openvino_cpu}");
        }
    }

    #[test]
    fn unknown_devices_fail_with_the_contract_message() {
        for bad in [&b"TPU"[..], b" CPU", b"CPU ", b"\xff\xfe", b"GPU0"] {
            let err = plan(Some(bad)).unwrap_err();
            assert_eq!(
                err.to_string(),
                "std_create_error:unsupported requested_device (expected AUTO|NPU|GPU|CUDA|CPU|OPENVINO_CPU)"
            );
        }
    }

    #[test]
    fn selected_device_names() {
        assert_eq!(Device::Npu.name(), c"NPU");
        assert_eq!(Device::Cuda.name(), c"CUDA");
        assert_eq!(Device::OpenVinoGpu.name(), c"GPU");
        assert_eq!(Device::OpenVinoCpu.name(), c"OPENVINO_CPU");
        assert_eq!(Device::Cpu.name(), c"CPU");
    }

    #[test]
    fn test_option_sets_are_named_npu_or_gpu() {
        assert_eq!(test_options(None).unwrap(), OpenVinoOptions::Cpu);
        assert_eq!(test_options(Some("NPU")).unwrap(), OpenVinoOptions::Npu);
        assert_eq!(test_options(Some("gpu")).unwrap(), OpenVinoOptions::Gpu);
        assert!(test_options(Some("tpu")).is_err());
        assert!(OpenVinoOptions::Npu.static_shapes() && OpenVinoOptions::Gpu.static_shapes());
        assert!(!OpenVinoOptions::Cpu.static_shapes());
    }
}
