//! Sender adaptors: senders built from other senders.

mod then;

pub use then::{Then, ThenReceiver};
