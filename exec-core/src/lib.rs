//! The sender/receiver protocol of C++26 `std::execution` (P2300), in Rust.
//!
//! Work is described as lazy [`Sender`]s, composed with algorithms
//! ([`then`](SenderExt::then), [`when_all`](fn@when_all), [`let_value`](SenderExt::let_value),
//! …) and run by a consumer such as [`sync_wait`]. Nothing runs until an
//! operation state is started; every started operation completes exactly once,
//! on one of the channels *value*, *error* or *stopped* (plus the *panic*
//! channel, see [`Receiver::set_panic`]).
//!
//! ```
//! use exec_core::{just, sync_wait, SenderExt};
//!
//! let answer = sync_wait(just(20).then(|x| x * 2).then(|x| x + 2));
//! assert_eq!(answer, Ok(Some(42)));
//! ```
//!
//! # Panics
//! A panic in user code run by an algorithm (a [`then`](SenderExt::then)
//! closure, a [`let_value`](SenderExt::let_value) factory, a `bulk` body) is
//! caught where it happens and travels up the receiver chain through
//! [`Receiver::set_panic`], like C++ delivers an `exception_ptr` through
//! `set_error`. Algorithms forward it unchanged; consumers re-raise it with
//! the original payload where the result is awaited ([`sync_wait`] calls
//! [`std::panic::resume_unwind`]). Without the `std` feature panics are not
//! caught.
//!
//! # Features
//! - `std` (default): [`sync_wait`], [`RunLoop`], panic catching. Without it
//!   the crate is `no_std` + `alloc`.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::undocumented_unsafe_blocks
)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod loom;
#[cfg(all(test, loom))]
mod loom_fixtures;

mod dyn_scheduler;
mod env;
mod error;
mod operation;
mod panic;
mod parent;
mod receiver;
mod scheduler;
mod sender;
mod stop;

mod adaptor;
mod consumer;
mod context;
mod ext;
mod factory;
mod scope;
mod sync;

pub use dyn_scheduler::{DynScheduleOp, DynScheduler, SchedulerRef, SchedulerRefSender, TaskNode};
pub use env::{EmptyEnv, Env};
pub use error::IntoError;
pub use operation::OperationState;
pub use panic::{PanicPayload, catch_unwind};
pub use parent::{ErasedParentRef, Notify, ParentRef};
pub use receiver::{Completion, Receiver};
pub use scheduler::{CompletionScheduler, Scheduler, TimedScheduler};
pub use sender::{Sender, SenderTo};
pub use stop::{NeverStopToken, OnStop, StopCallback, StopSource, StopToken};

pub use adaptor::*;
#[cfg(feature = "std")]
pub use consumer::*;
pub use context::*;
pub use ext::SenderExt;
pub use factory::*;
#[cfg(feature = "std")]
pub use scope::*;
pub use sync::{
    AsyncManualResetEvent, AsyncMutex, AsyncMutexGuard, LockSender, WaitSender, oneshot,
};

/// The operation states and receivers of the algorithms, consumers,
/// contexts and scopes.
///
/// Connecting a sender to a receiver produces an operation state whose
/// type is spelled by the sender's [`SenderTo`] impl: `Then<S, F>`
/// connected to `R` is `S`'s operation connected to a
/// [`ThenReceiver<R, F>`](ops::ThenReceiver), and so on down the chain.
/// These types are public because they appear in those impls, in compiler
/// messages and in where-clauses of generic code, but code rarely names
/// them, so they live here rather than among the senders and functions of
/// the crate root.
///
/// ```
/// use core::convert::Infallible;
/// use exec_core::ops::ThenReceiver;
/// use exec_core::{Receiver, SenderExt, SenderTo, just};
///
/// // A bound that names one: "a sender whose value `then` can map".
/// fn connects<S, R>(s: S, r: ThenReceiver<R, fn(i32) -> i32>) -> S::Operation
/// where
///     S: SenderTo<ThenReceiver<R, fn(i32) -> i32>>,
///     R: Receiver<i32, Infallible>,
/// {
///     s.connect(r)
/// }
/// # let _ = connects::<exec_core::Just<i32>, exec_core::ops::SyncWaitReceiver<i32, Infallible>>;
/// # let _ = just(1).then(|x: i32| x);
/// ```
pub mod ops {
    pub use crate::adaptor::op_types::*;
    #[cfg(feature = "std")]
    pub use crate::consumer::op_types::*;
    #[cfg(feature = "std")]
    pub use crate::context::op_types::*;
    pub use crate::factory::op_types::*;
    #[cfg(feature = "std")]
    pub use crate::scope::op_types::*;
    pub use crate::sync::op_types::*;
}
