//! Link flags that decide whether the binaries work at all (see ../shared/TOOLCHAIN.md):
//! an rpath to libtorch, so no `LD_LIBRARY_PATH` is needed, and `--no-as-needed` for
//! `libtorch_cuda.so`, which the linker would otherwise drop, silently hiding the GPU.

fn main() {
    // torch-sys declares `links = "tch"`, so cargo hands us its metadata.
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    if std::path::Path::new(&lib_dir)
        .join("libtorch_cuda.so")
        .exists()
    {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
}
