//! Sender adaptors: senders built from other senders.

mod then;

pub use then::{Then, ThenReceiver};

mod split;

pub use split::{Split, SplitOp, SplitReceiver};

mod ensure_started;

pub use ensure_started::{EnsureStarted, EnsureStartedOp, EnsureStartedReceiver};
#[allow(unused_imports)]
pub(crate) use ensure_started::{Hooks, start_eagerly};
