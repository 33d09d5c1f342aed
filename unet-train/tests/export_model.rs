//! Exported model files: layout and metadata as the format says (checked with the `safetensors`
//! crate), loadable by unet-core, and unet-core's forward on the file equals the trainer's
//! evaluation forward (f32: relative 1e-4 of the largest logit — both are f32 with different
//! summation orders; f16: the file's weights are exactly the f16-rounded parameters).

use safetensors::SafeTensors;
use unet_core::{Config, Model, Normalization, Output, Padding};
use unet_train::backend::cpu::CpuBackend;
use unet_train::backend::Backend;
use unet_train::export::{model_bytes, write_model, ModelInfo, StoreDtype};
use unet_train::init::he_init;
use unet_train::optim::{Optimizer, OptimizerKind};
use unet_train::params::Params;

fn cfg() -> Config {
    Config {
        in_channels: 2,
        num_classes: 3,
        base_channels: 4,
        levels: 3,
        padding: Padding::Valid,
    }
}

fn info() -> ModelInfo {
    ModelInfo {
        normalization: Some(Normalization::Percentile {
            low: 1.0,
            high: 99.8,
        }),
        class_names: vec!["background".into(), "cell".into(), "border".into()],
        provenance: vec![
            ("loss_w0".into(), "10".into()),
            ("loss_sigma".into(), "5".into()),
            ("steps".into(), "1000".into()),
            ("seed".into(), "7".into()),
            ("data".into(), "data/PhC-U373".into()),
            ("date".into(), "2026-11-23T00:00:00Z".into()),
        ],
    }
}

fn params() -> Params {
    let mut p = he_init(&cfg(), 3).unwrap();
    // Non-zero biases so that a bias mix-up would show.
    for k in 0..p.len() {
        if p.id(k).to_string().ends_with("bias") {
            for (i, v) in p.data_mut(k).iter_mut().enumerate() {
                *v = 0.01 * (i as f32 + 1.0) * if k % 3 == 0 { -1.0 } else { 1.0 };
            }
        }
    }
    p
}

#[test]
fn layout_and_metadata() {
    let p = params();
    for (dtype, name, size) in [
        (StoreDtype::F32, "F32", 4usize),
        (StoreDtype::F16, "F16", 2),
        (StoreDtype::BF16, "BF16", 2),
    ] {
        let bytes = model_bytes(&p, dtype, &info()).unwrap();
        let (n, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let m = meta.metadata().clone().unwrap();
        for (k, v) in [
            ("format", "unet"),
            ("format_version", "1"),
            ("in_channels", "2"),
            ("num_classes", "3"),
            ("base_channels", "4"),
            ("levels", "3"),
            ("padding", "valid"),
            ("normalization", "percentile:1:99.8"),
            ("class_names", "background,cell,border"),
            ("loss_w0", "10"),
            ("loss_sigma", "5"),
            ("data", "data/PhC-U373"),
        ] {
            assert_eq!(m.get(k).map(String::as_str), Some(v), "{k}");
        }
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.len(), p.len());
        for k in 0..p.len() {
            let t = st.tensor(&p.id(k).to_string()).unwrap();
            assert_eq!(format!("{:?}", t.dtype()), name);
            assert_eq!(t.shape(), p.tensor(k).shape());
            let offset = t.data().as_ptr() as usize - bytes.as_ptr() as usize;
            assert_eq!(offset % size, 0, "{} starts at byte {offset}", p.id(k));
        }
        assert_eq!((8 + n) % 8, 0, "header padded to 8 bytes");
    }
}

#[test]
fn bad_metadata_is_refused() {
    let p = params();
    let mut i = info();
    i.provenance.push(("levels".into(), "9".into()));
    assert!(model_bytes(&p, StoreDtype::F32, &i).is_err());
    let mut i = info();
    i.class_names.pop();
    assert!(model_bytes(&p, StoreDtype::F32, &i).is_err());
    let mut i = info();
    i.class_names[0] = "a,b".into();
    assert!(model_bytes(&p, StoreDtype::F32, &i).is_err());
    let mut bad = p.clone();
    bad.data_mut(0)[0] = f32::NAN;
    let path = std::env::temp_dir().join(format!(
        "unet-export-nan-{}.safetensors",
        std::process::id()
    ));
    assert!(write_model(&path, &bad, StoreDtype::F32, &info()).is_err());
    assert!(!path.exists());
}

#[test]
fn unet_core_loads_and_agrees() {
    let p = params();
    let dir = std::env::temp_dir().join(format!("unet-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    write_model(&path, &p, StoreDtype::F32, &info()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let model = Model::from_safetensors(&bytes).unwrap();
    assert_eq!(model.config(), &cfg());
    assert_eq!(
        model.normalization(),
        Normalization::Percentile {
            low: 1.0,
            high: 99.8
        }
    );
    assert_eq!(Params::from_model(&model).unwrap(), p);

    let (h, w) = (60, 68);
    let input = ndarray::Array4::from_shape_fn((1, 2, h, w), |(_, c, y, x)| {
        ((c * 31 + y * 7 + x * 3) as f32 * 0.05).sin()
    });
    let be = CpuBackend::new(p.clone(), Optimizer::new(OptimizerKind::adam(), 0.0, &p));
    let ours = be.forward(input.view()).unwrap();
    let plan = model.plan(h, w).unwrap();
    let mut scratch = vec![0.0f32; plan.scratch_len()];
    let mut out = vec![0.0f32; plan.output_len()];
    model
        .forward(
            &plan,
            input.as_slice().unwrap(),
            &mut scratch,
            Output::Logits(&mut out),
        )
        .unwrap();
    assert_eq!(ours.len(), out.len());
    let max = out.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let err = ours
        .iter()
        .zip(&out)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        max > 0.0 && err <= 1e-4 * max,
        "max err {err}, max |logit| {max}"
    );

    // f16: the stored weights are the f16-rounded parameters, exactly.
    write_model(&path, &p, StoreDtype::F16, &info()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let model = Model::from_safetensors(&bytes).unwrap();
    let back = Params::from_model(&model).unwrap();
    for k in 0..p.len() {
        for (a, b) in back.data(k).iter().zip(p.data(k)) {
            assert_eq!(*a, half::f16::from_f32(*b).to_f32());
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
