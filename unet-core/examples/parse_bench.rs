//! Timing harness for the safetensors reader: how long `SafeTensors::parse` takes on
//!
//! * a 76-tensor header in offset order (the largest U-Net, `levels = 8`, as the crate writes it),
//! * the worst case the reader accepts: `MAX_TENSORS` tensors listed out of offset order (the
//!   quadratic duplicate-name and tiling checks both run in full),
//!
//! and, for comparison, `safetensors::SafeTensors::deserialize` on the same bytes.
//!
//! `cargo run --release -p unet-core --example parse_bench`

use std::hint::black_box;
use std::time::Instant;

use unet_core::safetensors::{SafeTensors, MAX_TENSORS};

fn file(n: usize, reversed: bool) -> Vec<u8> {
    let mut entries: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "\"dec.{i}.conv{}.weight\":{{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[{},{}]}}",
                i % 3,
                4 * i,
                4 * i + 4
            )
        })
        .collect();
    if reversed {
        entries.reverse();
    }
    let header = format!(
        "{{\"__metadata__\":{{\"format\":\"unet\"}},{}}}",
        entries.join(",")
    );
    let mut f = (header.len() as u64).to_le_bytes().to_vec();
    f.extend_from_slice(header.as_bytes());
    f.resize(f.len() + 4 * n, 0x3c);
    f
}

fn time(label: &str, bytes: &[u8], reps: u32) {
    let t = Instant::now();
    for _ in 0..reps {
        let st = SafeTensors::parse(black_box(bytes)).expect("valid file");
        black_box(st.len());
    }
    let ours = t.elapsed() / reps;
    let t = Instant::now();
    for _ in 0..reps {
        let st = safetensors::SafeTensors::deserialize(black_box(bytes)).expect("valid file");
        black_box(st.len());
    }
    let theirs = t.elapsed() / reps;
    println!(
        "{label:<44} header {:>7} B: unet-core {ours:>10.2?}  safetensors crate {theirs:>10.2?}",
        bytes.len()
    );
}

fn main() {
    time("76 tensors, offset order", &file(76, false), 2000);
    time("76 tensors, reversed", &file(76, true), 2000);
    time("1024 tensors, offset order", &file(MAX_TENSORS, false), 20);
    time(
        "1024 tensors, reversed (worst case)",
        &file(MAX_TENSORS, true),
        20,
    );
}
