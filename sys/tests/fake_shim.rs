//! The loader and the engine queries of the real `Shim` through a fake `libtinv_trt<MAJOR>.so`
//! compiled at test time from `support/fake_shim.c` (no TensorRT, no GPU): opening, versions,
//! ABI / major / symbol refusals, TensorRT's log, engine I/O passed through, and every failure
//! as the typed error carrying the shim's message (cut, unterminated, not UTF-8, absent).
//! Context calls, frees and builds: fake_shim_calls.rs; threads and `Shim::load`'s search:
//! fake_shim_concurrent.rs. Skips (printing `SKIPPED:`) only where no C compiler exists.

mod support;

use std::path::Path;
use std::sync::Mutex;
use support::{call, plan, small_plan, with_engine, Fake, Kind, Mode};
use tinv_sys::{DType, IoMode, IoTensor, Shim, ShimApi, ShimError, TrtVersion};

#[test]
fn load_from_opens_the_library_reads_its_version_and_drop_frees_it() {
    let Some(f) = Fake::new("open") else { return };
    let shim = f.shim();
    assert_eq!(
        shim.version(),
        TrtVersion {
            major: 10,
            minor: 3,
            patch: 1,
            raw: 100301
        }
    );
    assert_eq!(shim.path(), f.path);
    assert_eq!(
        f.log(),
        [
            "lib_open nvinfer=/fake/libnvinfer.so.10 parser=NULL log=1 user=NULL sev=3 -> L1",
            "lib_version L1"
        ]
    );
    drop(shim);
    assert_eq!(f.log().last().map(String::as_str), Some("lib_free L1"));
    // No libnvinfer path: NULL, so the shim picks libnvinfer.so.<major>.
    drop(Shim::load_from(&f.path, 10, None).unwrap());
    assert_eq!(
        f.lines("lib_open nvinfer=NULL"),
        ["lib_open nvinfer=NULL parser=NULL log=1 user=NULL sev=3 -> L2"]
    );
    assert_eq!(f.lines("lib_free"), ["lib_free L1", "lib_free L2"]);
    assert_eq!(f.live(Kind::Lib), 0);
    f.assert_clean();
}

#[test]
fn the_version_is_decoded_per_major() {
    // 8.x encodes M*1000+m*100+p, 10 and later M*10000+m*100+p (the fake does as TensorRT).
    for (major, raw) in [(8, 8301), (11, 110301)] {
        let define = format!("-DFAKE_MAJOR={major}");
        let Some(f) = Fake::variant(&format!("major{major}"), &[&define], major) else {
            return;
        };
        let shim = Shim::load_from(&f.path, major, None).unwrap();
        let want = TrtVersion {
            major: major as i32,
            minor: 3,
            patch: 1,
            raw,
        };
        assert_eq!(shim.version(), want);
        assert_eq!(shim.version().to_string(), format!("{major}.3.1"));
    }
}

#[test]
fn a_failed_lib_open_is_a_call_error_with_the_shims_message_and_frees_nothing() {
    let Some(f) = Fake::new("open_fails") else {
        return;
    };
    f.script(
        "tinv_trt_lib_open",
        0,
        2,
        Mode::Msg,
        "dlopen libnvinfer.so.10 failed: no such file",
    );
    let e = Shim::load_from(&f.path, 10, None).err().unwrap();
    assert_eq!(
        e,
        call(
            "tinv_trt_lib_open",
            2,
            "dlopen libnvinfer.so.10 failed: no such file"
        )
    );
    assert_eq!(
        e.to_string(),
        "tinv_trt_lib_open failed (library not loadable): dlopen libnvinfer.so.10 failed: no such file"
    );
    assert_eq!(
        f.log(),
        ["lib_open nvinfer=NULL parser=NULL log=1 user=NULL sev=3 -> fail"]
    );
    f.assert_clean();
}

#[test]
fn a_failed_version_query_frees_the_opened_lib_once() {
    let Some(f) = Fake::new("version_fails") else {
        return;
    };
    f.script(
        "tinv_trt_lib_version",
        0,
        1,
        Mode::Msg,
        "lib_version: NULL argument",
    );
    let e = Shim::load_from(&f.path, 10, None).err().unwrap();
    assert_eq!(
        e,
        call("tinv_trt_lib_version", 1, "lib_version: NULL argument")
    );
    let log = f.log();
    assert_eq!(&log[1..], ["lib_version L1", "lib_free L1"]);
    assert_eq!(f.live(Kind::Lib), 0);
    f.assert_clean();
}

#[test]
fn a_shim_of_another_abi_or_major_is_refused_before_it_opens_anything() {
    let Some(abi) = Fake::variant("abi2", &["-DFAKE_ABI=2"], 10) else {
        return;
    };
    let e = Shim::load_from(&abi.path, 10, None).err().unwrap();
    assert_eq!(
        e,
        ShimError::Load("shim ABI 2, these bindings expect 1".into())
    );
    assert_eq!(
        e.to_string(),
        "cannot load TensorRT: shim ABI 2, these bindings expect 1"
    );
    assert!(abi.log().is_empty(), "{:?}", abi.log());
    // A shim built for TensorRT 11 offered as the one for 10.
    let other = Fake::variant("major_mismatch", &["-DFAKE_MAJOR=11"], 10).unwrap();
    let e = Shim::load_from(&other.path, 10, None).err().unwrap();
    assert_eq!(
        e,
        ShimError::Load("shim built for TensorRT 11, wanted 10".into())
    );
    assert!(other.log().is_empty(), "{:?}", other.log());
}

#[test]
fn a_shim_missing_a_function_is_refused_naming_it() {
    let Some(f) = Fake::variant("no_enqueue", &["-DFAKE_OMIT_ENQUEUE"], 10) else {
        return;
    };
    match Shim::load_from(&f.path, 10, None) {
        Err(ShimError::Load(m)) => assert!(m.contains("tinv_trt_context_enqueue"), "{m}"),
        Err(e) => panic!("expected a load error, got {e}"),
        Ok(_) => panic!("a shim without tinv_trt_context_enqueue must be refused"),
    }
    assert!(f.log().is_empty(), "nothing is called: {:?}", f.log());
    // No file at all: the error names the path.
    let absent = f.path.with_file_name("libtinv_trt_absent.so");
    match Shim::load_from(&absent, 10, None) {
        Err(ShimError::Load(m)) => assert!(m.contains("libtinv_trt_absent.so"), "{m}"),
        other => panic!("expected a load error, got {:?}", other.err()),
    }
    // A libnvinfer path C cannot take.
    let nul = Path::new(std::ffi::OsStr::new("/fake/lib\0nvinfer.so"));
    assert!(matches!(
        Shim::load_from(&f.path, 10, Some(nul)),
        Err(ShimError::Argument(_))
    ));
}

/// Every record logged, as (level, target, message).
static RECORDS: Mutex<Vec<(log::Level, String, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        RECORDS
            .lock()
            .unwrap()
            .push((r.level(), r.target().to_string(), r.args().to_string()));
    }
    fn flush(&self) {}
}

#[test]
fn tensorrt_log_messages_reach_the_log_crate_at_their_levels() {
    let Some(f) = Fake::new("log") else { return };
    static CAPTURE: Capture = Capture;
    // The only test of this binary that sets the logger.
    log::set_logger(&CAPTURE).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let tag = "/fake/log-routing/libnvinfer.so.10";
    drop(Shim::load_from(&f.path, 10, Some(Path::new(tag))).unwrap());
    let got: Vec<(log::Level, String)> = RECORDS
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, target, m)| target == "tensorrt" && m.ends_with(tag))
        .map(|(l, _, m)| (*l, m.clone()))
        .collect();
    // Severities 0..4 (internal error, error, warning, info, verbose); the NULL message the
    // fake sends after them is dropped.
    let want: Vec<(log::Level, String)> = [
        log::Level::Error,
        log::Level::Error,
        log::Level::Warn,
        log::Level::Info,
        log::Level::Debug,
    ]
    .into_iter()
    .enumerate()
    .map(|(sev, l)| (l, format!("fake log {sev} from {tag}")))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn deserialize_passes_the_plan_and_engine_queries_return_what_the_engine_says() {
    let Some(f) = Fake::new("engine") else { return };
    let shim = f.shim();
    let io = [
        "images:1:0:4,-1,3,224,224",
        "logits:2:1:2,-1,1000",
        "flag:1:4:0",
        "t2:2:2:1,2",
        "t3:2:3:1,3",
        "t5:2:5:1,5",
        "t6:2:6:1,6",
        "t7:2:7:1,7",
        "t8:2:8:1,8",
        "t255:2:255:1,9",
        "t99:2:99:8,1,2,3,4,5,6,7,8",
    ];
    let p = plan(123_456_789_012, &io);
    let e = shim.deserialize(&p).unwrap();
    let t = |name: &str, mode, dtype, shape: &[i64]| IoTensor {
        name: name.into(),
        mode,
        dtype,
        shape: shape.to_vec(),
    };
    let (i, o) = (IoMode::Input, IoMode::Output);
    assert_eq!(
        shim.engine_io(e).unwrap(),
        [
            t("images", i, DType::F32, &[-1, 3, 224, 224]),
            t("logits", o, DType::F16, &[-1, 1000]),
            t("flag", i, DType::Bool, &[]),
            t("t2", o, DType::I8, &[2]),
            t("t3", o, DType::I32, &[3]),
            t("t5", o, DType::U8, &[5]),
            t("t6", o, DType::Fp8, &[6]),
            t("t7", o, DType::Bf16, &[7]),
            t("t8", o, DType::I64, &[8]),
            t("t255", o, DType::Other, &[9]),
            t("t99", o, DType::Other, &[1, 2, 3, 4, 5, 6, 7, 8]),
        ]
    );
    assert_eq!(shim.engine_device_memory_size(e).unwrap(), 123_456_789_012);
    let log = f.log();
    assert_eq!(log[2], format!("deserialize L1 size={} -> E1", p.len()));
    assert_eq!(log[3], "io_count E1");
    for k in 0..io.len() {
        assert_eq!(log[4 + k], format!("io_info E1 {k}"));
    }
    assert_eq!(log[4 + io.len()], "device_memory_size E1");
    shim.engine_free(e);
    assert_eq!(f.log().last().map(String::as_str), Some("engine_free E1"));
    f.assert_clean();
}

#[test]
fn a_refused_plan_is_the_shims_tensorrt_error_and_records_no_engine() {
    let Some(f) = Fake::new("refused") else {
        return;
    };
    let shim = f.shim();
    let refused = call(
        "tinv_trt_engine_deserialize",
        4,
        "plan refused: not a fake plan",
    );
    assert_eq!(
        shim.deserialize(b"PLAN of another GPU").unwrap_err(),
        refused
    );
    assert_eq!(shim.deserialize(&[]).unwrap_err(), refused);
    assert_eq!(f.live(Kind::Engine), 0);
    drop(shim);
    assert_eq!(f.lines("engine_free"), Vec::<String>::new());
    f.assert_clean();
}

#[test]
fn engine_query_failures_carry_the_shims_status_and_message() {
    let Some((f, shim, e)) = with_engine("engine_fails") else {
        return;
    };
    f.script("tinv_trt_engine_io_count", 0, 4, Mode::Msg, "count failed");
    assert_eq!(
        shim.engine_io(e).unwrap_err(),
        call("tinv_trt_engine_io_count", 4, "count failed")
    );
    // The second tensor's description fails: no partial list.
    f.script(
        "tinv_trt_engine_io_info",
        1,
        7,
        Mode::Msg,
        "tinv_trt_engine_io_info: exception: boom",
    );
    assert_eq!(
        shim.engine_io(e).unwrap_err(),
        call(
            "tinv_trt_engine_io_info",
            7,
            "tinv_trt_engine_io_info: exception: boom"
        )
    );
    f.script(
        "tinv_trt_engine_device_memory_size",
        0,
        4,
        Mode::Msg,
        "getDeviceMemorySizeV2 failed",
    );
    assert_eq!(
        shim.engine_device_memory_size(e).unwrap_err(),
        call(
            "tinv_trt_engine_device_memory_size",
            4,
            "getDeviceMemorySizeV2 failed"
        )
    );
    // The engine still answers afterwards.
    assert_eq!(shim.engine_io(e).unwrap().len(), 2);
    assert_eq!(shim.engine_device_memory_size(e).unwrap(), 4096);
    f.assert_clean();
}

#[test]
fn an_io_description_the_header_does_not_allow_is_an_error() {
    let Some(f) = Fake::new("bad_io") else { return };
    let shim = f.shim();
    let io_error = |io: &[&str]| {
        let e = shim.deserialize(&plan(0, io)).unwrap();
        let r = shim.engine_io(e).unwrap_err();
        shim.engine_free(e);
        r
    };
    let tensorrt = |m: &str| call("tinv_trt_engine_io_info", 4, m);
    assert_eq!(
        io_error(&["x:1:0:1,1", "n:0:0:1,1"]),
        tensorrt("tensor n has I/O mode 0 (neither input nor output)")
    );
    assert_eq!(
        io_error(&["m:3:0:1,1"]),
        tensorrt("tensor m has I/O mode 3 (neither input nor output)")
    );
    assert_eq!(
        io_error(&["big:1:0:9,1,2,3,4,5,6,7,8,9"]),
        tensorrt("tensor big has rank 9 (the header allows 0 to 8)")
    );
    assert_eq!(
        io_error(&["neg:1:0:-1"]),
        tensorrt("tensor neg has rank -1 (the header allows 0 to 8)")
    );
    // OK with no name (the header promises an engine-owned string).
    let e = shim.deserialize(&small_plan()).unwrap();
    f.script("tinv_trt_engine_io_info", 1, 0, Mode::NullOut, "");
    assert_eq!(
        shim.engine_io(e).unwrap_err(),
        tensorrt("tensor 1 has no name")
    );
    shim.engine_free(e);
    // A count far above the tensors there are: the shim refuses the first index past them
    // (no allocation sized by the count).
    let e = shim
        .deserialize(b"FAKEPLAN mem=0 count=2147483647 io=x:1:0:1,1")
        .unwrap();
    assert_eq!(
        shim.engine_io(e).unwrap_err(),
        call("tinv_trt_engine_io_info", 1, "io_info: index out of range")
    );
    f.assert_clean();
}

#[test]
fn shim_messages_come_back_whole_cut_or_lossy_but_never_overread() {
    let Some(f) = Fake::new("messages") else {
        return;
    };
    let shim = f.shim();
    let fails = |mode, status, msg: &str| {
        f.script("tinv_trt_engine_deserialize", 0, status, mode, msg);
        match shim.deserialize(&small_plan()).unwrap_err() {
            ShimError::Call {
                function,
                status: s,
                message,
            } => {
                assert_eq!((function, s), ("tinv_trt_engine_deserialize", status));
                message
            }
            e => panic!("{e}"),
        }
    };
    // All 1024 bytes written and no NUL: the 1024 bytes, nothing past them.
    let m = fails(Mode::Unterminated, 4, "abc");
    assert_eq!(m, "abc".repeat(342)[..1024]);
    // Longer than the buffer: cut to 1023 bytes by the shim.
    assert_eq!(fails(Mode::Msg, 4, &"m".repeat(2000)), "m".repeat(1023));
    assert_eq!(fails(Mode::BadUtf8, 4, ""), "bad \u{fffd}\u{fffd}! utf-8");
    // Failing without a message, with a status this crate does not know.
    assert_eq!(fails(Mode::NoMsg, 42, "ignored"), "");
    let e = call("tinv_trt_engine_deserialize", 42, "");
    assert_eq!(
        e.to_string(),
        "tinv_trt_engine_deserialize failed (unknown status): "
    );
    assert_eq!(f.live(Kind::Engine), 0);
}
