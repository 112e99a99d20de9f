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
    AsyncManualResetEvent, AsyncMutex, AsyncMutexGuard, LockOp, LockSender, WaitOp, WaitSender,
    oneshot,
};
