//! The CPU backend: the reference implementation and the embedded default. One plan per depth
//! path ([`plan`]), one arena per session laid out by liveness ([`arena`]), kernels chosen at
//! run time for the host's SIMD ([`kernels`], [`gemm`]), an allocation-free worker pool ([`pool`]).
//!
//! Programs run models through [`crate::Session`]. This module is public because the
//! workspace's tools share its kernels: the trainer computes the runtime's very functions
//! (LayerNorm, exact-erf GELU, softmax), and the bench profiles one block through it. It is not
//! a stable API.

pub mod arena;
pub mod exec;
pub mod gemm;
pub mod kernels;
pub mod plan;
pub mod pool;
