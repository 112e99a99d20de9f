//! [`spawn_detached`]: start a `'static` sender with nobody waiting for it.

use core::fmt;
use core::mem::MaybeUninit;
use core::pin::Pin;

use exec_core::{OperationState, PanicPayload, Receiver, Sender, SenderTo};

/// Starts `sender` now, on this thread, with nobody waiting for its
/// result: the operation state is boxed (one allocation) and freed when it
/// completes. Values, errors and *stopped* are dropped; a panic is printed
/// to stderr and dropped.
///
/// This is the minimal "one task per connection" a server needs; when
/// exec-core's `AsyncScope` is available, spawning into a scope is the
/// structured alternative (it can be joined and stopped).
///
/// # Completion
/// Returns at once; the sender completes wherever it completes.
///
/// # Cancellation
/// The sender sees a stop token that never fires.
///
/// # Panics
/// Never (panics of the sender are reported, not propagated).
///
/// # Example
/// ```
/// use exec_core::{Scheduler, SenderExt};
/// use exec_io::{IoContext, spawn_detached};
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// let ctx = IoContext::new()?;
/// let sch = ctx.scheduler();
/// let ran = Arc::new(AtomicBool::new(false));
/// let r = ran.clone();
/// spawn_detached(sch.schedule().then(move |()| r.store(true, Ordering::SeqCst)));
/// ctx.run_until(sch.schedule()).unwrap(); // one turn of the loop runs it
/// assert!(ran.load(Ordering::SeqCst));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # See also
/// [`IoContext::run`](crate::IoContext::run).
pub fn spawn_detached<S>(sender: S)
where
    S: Sender + SenderTo<DetachedReceiver> + 'static,
    S::Operation: Send,
{
    let mut slot: Box<MaybeUninit<S::Operation>> = Box::new(MaybeUninit::uninit());
    let ptr = slot.as_mut_ptr();
    let receiver = DetachedReceiver {
        ptr: ptr.cast(),
        free: free::<S::Operation>,
    };
    slot.write(sender.connect(receiver));
    let raw = Box::into_raw(slot) as *mut S::Operation;
    // SAFETY: `raw` is a live, initialized, heap-allocated op that is never
    // moved; it is freed only by its receiver once it completed (after
    // which the op touches nothing), so it stays alive until completion.
    unsafe { Pin::new_unchecked(&mut *raw).start() };
}

/// # Safety
/// `ptr` is the `Box<O>` allocation made by `spawn_detached`, whose op has
/// completed; called once.
unsafe fn free<O>(ptr: *mut ()) {
    // SAFETY: per the contract; `MaybeUninit<O>` and `O` share layout and
    // the value was initialized before the op started.
    drop(unsafe { Box::from_raw(ptr as *mut O) });
}

/// The receiver of a [`spawn_detached`] operation: frees the operation
/// when it completes.
pub struct DetachedReceiver {
    ptr: *mut (),
    free: unsafe fn(*mut ()),
}

impl fmt::Debug for DetachedReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DetachedReceiver").finish_non_exhaustive()
    }
}

// SAFETY: the receiver only carries the address of its own heap op, which
// `spawn_detached` requires to be `Send`; the op is only freed (dropped),
// never used, through this pointer, possibly on another thread.
unsafe impl Send for DetachedReceiver {}

impl DetachedReceiver {
    fn done(self) {
        let DetachedReceiver { ptr, free } = self;
        // SAFETY: the op called one completion method of this receiver,
        // so it has completed and touches its memory no more.
        unsafe { free(ptr) }
    }
}

impl<T, E> Receiver<T, E> for DetachedReceiver {
    fn set_value(self, value: T) {
        drop(value);
        self.done();
    }
    fn set_error(self, error: E) {
        drop(error);
        self.done();
    }
    fn set_stopped(self) {
        self.done();
    }
    fn set_panic(self, payload: PanicPayload) {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "<non-string panic payload>".into());
        eprintln!("exec-io: a detached operation panicked: {msg}");
        drop(payload);
        self.done();
    }
}
