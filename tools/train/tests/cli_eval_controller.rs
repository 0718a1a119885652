//! `tinv-train eval` and `controller`: `eval` on an optimizer state names it and reads a
//! checkpoint as strictly as tinv-fold; `controller` takes its flags and admits their upper
//! bounds.

#[allow(dead_code)] // dataset and edit_train_labels are for the other cli_*.rs
mod common;

use common::{fails, fit, quick_controller, run, tiny_data, tmp, BIN};
use std::path::Path;
use std::process::Command;

/// `eval` on an optimizer state (the sidecar, or the previous one kept beside it) says what the
/// file is.
#[test]
fn eval_on_an_optimizer_state_names_it() {
    let dir = tmp("optim-eval");
    let meta = std::collections::HashMap::from([(
        tinv_train::snapshot::OPTIM_STEP_KEY.to_string(),
        "3".to_string(),
    )]);
    let t = tinv_train::tensors::HostTensor::full("m.blocks.0.norm1.weight", &[2], 0.0);
    for name in ["ck.optim.safetensors", "ck.optim.prev.safetensors"] {
        let p = dir.join(name);
        tinv_train::checkpoint::save(&p, std::slice::from_ref(&t), &meta).unwrap();
        fails(
            &["eval", p.to_str().unwrap()],
            &["this is the optimizer state beside one"],
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `eval` reads a checkpoint as strictly as tinv-fold: non-finite controller weights and
/// tensors the model has no place for are one-line errors (it printed a full report from NaN
/// controller weights, and ignored an exit head for a depth that is not a path).
#[test]
fn eval_refuses_what_tinv_fold_refuses() {
    let (dir, data) = tiny_data("eval-strict");
    let data = data.as_str();
    let ck = dir.join("b.safetensors");
    let ck = ck.to_str().unwrap();
    let (ok, err) = run(&fit(data, ck, &[]));
    assert!(ok, "{err}");
    quick_controller(ck, data);
    let (ok, err) = run(&["eval", ck, "--data", data]);
    assert!(ok, "the untouched checkpoint evaluates: {err}");
    let (ts, meta) = tinv_train::checkpoint::load(Path::new(ck)).unwrap();
    let edited = |name: &str, edit: &dyn Fn(&mut Vec<tinv_train::tensors::HostTensor>)| {
        let mut t = ts.clone();
        edit(&mut t);
        let p = dir.join(name);
        tinv_train::checkpoint::save(&p, &t, &meta).unwrap();
        p.to_str().unwrap().to_string()
    };
    let nan = edited("nan.safetensors", &|t| {
        let w = t.iter_mut().find(|t| t.name == "ctrl.exit.wh").unwrap();
        w.data[3] = f32::NAN;
    });
    fails(
        &["eval", &nan, "--data", data],
        &["tensor 'ctrl.exit.wh' holds NaN at element 3"],
    );
    let head = edited("head.safetensors", &|t| {
        t.push(tinv_train::tensors::HostTensor::full(
            "exits.7.head.weight",
            &[4, 8],
            0.0,
        ));
    });
    let out = format!("{head}.out");
    for cmd in [
        vec!["eval", &head, "--data", data],
        vec!["controller", &head, "--data", data, "--out", &out],
    ] {
        fails(
            &cmd,
            &["tensor 'exits.7.head.weight' is not part of this model"],
        );
    }
    let extra = edited("extra.safetensors", &|t| {
        t.push(tinv_train::tensors::HostTensor::full(
            "ctrl.extra",
            &[1],
            0.0,
        ));
    });
    fails(
        &["eval", &extra, "--data", data],
        &["tensor 'ctrl.extra' is not part of its controller"],
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `controller` takes its flags: the hidden widths (`--hp 3 --hq 5 --hr 2` give those tensor
/// shapes), `--seed` (another seed, another controller), `--route 10` (the report names 10
/// routing images, not the whole training split), a checkpoint with the least validation split
/// it takes (`--val 5`), and it says how the graph policy was chosen (its progress lines).
#[test]
fn controller_takes_its_flags() {
    let (dir, data) = tiny_data("ctrl-flags");
    let ck = dir.join("ck").to_str().unwrap().to_string();
    let (ok, err) = run(&fit(&data, &ck, &["--val", "5"]));
    assert!(ok, "{err}");
    let ctrl = |seed: &str, out: &str| {
        let o = Command::new(BIN)
            .args(["controller", &ck, "--data", &data, "--out", out])
            .args(["--iters", "1", "--episodes", "8", "--hp", "3", "--hq", "5"])
            .args(["--hr", "2", "--route", "10", "--seed", seed])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{err}");
        let (ts, _) = tinv_train::checkpoint::load(Path::new(out)).unwrap();
        let ctrl: Vec<_> = ts
            .into_iter()
            .filter(|t| t.name.starts_with("ctrl."))
            .collect();
        (String::from_utf8_lossy(&o.stdout).into_owned(), err, ctrl)
    };
    let (c1, c2) = (ck.clone() + ".1", ck.clone() + ".2");
    let (report, err, one) = ctrl("1", &c1);
    assert!(
        report.contains("(graph policy: routing from the outcomes of 10 training images)"),
        "{report}"
    );
    assert!(
        err.contains("graph policy: mean validation reward"),
        "{err}"
    );
    let shape = |name: &str| one.iter().find(|t| t.name == name).unwrap().shape.clone();
    assert_eq!(shape("ctrl.pred.fc1.bias"), [3]);
    assert_eq!(shape("ctrl.policy.fc1.bias"), [5]);
    assert_eq!(shape("ctrl.exit.wh"), [2, 2]);
    let (_, _, two) = ctrl("2", &c2);
    assert_ne!(one, two, "--seed 2 trained the controller of --seed 1");
    std::fs::remove_dir_all(&dir).ok();
}

/// The upper bounds of `--hp`, `--hq`, `--hr` (4096) and `--episodes` (1 000 000) are allowed
/// values: the command goes on to the checkpoint (absent here).
#[test]
fn controller_bounds_admit_their_maximum() {
    let dir = tmp("ctrl-bounds");
    let absent = dir.join("absent.safetensors");
    let out = dir.join("out.safetensors");
    for (flag, v) in [
        ("--hp", "4096"),
        ("--hq", "4096"),
        ("--hr", "4096"),
        ("--episodes", "1000000"),
    ] {
        let args = ["controller", absent.to_str().unwrap(), "--out"];
        let (ok, err) = run(&[&args[..], &[out.to_str().unwrap(), flag, v]].concat());
        assert!(!ok);
        assert!(
            err.contains("absent.safetensors") && !err.contains("must be between"),
            "{flag} {v}: {err}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
