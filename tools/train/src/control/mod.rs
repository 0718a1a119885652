//! The two-level controller's training: outcome cache, networks, PPO, budget evaluation.

pub mod budget;
pub mod graph_policy;
pub mod nets;
pub mod netvars;
pub mod outcomes;
pub mod ppo;
#[cfg(test)]
mod reference64;
pub mod threshold_curve;
pub mod warm;
