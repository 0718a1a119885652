//! `tinv-run classify`.

use crate::args::Args;
use crate::json::Json;
use crate::{images, model_path, out};
use std::path::Path;

pub const HELP: &str = "\
tinv-run classify — classify PNG/PGM images

USAGE:
    tinv-run classify [--model M] [--depth D | [--budget λ] [--mode MODE]] [--threads N]
                      [--backend B] [--engines DIR] [--verify] [--json] IMAGE...

OPTIONS:
    --model M      .tinv file or package directory (default: $TINV_MODEL, else
                   the engines/fmnist package; see tinv-run --help)
    --depth D      run every image on the path of depth D (blocks 1..D + exit D); no controller
    --budget λ     compute budget in [0, 1] for the controller: 0 = accuracy only, 1 = cheapest
                   (default: the value stored in the model)
    --mode MODE    adaptive (default): predictor+policy pick the start path, the layer-wise
                   policy may continue at each exit; graph: the up-front decision only (one
                   launch per image); threshold:τ: baseline, continue while max-softmax < τ
    --threads N    worker threads, 1 to 256 (default 1)
    --backend B    auto (default) | cpu | tensorrt (see tinv-run --help)
    --engines DIR  TensorRT engines folder (default: plans/ beside the model file)
    --verify       check every tensor checksum and device copy when opening the model
    --json         one JSON object per image: image, backend (cpu | tensorrt), depth, class,
                   label (the predicted class's name from classes.txt beside the model, else
                   its number), confidence, logits, flops, latency_us, start_depth, escalations

Latency is the wall time of each image's call; the first image's call runs once untimed before.
Images must have the model's size; grey images feed every channel of a colour model and colour
images a grey model through luma (alpha is dropped). A model with other than 1 or 3 channels
takes grey images only. A package may hold classes.txt (one class name per line, as
many as the model has classes); without it, classes are shown by number.
";

pub fn run(raw: &[std::ffi::OsString]) -> Result<(), String> {
    let a = Args::parse(
        raw,
        &[
            "model", "depth", "budget", "mode", "threads", "backend", "engines",
        ],
        &["json", "verify"],
    )?;
    // The options' values first: a flag that took the only image as its value (`--depth
    // x.png`) is the error to report, not the missing image; then the images, before the
    // model (and its engines) load.
    let depth = crate::fixed_depth(&a)?;
    let settings = crate::session_settings(&a)?;
    if a.positional.is_empty() {
        return Err("classify needs at least one IMAGE (see tinv-run classify --help)".into());
    }
    let mut session = crate::open_session(&a, settings, 1)?;
    let cfg = session.model().config().clone();
    crate::check_depth(&cfg, depth)?;
    let names = class_names(a.path("model"), cfg.classes);
    let mut logits = vec![0f32; cfg.classes];
    for (i, img) in a.positional.iter().enumerate() {
        let x = images::load_image(Path::new(img), &cfg)?;
        let img = img.to_string_lossy();
        // The first image runs twice and reports the second call: a session's first call is
        // cold (its arena's pages, the weights' and controller's pages, the caches), and its
        // latency would say so, not the image's.
        let mut call = |logits: &mut [f32]| {
            match depth {
                Some(d) => session.infer_depth(&x, 1, d, logits),
                None => session.infer(&x, 1, logits),
            }
            .map(|s| s[0])
            .map_err(|e| e.to_string())
        };
        if i == 0 {
            call(&mut logits)?;
        }
        let st = call(&mut logits)?;
        let name = names.get(st.class);
        let label = name.cloned().unwrap_or_else(|| st.class.to_string());
        if a.has("json") {
            let j = Json::obj()
                .set("image", Json::Str(img.to_string()))
                .set("backend", Json::Str(session.backend().to_string()))
                .set("depth", Json::Int(st.depth as u64))
                .set("class", Json::Int(st.class as u64))
                .set("label", Json::Str(label))
                .set("confidence", Json::Num(f64::from(st.confidence)))
                .set(
                    "logits",
                    Json::Arr(logits.iter().map(|v| Json::Num(f64::from(*v))).collect()),
                )
                .set("flops", Json::Int(st.flops))
                .set("latency_us", Json::Num(st.latency_us))
                .set("start_depth", Json::Int(st.start_depth as u64))
                .set("escalations", Json::Int(u64::from(st.escalations)));
            outln!("{}", j.render());
        } else {
            let named = name.map_or(String::new(), |n| format!(" ({})", out::escaped(n)));
            outln!(
                "{}: class {}{named} confidence {:.3} depth {}/{} flops {:.2}M {:.0} µs",
                out::escaped(&img),
                st.class,
                st.confidence,
                st.depth,
                cfg.blocks,
                st.flops as f64 / 1e6,
                st.latency_us
            );
        }
    }
    Ok(())
}

/// Class names from `classes.txt` beside the model, if present and complete (a file with the
/// wrong number of names, or one that cannot be read, is reported on stderr and not used).
pub fn class_names(model: Option<&Path>, classes: usize) -> Vec<String> {
    let Ok(path) = model_path::resolve(model) else {
        return Vec::new();
    };
    let file = path.with_file_name("classes.txt");
    if !file.exists() {
        return Vec::new();
    }
    // A regular file of bounded size only: a FIFO blocked forever and /dev/zero grew without end.
    let text = match tinv::files::read_regular_text(&file, 1 << 20) {
        Ok(t) => t,
        Err(e) => {
            let file = out::escaped(&file.display().to_string());
            errln!("warning: {file}: {e}; showing class numbers");
            return Vec::new();
        }
    };
    let v: Vec<String> = text
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    if v.len() == classes {
        return v;
    }
    errln!(
        "warning: {} has {} names for {classes} classes; showing class numbers",
        out::escaped(&file.display().to_string()),
        v.len()
    );
    Vec::new()
}
