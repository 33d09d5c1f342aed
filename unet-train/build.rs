//! With feature `cuda-emu` (tests only): compiles the CUDA kernels of
//! `src/backend/cuda/kernels/` as C++ for the host, through `host_emu.h`, so that tests can run
//! every kernel on the CPU and compare it with the CPU backend.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "cuda-emu")]
    {
        let dir = "src/backend/cuda/kernels";
        for f in [
            "emu.cpp",
            "host_emu.h",
            "elementwise.cu",
            "im2col.cu",
            "loss.cu",
            "optim.cu",
            "pool.cu",
            "skip.cu",
        ] {
            println!("cargo:rerun-if-changed={dir}/{f}");
        }
        cc::Build::new()
            .cpp(true)
            .std("c++17")
            .file(format!("{dir}/emu.cpp"))
            .include(dir)
            .opt_level(2)
            .warnings(true)
            .extra_warnings(true)
            .compile("unet_cuda_emu");
    }
}
