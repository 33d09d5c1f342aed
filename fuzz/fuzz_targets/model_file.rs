//! Arbitrary bytes as a model file: loading must return a model or an error, never panic or
//! read out of bounds; a loaded model's tensors and metadata must all be readable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unet_core::Model;

fuzz_target!(|data: &[u8]| {
    let Ok(model) = Model::from_safetensors(data) else {
        return;
    };
    let cfg = *model.config();
    let mut sum = 0f32;
    for k in 0..cfg.param_count() {
        let p = cfg.param(k).expect("index in range");
        let t = model.param(p).expect("a loaded model holds every parameter");
        assert_eq!(Some(*t.shape()), cfg.param_shape(p));
        for i in 0..t.len() {
            sum += t.get(i);
        }
    }
    std::hint::black_box(sum);
    for t in model.file().tensors() {
        std::hint::black_box(t.data.len());
    }
    for (k, v) in model.file().metadata_entries() {
        std::hint::black_box(k.chars().count() + v.chars().count());
    }
    let g = model.geometry();
    let n = g.min_input();
    assert!(g.is_legal(n));
});
