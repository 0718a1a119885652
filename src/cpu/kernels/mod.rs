//! Elementwise and row kernels (LayerNorm, softmax, GELU, patch extraction). Each is written once
//! as plain, branch-free Rust that LLVM auto-vectorizes, and compiled several times by
//! `multiversion!`: for AVX-512 and AVX2+FMA on x86_64 (picked at run time, never
//! `target-cpu=native`), and as is everywhere else (NEON is baseline on aarch64).

mod gelu;
mod layernorm;
mod math;
mod patch;
mod softmax;

use std::sync::atomic::{AtomicBool, Ordering};

pub use gelu::{gelu_erf, gelu_tanh};
pub use layernorm::layernorm_rows;
pub use math::{erf, exp};
pub use patch::patchify;
pub use softmax::softmax_rows;

/// Defines `pub fn $name(args)` that dispatches at run time to copies of `$body` compiled with
/// AVX-512F or AVX2+FMA enabled on x86_64, and to the plain copy elsewhere. `$body` sees the
/// const `FMA`: whether its copy fuses multiply-adds (`math::exp_impl::<FMA>`); it does where
/// the CPU has FMA, unless [`set_fused`] turned that off.
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn generic<const FMA: bool>($($arg: $ty),*) $body

            let fused = $crate::cpu::kernels::fused();
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn v512<const F: bool>($($arg: $ty),*) { generic::<F>($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v256<const F: bool>($($arg: $ty),*) { generic::<F>($($arg),*) }
                let avx2_fma = std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma");
                if avx2_fma && std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports AVX-512F, AVX2 and FMA (checked above), every
                    // feature `v512` enables; `generic` is safe code.
                    return unsafe {
                        if fused { v512::<true>($($arg),*) } else { v512::<false>($($arg),*) }
                    };
                }
                if avx2_fma {
                    // SAFETY: the CPU supports AVX2 and FMA (checked above).
                    return unsafe {
                        if fused { v256::<true>($($arg),*) } else { v256::<false>($($arg),*) }
                    };
                }
            }
            if fused {
                generic::<{ $crate::cpu::kernels::math::PLAIN_FMA }>($($arg),*)
            } else {
                generic::<false>($($arg),*)
            }
        }
    };
}
pub(crate) use multiversion;

static FUSED: AtomicBool = AtomicBool::new(true);

/// Whether the kernels fuse multiply-adds where the CPU can (the default; see `math`). `false`
/// gives every host the rounding of the unfused kernels, bit for bit: tinv-train turns it off,
/// because its default model was trained with them and its controller stage turns a last-bit
/// difference in the backbone's outputs into a different policy
/// (docs/notes/fmnist-controller-analysis.md).
/// Process-wide; meant to be set once at start-up.
pub fn set_fused(on: bool) {
    FUSED.store(on, Ordering::Relaxed);
}

/// The setting of [`set_fused`].
pub fn fused() -> bool {
    FUSED.load(Ordering::Relaxed)
}

/// Lanes used to split reductions into independent accumulators that vectorize without
/// reassociating floating-point sums.
pub(crate) const LANES: usize = 16;
