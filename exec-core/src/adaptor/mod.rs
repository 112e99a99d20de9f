//! Sender adaptors: senders built from other senders.

mod then;

pub use then::{Then, ThenReceiver};

mod nary;
mod when_all;

pub use when_all::{WhenAll, WhenAllOp, WhenAllReceiver, when_all};
