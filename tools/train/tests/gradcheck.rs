//! Finite-difference check of the candle gradients of the full multi-exit loss.

use candle_core::{Device, Tensor};
use tinv_train::config::{Hyper, ModelConfig};
use tinv_train::rng::Rng;
use tinv_train::tensors::init_backbone;
use tinv_train::vit::Vit;

fn tiny() -> ModelConfig {
    serde_json::from_value(serde_json::json!({
        "image_size": [8, 8], "channels": 1, "patch": 4, "dim": 8, "blocks": 2, "heads": 2,
        "mlp_hidden": 16, "classes": 3, "ln_eps": 1e-6, "gelu": "erf",
        "mean": [0.5], "std": [0.25], "depths": [1, 2]}))
    .unwrap()
}

#[test]
fn gradients_match_finite_differences() {
    let cfg = tiny();
    let mut ts = init_backbone(&cfg, &mut Rng::new(3, 0));
    // Larger weights than timm's init so every term has a visible gradient.
    for t in ts.iter_mut() {
        for v in t.data.iter_mut() {
            *v *= 10.0;
        }
    }
    let mut rng = Rng::new(5, 0);
    let b = 4;
    let x: Vec<f32> = (0..b * 4 * 16).map(|_| rng.normal() as f32).collect();
    let labels: Vec<u32> = (0..b as u32).map(|i| i % 3).collect();
    let h = Hyper {
        kd_weight: 0.0,
        feat_weight: 0.0,
        ..Hyper::default()
    };
    let loss_of = |ts: &[tinv_train::tensors::HostTensor]| -> (f64, Vit) {
        let vit = Vit::from_host(&cfg, ts).unwrap();
        let xt = Tensor::from_slice(&x, (b, 4, 16), &Device::Cpu).unwrap();
        let y = Tensor::from_slice(&labels, b, &Device::Cpu).unwrap();
        let outs = vit.forward(&xt).unwrap();
        let l = tinv_train::loss::multi_exit(&outs, &y, &h, 1.0).unwrap();
        (f64::from(l.total.to_scalar::<f32>().unwrap()), vit)
    };
    let (_, vit) = loss_of(&ts);
    let xt = Tensor::from_slice(&x, (b, 4, 16), &Device::Cpu).unwrap();
    let y = Tensor::from_slice(&labels, b, &Device::Cpu).unwrap();
    let outs = vit.forward(&xt).unwrap();
    let grads = tinv_train::loss::multi_exit(&outs, &y, &h, 1.0)
        .unwrap()
        .total
        .backward()
        .unwrap();
    let mut checked = 0;
    let mut bad = Vec::new();
    for (ti, (name, var)) in vit.vars().iter().enumerate() {
        let g = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for j in [0, g.len() / 2, g.len() - 1] {
            let eps = 2e-3f32;
            let mut p = ts.clone();
            p[ti].data[j] += eps;
            let mut m = ts.clone();
            m[ti].data[j] -= eps;
            let num = (loss_of(&p).0 - loss_of(&m).0) / (2.0 * f64::from(eps));
            let ana = f64::from(g[j]);
            if (num - ana).abs() > 2e-2 * num.abs().max(ana.abs()).max(0.05) {
                bad.push(format!("{name}[{j}]: analytic {ana} vs numeric {num}"));
            }
            checked += 1;
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert!(checked > 50);
}
