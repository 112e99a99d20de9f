//! Sender factories: senders made from nothing but values.

mod just;

pub use just::{Just, just};
