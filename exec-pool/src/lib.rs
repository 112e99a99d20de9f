//! A work-stealing thread pool for [`exec_core`]: the CPU execution
//! context of the `exec` workspace.
//!
//! [`ThreadPool`] runs operations on N workers, each with a bounded local
//! queue that the others steal half of at a time (backing off for a few
//! microseconds after a steal that found a single job, so a worker that
//! fans out many small jobs is not raided job by job), a LIFO slot for the
//! operation it
//! scheduled last, and a global injection queue for work submitted from
//! outside. [`PoolScheduler::schedule`](exec_core::Scheduler::schedule)
//! allocates nothing: the pinned operation state is the queue node.
//! [`bulk`] and [`bulk_chunked`] run an index space in parallel, split
//! adaptively across the workers; [`BlockingScheduler`] is the escape
//! hatch for blocking calls.
//!
//! Work may borrow from the caller's stack, because
//! [`sync_wait`](exec_core::sync_wait) does not return before it is done:
//!
//! ```
//! use exec_core::{sync_wait, Scheduler, SenderExt};
//! use exec_pool::ThreadPool;
//!
//! let pool = ThreadPool::builder().threads(2).build().unwrap();
//! let data: Vec<u64> = (1..=100).collect();
//! let total = sync_wait(pool.scheduler().schedule().then(|()| data.iter().sum::<u64>()));
//! assert_eq!(total, Ok(Some(5050)));
//! ```
//!
//! # Panics
//! A panic in user code run by an exec-core algorithm on a worker is caught
//! by that algorithm and delivered to whoever awaits the result (through
//! `Receiver::set_panic`). Each job additionally runs under `catch_unwind`,
//! so a worker never dies: see [`ThreadPool::contained_panics`].
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::undocumented_unsafe_blocks
)]

mod loom;

mod handle;
mod idle;
mod job;
mod queue;

#[cfg(not(loom))]
mod blocking;
mod bulk;
mod pool;
mod scheduler;
mod worker;

#[cfg(all(test, loom))]
mod loom_tests;

#[cfg(not(loom))]
pub use blocking::{BlockingScheduler, BlockingSender};

pub use bulk::{Bulk, BulkBody, Chunked, Each, bulk, bulk_chunked};
pub use pool::{Builder, ThreadPool};
pub use scheduler::{PoolScheduler, ScheduleSender};

/// The operation states and receivers of this crate's senders.
///
/// Public because they appear in `SenderTo` impls, compiler messages and
/// where-clauses of generic code; code rarely names them, so they are kept
/// out of the crate root (as in [`exec_core::ops`]).
pub mod ops {
    #[cfg(not(loom))]
    pub use crate::blocking::BlockingOp;
    pub use crate::bulk::{BulkOp, BulkReceiver};
    pub use crate::scheduler::ScheduleOp;
}
