//! Arbitrary architectures and tile sizes: validation, geometry and planning must answer or
//! refuse, never panic or overflow, and agree with each other when they answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unet_core::{Config, Geometry, Padding, Plan};

fn word(data: &[u8], i: usize) -> usize {
    let mut b = [0u8; 8];
    for (k, v) in b.iter_mut().enumerate() {
        *v = data.get(i * 8 + k).copied().unwrap_or(0);
    }
    u64::from_le_bytes(b) as usize
}

fuzz_target!(|data: &[u8]| {
    // Mostly small values (so legal sizes are hit), sometimes huge ones.
    let pick = |i: usize, small: usize| {
        let w = word(data, i);
        if w & 1 == 0 { (w >> 1) % small } else { w >> 1 }
    };
    let cfg = Config {
        in_channels: pick(0, 5),
        num_classes: pick(1, 5),
        base_channels: pick(2, 9),
        levels: pick(3, 10),
        padding: if word(data, 4) & 1 == 0 { Padding::Valid } else { Padding::Same },
    };
    let (h, w) = (pick(5, 600), pick(6, 600));
    if let Ok(g) = Geometry::new(cfg.levels, cfg.padding) {
        let _ = g.next_legal(h);
        let _ = g.prev_legal(h);
        let _ = g.input_for_output(w);
        if let Ok((oh, ow)) = g.output_size(h, w) {
            assert!(oh >= 1 && ow >= 1);
            if cfg.padding == Padding::Valid {
                assert_eq!(h - oh, 2 * g.halo());
            }
        }
    }
    if cfg.validate().is_err() {
        assert!(Plan::new(&cfg, h, w).is_err());
        return;
    }
    let _ = cfg.param_numel();
    if let Ok(plan) = Plan::new(&cfg, h, w) {
        let g = Geometry::new(cfg.levels, cfg.padding).expect("validated");
        assert_eq!(Ok(plan.output_size()), g.output_size(h, w));
        assert!(plan.scratch_len() >= plan.scratch_lower_bound());
        let _ = plan.flops();
    }
});
