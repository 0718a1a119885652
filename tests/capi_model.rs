//! The C ABI's model calls, called from Rust: where `tinv_model_open` takes the engines from and
//! which backend it decides (`tinv_session_open` does not decide it again), what it says of a
//! directory, FIFO, empty path or a length past `PTRDIFF_MAX`, the `verify` option, and the
//! model queries against the file's values.

#[path = "common/capi.rs"]
mod capi_support;
#[path = "capi/toolchain.rs"]
#[allow(dead_code)] // only `scratch` is used here
mod toolchain;

use capi_support::last_error;

/// Where the engines come from and what `tinv_model_backend` reports, as far as a machine
/// without a GPU can tell: NULL `engines_dir` = `plans/` beside the model file (never the
/// current directory), none for a model opened from bytes; `AUTO` without usable engines is
/// the CPU; `TENSORRT` without them fails at `tinv_model_open` with
/// `TINV_ERR_BACKEND_UNAVAILABLE`. (That `AUTO` reports TensorRT when the engines open needs a
/// GPU with TensorRT.)
#[test]
fn c_abi_backend_is_decided_at_model_open() {
    use std::ffi::CString;
    use std::ptr::{null, null_mut};
    use tinv::capi::*;
    let trt = cfg!(feature = "tensorrt");
    let dir = toolchain::scratch("backend");
    let _ = std::fs::remove_dir_all(dir.join("plans"));
    let cfg = tinv::synth::tiny(3, false);
    let bytes = tinv::synth::random_model(&cfg, 9, tinv::format::DType::F32);
    let file = dir.join("model.tinv");
    std::fs::write(&file, &bytes).unwrap();
    let path = CString::new(file.to_str().unwrap()).unwrap();
    let opts = |backend: u32, engines: Option<&CString>| ModelOptions {
        backend,
        engines_dir: engines.map_or(null(), |e| e.as_ptr()),
        ..tinv_model_options_default()
    };
    // SAFETY: every pointer is a live NUL-terminated string, buffer, or out slot.
    unsafe {
        let from_file = |o: &ModelOptions| -> Result<u32, (Status, String)> {
            let mut m = null_mut();
            match tinv_model_open(path.as_ptr(), o, &mut m) {
                Status::Ok => {}
                st => {
                    assert!(m.is_null());
                    return Err((st, last_error()));
                }
            }
            let (mut b, mut s) = (99u32, null_mut());
            assert_eq!(tinv_model_backend(m, &mut b), Status::Ok);
            // A session opens on the backend reported, and runs.
            assert_eq!(tinv_session_open(m, null(), &mut s), Status::Ok);
            let input = vec![0.5f32; cfg.input_len()];
            let mut logits = [0f32; 3];
            let r = tinv_session_infer(s, input.as_ptr(), input.len(), 1, logits.as_mut_ptr(), 3);
            assert_eq!(r, Status::Ok);
            assert_eq!(tinv_session_free(s), Status::Ok);
            assert_eq!(tinv_model_free(m), Status::Ok);
            Ok(b)
        };
        let from_bytes = |o: &ModelOptions| -> Result<u32, (Status, String)> {
            let mut m = null_mut();
            match tinv_model_open_bytes(bytes.as_ptr().cast(), bytes.len(), o, &mut m) {
                Status::Ok => {}
                st => return Err((st, last_error())),
            }
            let mut b = 99u32;
            assert_eq!(tinv_model_backend(m, &mut b), Status::Ok);
            assert_eq!(tinv_model_free(m), Status::Ok);
            Ok(b)
        };
        let unavailable = |r: Result<u32, (Status, String)>, trt_says: &str| {
            let (st, msg) = r.expect_err("TENSORRT without usable engines must fail at open");
            assert_eq!(st, Status::BackendUnavailable, "{msg}");
            let want = if trt {
                trt_says
            } else {
                "TensorRT backend not built"
            };
            assert!(msg.contains(want), "{msg:?} lacks {want:?}");
        };
        let plans = dir.join("plans");

        // No engines anywhere: AUTO and CPU run on the CPU, TENSORRT is refused at open.
        assert_eq!(from_file(&opts(BACKEND_AUTO, None)), Ok(BACKEND_CPU));
        assert_eq!(from_file(&opts(BACKEND_CPU, None)), Ok(BACKEND_CPU));
        assert_eq!(from_bytes(&opts(BACKEND_AUTO, None)), Ok(BACKEND_CPU));
        unavailable(
            from_file(&opts(BACKEND_TENSORRT, None)),
            plans.join("manifest").to_str().unwrap(),
        );
        unavailable(from_file(&opts(BACKEND_TENSORRT, None)), "tinv-run build");
        // From bytes there is no folder to look in (not even the current directory).
        unavailable(
            from_bytes(&opts(BACKEND_TENSORRT, None)),
            "opened from memory has no folder",
        );

        // A manifest beside the model (an unusable one): the default folder is that one.
        std::fs::create_dir_all(&plans).unwrap();
        std::fs::write(plans.join("manifest"), "not a manifest\n").unwrap();
        assert_eq!(from_file(&opts(BACKEND_AUTO, None)), Ok(BACKEND_CPU));
        unavailable(
            from_file(&opts(BACKEND_TENSORRT, None)),
            &format!("TensorRT engines in {}: engine manifest", plans.display()),
        );
        // The same folder named explicitly, for a model from bytes.
        let explicit = CString::new(plans.to_str().unwrap()).unwrap();
        assert_eq!(
            from_bytes(&opts(BACKEND_AUTO, Some(&explicit))),
            Ok(BACKEND_CPU)
        );
        unavailable(
            from_bytes(&opts(BACKEND_TENSORRT, Some(&explicit))),
            &format!("TensorRT engines in {}: engine manifest", plans.display()),
        );
        // Engines built for something else (another manifest schema, found before TensorRT is
        // loaded): their own status, TINV_ERR_ENGINES_STALE, so a program can rebuild them.
        std::fs::write(plans.join("manifest"), "tinv-trt-manifest 1\n").unwrap();
        assert_eq!(from_file(&opts(BACKEND_AUTO, None)), Ok(BACKEND_CPU));
        if trt {
            let (st, msg) = from_file(&opts(BACKEND_TENSORRT, None)).unwrap_err();
            assert_eq!((st, st as u32), (Status::EnginesStale, 302), "{msg}");
            assert!(msg.contains("`schema` is 1"), "{msg}");
        } else {
            unavailable(from_file(&opts(BACKEND_TENSORRT, None)), "");
        }
        std::fs::write(plans.join("manifest"), "not a manifest\n").unwrap();
        // An explicit folder wins over the one beside the model.
        let empty = dir.join("no-engines");
        std::fs::create_dir_all(&empty).unwrap();
        let empty_c = CString::new(empty.to_str().unwrap()).unwrap();
        unavailable(
            from_file(&opts(BACKEND_TENSORRT, Some(&empty_c))),
            &format!("{}: ", empty.join("manifest").display()),
        );
        // "" is refused where the folder is read, ignored where it is not.
        let blank = CString::new("").unwrap();
        assert_eq!(from_file(&opts(BACKEND_CPU, Some(&blank))), Ok(BACKEND_CPU));
        let r = from_file(&opts(BACKEND_AUTO, Some(&blank)));
        if trt {
            let (st, msg) = r.unwrap_err();
            assert_eq!(st, Status::InvalidArg);
            assert!(msg.contains("engines_dir is empty"), "{msg}");
        } else {
            assert_eq!(r, Ok(BACKEND_CPU));
        }
        let _ = std::fs::remove_dir_all(&plans);
    }
}

/// Opening a directory says so, instead of mapping's "No such device"; a FIFO is refused
/// instead of blocking until a writer comes; an empty path is named as such; a file that
/// cannot be mapped says that.
#[test]
fn c_abi_model_open_on_a_directory_fifo_or_empty_path_says_so() {
    use std::ffi::CString;
    let open = |p: &std::path::Path| {
        let path = CString::new(p.to_str().unwrap()).unwrap();
        let mut m = std::ptr::null_mut();
        // SAFETY: a live NUL-terminated string and an out slot.
        let st = unsafe { tinv::capi::tinv_model_open(path.as_ptr(), std::ptr::null(), &mut m) };
        assert!(m.is_null());
        (st, last_error())
    };
    let dir = toolchain::scratch("a-directory");
    assert_eq!(
        open(&dir),
        (
            tinv::capi::Status::Io,
            format!("{}: is a directory, not a .tinv file", dir.display())
        )
    );
    let fifo = dir.join("a-fifo");
    let _ = std::fs::remove_file(&fifo);
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        let (st, msg) = open(&fifo);
        assert_eq!(st, tinv::capi::Status::Io);
        assert!(
            msg.ends_with("is not a regular file (a device, FIFO or socket), not a .tinv file"),
            "{msg}"
        );
    } else {
        eprintln!("mkfifo unavailable: FIFO case skipped");
    }
    let (st, msg) = open(std::path::Path::new(""));
    assert_eq!(st, tinv::capi::Status::Io);
    assert!(msg.starts_with("empty path: "), "{msg}");
    // A regular file the kernel cannot map said only "No such device (os error 19)".
    let (st, msg) = open(std::path::Path::new("/proc/self/status"));
    assert_eq!(st, tinv::capi::Status::Io);
    assert!(
        msg.starts_with("/proc/self/status: cannot be memory-mapped (")
            && msg.ends_with("); copy it to a local file system"),
        "{msg}"
    );
}

/// `verify` (tinv.h: nonzero recomputes every tensor checksum at open): a flipped bit in a
/// tensor's data opens without it and is `TINV_ERR_CHECKSUM` naming the tensor with it.
#[test]
fn c_abi_verify_option_recomputes_the_tensor_checksums() {
    use tinv::capi::*;
    let cfg = tinv::synth::tiny(3, false);
    let mut bytes = tinv::synth::random_model(&cfg, 5, tinv::format::DType::F32);
    let t = tinv::format::parse(&bytes).unwrap().tensors[0].clone();
    bytes[t.offset + t.nbytes / 2] ^= 0x10;
    let open = |verify: u32| {
        let o = ModelOptions {
            verify,
            ..tinv_model_options_default()
        };
        let mut m = std::ptr::null_mut();
        // SAFETY: live bytes of the stated length, a valid options struct, an out slot; `m` is
        // a handle of this library or NULL.
        unsafe {
            let s = tinv_model_open_bytes(bytes.as_ptr().cast(), bytes.len(), &o, &mut m);
            let msg = last_error();
            assert_eq!(tinv_model_free(m), Status::Ok);
            (s, msg)
        }
    };
    assert_eq!(open(0).0, Status::Ok);
    for verify in [1, 7] {
        let (s, msg) = open(verify);
        assert_eq!(s, Status::Checksum, "verify = {verify}");
        assert!(msg.contains(&format!("tensor '{}'", t.name)), "{msg}");
    }
}

/// `tinv_model_open_bytes` refuses a `len` past `PTRDIFF_MAX` (tinv.h: `TINV_ERR_INVALID_ARG`)
/// before it reads a byte, and leaves `*out` alone.
#[test]
fn c_abi_open_bytes_refuses_a_length_past_ptrdiff_max() {
    use tinv::capi::*;
    let cfg = tinv::synth::tiny(3, false);
    let bytes = tinv::synth::random_model(&cfg, 5, tinv::format::DType::F32);
    for len in [isize::MAX as usize + 1, usize::MAX] {
        let mut m = std::ptr::null_mut();
        // SAFETY: live bytes and an out slot; the header promises that a `len` past
        // PTRDIFF_MAX is refused without reading `data`.
        let st =
            unsafe { tinv_model_open_bytes(bytes.as_ptr().cast(), len, std::ptr::null(), &mut m) };
        assert_eq!(st, Status::InvalidArg, "len {len}");
        assert!(m.is_null());
        assert!(last_error().contains(&len.to_string()), "{}", last_error());
    }
}

/// The model queries report the file's values, on a model where no two of them coincide: a
/// 3-channel 8 × 12 input (so that channels, height and width in the wrong slot show), a
/// stored default budget of 0.375 (0 without a controller, tinv.h), and the host weights as
/// 4 bytes for each element of each tensor the f32 file lists.
#[test]
fn c_abi_model_queries_report_the_files_values() {
    use tinv::capi::*;
    let mut cfg = tinv::synth::config(8, 3, 4, 16, 2, 2, 5, &[1, 2], true);
    cfg.image_w = 12;
    cfg.controller.as_mut().unwrap().default_budget = 0.375;
    let mut plain = cfg.clone();
    plain.controller = None;
    for (cfg, budget) in [(&cfg, 0.375f32), (&plain, 0.0)] {
        let bytes = tinv::synth::random_model(cfg, 3, tinv::format::DType::F32);
        let index = tinv::format::parse(&bytes).unwrap();
        let elements: usize = index
            .tensors
            .iter()
            .map(|t| t.shape.iter().product::<usize>())
            .sum();
        let mut m = std::ptr::null_mut();
        // SAFETY: live bytes of the stated length, out slots of the declared types.
        unsafe {
            let st =
                tinv_model_open_bytes(bytes.as_ptr().cast(), bytes.len(), std::ptr::null(), &mut m);
            assert_eq!(st, Status::Ok);
            let (mut c, mut h, mut w, mut len) = (0, 0, 0, 0);
            assert_eq!(
                tinv_model_input_shape(m, &mut c, &mut h, &mut w),
                Status::Ok
            );
            assert_eq!((c, h, w), (3, 8, 12));
            assert_eq!(tinv_model_input_len(m, &mut len), Status::Ok);
            assert_eq!(len, 3 * 8 * 12);
            let (mut classes, mut paths) = (0, 0);
            assert_eq!(tinv_model_num_classes(m, &mut classes), Status::Ok);
            assert_eq!(tinv_model_num_paths(m, &mut paths), Status::Ok);
            assert_eq!((classes, paths), (5, 2));
            let mut b = -1.0f32;
            assert_eq!(tinv_model_default_budget(m, &mut b), Status::Ok);
            assert_eq!(b, budget);
            let mut wb = 0u64;
            assert_eq!(tinv_model_weight_bytes(m, &mut wb), Status::Ok);
            assert_eq!(wb, 4 * elements as u64);
            assert_eq!(tinv_model_free(m), Status::Ok);
        }
    }
}

/// A session runs on the backend its model was given at open (tinv.h: "decided here, once for
/// every session on the model"): opening one does not decide again. A model asked for `AUTO`
/// logs why it got the CPU at `tinv_model_open_bytes`; its session's open logs no such reason
/// (a session that asked for `AUTO` itself would).
#[test]
fn c_abi_session_open_does_not_decide_the_backend_again() {
    use std::cell::RefCell;
    use std::ffi::{c_char, c_void, CStr};
    use std::ptr::{null, null_mut};
    use tinv::capi::*;
    thread_local! {
        /// The records logged on this test's thread (other tests log on theirs).
        static SEEN: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }
    unsafe extern "C" fn record(_: u32, message: *const c_char, _: *mut c_void) {
        // SAFETY: the library passes a NUL-terminated message valid for this call.
        let text = unsafe { CStr::from_ptr(message) }
            .to_string_lossy()
            .into_owned();
        SEEN.with(|s| s.borrow_mut().push(text));
    }
    let taken = || SEEN.with(|s| std::mem::take(&mut *s.borrow_mut()));
    let cfg = tinv::synth::tiny(3, false);
    let bytes = tinv::synth::random_model(&cfg, 4, tinv::format::DType::F32);
    let (mut m, mut s) = (null_mut(), null_mut());
    // SAFETY: `record` may be called from any thread for the process's life; live bytes of the
    // stated length and out slots.
    unsafe {
        assert_eq!(
            tinv_set_log_callback(Some(record), null_mut(), 5),
            Status::Ok
        );
        let st = tinv_model_open_bytes(bytes.as_ptr().cast(), bytes.len(), null(), &mut m);
        assert_eq!(st, Status::Ok);
        let at_model_open = taken();
        assert!(
            at_model_open.iter().any(|r| r.contains("using the CPU")),
            "the model's open logged no reason: {at_model_open:?}"
        );
        assert_eq!(tinv_session_open(m, null(), &mut s), Status::Ok);
        let at_session_open = taken();
        assert_eq!(tinv_set_log_callback(None, null_mut(), 0), Status::Ok);
        assert!(
            !at_session_open.iter().any(|r| r.contains("using the CPU")),
            "the session decided its backend again: {at_session_open:?}"
        );
        assert_eq!(tinv_session_free(s), Status::Ok);
        assert_eq!(tinv_model_free(m), Status::Ok);
    }
}
