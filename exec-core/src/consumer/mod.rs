//! Consumers: what starts senders and waits for them.

#[cfg(feature = "std")]
mod sync_wait;

#[cfg(feature = "std")]
pub use sync_wait::sync_wait;

/// Operation states and receivers, re-exported by [`crate::ops`].
pub(crate) mod op_types {
    #[cfg(feature = "std")]
    pub use super::sync_wait::SyncWaitReceiver;
}
