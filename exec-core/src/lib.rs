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

/// Recycled allocations for operation states.
///
/// Operations that must live on the heap — an erased sender's frame, a
/// spawned operation, an operation that outlives the future awaiting it —
/// are made and freed at a high rate, often on different threads. This is
/// the allocator exec's own algorithms use for them: blocks of up to 1 KiB
/// come from size classes recycled per thread (a block freed on one thread
/// serves that thread's next allocation of its class; full per-thread lists
/// move between threads in batches through a bounded process-wide depot),
/// larger or over-aligned ones from the global allocator. Without the `std`
/// feature every block comes from the global allocator.
///
/// ```
/// use core::alloc::Layout;
/// use exec_core::frame;
///
/// let layout = Layout::new::<[u64; 8]>();
/// let p = frame::alloc(layout).cast::<[u64; 8]>();
/// // SAFETY: `p` is valid for a `[u64; 8]` until it is freed below.
/// unsafe {
///     p.as_ptr().write([7; 8]);
///     assert_eq!((*p.as_ptr())[3], 7);
///     frame::dealloc(p.cast(), layout);
/// }
/// ```
pub mod frame {
    use core::alloc::Layout;
    use core::ptr::NonNull;

    /// Allocates an uninitialised block for `layout`: a recycled one if
    /// this thread has one of its size class.
    ///
    /// Never returns null (allocation failure goes to
    /// [`handle_alloc_error`](alloc::alloc::handle_alloc_error)); a
    /// zero-sized `layout` gets a dangling, aligned pointer.
    #[inline]
    pub fn alloc(layout: Layout) -> NonNull<u8> {
        crate::adaptor::frame_alloc(layout)
    }

    /// Frees a block made by [`alloc`](fn@alloc) with the same `layout`, on any
    /// thread.
    ///
    /// # Safety
    /// `ptr` was returned by [`alloc`](fn@alloc)`(layout)`, is not freed twice and is
    /// not used afterwards. Whatever it held must already have been dropped.
    #[inline]
    pub unsafe fn dealloc(ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { crate::adaptor::frame_dealloc(ptr, layout) }
    }
}

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
