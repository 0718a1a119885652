//! Elementwise and row kernels (LayerNorm, softmax, GELU, patch extraction). Each is written once
//! as plain, branch-free Rust that LLVM auto-vectorizes, and compiled several times by
//! `multiversion!`: for AVX-512 and AVX2+FMA on x86_64 (picked at run time, never
//! `target-cpu=native`), and as is everywhere else (NEON is baseline on aarch64).

mod gelu;
mod layernorm;
mod math;
mod patch;
mod softmax;

pub use gelu::{gelu_erf, gelu_tanh};
pub use layernorm::layernorm_rows;
pub use math::{erf, exp};
pub use patch::patchify;
pub use softmax::softmax_rows;

/// Defines `pub fn $name(args)` that dispatches at run time to copies of `$body` compiled with
/// AVX-512F or AVX2+FMA enabled on x86_64, and to the plain copy elsewhere. `$body` sees the
/// const `FMA`: whether its copy has fused multiply-add (`math::exp_impl::<FMA>`).
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn generic<const FMA: bool>($($arg: $ty),*) $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn v512($($arg: $ty),*) { generic::<true>($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v256($($arg: $ty),*) { generic::<true>($($arg),*) }
                let avx2_fma = std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma");
                if avx2_fma && std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports AVX-512F, AVX2 and FMA (checked above), every
                    // feature `v512` enables; `generic` is safe code.
                    return unsafe { v512($($arg),*) };
                }
                if avx2_fma {
                    // SAFETY: the CPU supports AVX2 and FMA (checked above).
                    return unsafe { v256($($arg),*) };
                }
            }
            generic::<{ $crate::cpu::kernels::math::PLAIN_FMA }>($($arg),*)
        }
    };
}
pub(crate) use multiversion;

/// Lanes used to split reductions into independent accumulators that vectorize without
/// reassociating floating-point sums.
pub(crate) const LANES: usize = 16;
