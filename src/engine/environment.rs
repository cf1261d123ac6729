//! Variables that libraries read once, when they load or initialise, before any code of
//! ours could set them: the binaries restart themselves once with them set. A value the
//! user set is kept.
//!
//! - `OMP_WAIT_POLICY=PASSIVE`. libtorch's CPU kernels run on OpenMP threads that, by
//!   default, spin while they wait for each other. When another program keeps one of the
//!   cores busy (a browser on the inspection laptop, a build, a second scoring job), a
//!   spinning thread waits for a whole scheduler slice at every one of the thousands of
//!   small operations of a forward pass: measured here, scoring 20 images took 27.8 s with
//!   active waits and 5.5 s with passive ones while another process held one of the two
//!   cores (BENCHMARKS.md).
//! - `NVIDIA_TF32_OVERRIDE=0`. On an NVIDIA GPU, libtorch lets cuDNN convolutions compute
//!   in TF32 (10-bit mantissas) by default, and tch has no switch for it: measured on an
//!   H100, scores then differed from the CPU's by up to 1.2e-3 (5.7e-3 for DifferNet);
//!   with TF32 off, by 5e-7, at the same speed (BENCHMARKS.md). The engine computes in
//!   fp32 on every device.

use std::ffi::OsString;

/// The variable the OpenMP runtime reads.
pub const WAIT_POLICY_VAR: &str = "OMP_WAIT_POLICY";

/// The variable NVIDIA's libraries read to allow (or not) TF32 arithmetic.
pub const TF32_VAR: &str = "NVIDIA_TF32_OVERRIDE";

/// Each variable and the value the engine runs with.
const ENGINE_ENV: [(&str, &str); 2] = [(WAIT_POLICY_VAR, "PASSIVE"), (TF32_VAR, "0")];

/// Re-executes the current program with the variables of [`ENGINE_ENV`] that are not set
/// yet. Returns only when every one was set already or the restart failed (then the
/// program simply goes on without them). Call it first thing in `main`.
pub fn restart_with_engine_env() {
    let missing: Vec<(&str, &str)> = ENGINE_ENV
        .into_iter()
        .filter(|(var, _)| std::env::var_os(var).is_none())
        .collect();
    if missing.is_empty() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| OsString::from(&exe));
    exec(&exe, arg0, args.collect(), &missing);
}

#[cfg(unix)]
fn exec(exe: &std::path::Path, arg0: OsString, args: Vec<OsString>, env: &[(&str, &str)]) {
    use std::os::unix::process::CommandExt;
    // `exec` returns only on failure.
    let _ = std::process::Command::new(exe)
        .arg0(arg0)
        .args(args)
        .envs(env.iter().copied())
        .exec();
}

#[cfg(not(unix))]
fn exec(_exe: &std::path::Path, _arg0: OsString, _args: Vec<OsString>, _env: &[(&str, &str)]) {}

/// Hands memory that jobs freed back to the operating system. glibc keeps freed blocks in
/// its per-thread arenas for reuse; after a large job (a feature cache of 448-pixel images,
/// a cancelled paper-preset training) the workstation otherwise kept gigabytes it no longer
/// used until it quit. The worker calls this after every job. A no-op off glibc.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: malloc_trim only returns free memory of glibc's arenas to the system; it
        // takes no pointers and is safe to call at any time from any thread.
        unsafe {
            malloc_trim(0);
        }
    }
}
