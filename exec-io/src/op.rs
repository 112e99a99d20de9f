//! The one generic operation state every loop operation uses, and the
//! [`Header`] the loop queues.
//!
//! An operation is an [`Action`] (what to try on the loop thread: a
//! syscall, a deadline check) wrapped in an [`IoOp`] that owns the
//! receiver, registers the stop callback and is the queue node itself.
//!
//! # Where an operation is, between `start` and completion
//! Exactly one of: in the inbox, its link queued for a start; in the
//! loop's ready queue; the waiter of a readiness slot; the owner of a
//! timer; waiting for a blocking thread; or being run by the loop. In all
//! but the first its link may additionally be in the inbox, queued for a
//! cancel; `finish` unlinks it before completing. (One link serves both: a
//! start queued while a cancel is takes that entry over, and every start
//! checks for stop; a cancel adds nothing to a queued start.) So every
//! pointer the loop holds refers to a live operation, and an operation is
//! completed once.

use core::cell::Cell;
use core::marker::PhantomPinned;
use core::pin::Pin;
use core::ptr::NonNull;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use exec_core::{Env, OnStop, OperationState, PanicPayload, Receiver, StopCallback, catch_unwind};

use crate::context::Shared;
use crate::inbox::Link;
use crate::loom::cell::UnsafeCell;
use crate::source::RawSource;

/// Why the loop runs an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    /// First run on the loop thread.
    Start,
    /// io_uring, started on the loop thread itself: submit the native
    /// entry now if the action has one and nothing stands in the way (no
    /// stop requested, the entry queued without error), and set
    /// `Header::native`; otherwise do nothing (the caller then queues a
    /// `Start`). Never completes the op, so it runs no receiver and
    /// cannot recurse.
    TryNative,
    /// The readiness or deadline it waited for arrived: try again.
    Ready,
    /// Its stop callback fired.
    Cancel,
    /// The context is being dropped: complete *stopped*.
    Shutdown,
    /// io_uring: the op's entry completed with this result.
    Completed(i32),
    /// io_uring, context being dropped: the op's entry was reaped with this
    /// result; release what it produced (`uring_discard`), complete
    /// *stopped*.
    Reaped(i32),
}

/// What an operation is waiting for, as the loop records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Not registered anywhere (queued, running, or done).
    None,
    /// The waiter of readiness slot `key` (reader unless `write`).
    Io { key: u64, write: bool },
    /// The owner of timer `id`.
    Timer { id: u64 },
    /// io_uring: an entry (native or a readiness poll) is in flight;
    /// `busy` is the address of the source's key cell (used as busy bits
    /// on this backend), `bit` the bit this entry holds (a `u8`: it is
    /// stored in [`WaitCell`]'s spare byte).
    Uring { busy: usize, bit: u8 },
    /// A blocking thread works for the op and hands it back when done.
    Blocking,
}

/// A [`Wait`] in ten bytes of alignment 1 (a `Cell<Wait>` takes sixteen
/// of alignment 8), so it shares the header's last word with the flags:
/// the header, which every op holds, is one word smaller.
pub(crate) struct WaitCell {
    /// The key, timer id or busy-cell address.
    word: Cell<[u8; 8]>,
    /// Which variant (`W_*`).
    tag: Cell<u8>,
    /// `Io`: whether a write; `Uring`: the bit.
    aux: Cell<u8>,
}

const W_NONE: u8 = 0;
const W_IO: u8 = 1;
const W_TIMER: u8 = 2;
const W_URING: u8 = 3;
const W_BLOCKING: u8 = 4;

impl WaitCell {
    fn new(w: Wait) -> Self {
        let c = WaitCell {
            word: Cell::new([0; 8]),
            tag: Cell::new(W_NONE),
            aux: Cell::new(0),
        };
        c.set(w);
        c
    }

    pub(crate) fn get(&self) -> Wait {
        let word = u64::from_ne_bytes(self.word.get());
        match self.tag.get() {
            W_IO => Wait::Io {
                key: word,
                write: self.aux.get() != 0,
            },
            W_TIMER => Wait::Timer { id: word },
            W_URING => Wait::Uring {
                busy: word as usize,
                bit: self.aux.get(),
            },
            W_BLOCKING => Wait::Blocking,
            _ => Wait::None,
        }
    }

    pub(crate) fn set(&self, w: Wait) {
        let (tag, word, aux) = match w {
            Wait::None => (W_NONE, 0, 0),
            Wait::Io { key, write } => (W_IO, key, u8::from(write)),
            Wait::Timer { id } => (W_TIMER, id, 0),
            Wait::Uring { busy, bit } => (W_URING, busy as u64, bit),
            Wait::Blocking => (W_BLOCKING, 0, 0),
        };
        self.word.set(word.to_ne_bytes());
        self.tag.set(tag);
        self.aux.set(aux);
    }

    pub(crate) fn replace(&self, w: Wait) -> Wait {
        let old = self.get();
        self.set(w);
        old
    }
}

/// The part of an operation the loop knows. First field of every op.
#[repr(C)]
pub(crate) struct Header {
    /// In the inbox when started from another thread, handed back by a
    /// blocking thread, or when its stop callback fired: one link serves
    /// all three (a start queued meanwhile takes over a queued cancel, a
    /// cancel adds nothing to a queued start; see `InboxState::push_start`).
    pub(crate) link: Link,
    /// Runs the operation; `*const Header` is the op.
    pub(crate) run: unsafe fn(*const Header, Signal),
    /// The op's loop. Here rather than in [`IoOp`] so the stop callback
    /// ([`PostCancel`]) reaches it through the op pointer alone.
    pub(crate) ctx: Arc<Shared>,
    /// Only touched on the loop thread. (Unaligned, so it and the two
    /// flags below share one word.)
    pub(crate) wait: WaitCell,
    /// Set by the stop callback before it queues `link` for a cancel.
    pub(crate) cancel_posted: AtomicBool,
    /// io_uring: the op's native entry is in flight. Loop thread only.
    /// (Next to `wait` and `cancel_posted`, in what would be padding.)
    pub(crate) native: Cell<bool>,
}

impl Header {
    pub(crate) fn new(run: unsafe fn(*const Header, Signal), ctx: Arc<Shared>) -> Self {
        Header {
            link: Link::new(),
            run,
            ctx,
            wait: WaitCell::new(Wait::None),
            cancel_posted: AtomicBool::new(false),
            native: Cell::new(false),
        }
    }

    /// The header a link belongs to, and whether it was queued for a
    /// cancel (else for a start).
    ///
    /// # Safety
    /// `link` is the link of a live header, just popped from the inbox (so
    /// not linked: no other thread writes it); see [`Link::is_cancel`].
    pub(crate) unsafe fn from_link(link: *const Link) -> (*const Header, bool) {
        // SAFETY: per the contract.
        let is_cancel = unsafe { (*link).is_cancel() };
        let off = core::mem::offset_of!(Header, link);
        (
            (link as *const u8).wrapping_sub(off) as *const Header,
            is_cancel,
        )
    }
}

/// A pointer moved into a callback or thread (keeps provenance, unlike an
/// address cast to `usize`).
pub(crate) struct SendPtr<T>(*const T);

impl<T> SendPtr<T> {
    pub(crate) fn new(p: *const T) -> Self {
        SendPtr(p)
    }
    /// (A method, so closures capture the whole `SendPtr`.)
    pub(crate) fn get(&self) -> *const T {
        self.0
    }
}

// SAFETY: a plain address; whoever dereferences it says why the pointee
// is alive and may be used from that thread.
unsafe impl<T> Send for SendPtr<T> {}

/// One step of an [`Action`].
#[derive(Debug)]
pub enum Step<T, E> {
    /// Finished with this result.
    Done(Result<T, E>),
    /// Not yet: run again when this becomes true.
    Wait(Interest),
}

/// What an action waits for.
#[derive(Debug)]
pub enum Interest {
    /// The source became readable (or closed, or errored).
    Read(RawSource),
    /// The source became writable (or closed, or errored).
    Write(RawSource),
    /// The clock passed this instant.
    Until(Instant),
    /// io_uring: submit the native entry again (a partial write).
    Resubmit,
    /// Run `job` on a blocking thread; the op runs again (`Ready`) when it
    /// returned. The job may write into buffers the action owns.
    Blocking(BlockingJob),
}

/// Work an operation hands to a blocking thread (file I/O on the readiness
/// backend); the operation runs again on the loop once the work returned.
pub struct BlockingJob(pub(crate) Box<dyn FnOnce() + Send>);

impl core::fmt::Debug for BlockingJob {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("BlockingJob")
    }
}

/// The operation-specific part of an [`IoOp`], run on the loop thread.
///
/// Sealed: implemented only by this crate's operations (its methods name
/// crate-private types, so it cannot be implemented outside).
pub trait Action: Send {
    /// Value type.
    type Output;
    /// Error type.
    type Error;
    /// Whether a stop request cancels the action while it waits (`false`
    /// for `schedule()`, which completes at once on the loop).
    const CANCELLABLE: bool = true;
    /// The loop this action runs on.
    fn ctx(&self) -> &Arc<Shared>;
    /// Try to make progress. Called on the loop thread only.
    fn attempt(&mut self) -> Step<Self::Output, Self::Error>;
    /// Turns a registration failure into this action's error.
    fn wait_failed(e: io::Error) -> Self::Error;
    /// io_uring: the native entry for this action, or `None` to use
    /// [`attempt`](Self::attempt) with readiness polls. The entry may point
    /// into buffers the action owns (it lives in the pinned op).
    /// Also returns the source and whether it is a write (for the
    /// one-pending-operation-per-direction rule).
    fn uring_entry(&mut self) -> Option<(io_uring::squeue::Entry, RawSource, bool)> {
        None
    }
    /// io_uring: the native entry completed with `res` (a byte count or a
    /// negated errno). `Step::Wait(Interest::Resubmit)` submits again.
    fn uring_complete(&mut self, res: i32) -> Step<Self::Output, Self::Error> {
        let _ = res;
        unreachable!("uring_complete without uring_entry")
    }
    /// io_uring: the native entry completed with `res` while the context
    /// is dropped; release anything the result owns (an accepted
    /// descriptor). Default: nothing to release.
    fn uring_discard(&mut self, res: i32) {
        let _ = res;
    }
}

/// The stop callback of every op: posts the op's cancel link to its loop.
/// A named type (not a closure), so it is stored inline in the op and
/// registering it allocates nothing; one pointer (the op's loop is read
/// from the op's header), since every op carries it.
pub(crate) struct PostCancel {
    /// The op itself. (`NonNull`, so `Option<PostCancel>` inside the stop
    /// callback is one word too.)
    op: NonNull<Header>,
}

// SAFETY: a plain address of an op that is `Sync` for what the callback
// does with it (see `on_stop`); the callback may run on any thread.
unsafe impl Send for PostCancel {}

impl OnStop for PostCancel {
    fn on_stop(self) {
        let h: *const Header = self.op.as_ptr();
        // SAFETY: the op (and the `Arc<Shared>` its header holds, which is
        // never replaced) is alive while its callback can run: `finish`
        // drops the callback, waiting for a running one, before the op
        // completes. The callback only reads `ctx` (immutable) and goes
        // through the inbox lock and atomics.
        unsafe { (*h).ctx.post_cancel(h) }
    }
}

type CancelCallback = StopCallback<'static, PostCancel>;

/// The operation state of every I/O, timer and schedule sender of this
/// crate: a queue node owned by the caller and pinned while it runs.
#[repr(C)]
pub struct IoOp<A, R> {
    header: Header,
    /// Taken (and dropped) by `finish`. Touched by the starting thread
    /// before the op is handed to the loop, then by the loop thread only.
    action: UnsafeCell<Option<A>>,
    /// Same access rule as `action`.
    receiver: UnsafeCell<Option<R>>,
    /// Registered at `start` (when the receiver's token can stop), dropped
    /// by `finish` before the receiver is completed.
    stop: UnsafeCell<Option<CancelCallback>>,
    _pin: PhantomPinned,
}

impl<A, R> core::fmt::Debug for IoOp<A, R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IoOp").finish_non_exhaustive()
    }
}

// SAFETY: the op is handed from the starting thread to the loop thread
// through the inbox mutex (which orders the hand-off); afterwards only the
// loop thread touches `action`, `receiver`, `stop` and `header.wait`. The
// stop callback only touches the atomics and the inbox (under its lock).
// `A` and `R` must be `Send` because they are moved to the loop thread.
unsafe impl<A: Send, R: Send> Send for IoOp<A, R> {}
// SAFETY: shared references are used concurrently only by the stop
// callback (as above) and by the loop thread (the only one using cells).
unsafe impl<A: Send, R: Send> Sync for IoOp<A, R> {}

impl<A, R> IoOp<A, R>
where
    A: Action,
    R: Receiver<A::Output, A::Error>,
{
    pub(crate) fn new(action: A, receiver: R) -> Self {
        IoOp {
            header: Header::new(Self::run, action.ctx().clone()),
            action: UnsafeCell::new(Some(action)),
            receiver: UnsafeCell::new(Some(receiver)),
            stop: UnsafeCell::new(None),
            _pin: PhantomPinned,
        }
    }

    fn stop_requested(&self) -> bool {
        // SAFETY: loop thread (or the starting thread before hand-off);
        // the receiver is present until `finish`.
        self.receiver.with(|r| unsafe {
            (*r).as_ref()
                .is_some_and(|r| r.env().stop_token().stop_requested())
        })
    }

    /// Runs on the loop thread.
    ///
    /// # Safety
    /// `h` is the header of a live, started `IoOp<A, R>` that is not
    /// registered anywhere any more (the caller removed it), and this is
    /// the loop thread (or the dropping thread at shutdown).
    unsafe fn run(h: *const Header, signal: Signal) {
        // SAFETY: `header` is the first field of the `#[repr(C)]` op.
        let this = unsafe { &*(h as *const Self) };
        match signal {
            Signal::Completed(res) if this.header.native.get() => {
                this.header.native.set(false);
                if res == -libc::ECANCELED {
                    // SAFETY: forwarded contract; the entry was reaped.
                    return unsafe { Self::finish(this, None) };
                }
                let step = catch_unwind(|| {
                    // SAFETY: loop thread; `action` present until `finish`.
                    this.action
                        .with_mut(|a| unsafe { (*a).as_mut().map(|a| a.uring_complete(res)) })
                });
                let step = match step {
                    Ok(step) => step,
                    // SAFETY: forwarded contract (the entry was reaped).
                    Err(p) => return unsafe { Self::finish_panic(this, p) },
                };
                match step {
                    Some(Step::Done(r)) => {
                        // SAFETY: forwarded contract.
                        unsafe { Self::finish(this, Some(r)) }
                    }
                    Some(Step::Wait(_)) if this.stop_requested() => {
                        // SAFETY: forwarded contract.
                        unsafe { Self::finish(this, None) }
                    }
                    Some(Step::Wait(Interest::Resubmit)) => {
                        // SAFETY: forwarded contract.
                        if let Some(Err(e)) = unsafe { this.submit_native(h) } {
                            // SAFETY: forwarded contract.
                            unsafe { Self::finish(this, Some(Err(e))) }
                        }
                    }
                    Some(Step::Wait(interest)) => {
                        // Not ready (EAGAIN): wait for readiness with a
                        // poll; the next run submits the native entry.
                        // SAFETY: as in the readiness path below.
                        if let Err(e) = unsafe { this.header.ctx.wait(h, interest) } {
                            // SAFETY: forwarded contract.
                            unsafe { Self::finish(this, Some(Err(A::wait_failed(e)))) }
                        }
                    }
                    None => {}
                }
            }
            Signal::TryNative => {
                if !this.stop_requested() {
                    // SAFETY: loop thread; forwarded contract. An error
                    // leaves nothing behind (`native` stays false): the
                    // queued `Start` meets it again and reports it.
                    let _ = unsafe { this.submit_native(h) };
                }
            }
            Signal::Start | Signal::Ready | Signal::Completed(_) => {
                if this.stop_requested() {
                    // SAFETY: forwarded contract.
                    return unsafe { Self::finish(this, None) };
                }
                if this.header.ctx.is_uring() {
                    // SAFETY: loop thread; forwarded contract.
                    match unsafe { this.submit_native(h) } {
                        Some(Ok(())) => return,
                        // SAFETY: forwarded contract.
                        Some(Err(e)) => return unsafe { Self::finish(this, Some(Err(e))) },
                        None => {}
                    }
                }
                let step = catch_unwind(|| {
                    // SAFETY: loop thread; `action` present until `finish`.
                    this.action
                        .with_mut(|a| unsafe { (*a).as_mut().map(|a| a.attempt()) })
                });
                let step = match step {
                    Ok(step) => step,
                    // SAFETY: forwarded contract (nothing is registered).
                    Err(p) => return unsafe { Self::finish_panic(this, p) },
                };
                match step {
                    Some(Step::Done(res)) => {
                        // SAFETY: forwarded contract.
                        unsafe { Self::finish(this, Some(res)) }
                    }
                    Some(Step::Wait(interest)) => {
                        // SAFETY: `h` stays alive until it completes, which
                        // happens only through the loop after this wait.
                        if let Err(e) = unsafe { this.header.ctx.wait(h, interest) } {
                            // SAFETY: forwarded contract.
                            unsafe { Self::finish(this, Some(Err(A::wait_failed(e)))) }
                        }
                    }
                    None => {}
                }
            }
            Signal::Cancel => {
                // SAFETY: loop thread; `h` is registered as `wait` says.
                if this.header.wait.get() != Wait::None && unsafe { this.header.ctx.cancel_wait(h) }
                {
                    // SAFETY: forwarded contract; no longer registered.
                    unsafe { Self::finish(this, None) }
                }
            }
            Signal::Reaped(res) => {
                if this.header.native.replace(false) {
                    // SAFETY: loop (or dropping) thread; `action` present
                    // until `finish`.
                    this.action
                        .with_mut(|a| unsafe { (*a).as_mut().map(|a| a.uring_discard(res)) });
                }
                // SAFETY: forwarded contract.
                unsafe { Self::finish(this, None) }
            }
            // SAFETY: forwarded contract.
            Signal::Shutdown => unsafe { Self::finish(this, None) },
        }
    }

    /// io_uring: submits the action's native entry, if it has one
    /// (`None` if not). The caller completes the op on `Some(Err)`.
    ///
    /// # Safety
    /// As for `run`.
    unsafe fn submit_native(&self, h: *const Header) -> Option<Result<(), A::Error>> {
        // SAFETY: loop thread; `action` present until `finish`.
        let entry = self
            .action
            .with_mut(|a| unsafe { (*a).as_mut().and_then(|a| a.uring_entry()) });
        let (entry, raw, write) = entry?;
        // SAFETY: the entry points into the action, inside this pinned op,
        // which completes only after the entry's completion is reaped.
        Some(
            match unsafe { self.header.ctx.submit_native(h, entry, raw, write) } {
                Ok(()) => {
                    self.header.native.set(true);
                    Ok(())
                }
                Err(e) => Err(A::wait_failed(e)),
            },
        )
    }

    /// Completes the receiver with `res` (`None` = stopped). Drops the stop
    /// callback and the action first. Takes a raw pointer, not `&self`: the
    /// receiver may free the op, and no reference to it may be live (as a
    /// function argument) across that.
    ///
    /// # Safety
    /// `this` is a live op; called once, by the thread that owns the op's
    /// cells at that moment, with the op registered nowhere.
    unsafe fn finish(this: *const Self, res: Option<Result<A::Output, A::Error>>) {
        // SAFETY: forwarded contract.
        unsafe {
            Self::complete(this, move |r| match res {
                Some(Ok(v)) => r.set_value(v),
                Some(Err(e)) => r.set_error(e),
                None => r.set_stopped(),
            })
        }
    }

    /// Completes the receiver with a panic of the action's code.
    ///
    /// # Safety
    /// As for `finish`.
    unsafe fn finish_panic(this: *const Self, payload: PanicPayload) {
        // SAFETY: forwarded contract.
        unsafe { Self::complete(this, move |r| r.set_panic(payload)) }
    }

    /// Takes the receiver out (dropping what the op holds) and runs `f` on
    /// it. This is the loop's panic boundary: if the receiver itself panics
    /// (its own code; algorithms deliver panics of user code through
    /// `set_panic` instead), the panic is contained and re-raised by the
    /// loop's `run`/`run_until` after the turn (`context::contain_panic`),
    /// so the loop and the other operations carry on.
    ///
    /// # Safety
    /// As for `finish`.
    unsafe fn complete(this: *const Self, f: impl FnOnce(R)) {
        // SAFETY: alive per the contract; `me` is not used after the
        // receiver was taken out.
        let me = unsafe { &*this };
        // SAFETY: forwarded contract.
        let receiver = unsafe { me.take_receiver() };
        // From here on we must not touch the op: the owner may free it.
        if let Some(r) = receiver
            && let Err(p) = catch_unwind(move || f(r))
        {
            crate::context::contain_panic(p);
        }
    }

    /// Drops the stop callback and the action, unlinks a posted cancel, and
    /// takes the receiver out.
    ///
    /// # Safety
    /// As for `finish`.
    unsafe fn take_receiver(&self) -> Option<R> {
        // SAFETY: we own the cells (contract). Assigning drops the
        // callback in place (it is pinned there); dropping it deregisters
        // it and waits for a running callback to return.
        self.stop.with_mut(|s| unsafe { *s = None });
        if self.header.cancel_posted.load(Ordering::Acquire) {
            let mut inbox = self.header.ctx.inbox.lock();
            // SAFETY: the link is ours and alive; lock held.
            unsafe { inbox.unlink(&self.header.link) };
        }
        self.header.wait.set(Wait::None);
        // SAFETY: as above.
        let action = self.action.with_mut(|a| unsafe { (*a).take() });
        drop(action);
        // SAFETY: as above.
        self.receiver.with_mut(|r| unsafe { (*r).take() })
    }
}

impl<A, R> OperationState for IoOp<A, R>
where
    A: Action,
    R: Receiver<A::Output, A::Error>,
{
    unsafe fn start(self: Pin<&mut Self>) {
        let this: &Self = self.into_ref().get_ref();
        // Derived from the whole op (not `&this.header`), so the loop may
        // turn it back into a pointer to the op.
        let h: *const Header = (this as *const Self).cast();
        if A::CANCELLABLE {
            // SAFETY: not yet handed to the loop: this thread owns the cells.
            // SAFETY: we own the cells. The callback is dropped in `finish`
            // before the receiver (whose env produced the token) is
            // completed, so the detached token does not outlive its source.
            let token = this
                .receiver
                .with(|r| unsafe { (*r).as_ref().map(|r| r.env().stop_token().detach()) });
            if let Some(token) = token.filter(|t| t.stop_possible()) {
                let f = PostCancel {
                    // SAFETY: derived from a reference: not null.
                    op: unsafe { NonNull::new_unchecked(h.cast_mut()) },
                };
                // SAFETY: we own the cell; the callback is created in place
                // and pinned there: the op is pinned and `finish` drops the
                // callback in place.
                this.stop.with_mut(|s| unsafe {
                    *s = Some(StopCallback::new(token, f));
                    let cb = (*s).as_mut().unwrap_unchecked();
                    Pin::new_unchecked(cb).register();
                });
            }
        }
        // SAFETY: the op is pinned and alive until it completes (start's
        // contract); it is registered nowhere yet.
        if !unsafe { this.header.ctx.submit(h) } {
            // The context is gone: complete stopped here.
            // SAFETY: never handed to a loop; this thread owns the cells.
            unsafe { Self::finish(this, None) }
        }
    }
}
