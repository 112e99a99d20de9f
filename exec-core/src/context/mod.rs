//! Execution contexts that live in exec-core: the run loop, the inline
//! scheduler, and the thread-context guard behind `sync_wait`'s misuse check.

#[cfg(feature = "std")]
mod blocking;
mod inline;
#[cfg(feature = "std")]
mod run_loop;
pub(crate) mod trampoline;

#[cfg(feature = "std")]
pub use blocking::{NonBlockingGuard, assert_may_block};
pub use inline::{InlineScheduler, InlineSender};
#[cfg(feature = "std")]
pub use run_loop::{RunLoop, RunLoopScheduler, RunLoopSender};
#[cfg(feature = "std")]
pub use trampoline::{TrampolineScheduler, TrampolineSender};

/// Operation states and receivers, re-exported by [`crate::ops`].
#[cfg(feature = "std")]
pub(crate) mod op_types {
    pub use super::run_loop::RunLoopScheduleOp;
    pub use super::trampoline::TrampolineOp;
}
