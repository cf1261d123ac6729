//! Choosing and describing the device.

use crate::core::config::DeviceChoice;
use crate::engine::error::{EngineError, Result};
use tch::Device;

/// Resolves a [`DeviceChoice`]: CUDA when asked or available, else the CPU.
pub fn resolve(choice: DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        DeviceChoice::Cuda => {
            if tch::Cuda::is_available() {
                Ok(Device::Cuda(0))
            } else {
                Err(EngineError::Device(
                    "CUDA was requested but no GPU is visible to libtorch".into(),
                ))
            }
        }
    }
}

/// A human-readable description, for example "CPU (2 threads)" or "CUDA GPU 0 (of 1)".
pub fn describe(device: Device) -> String {
    match device {
        Device::Cpu => format!("CPU ({} threads)", tch::get_num_threads()),
        Device::Cuda(i) => format!("CUDA GPU {i} (of {})", tch::Cuda::device_count()),
        other => format!("{other:?}"),
    }
}
