//! # exec
//!
//! Structured, executor-agnostic concurrency in the sender/receiver model of
//! C++26 `std::execution` (P2300). This crate re-exports the workspace's
//! crates: [`exec_core`] (always), `exec_pool` (feature `pool`), `exec_io`
//! (feature `io`) and `exec_adapters` (feature `tokio`).
//!
//! ```
//! use exec::{just, sync_wait, SenderExt};
//! assert_eq!(sync_wait(just(20).then(|x| x * 2 + 2)), Ok(Some(42)));
//! ```
#![forbid(unsafe_code)]

pub use exec_core::*;

#[cfg(feature = "pool")]
pub use exec_pool as pool;

#[cfg(feature = "io")]
pub use exec_io as io;

#[cfg(feature = "tokio")]
pub use exec_adapters as adapters;

/// The README's Rust examples, compiled and run as doctests so the quick
/// start cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
