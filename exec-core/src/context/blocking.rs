//! Which threads must not block: a thread-local naming the context that the
//! thread drives (a `RunLoop`, a pool worker, an I/O loop).

use core::cell::Cell;

std::thread_local! {
    static DRIVING: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// Marks the current thread as driving an execution context for as long as
/// it lives. While it does, [`sync_wait`](crate::sync_wait) on this thread
/// panics instead of deadlocking.
///
/// Execution contexts (the run loop, `exec-pool` workers, `exec-io` loops)
/// create one while they run work.
#[derive(Debug)]
#[must_use = "the mark is removed when the guard is dropped"]
pub struct NonBlockingGuard {
    previous: Option<&'static str>,
}

impl NonBlockingGuard {
    /// Marks this thread as driving `context` (a short name used in the
    /// panic message, such as `"an exec-pool worker"`).
    pub fn enter(context: &'static str) -> Self {
        let previous = DRIVING.with(|d| d.replace(Some(context)));
        NonBlockingGuard { previous }
    }
}

impl Drop for NonBlockingGuard {
    fn drop(&mut self) {
        DRIVING.with(|d| d.set(self.previous));
    }
}

/// Panics with a message saying what to do instead if the current thread
/// drives an execution context (see [`NonBlockingGuard`]). `what` names the
/// blocking call.
#[track_caller]
pub fn assert_may_block(what: &str) {
    if let Some(context) = DRIVING.with(|d| d.get()) {
        panic!(
            "{what} called on a thread that is driving {context}: blocking here would \
             deadlock it. Compose the work into the sender you are running instead \
             (`let_value`, `then`, `when_all`), spawn it into an `AsyncScope`, or call \
             {what} from a thread that drives no execution context."
        );
    }
}
