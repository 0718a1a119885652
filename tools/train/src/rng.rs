//! A small seeded generator (SplitMix64) so every random choice of a run — initialization,
//! shuffling, augmentation, PPO sampling — follows from `--seed` alone, on any platform.

/// The runtime's SplitMix64 (`tinv::synth::Rng`) with the samplers training needs.
#[derive(Clone, Debug)]
pub struct Rng(tinv::synth::Rng);

impl Rng {
    /// A generator whose stream is determined by `seed` and a stream label `stream` (so the
    /// shuffle of epoch 3 does not depend on how many numbers epoch 2 drew).
    pub fn new(seed: u64, stream: u64) -> Rng {
        let mut r = Rng(tinv::synth::Rng::new(
            seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F),
        ));
        r.next_u64();
        r
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform integer in `0..n` (`n > 0`; returns 0 for `n == 0`).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Normal with standard deviation `std`, redrawn outside ±2·std (timm's `trunc_normal_`).
    pub fn trunc_normal(&mut self, std: f64) -> f32 {
        loop {
            let v = self.normal();
            if v.abs() <= 2.0 {
                return (v * std) as f32;
            }
        }
    }

    /// A uniformly random permutation of `0..n` (Fisher–Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below(i + 1);
            p.swap(i, j);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference_values() {
        // SplitMix64 from state 0 (Vigna's splitmix64.c): the first outputs.
        let mut r = tinv::synth::Rng::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        // Stream 0 of seed 0 skips the first output.
        assert_eq!(Rng::new(0, 0).next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn deterministic_and_uniform_enough() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7, 1).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng::new(7, 1).next_u64(), Rng::new(7, 2).next_u64());
        let mut r = Rng::new(1, 0);
        let mean = (0..20000).map(|_| r.uniform()).sum::<f64>() / 20000.0;
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
        let mut p = r.permutation(100);
        p.sort_unstable();
        assert_eq!(p, (0..100).collect::<Vec<_>>());
    }
}
