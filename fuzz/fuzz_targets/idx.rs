//! IDX bytes → `tinv::idx::parse` and `tinv::idx::read`. Accepted files must agree with their own
//! header, re-encoding must give the same bytes back, and the streaming reader must accept
//! exactly what the in-memory parser accepts, with the same result.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = tinv::idx::parse(data);
    match (&parsed, tinv::idx::read(data)) {
        (Ok(a), Ok(b)) => assert_eq!(*a, b),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("parse {a:?} but read {b:?}"),
    }
    if let Ok(idx) = parsed {
        let n: usize = idx.dims.iter().product();
        assert_eq!(idx.data.len(), n);
        let again =
            tinv::idx::encode(&idx.dims, &idx.data).expect("encode refuses what parse read");
        assert_eq!(again, data);
    }
});
