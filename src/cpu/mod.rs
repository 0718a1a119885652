//! The CPU backend: the reference implementation and the embedded default. One plan per depth
//! path ([`plan`]), one arena per session laid out by liveness ([`arena`]), kernels chosen at
//! run time for the host's SIMD ([`kernels`], [`gemm`]), an allocation-free worker pool ([`pool`]).

pub mod arena;
pub mod exec;
pub mod gemm;
pub mod kernels;
pub mod plan;
pub mod pool;
