//! Offsets of the session's buffers inside the one arena, assigned by liveness: two buffers share
//! bytes when no step uses both. Greedy first-fit by decreasing size (the classic heuristic for
//! this interval-packing problem); the liveness lower bound is reported beside the result.

/// One buffer to place: its size in floats and the first and last step that use it.
#[derive(Clone, Copy, Debug)]
pub struct Interval {
    /// Size in f32 elements.
    pub len: usize,
    /// First step index that uses the buffer.
    pub first: usize,
    /// Last step index that uses the buffer (inclusive).
    pub last: usize,
}

/// Alignment of every buffer, in floats (64 bytes: a cache line, enough for any SIMD load).
pub const ALIGN: usize = 16;

/// The placement: an offset per buffer, the total, and the liveness lower bound.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Offset of each buffer (floats), in input order.
    pub offsets: Vec<usize>,
    /// Arena size in floats.
    pub total: usize,
    /// max over steps of the summed sizes of live buffers: no placement can be smaller.
    pub lower_bound: usize,
}

fn round_up(v: usize) -> usize {
    v.div_ceil(ALIGN) * ALIGN
}

/// Places `bufs` so that buffers with overlapping live ranges never overlap in memory.
pub fn assign(bufs: &[Interval]) -> Layout {
    let mut order: Vec<usize> = (0..bufs.len()).collect();
    order.sort_by(|&a, &b| bufs[b].len.cmp(&bufs[a].len).then(a.cmp(&b)));
    let mut offsets = vec![0usize; bufs.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut total = 0;
    for &i in &order {
        let b = bufs[i];
        // Occupied ranges of already placed buffers whose lifetimes overlap this one.
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| bufs[j].first <= b.last && b.first <= bufs[j].last)
            .map(|&j| (offsets[j], offsets[j] + round_up(bufs[j].len)))
            .collect();
        busy.sort_unstable();
        let mut at = 0;
        for (s, e) in busy {
            if at + round_up(b.len) <= s {
                break;
            }
            at = at.max(e);
        }
        offsets[i] = at;
        total = total.max(at + round_up(b.len));
        placed.push(i);
    }
    let steps = bufs.iter().map(|b| b.last + 1).max().unwrap_or(0);
    let lower_bound = (0..steps)
        .map(|s| {
            bufs.iter()
                .filter(|b| b.first <= s && s <= b.last)
                .map(|b| round_up(b.len))
                .sum::<usize>()
        })
        .max()
        .unwrap_or(0);
    Layout {
        offsets,
        total,
        lower_bound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(len: usize, first: usize, last: usize) -> Interval {
        Interval { len, first, last }
    }

    #[test]
    fn disjoint_lifetimes_share_memory() {
        // A lives in steps 0-1, B in 2-3: they share; C lives throughout.
        let l = assign(&[iv(32, 0, 1), iv(32, 2, 3), iv(16, 0, 3)]);
        assert_eq!(l.offsets[0], l.offsets[1]);
        assert_eq!(l.total, 48);
        assert_eq!(l.lower_bound, 48);
    }

    #[test]
    fn overlapping_lifetimes_never_overlap_in_memory() {
        let bufs = [
            iv(100, 0, 5),
            iv(40, 1, 2),
            iv(70, 2, 4),
            iv(10, 3, 3),
            iv(90, 5, 6),
        ];
        let l = assign(&bufs);
        for i in 0..bufs.len() {
            for j in i + 1..bufs.len() {
                let live = bufs[i].first <= bufs[j].last && bufs[j].first <= bufs[i].last;
                let (a, b) = (l.offsets[i], l.offsets[j]);
                let mem = a < b + round_up(bufs[j].len) && b < a + round_up(bufs[i].len);
                assert!(!(live && mem), "buffers {i} and {j} collide");
            }
            assert_eq!(l.offsets[i] % ALIGN, 0);
        }
        assert!(l.total >= l.lower_bound);
    }

    #[test]
    fn lower_bound_counts_the_last_step() {
        // The peak is at the last step (1): 32 floats, though step 0 holds only 16. The two
        // lifetimes are disjoint, so first-fit puts both at 0 and the arena is the bound.
        let l = assign(&[iv(16, 0, 0), iv(32, 1, 1)]);
        assert_eq!(l.lower_bound, 32);
        assert_eq!(l.offsets, [0, 0]);
        assert_eq!(l.total, 32);
    }
}
