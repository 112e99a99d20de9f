//! Senders and futures, interoperating: run any [`Sender`](exec_core::Sender)
//! as a `Future` in any async runtime, run any `Future` or `Stream` as
//! senders, and (feature `tokio`) use a tokio runtime as an exec scheduler.
//!
//! ```
//! use exec_adapters::{from_future, SenderFutureExt};
//! use exec_core::{just, sync_wait, SenderExt};
//!
//! // A sender, awaited from async code (any executor; here `futures`'):
//! let v = futures::executor::block_on(just(20).then(|x| x + 1).into_future());
//! assert_eq!(v, Ok(21));
//!
//! // A future, run as a sender:
//! let v = sync_wait(from_future(async { 21 }).then(|x| x * 2));
//! assert_eq!(v, Ok(Some(42)));
//! ```
//!
//! # Channels
//! | sender | future |
//! | --- | --- |
//! | value `v` | `Ok(v)` |
//! | error `e` | `Err(AwaitError::Error(e))` |
//! | stopped | `Err(AwaitError::Stopped)` |
//! | panic (`set_panic`) | resumed in the polling task |
//!
//! [`from_future`] maps the other way: the output is the value, a stop
//! request drops the future and completes *stopped*, a panic while polling
//! is delivered through `set_panic`. [`from_try_future`] splits a `Result`
//! output onto the value and error channels.
//!
//! # Decisions
//! - **`into_future` is an extension method**, not `IntoFuture`: a blanket
//!   `impl<S: Sender> IntoFuture for S` is only possible in the crate that
//!   defines `IntoFuture` (coherence). Write `sender.into_future().await`.
//! - **Stopped is an error variant**, [`AwaitError::Stopped`], next to
//!   [`AwaitError::Error`]: `Ok(v)` stays the plain value, `?` propagates
//!   both failures, and a cancellation is still told apart from an error.
//! - **Dropping an awaited sender never blocks.** The operation lives in one
//!   heap block owned jointly by the future and the running operation; the
//!   drop requests stop and lets go, the operation frees the block when it
//!   completes. So [`into_future`](SenderFutureExt::into_future) takes only
//!   `'static` senders (a leaked future must not leave a borrow in use).
//! - **`from_future` polls on the receiver's scheduler**: inline in `start`
//!   first; then, if the receiver's environment reports a scheduler
//!   ([`Env::scheduler`](exec_core::Env::scheduler): `sync_wait`'s run
//!   loop, `starts_on`'s scheduler), a wake-up enqueues the operation there
//!   (it is its own intrusive `TaskNode`: no allocation) and the context
//!   polls it; without one, the thread that calls `wake()` polls it. Either
//!   way a wake-up during a poll is never lost and never recurses.
//!   [`from_future_on`] polls on a scheduler of your choice instead (every
//!   poll runs in the completion of a `schedule()` operation).
//!
//! # Features
//! - `tokio`: `TokioScheduler`, a `tokio::runtime::Handle` as a (timed)
//!   scheduler, and `TokioScheduler::from_future` to drive tokio I/O
//!   futures from senders.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::undocumented_unsafe_blocks
)]

mod loom;

mod from_future;
mod into_future;
mod stream;
#[cfg(feature = "tokio")]
mod tokio;

#[cfg(feature = "tokio")]
pub use crate::tokio::{
    Entered, TokioScheduleSender, TokioScheduler, TokioSleep, TokioTimedSender,
};
pub use from_future::{
    FromFuture, FromFutureOn, FromTryFuture, PollOn, from_future, from_future_on, from_try_future,
};
pub use into_future::{AwaitError, SenderFuture, SenderFutureExt};
pub use stream::{
    ForEach, ForEachFuture, Next, NextFuture, RepeatStream, for_each, next, repeat_stream,
};

/// The operation states and receivers of this crate's senders.
///
/// Public because they appear in `SenderTo` impls, compiler messages and
/// where-clauses of generic code; code rarely names them, so they are kept
/// out of the crate root (as in [`exec_core::ops`]).
pub mod ops {
    pub use crate::from_future::{FromFutureOnOp, FromFutureOp, TryReceiver};
    pub use crate::into_future::FutureReceiver;
    #[cfg(feature = "tokio")]
    pub use crate::tokio::TokioScheduleOp;
}
