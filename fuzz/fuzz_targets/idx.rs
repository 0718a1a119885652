//! IDX bytes → `tinv::idx::parse`. Accepted files must agree with their own header, and
//! re-encoding must give the same bytes back.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(idx) = tinv::idx::parse(data) {
        let n: usize = idx.dims.iter().product();
        assert_eq!(idx.data.len(), n);
        assert_eq!(tinv::idx::encode(&idx.dims, &idx.data), data);
    }
});
