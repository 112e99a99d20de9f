//! Consumers: what starts senders and waits for them.

#[cfg(feature = "std")]
mod sync_wait;

#[cfg(feature = "std")]
pub use sync_wait::{SyncWaitReceiver, sync_wait};
