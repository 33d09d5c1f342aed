//! unet-core on a Cortex-M4F: the model's F16 weights are read in place from flash
//! (`include_bytes!`), the scratch is one static buffer sized on the host by `Plan::scratch_len`,
//! and nothing allocates (there is no allocator). Prints a report over semihosting and exits.
//!
//! The report (`unet-report v1` lines) is the same that `cargo run -p unet-core --example
//! tile_report` prints on the host; `run-qemu.sh` compares the two.
#![no_std]
#![no_main]

use core::panic::PanicInfo;

// Linked for its single-core `critical-section` implementation (semihosting output uses it).
use cortex_m as _;

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use unet_core::{Model, Output};

include!(concat!(env!("OUT_DIR"), "/sizes.rs"));

/// The weights, in flash. `include_bytes!` gives no alignment guarantee; unet-core reads any.
static MODEL: &[u8] = include_bytes!("../model/tiny-f16.safetensors");
/// The input tile, raw little-endian f32, in flash.
static INPUT: &[u8] = include_bytes!("../model/input-92x92.f32");

/// All working memory of the forward pass.
static mut SCRATCH: [f32; SCRATCH_LEN] = [0.0; SCRATCH_LEN];
static mut INPUT_F32: [f32; TILE * TILE] = [0.0; TILE * TILE];
static mut PROBS: [f32; CLASSES * OUT_H * OUT_W] = [0.0; CLASSES * OUT_H * OUT_W];
static mut LABELS: [u8; OUT_H * OUT_W] = [0; OUT_H * OUT_W];

fn fail(what: &str, e: unet_core::Error) -> ! {
    hprintln!("error: {}: {}", what, e);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

/// Bytes below the stack pointer painted before the run to measure the peak stack use.
const STACK_PROBE: usize = 64 * 1024;
const PAINT: u32 = 0xdead_beef;

/// Fills `STACK_PROBE` bytes below the current stack pointer with [`PAINT`] and returns the
/// lowest painted address.
#[inline(never)]
fn paint_stack() -> *mut u32 {
    let sp = cortex_m::register::msp::read() as usize;
    // Leave 256 bytes under the SP for this function's own frame.
    let top = (sp - 256) & !3;
    let bottom = top - STACK_PROBE;
    let mut p = bottom as *mut u32;
    while (p as usize) < top {
        // SAFETY: [bottom, top) lies in RAM (memory.x: 4 MiB at 0x2000_0000, the stack starts
        // at its end and the statics use < 1 MiB at its start) below every live stack frame.
        unsafe {
            p.write_volatile(PAINT);
            p = p.add(1);
        }
    }
    bottom as *mut u32
}

/// Peak stack bytes used since [`paint_stack`]: from the SP at painting to the lowest word
/// that no longer holds the paint.
fn stack_peak(bottom: *mut u32, sp_at_paint: usize) -> usize {
    let mut p = bottom;
    // SAFETY: same region as painted; reads only.
    while unsafe { p.read_volatile() } == PAINT && (p as usize) < sp_at_paint {
        // SAFETY: stays inside the painted region (bounded by `sp_at_paint`).
        p = unsafe { p.add(1) };
    }
    sp_at_paint - p as usize
}

#[entry]
fn main() -> ! {
    let sp_at_paint = cortex_m::register::msp::read() as usize;
    let painted = paint_stack();
    // SAFETY: `main` runs once, on the only core, with interrupts that never touch these
    // buffers; these are the only references to them for the whole program.
    let (scratch, input, probs, labels) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(SCRATCH),
            &mut *core::ptr::addr_of_mut!(INPUT_F32),
            &mut *core::ptr::addr_of_mut!(PROBS),
            &mut *core::ptr::addr_of_mut!(LABELS),
        )
    };
    for (d, b) in input.iter_mut().zip(INPUT.chunks_exact(4)) {
        *d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    let model = Model::from_safetensors(MODEL).unwrap_or_else(|e| fail("load", e));
    let plan = model.plan(TILE, TILE).unwrap_or_else(|e| fail("plan", e));
    model
        .forward(&plan, input, scratch, Output::Labels8(labels))
        .unwrap_or_else(|e| fail("forward labels", e));
    model
        .forward(&plan, input, scratch, Output::Probabilities(probs))
        .unwrap_or_else(|e| fail("forward probabilities", e));

    let stack = stack_peak(painted, sp_at_paint);
    hprintln!("unet-report v1");
    hprintln!("tile {}x{} -> {}x{}", TILE, TILE, OUT_H, OUT_W);
    hprintln!("scratch_bytes {}", plan.scratch_bytes());
    hprintln!("stack_peak_bytes {}", stack);
    let mut counts = [0usize; CLASSES];
    let mut fnv: u32 = 0x811c_9dc5;
    for &l in labels.iter() {
        counts[l as usize] += 1;
        fnv = (fnv ^ l as u32).wrapping_mul(0x0100_0193);
    }
    hprintln!("labels_fnv1a {:08x}", fnv);
    for (c, n) in counts.iter().enumerate() {
        hprintln!("class {} pixels {}", c, n);
    }
    for c in 0..CLASSES {
        let p = &probs[c * OUT_H * OUT_W..(c + 1) * OUT_H * OUT_W];
        let sum: f32 = p.iter().sum();
        hprintln!(
            "class {} prob_sum {} prob_first {} prob_last {}",
            c,
            sum,
            p[0],
            p[p.len() - 1]
        );
    }
    debug::exit(debug::EXIT_SUCCESS);
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    hprintln!("panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
