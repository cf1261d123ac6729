//! libtorch's CPU kernels run on OpenMP threads that, by default, spin while they wait for
//! each other. When another program keeps one of the cores busy (a browser on the
//! inspection laptop, a build, a second scoring job), a spinning thread waits for a whole
//! scheduler slice at every one of the thousands of small operations of a forward pass:
//! measured here, scoring 20 images took 27.8 s with active waits and 5.5 s with
//! passive ones while another process held one of the two cores (BENCHMARKS.md).
//!
//! The policy is read from `OMP_WAIT_POLICY` when the OpenMP runtime loads, before
//! `main`, so the binaries restart themselves once with it set. A value the user set is
//! kept.

use std::ffi::OsString;

/// The variable the OpenMP runtime reads.
pub const WAIT_POLICY_VAR: &str = "OMP_WAIT_POLICY";

/// Re-executes the current program with `OMP_WAIT_POLICY=PASSIVE` unless the variable is
/// already set. Returns only when no restart was needed or the restart failed (then the
/// program simply goes on with the default policy). Call it first thing in `main`.
pub fn restart_with_passive_waits() {
    if std::env::var_os(WAIT_POLICY_VAR).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| OsString::from(&exe));
    exec(&exe, arg0, args.collect());
}

#[cfg(unix)]
fn exec(exe: &std::path::Path, arg0: OsString, args: Vec<OsString>) {
    use std::os::unix::process::CommandExt;
    // `exec` returns only on failure.
    let _ = std::process::Command::new(exe)
        .arg0(arg0)
        .args(args)
        .env(WAIT_POLICY_VAR, "PASSIVE")
        .exec();
}

#[cfg(not(unix))]
fn exec(_exe: &std::path::Path, _arg0: OsString, _args: Vec<OsString>) {}
