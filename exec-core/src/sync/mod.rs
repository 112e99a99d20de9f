//! Synchronization primitives whose waiting operations are senders:
//! [`AsyncMutex`], [`AsyncManualResetEvent`] and a [`oneshot`] channel.
//!
//! Waiting operations are queued as intrusive nodes inside their own pinned
//! operation states (no allocation per wait), honour their receiver's stop
//! token (a stopped waiter leaves the queue and completes *stopped*), and may
//! be completed from any thread.

mod event;
mod mutex;
pub mod oneshot;
pub(crate) mod wait_list;

pub use event::{AsyncManualResetEvent, WaitSender};
pub use mutex::{AsyncMutex, AsyncMutexGuard, LockSender};

/// Operation states and receivers, re-exported by [`crate::ops`].
pub(crate) mod op_types {
    pub use super::event::WaitOp;
    pub use super::mutex::LockOp;
}
