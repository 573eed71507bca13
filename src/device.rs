//! Device selection: from the caller's `requested_device` string to an ordered
//! list of devices to try, and from a device to its ONNX Runtime execution
//! provider.
//!
//! A provider missing from the loaded ONNX Runtime is a failed step with a reason,
//! never a silent CPU run: availability is checked first, and the provider is
//! registered with `error_on_failure` so a registration error fails the step too.

use std::ffi::CStr;

use ort::ep::{self, ExecutionProvider, ExecutionProviderDispatch};

use crate::error::CreateError;

/// Gate for the OpenVINO-GPU step.
pub const OPENVINO_GPU_GATE_ENV: &str = "CDB_EMBED_GPU_ALLOW_OPENVINO_FALLBACK";

use crate::error_strings::UNSUPPORTED_DEVICE;

/// A device a session can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// OpenVINO execution provider, device_type NPU.
    Npu,
    /// CUDA execution provider, device 0.
    Cuda,
    /// OpenVINO execution provider, device_type GPU (gated by [`OPENVINO_GPU_GATE_ENV`]).
    OpenVinoGpu,
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
            Self::Cpu => c"CPU",
        }
    }
}

const AUTO: &[Device] = &[Device::Npu, Device::Cuda, Device::OpenVinoGpu, Device::Cpu];
const NPU: &[Device] = &[Device::Npu];
const GPU: &[Device] = &[Device::Cuda, Device::OpenVinoGpu];
const CPU: &[Device] = &[Device::Cpu];

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
    } else {
        Err(CreateError::library(UNSUPPORTED_DEVICE))
    }
}

/// Whether a gate variable's value turns the gate on (1/true/yes/on, any case).
pub fn gate_is_on(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        ["1", "true", "yes", "on"]
            .iter()
            .any(|on| v.eq_ignore_ascii_case(on))
    })
}

/// The execution provider for `device` (`None` for the CPU), or why this step
/// cannot be taken in the loaded ONNX Runtime.
pub fn execution_provider(
    device: Device,
) -> Result<Option<ExecutionProviderDispatch>, CreateError> {
    let provider = match device {
        Device::Cpu => return Ok(None),
        Device::Npu => {
            require_available::<ep::OpenVINO>()?;
            ep::OpenVINO::default()
                .with_device_type("NPU")
                .with_dynamic_shapes(false)
                .with_qdq_optimizer(true)
                .build()
        }
        Device::Cuda => {
            require_available::<ep::CUDA>()?;
            ep::CUDA::default().with_device_id(0).build()
        }
        Device::OpenVinoGpu => {
            let gate = std::env::var(OPENVINO_GPU_GATE_ENV).ok();
            if !gate_is_on(gate.as_deref()) {
                return Err(CreateError::library("OpenVINO GPU fallback disabled"));
            }
            require_available::<ep::OpenVINO>()?;
            ep::OpenVINO::default()
                .with_device_type("GPU")
                .with_dynamic_shapes(false)
                .build()
        }
    };
    Ok(Some(provider.error_on_failure()))
}

fn require_available<E: ExecutionProvider>() -> Result<(), CreateError> {
    match E::is_available() {
        Ok(true) => Ok(()),
        Ok(false) => Err(CreateError::library(format!("{} unavailable", E::NAME))),
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
    }

    #[test]
    fn unknown_devices_fail_with_the_contract_message() {
        for bad in [&b"TPU"[..], b" CPU", b"CPU ", b"\xff\xfe", b"GPU0"] {
            let err = plan(Some(bad)).unwrap_err();
            assert_eq!(
                err.to_string(),
                "std_create_error:unsupported requested_device (expected AUTO|NPU|GPU|CUDA|CPU)"
            );
        }
    }

    #[test]
    fn gate_accepts_the_contract_spellings_only() {
        for on in ["1", "true", "TRUE", "Yes", "on", "ON"] {
            assert!(gate_is_on(Some(on)), "{on}");
        }
        for off in [
            None,
            Some(""),
            Some("0"),
            Some("false"),
            Some("enable"),
            Some(" 1"),
        ] {
            assert!(!gate_is_on(off), "{off:?}");
        }
    }

    #[test]
    fn selected_device_names() {
        assert_eq!(Device::Npu.name(), c"NPU");
        assert_eq!(Device::Cuda.name(), c"CUDA");
        assert_eq!(Device::OpenVinoGpu.name(), c"GPU");
        assert_eq!(Device::Cpu.name(), c"CPU");
    }
}
