//! The committed `include/unet.h` must equal the header the pinned cbindgen generates from the
//! current sources (build.rs writes it to `$OUT_DIR/unet.h`), so CI catches a stale header.
//! `UNET_BLESS=1 cargo test -p unet-ffi --test header` rewrites the committed copy.

use std::path::Path;

#[test]
fn committed_header_is_current() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/unet.h"));
    let committed_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../include/unet.h");
    if std::env::var_os("UNET_BLESS").is_some() {
        std::fs::write(&committed_path, generated).expect("write include/unet.h");
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/unet.h is stale: regenerate it with `UNET_BLESS=1 cargo test -p unet-ffi --test header`"
    );
}

#[test]
fn header_carries_the_crate_version() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/unet.h"));
    for (name, v) in [
        ("UNET_VERSION_MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("UNET_VERSION_MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("UNET_VERSION_PATCH", env!("CARGO_PKG_VERSION_PATCH")),
    ] {
        assert!(generated.contains(&format!("#define {name} {v}\n")), "{name}");
    }
    assert!(generated.contains(&format!(
        "#define UNET_VERSION_STRING \"{}\"",
        env!("CARGO_PKG_VERSION")
    )));
}
