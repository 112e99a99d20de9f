//! Operation states: a connected sender, ready to start.

use core::pin::Pin;

/// The state of one asynchronous operation: a sender connected to a
/// receiver. Nothing happens until it is [`start`](Self::start)ed.
///
/// An operation state is a pinned, self-contained node: pools and loops
/// queue pointers to it, children point back into it. Because safe Rust can
/// drop a pinned value, keeping it alive while it runs is the contract of
/// the `unsafe` [`start`](Self::start), upheld by the consumers (`sync_wait`,
/// scopes, the future adapter) and by every algorithm for its children.
///
/// Implementations that are referred to concurrently while started (the
/// usual case) are `!Unpin` (hold a `PhantomPinned`), which also tells the
/// compiler and miri that `&mut Self` does not assert uniqueness.
pub trait OperationState {
    /// Starts the operation. It will complete exactly once by calling one
    /// completion method of its receiver, possibly before `start` returns,
    /// possibly on another thread.
    ///
    /// After calling its receiver's completion method, an operation does not
    /// touch its own memory again (whoever owns it may free it at once).
    ///
    /// # Safety
    /// - `start` is called at most once.
    /// - From the call on, the operation state must not be dropped, moved
    ///   (already implied by the pin) or its memory reused until it has
    ///   completed, i.e. until its receiver's completion method has been
    ///   called. Leaking it is allowed.
    unsafe fn start(self: Pin<&mut Self>);
}
