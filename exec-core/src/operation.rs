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
/// # Every operation state is `!Unpin`
/// Hold a [`PhantomPinned`](core::marker::PhantomPinned) field (or a field
/// that is itself `!Unpin`, such as a child operation), even in an operation
/// that looks trivial like [`just`](crate::just)'s. For an `Unpin` type,
/// `Pin<&mut Self>` is a plain `&mut Self`, and a `&mut` argument asserts to
/// the compiler (`noalias`, `dereferenceable`) and to miri (a protected
/// unique borrow) that the memory stays valid and unaliased until `start`
/// returns. But an operation may be freed *during* its own `start`: once it
/// completes its receiver inline, the owner may free the whole tree at once
/// (a scope frees a spawned operation's frame from the completion), and
/// operations referred to concurrently are read by other threads through
/// pointers. For a `!Unpin` type, `&mut Self` makes neither assertion.
/// `exec-core/tests/op_freed_in_completion.rs` checks this under miri for
/// every operation in the crate; `tests/auto_traits.rs` asserts `!Unpin`.
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
