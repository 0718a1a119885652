//! The C ABI's session calls, called from Rust: after a warm-up the per-frame calls allocate
//! nothing, a failed infer call leaves no stats, a negative budget restores the model's default,
//! camera pixels are converted to the input, and an inference returns its stats in the same call.

#[path = "capi/alloc_count.rs"]
mod alloc_count;
#[path = "common/capi.rs"]
mod capi_support;

use capi_support::last_error;

#[global_allocator]
static ALLOC: alloc_count::Counting = alloc_count::Counting;

/// After a warm-up call, the C ABI's per-frame calls (infer in every mode, at every forced depth,
/// batch 1 and batch 4, stats, budget and mode changes) allocate nothing on the calling thread.
#[test]
fn c_abi_hot_path_does_not_allocate() {
    use std::ptr::null_mut;
    use tinv::capi::*;
    let cfg = tinv::synth::config(16, 3, 4, 32, 4, 2, 10, &[1, 2, 3, 4], true);
    let bytes = tinv::synth::random_model(&cfg, 12, tinv::format::DType::F32);
    let input = tinv::synth::random_inputs(&cfg, 4, 11);
    let (mut logits, mut stats, mut n) = (vec![0f32; 40], vec![StatsC::default(); 4], 0usize);
    let (mut m, mut s) = (null_mut(), null_mut());
    // SAFETY: every pointer is a live buffer of the stated length, or an out slot.
    unsafe {
        let ok = Status::Ok;
        assert_eq!(
            tinv_model_open_bytes(bytes.as_ptr().cast(), bytes.len(), std::ptr::null(), &mut m),
            ok
        );
        let mut o = tinv_session_options_default();
        o.max_batch = 4;
        assert_eq!(tinv_session_open(m, &o, &mut s), ok);
        let x = |b: usize| (input.as_ptr(), b * cfg.input_len());
        let warm = tinv_session_infer(s, x(4).0, x(4).1, 4, logits.as_mut_ptr(), 40);
        assert_eq!(warm, ok);
        let before = alloc_count::allocations();
        for mode in [MODE_ADAPTIVE, MODE_GRAPH, MODE_THRESHOLD] {
            assert_eq!(tinv_session_set_mode(s, mode, 0.6), ok);
            assert_eq!(tinv_session_set_budget(s, 0.5), ok);
            for b in [1, 4] {
                assert_eq!(
                    tinv_session_infer(s, x(b).0, x(b).1, b, logits.as_mut_ptr(), 40),
                    ok
                );
                assert_eq!(
                    tinv_session_last_stats(s, stats.as_mut_ptr(), 4, &mut n),
                    ok
                );
                assert_eq!(n, b);
                for d in [1, 2, 3, 4] {
                    let st =
                        tinv_session_infer_depth(s, x(b).0, x(b).1, b, d, logits.as_mut_ptr(), 40);
                    assert_eq!(st, ok);
                }
            }
        }
        assert_eq!(
            alloc_count::allocations() - before,
            0,
            "the hot path allocated"
        );
        // The counter is live: an error (its message) allocates.
        let bad = tinv_session_infer(s, x(4).0, 1, 4, logits.as_mut_ptr(), 40);
        assert_eq!(bad, Status::InputLength);
        assert!(alloc_count::allocations() > before);
        assert_eq!(tinv_session_free(s), ok);
        assert_eq!(tinv_model_free(m), ok);
    }
}

/// Every failed infer call on a valid session clears the stats, including the failures the
/// NULL checks catch before the session is looked at; an invalid handle changes nothing.
#[test]
fn c_abi_failed_infer_calls_leave_no_stats() {
    use std::ptr::{null, null_mut};
    use tinv::capi::*;
    let cfg = tinv::synth::tiny(3, true);
    let bytes = tinv::synth::random_model(&cfg, 5, tinv::format::DType::F32);
    let input = tinv::synth::random_inputs(&cfg, 1, 6);
    let n_in = cfg.input_len();
    let (mut logits, mut stats) = (vec![0f32; 3], vec![StatsC::default(); 2]);
    let (mut m, mut s, mut s2) = (null_mut(), null_mut(), null_mut());
    // SAFETY: every pointer is a live buffer of the stated length, an out slot, or NULL where
    // the call is meant to refuse it.
    unsafe {
        assert_eq!(
            tinv_model_open_bytes(bytes.as_ptr().cast(), bytes.len(), null(), &mut m),
            Status::Ok
        );
        assert_eq!(tinv_session_open(m, null(), &mut s), Status::Ok);
        assert_eq!(tinv_session_open(m, null(), &mut s2), Status::Ok);
        let count = |s: *mut TinvSession, stats: &mut Vec<StatsC>| {
            let mut n = 99usize;
            assert_eq!(
                tinv_session_last_stats(s, stats.as_mut_ptr(), 2, &mut n),
                Status::Ok
            );
            n
        };
        let lg = logits.as_mut_ptr();
        assert_eq!(count(s, &mut stats), 0, "before any call");
        let ok = |s| tinv_session_infer(s, input.as_ptr(), n_in, 1, lg, 3);
        type Call<'a> = Box<dyn Fn() -> Status + 'a>;
        let failures: [(&str, Status, Call); 5] = [
            (
                "NULL input",
                Status::NullArg,
                Box::new(|| tinv_session_infer(s, null(), n_in, 1, lg, 3)),
            ),
            (
                "NULL logits",
                Status::NullArg,
                Box::new(|| tinv_session_infer(s, input.as_ptr(), n_in, 1, null_mut(), 3)),
            ),
            (
                "NULL input, forced depth",
                Status::NullArg,
                Box::new(|| tinv_session_infer_depth(s, null(), n_in, 1, 1, lg, 3)),
            ),
            (
                "batch 0",
                Status::InvalidArg,
                Box::new(|| tinv_session_infer(s, input.as_ptr(), n_in, 0, lg, 3)),
            ),
            (
                "unknown depth",
                Status::InvalidArg,
                Box::new(|| tinv_session_infer_depth(s, input.as_ptr(), n_in, 1, 7, lg, 3)),
            ),
        ];
        for (what, want, call) in &failures {
            assert_eq!(ok(s), Status::Ok);
            assert_eq!(count(s, &mut stats), 1);
            assert_eq!(call(), *want, "{what}");
            assert_eq!(count(s, &mut stats), 0, "stats left behind after {what}");
        }
        // The NULL checks still come first and name the argument.
        assert_eq!(
            tinv_session_infer(s, null(), n_in, 1, lg, 3),
            Status::NullArg
        );
        assert_eq!(last_error(), "tinv_session_infer: argument 'input' is NULL");
        // A failure on another session, or with an invalid handle, leaves this one alone.
        assert_eq!(ok(s), Status::Ok);
        assert_eq!(
            tinv_session_infer(s2, null(), n_in, 1, lg, 3),
            Status::NullArg
        );
        let forged = 0xdead_beef_usize as *mut TinvSession;
        assert_eq!(
            tinv_session_infer(forged, null(), n_in, 1, lg, 3),
            Status::NullArg
        );
        assert_eq!(
            tinv_session_infer(forged, input.as_ptr(), n_in, 1, lg, 3),
            Status::InvalidHandle
        );
        assert_eq!(count(s, &mut stats), 1);
        assert_eq!(tinv_session_free(s2), Status::Ok);
        assert_eq!(tinv_session_free(s), Status::Ok);
        assert_eq!(tinv_model_free(m), Status::Ok);
    }
}

/// `tinv_session_set_budget` with a negative budget restores the model's stored default, as a
/// negative budget in the session options does: the decisions match a fresh session's again;
/// a budget of 0 in the options decides as one set to 0 afterwards.
#[test]
fn c_abi_a_negative_budget_restores_the_models_default() {
    use std::ptr::null_mut;
    use tinv::capi::*;
    let path = std::ffi::CString::new(format!(
        "{}/engines/fmnist/model.tinv",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let n = 64;
    let (mut m, mut s) = (null_mut(), null_mut());
    // SAFETY: every pointer is a live buffer of the stated length, or an out slot.
    unsafe {
        let ok = Status::Ok;
        assert_eq!(tinv_model_open(path.as_ptr(), std::ptr::null(), &mut m), ok);
        let mut len = 0;
        assert_eq!(tinv_model_input_len(m, &mut len), ok);
        let mut default = -1.0;
        assert_eq!(tinv_model_default_budget(m, &mut default), ok);
        assert!(default > 0.0 && default < 1.0, "{default}");
        // Discs of many sizes and places: unlike noise (confidently "bag" at depth 2), some of
        // them the controller continues at small budgets.
        let mut rng = tinv::synth::Rng::new(3);
        let mut input = Vec::with_capacity(n * len);
        for _ in 0..n {
            let (r, cx, cy) = (3.0 + 11.0 * rng.uniform(), 14.0, 10.0 + 8.0 * rng.uniform());
            input.extend((0..len).map(|i| {
                let (x, y) = ((i % 28) as f32, (i / 28) as f32);
                f32::from(u8::from((x - cx).powi(2) + (y - cy).powi(2) < r * r))
            }));
        }
        let mut o = tinv_session_options_default();
        o.max_batch = n as u32;
        assert_eq!(tinv_session_open(m, &o, &mut s), ok);
        let mut logits = vec![0f32; n * 10];
        let mut stats = vec![StatsC::default(); n];
        let mut run = |s| {
            let st = tinv_session_infer(
                s,
                input.as_ptr(),
                input.len(),
                n,
                logits.as_mut_ptr(),
                n * 10,
            );
            assert_eq!(st, ok);
            let mut count = 0;
            assert_eq!(
                tinv_session_last_stats(s, stats.as_mut_ptr(), n, &mut count),
                ok
            );
            stats[..count].iter().map(|x| x.flops).collect::<Vec<_>>()
        };
        let at_default = run(s);
        assert_eq!(tinv_session_set_budget(s, 0.0), ok);
        let at_zero = run(s);
        assert_ne!(
            at_zero, at_default,
            "budget 0 changed no decision: the test shows nothing"
        );
        // 0 in the options is a budget too: only a negative one means the model's default.
        let mut z = null_mut();
        o.budget = 0.0;
        assert_eq!(tinv_session_open(m, &o, &mut z), ok);
        assert_eq!(run(z), at_zero);
        assert_eq!(tinv_session_free(z), ok);
        assert_eq!(tinv_session_set_budget(s, -1.0), ok);
        assert_eq!(run(s), at_default);
        assert_eq!(tinv_session_set_budget(s, f32::NAN), Status::InvalidArg);
        assert_eq!(tinv_session_free(s), ok);
        assert_eq!(tinv_model_free(m), ok);
    }
}

/// `tinv_model_image_input`: a camera frame (BGR8, rows padded) of the model's size becomes the
/// input the library's converter gives, luma for a grey model; bad calls get their status.
#[test]
fn c_abi_converts_camera_pixels_to_the_input() {
    use std::ptr::{null, null_mut};
    use tinv::capi::*;
    let path = std::ffi::CString::new(format!(
        "{}/engines/fmnist/model.tinv",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let (w, h, stride) = (28usize, 28usize, 28 * 3 + 5);
    let frame: Vec<u8> = (0..stride * h).map(|i| (i * 7 % 251) as u8).collect();
    let mut m = null_mut();
    // SAFETY: every pointer is a live buffer of the stated length, an out slot, or NULL where the
    // call is meant to refuse it.
    unsafe {
        assert_eq!(tinv_model_open(path.as_ptr(), null(), &mut m), Status::Ok);
        let mut out = vec![-1f32; 784];
        let conv = |px: *const u8, w, stride, fmt, out: &mut [f32]| {
            tinv_model_image_input(m, px, w, h, stride, fmt, out.as_mut_ptr(), out.len())
        };
        assert_eq!(
            conv(frame.as_ptr(), w, stride, PIXELS_BGR8, &mut out),
            Status::Ok
        );
        // Pixel (row 3, column 5), by hand: bytes B, G, R at 3·stride + 15.
        let p = &frame[3 * stride + 15..][..3];
        let luma = (0.299 * p[2] as f32 + 0.587 * p[1] as f32 + 0.114 * p[0] as f32) / 255.0;
        assert!((out[3 * 28 + 5] - luma).abs() < 1e-6);
        let mut want = vec![0f32; 784];
        let model = tinv::Model::open(path.to_str().unwrap(), &Default::default()).unwrap();
        tinv::pixels::to_input(
            model.config(),
            &frame,
            w,
            h,
            stride,
            tinv::pixels::PixelFormat::Bgr8,
            &mut want,
        )
        .unwrap();
        assert_eq!(out, want);
        assert_eq!(
            conv(null(), w, stride, PIXELS_BGR8, &mut out),
            Status::NullArg
        );
        assert_eq!(
            conv(frame.as_ptr(), w, stride, 9, &mut out),
            Status::InvalidArg
        );
        assert_eq!(
            conv(frame.as_ptr(), 27, stride, PIXELS_BGR8, &mut out),
            Status::InvalidArg
        );
        assert!(last_error().contains("27x28"), "{}", last_error());
        assert_eq!(
            conv(frame.as_ptr(), w, 80, PIXELS_BGR8, &mut out),
            Status::InvalidArg
        );
        assert_eq!(
            conv(frame.as_ptr(), w, usize::MAX / 2, PIXELS_BGR8, &mut out),
            Status::InvalidArg
        );
        assert_eq!(
            conv(frame.as_ptr(), w, stride, PIXELS_BGR8, &mut out[..783]),
            Status::BufferTooSmall
        );
        // Grey bytes stored in the float buffer itself: refused wherever they overlap the
        // input's 784 floats (3,136 bytes), accepted just past them.
        let mut buf = vec![0f32; 784 + 196];
        let base = buf.as_mut_ptr();
        let grey_at = |byte: usize| base.cast::<u8>().add(byte).cast_const();
        let conv_in_place = |byte: usize| {
            tinv_model_image_input(m, grey_at(byte), w, h, w, PIXELS_GRAY8, base, 784)
        };
        for byte in [0, 1, 3136 - 784, 3135] {
            assert_eq!(
                conv_in_place(byte),
                Status::InvalidArg,
                "pixels at byte {byte}"
            );
            assert!(last_error().contains("overlap"), "{}", last_error());
        }
        assert_eq!(conv_in_place(3136), Status::Ok);
        assert_eq!(tinv_model_free(m), Status::Ok);
    }
}

/// `tinv_session_infer_stats` gives the logits and stats that `tinv_session_infer` and
/// `tinv_session_last_stats` give, in one call; a short or NULL stats buffer is refused before
/// anything runs. The session's sizes are its options and the Rust API's arena.
#[test]
fn c_abi_infer_with_stats_in_one_call() {
    use std::ptr::{null, null_mut};
    use tinv::capi::*;
    let cfg = tinv::synth::tiny(3, true);
    let bytes = tinv::synth::random_model(&cfg, 8, tinv::format::DType::F32);
    let input = tinv::synth::random_inputs(&cfg, 3, 9);
    let (mut m, mut s) = (null_mut(), null_mut());
    // SAFETY: every pointer is a live buffer of the stated length, an out slot, or NULL where
    // the call is meant to refuse it.
    unsafe {
        let ok = Status::Ok;
        let st = tinv_model_open_bytes(bytes.as_ptr().cast(), bytes.len(), null(), &mut m);
        assert_eq!(st, ok);
        let mut o = tinv_session_options_default();
        (o.max_batch, o.threads) = (3, 2);
        assert_eq!(tinv_session_open(m, &o, &mut s), ok);
        // The session's sizes: its options (no two alike) and the arena of the Rust API's
        // session of the same model and options.
        let (mut batch, mut threads, mut arena) = (0, 0, 0);
        assert_eq!(tinv_session_max_batch(s, &mut batch), ok);
        assert_eq!(tinv_session_threads(s, &mut threads), ok);
        assert_eq!(tinv_session_arena_bytes(s, &mut arena), ok);
        let model = tinv::Model::from_bytes(&bytes, &Default::default()).unwrap();
        let opts = tinv::SessionOptions::default().max_batch(3).threads(2);
        let rust = tinv::Session::new(std::sync::Arc::new(model), opts).unwrap();
        assert_eq!((batch, threads, arena), (3, 2, rust.arena_bytes()));
        let (mut a, mut b) = (vec![0f32; 9], vec![-1f32; 9]);
        let (mut sa, mut sb, mut n) = (vec![StatsC::default(); 3], vec![StatsC::default(); 3], 0);
        let x = (input.as_ptr(), input.len());
        assert_eq!(tinv_session_infer(s, x.0, x.1, 3, a.as_mut_ptr(), 9), ok);
        assert_eq!(tinv_session_last_stats(s, sa.as_mut_ptr(), 3, &mut n), ok);
        assert_eq!(n, 3);
        let both = |b: &mut [f32], st: *mut StatsC, len| {
            tinv_session_infer_stats(s, x.0, x.1, 3, b.as_mut_ptr(), 9, st, len)
        };
        assert_eq!(both(&mut b, sb.as_mut_ptr(), 3), ok);
        assert_eq!(a, b);
        for (p, q) in sa.iter().zip(&sb) {
            assert_eq!(
                (p.depth, p.class_id, p.flops, p.confidence),
                (q.depth, q.class_id, q.flops, q.confidence)
            );
        }
        let mut c = vec![-1f32; 9];
        assert_eq!(both(&mut c, sb.as_mut_ptr(), 2), Status::BufferTooSmall);
        assert_eq!(both(&mut c, null_mut(), 3), Status::NullArg);
        assert!(c.iter().all(|&v| v == -1.0), "a refused call wrote logits");
        assert_eq!(tinv_session_free(s), ok);
        assert_eq!(tinv_model_free(m), ok);
    }
}
