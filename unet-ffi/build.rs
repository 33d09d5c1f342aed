//! Generates the C header with the pinned cbindgen into `$OUT_DIR/unet.h`, appending the
//! version macros from Cargo.toml. The committed copy lives at `include/unet.h`;
//! `tests/header.rs` compares the two.

use std::env;
use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=build.rs");

    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("unet-ffi/cbindgen.toml must parse");
    let v = |k: &str| env::var(k).expect("cargo sets the package version variables");
    config.after_includes = Some(format!(
        "\n/** libunet version, as in unet_version(). */\n\
         #define UNET_VERSION_MAJOR {}\n#define UNET_VERSION_MINOR {}\n#define UNET_VERSION_PATCH {}\n\
         #define UNET_VERSION_STRING \"{}\"",
        v("CARGO_PKG_VERSION_MAJOR"),
        v("CARGO_PKG_VERSION_MINOR"),
        v("CARGO_PKG_VERSION_PATCH"),
        v("CARGO_PKG_VERSION"),
    ));
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src").join("lib.rs"))
        .generate()
        .expect("cbindgen could not generate the header")
        .write_to_file(out_dir.join("unet.h"));
}
