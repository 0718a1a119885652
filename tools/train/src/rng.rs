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

    #[test]
    fn below_scales_the_next_64_bits() {
        // `below(n)` is ⌊u·n / 2⁶⁴⌋ of the next output u (Lemire's multiply-shift), here
        // computed in f64 from a copy of the stream (exact enough: n ≤ 1000 and the fractions
        // are nowhere near an integer boundary for these draws).
        let mut r = Rng::new(9, 4);
        let mut copy = r.clone();
        for n in [1usize, 2, 3, 7, 10, 1000] {
            for _ in 0..50 {
                let u = copy.next_u64() as f64 / 2f64.powi(64);
                assert_eq!(r.below(n), (u * n as f64).floor() as usize, "n {n}");
            }
        }
        assert_eq!(r.below(0), 0);
    }

    #[test]
    fn permutations_are_uniform() {
        // Fisher–Yates with j uniform in 0..=i: every element equally likely at every place.
        // Over 20 000 permutations of 4, each of the 16 (place, value) pairs comes up 5 000
        // times on average (σ ≈ 61); Sattolo's variant (j < i) never leaves a value in place.
        let mut r = Rng::new(3, 0);
        let mut count = [[0u32; 4]; 4];
        for _ in 0..20_000 {
            for (place, v) in r.permutation(4).into_iter().enumerate() {
                count[place][v] += 1;
            }
        }
        for row in count {
            for c in row {
                assert!((4_700..=5_300).contains(&c), "{count:?}");
            }
        }
    }

    #[test]
    fn normals_have_the_standard_moments() {
        // Mean 0, variance 1, P(|z| ≤ 1) = 0.6827 (40 000 draws: σ of the mean 0.005, of the
        // fraction 0.0023). Truncated at ±2: never outside ±2·std, and the standard deviation
        // of a standard normal cut at ±2 is √(1 − 4φ(2)/(Φ(2) − Φ(−2))) = 0.8796.
        let mut r = Rng::new(11, 0);
        let z: Vec<f64> = (0..40_000).map(|_| r.normal()).collect();
        let n = z.len() as f64;
        let mean = z.iter().sum::<f64>() / n;
        let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let within = z.iter().filter(|v| v.abs() <= 1.0).count() as f64 / n;
        assert!(mean.abs() < 0.025, "mean {mean}");
        assert!((var - 1.0).abs() < 0.03, "variance {var}");
        assert!((within - 0.6827).abs() < 0.012, "P(|z| <= 1) {within}");
        let t: Vec<f64> = (0..40_000)
            .map(|_| f64::from(r.trunc_normal(0.02)))
            .collect();
        assert!(t.iter().all(|v| v.abs() <= 0.04 + 1e-9));
        let m = t.iter().sum::<f64>() / n;
        let sd = (t.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n).sqrt();
        assert!(m.abs() < 0.0005, "mean {m}");
        assert!((sd / 0.02 - 0.8796).abs() < 0.02, "std {sd}");
    }
}
