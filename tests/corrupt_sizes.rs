//! Absurd counts and sizes in a real model (tests/common/corrupt_model.rs), each refused; measured
//! with a counting global allocator, the parser never holds more than twice the file.

#[path = "common/corrupt_model.rs"]
#[allow(dead_code)] // each corrupt_*.rs uses some of the model's helpers
mod corrupt_model;

use corrupt_model::{model_bytes, put_u32, put_u64, u32_at, Layout};
use tinv::format::{self, DType};
use tinv::{synth, Model, OpenOptions};

#[test]
fn absurd_counts_and_sizes_never_allocate_more_than_twice_the_file() {
    let good = model_bytes(DType::F16);
    let l = Layout::read(&good);
    let mut cases: Vec<Vec<u8>> = Vec::new();
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        b
    };
    // Largest legal counts in the header with the real (short) sections behind them.
    cases.push(edit(&|b| put_u32(b, 24, 4096)));
    cases.push(edit(&|b| put_u32(b, 28, 65536)));
    // The first key's length, a string value's length and an array's count at their limits.
    cases.push(edit(&|b| put_u32(b, 64, 256)));
    let gelu = l.meta_entry("vit.gelu");
    cases.push(edit(&|b| put_u32(b, gelu.value_at, 1 << 20)));
    let mean = l.meta_entry("vit.mean");
    cases.push(edit(&|b| put_u32(b, mean.value_at, 1 << 20)));
    // Dimensions whose product overflows, and the largest ones that do not.
    let r = &l.records[0];
    cases.push(edit(&|b| {
        (0..2).for_each(|k| put_u64(b, r.dims_at + 8 * k, 1 << 40))
    }));
    cases.push(edit(&|b| {
        (0..2).for_each(|k| put_u64(b, r.dims_at + 8 * k, 1 << 30))
    }));
    // A configuration of the largest supported model over this file's small tensors.
    for (key, v) in [
        ("vit.dim", 16384),
        ("vit.mlp_hidden", 65536),
        ("vit.classes", 1 << 20),
        ("vit.blocks", 1024),
    ] {
        cases.push(edit(&|b| put_u64(b, l.meta_entry(key).value_at, v)));
    }
    // A legal 8 MiB metadata array under the metadata checksum: hashing it must not copy it.
    let idx = format::parse(&good).unwrap();
    let mut w = format::TinvWriter::new();
    for (k, v) in idx.meta.entries() {
        w.meta(k, v.clone());
    }
    w.meta("x.big", format::MetaValue::U64s(vec![7; 1 << 20]));
    for t in &idx.tensors {
        if (t.offset - idx.data_offset).is_multiple_of(format::PAGE as usize) {
            w.page_break();
        }
        let data = good[t.offset..t.offset + t.nbytes].to_vec();
        w.raw_tensor(&t.name, t.dtype, t.flags, &t.shape, data);
    }
    let big = w.to_bytes();
    let parsed = format::parse(&big).unwrap();
    assert!(parsed.meta.u64(format::META_HASH_KEY).is_some() && big.len() > 8 << 20);
    cases.push(big);
    // And 2000 random corruptions of the header, metadata and table.
    let mut rng = synth::Rng::new(12);
    for _ in 0..2000 {
        let mut b = good.clone();
        for _ in 0..1 + rng.next_u64() % 4 {
            let at = (rng.next_u64() % l.data_offset as u64) as usize;
            b[at] = match rng.next_u64() % 3 {
                0 => 0xFF,
                1 => 0,
                _ => rng.next_u64() as u8,
            };
        }
        cases.push(b);
    }
    // The counter sees the model's own allocations: at least the f16 matrices widened to f32
    // (which a CPU session asks for; opening alone does not).
    let widened: u64 = l
        .records
        .iter()
        .filter(|r| u32_at(&good, r.dtype_at) == 1)
        .map(|r| 2 * r.nbytes)
        .sum();
    let (res, peak) = peak_heap(|| {
        let m = Model::from_bytes(&good, &OpenOptions::default())?;
        m.widen_host()?;
        Ok::<_, tinv::Error>(m.host_copy_bytes())
    });
    assert_eq!(res.as_ref().ok().copied(), Some(widened as usize));
    assert!(
        res.is_ok() && peak as u64 >= widened && widened > 0,
        "peak {peak}, widened {widened}"
    );
    let mut opened = 0;
    for b in &cases {
        let (res, peak) =
            peak_heap(|| Model::from_bytes(b, &OpenOptions::default()).map(|m| m.config().dim));
        opened += usize::from(res.is_ok());
        assert!(
            peak <= 2 * b.len() + 64 * 1024,
            "peak {peak} bytes for a {}-byte file",
            b.len()
        );
        let (_, peak) = peak_heap(|| format::parse(b).map(|i| i.tensors.len()));
        assert!(
            peak <= b.len() + 64 * 1024,
            "parse peak {peak} bytes for a {}-byte file",
            b.len()
        );
    }
    // The random corruptions hit names, values and padding too, so some still open.
    assert!(
        opened > 0 && opened < cases.len(),
        "{opened} of {} opened",
        cases.len()
    );
}

// ---- Peak heap use of one call on this thread ------------------------------------------------

mod heap {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static TRACK: Cell<bool> = const { Cell::new(false) };
        static LIVE: Cell<usize> = const { Cell::new(0) };
        static PEAK: Cell<usize> = const { Cell::new(0) };
    }

    fn grow(n: usize) {
        let _ = TRACK.try_with(|t| {
            if t.get() {
                let live = LIVE.with(|l| {
                    l.set(l.get() + n);
                    l.get()
                });
                PEAK.with(|p| p.set(p.get().max(live)));
            }
        });
    }

    fn shrink(n: usize) {
        let _ = TRACK.try_with(|t| {
            if t.get() {
                LIVE.with(|l| l.set(l.get().saturating_sub(n)));
            }
        });
    }

    /// Forwards to the system allocator; counts the bytes this thread holds while tracking.
    pub struct Counting;

    // SAFETY: every call forwards to `System` with the caller's arguments unchanged; the
    // bookkeeping only touches const-initialized thread-locals, which never allocate.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            grow(l.size());
            // SAFETY: same contract as the caller's.
            unsafe { System.alloc(l) }
        }
        unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
            grow(l.size());
            // SAFETY: same contract as the caller's.
            unsafe { System.alloc_zeroed(l) }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            shrink(l.size());
            // SAFETY: same contract as the caller's.
            unsafe { System.dealloc(p, l) }
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
            grow(n);
            shrink(l.size());
            // SAFETY: same contract as the caller's.
            unsafe { System.realloc(p, l, n) }
        }
    }

    /// Runs `f` and returns its result and the most heap bytes this thread held during it
    /// (beyond what it held before), the result's own allocations included.
    pub fn peak<R>(f: impl FnOnce() -> R) -> (R, usize) {
        LIVE.with(|l| l.set(0));
        PEAK.with(|p| p.set(0));
        TRACK.with(|t| t.set(true));
        let r = f();
        TRACK.with(|t| t.set(false));
        (r, PEAK.with(Cell::get))
    }
}

#[global_allocator]
static GLOBAL: heap::Counting = heap::Counting;

fn peak_heap<R>(f: impl FnOnce() -> R) -> (R, usize) {
    heap::peak(f)
}
