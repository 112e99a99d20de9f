//! Parallel [`bulk`] and [`bulk_chunked`] on the pool: an index space run
//! across the workers, split adaptively.
//!
//! When the input sender completes with a value, up to
//! `min(threads, MAX_HELPERS, n)` helper jobs — embedded in the operation
//! state, so nothing is allocated — are queued on the pool (on a worker, one
//! of them runs inline). Each helper repeatedly claims the next chunk of
//! indices from a shared atomic cursor, with chunks that shrink as the work
//! runs out (guided self-scheduling: a chunk is a fraction of what is left),
//! so fast workers take more chunks and no worker waits on a static share.
//! The helper that finishes last completes the operation: it alone reads the
//! result (value, first panic, or stopped), so results and panics are
//! gathered exactly once.

use core::fmt;
use core::marker::{PhantomData, PhantomPinned};
use core::ops::Range;
use core::pin::Pin;

use exec_core::{
    Env, OperationState, PanicPayload, ParentRef, Receiver, Sender, SenderTo, StopToken,
    catch_unwind,
};

use crate::job::{Job, JobRef, Mode, Payload};
use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::scheduler::PoolScheduler;

/// The most helper jobs one bulk operation uses (they live inline in its
/// operation state).
const MAX_HELPERS: usize = 16;

/// How a bulk sender runs a range of its index space: [`Each`] calls the
/// function once per index, [`Chunked`] once per claimed range.
///
/// ```
/// use exec_pool::BulkBody;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// struct CountIndices(AtomicUsize);
/// impl BulkBody<()> for CountIndices {
///     fn run(&self, range: std::ops::Range<usize>, _: &()) {
///         self.0.fetch_add(range.len(), Ordering::Relaxed);
///     }
/// }
/// let body = CountIndices(AtomicUsize::new(0));
/// body.run(0..10, &());
/// assert_eq!(body.0.into_inner(), 10);
/// ```
pub trait BulkBody<T>: Send + Sync {
    /// Runs the indices in `range` against the input's `value`.
    fn run(&self, range: Range<usize>, value: &T);
}

/// The body of [`bulk`]: `f(i, &value)` for every index.
///
/// ```
/// # use exec_core::{just, sync_wait};
/// let pool = exec_pool::ThreadPool::builder().threads(1).build().unwrap();
/// let sender: exec_pool::Bulk<_, exec_pool::Each<_>> =
///     exec_pool::bulk(&pool.scheduler(), just(()), 3, |_, &()| {});
/// assert_eq!(sync_wait(sender), Ok(Some(())));
/// ```
#[derive(Clone, Debug)]
pub struct Each<F>(F);

impl<T, F: Fn(usize, &T) + Send + Sync> BulkBody<T> for Each<F> {
    #[inline]
    fn run(&self, range: Range<usize>, value: &T) {
        for i in range {
            (self.0)(i, value);
        }
    }
}

/// The body of [`bulk_chunked`]: `f(range, &value)` per claimed chunk.
///
/// ```
/// # use exec_core::{just, sync_wait};
/// let pool = exec_pool::ThreadPool::builder().threads(1).build().unwrap();
/// let sender: exec_pool::Bulk<_, exec_pool::Chunked<_>> =
///     exec_pool::bulk_chunked(&pool.scheduler(), just(()), 3, |r, &()| assert!(r.end <= 3));
/// assert_eq!(sync_wait(sender), Ok(Some(())));
/// ```
#[derive(Clone, Debug)]
pub struct Chunked<F>(F);

impl<T, F: Fn(Range<usize>, &T) + Send + Sync> BulkBody<T> for Chunked<F> {
    #[inline]
    fn run(&self, range: Range<usize>, value: &T) {
        (self.0)(range, value)
    }
}

/// Runs `f(i, &value)` for every `i` in `0..n` in parallel on the pool,
/// once `input` completes with `value`; then sends `value` on.
///
/// # Completion
/// - value: `input`'s value, on a pool worker, after every index ran.
/// - error: `input`'s error; `f` is not called and is dropped first.
/// - stopped: if `input` completes stopped, or stop is requested (the
///   receiver's token) or the pool shuts down before every index ran.
///
/// # Cancellation
/// The receiver's stop token is checked before each claimed chunk; once
/// stop is requested no new chunk starts and the operation completes
/// stopped after the running chunks return.
///
/// # Panics
/// A panic in `f` stops further chunks and, once every running chunk has
/// returned, is delivered through `Receiver::set_panic` — the first one
/// only; later ones are dropped. The worker survives.
///
/// # Example
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use exec_core::{just, sync_wait};
///
/// let pool = exec_pool::ThreadPool::builder().threads(2).build().unwrap();
/// let data: Vec<u64> = (1..=1000).collect();
/// let sum = AtomicU64::new(0);
/// let work = exec_pool::bulk(&pool.scheduler(), just(&data), data.len(), |i, d: &&Vec<u64>| {
///     sum.fetch_add(d[i], Ordering::Relaxed);
/// });
/// assert!(sync_wait(work).unwrap().is_some());
/// assert_eq!(sum.into_inner(), 500_500);
/// ```
///
/// # See also
/// [`bulk_chunked`], which hands `f` whole ranges.
pub fn bulk<S, F>(scheduler: &PoolScheduler, input: S, n: usize, f: F) -> Bulk<S, Each<F>>
where
    S: Sender,
    F: Fn(usize, &S::Output) + Send + Sync,
{
    Bulk {
        scheduler: scheduler.clone(),
        input,
        n,
        body: Each(f),
    }
}

/// Like [`bulk`], but calls `f(range, &value)` once per claimed chunk of
/// `0..n` (the chunks are disjoint and cover `0..n` on success).
///
/// # Completion
/// As [`bulk`].
///
/// # Cancellation
/// As [`bulk`].
///
/// # Panics
/// As [`bulk`].
///
/// # Example
/// ```
/// use std::sync::Mutex;
/// use exec_core::{just, sync_wait};
///
/// let pool = exec_pool::ThreadPool::builder().threads(2).build().unwrap();
/// let input: Vec<u32> = (0..10_000).collect();
/// let partials = Mutex::new(Vec::new());
/// let work = exec_pool::bulk_chunked(&pool.scheduler(), just(()), input.len(), |r, &()| {
///     let s: u64 = input[r].iter().map(|&x| u64::from(x)).sum();
///     partials.lock().unwrap().push(s);
/// });
/// sync_wait(work).unwrap();
/// assert_eq!(partials.into_inner().unwrap().iter().sum::<u64>(), 49_995_000);
/// ```
///
/// # See also
/// [`bulk`].
pub fn bulk_chunked<S, F>(
    scheduler: &PoolScheduler,
    input: S,
    n: usize,
    f: F,
) -> Bulk<S, Chunked<F>>
where
    S: Sender,
    F: Fn(Range<usize>, &S::Output) + Send + Sync,
{
    Bulk {
        scheduler: scheduler.clone(),
        input,
        n,
        body: Chunked(f),
    }
}

/// Sender for the [`bulk`] and [`bulk_chunked`] functions.
///
/// ```
/// # use exec_core::{just, sync_wait};
/// let pool = exec_pool::ThreadPool::builder().threads(2).build().unwrap();
/// let squares: Vec<std::sync::atomic::AtomicUsize> = (0..8).map(|_| Default::default()).collect();
/// let sender = exec_pool::bulk(&pool.scheduler(), just(()), 8, |i, &()| {
///     squares[i].store(i * i, std::sync::atomic::Ordering::Relaxed);
/// });
/// sync_wait(sender).unwrap();
/// assert_eq!(squares[7].load(std::sync::atomic::Ordering::Relaxed), 49);
/// ```
#[must_use = "senders do nothing unless connected and started"]
pub struct Bulk<S, B> {
    scheduler: PoolScheduler,
    input: S,
    n: usize,
    body: B,
}

impl<S: fmt::Debug, B> fmt::Debug for Bulk<S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulk")
            .field("input", &self.input)
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

impl<S: Sender, B> Sender for Bulk<S, B> {
    type Output = S::Output;
    type Error = S::Error;
}

impl<S, B, R> SenderTo<R> for Bulk<S, B>
where
    S: Sender + SenderTo<BulkReceiver<<S as Sender>::Output, <S as Sender>::Error, B, R>>,
    S::Output: Send + Sync,
    B: BulkBody<S::Output>,
    R: Receiver<S::Output, S::Error> + Send,
{
    type Operation = BulkOp<S, B, R>;
    fn connect(self, receiver: R) -> BulkOp<S, B, R> {
        BulkOp {
            shared: BulkShared {
                pool: self.scheduler.shared,
                n: self.n,
                body: UnsafeCell::new(Some(self.body)),
                value: UnsafeCell::new(None),
                receiver: UnsafeCell::new(Some(receiver)),
                stop: UnsafeCell::new(StopToken::never()),
                next: AtomicUsize::new(0),
                active: AtomicUsize::new(0),
                helpers: AtomicUsize::new(0),
                panicked: AtomicBool::new(false),
                panic: UnsafeCell::new(None),
                stopped: AtomicBool::new(false),
                jobs: core::array::from_fn(|_| Job::empty()),
                _e: PhantomData,
                _pin: PhantomPinned,
            },
            input: Some(self.input),
            input_op: None,
        }
    }
}

/// The input's operation state inside a [`BulkOp`].
type InputOp<S, B, R> =
    <S as SenderTo<BulkReceiver<<S as Sender>::Output, <S as Sender>::Error, B, R>>>::Operation;

/// Operation state of [`Bulk`].
pub struct BulkOp<S, B, R>
where
    S: Sender + SenderTo<BulkReceiver<<S as Sender>::Output, <S as Sender>::Error, B, R>>,
{
    /// Structurally pinned: children refer to it.
    shared: BulkShared<S::Output, S::Error, B, R>,
    /// Connected (into `input_op`) at `start`, inside the pinned op.
    input: Option<S>,
    /// Structurally pinned: the input's operation.
    input_op: Option<InputOp<S, B, R>>,
}

impl<S, B, R> fmt::Debug for BulkOp<S, B, R>
where
    S: Sender + SenderTo<BulkReceiver<<S as Sender>::Output, <S as Sender>::Error, B, R>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkOp")
            .field("n", &self.shared.n)
            .finish_non_exhaustive()
    }
}

impl<S, B, R> OperationState for BulkOp<S, B, R>
where
    S: Sender + SenderTo<BulkReceiver<<S as Sender>::Output, <S as Sender>::Error, B, R>>,
    S::Output: Send + Sync,
    B: BulkBody<S::Output>,
    R: Receiver<S::Output, S::Error> + Send,
{
    unsafe fn start(self: Pin<&mut Self>) {
        // SAFETY: `shared` and `input_op` are structurally pinned and never
        // moved out of; `input` is not pinned and only taken.
        let this = unsafe { self.get_unchecked_mut() };
        let Some(input) = this.input.take() else {
            return;
        };
        // SAFETY: `shared` is pinned inside the pinned op, which `start`'s
        // contract keeps alive until it completes; it completes only after
        // the input (holding this reference) and every helper finished.
        let parent = unsafe { ParentRef::new(Pin::new_unchecked(&this.shared)) };
        this.input_op = Some(input.connect(BulkReceiver { parent }));
        // SAFETY: pinned in place inside our pinned op; started once; kept
        // alive until it completes (before we do).
        unsafe {
            let op = this.input_op.as_mut().map(|op| Pin::new_unchecked(op));
            if let Some(op) = op {
                op.start();
            }
        }
    }
}

/// What the input's receiver and the helper jobs share, inside the pinned
/// operation state.
pub(crate) struct BulkShared<T, E, B, R> {
    pool: crate::handle::PoolRef,
    n: usize,
    /// `Some` until the operation completes; read (shared) by the helpers
    /// while they run, taken by whoever completes the operation.
    body: UnsafeCell<Option<B>>,
    /// The input's value: written once by the input's completion before
    /// any helper is queued, read (shared) by the helpers, taken by the
    /// last helper.
    value: UnsafeCell<Option<T>>,
    /// The downstream receiver, taken by whoever completes the operation.
    receiver: UnsafeCell<Option<R>>,
    /// The receiver's stop token (detached), written at dispatch before
    /// any helper is queued, then only read.
    stop: UnsafeCell<StopToken<'static>>,
    /// The next unclaimed index (may overshoot `n`).
    next: AtomicUsize,
    /// Helpers that have not finished. The one that brings it to zero
    /// completes the operation (AcqRel: it sees every other helper's writes).
    active: AtomicUsize,
    /// How many helpers the dispatch uses (for the chunk size).
    helpers: AtomicUsize,
    /// Set by the first panicking chunk, which alone writes `panic`.
    panicked: AtomicBool,
    panic: UnsafeCell<Option<PanicPayload>>,
    /// Set when a helper gave up because stop was requested or the pool
    /// cancelled it.
    stopped: AtomicBool,
    /// The helper jobs (payloads set at dispatch).
    jobs: [Job<Helper<T, E, B, R>>; MAX_HELPERS],
    _e: PhantomData<fn() -> E>,
    _pin: PhantomPinned,
}

impl<T, E, B, R> fmt::Debug for BulkShared<T, E, B, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkShared")
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

// SAFETY: every cell follows the protocol on its field: `value`, `body` and
// `stop` are written before any helper is queued (the queue hand-off orders
// the writes first) and then only read, concurrently — hence `T: Sync`,
// `B: Sync`; they and `receiver` are taken only by the single completer
// (the helper that brought `active` to zero, with AcqRel, or the input's
// completion when no helper exists), possibly on another thread — hence
// `T: Send`, `B: Send`, `R: Send`. `panic` is written by the one helper that
// set `panicked` and read by the completer.
unsafe impl<T: Send + Sync, E, B: Send + Sync, R: Send> Sync for BulkShared<T, E, B, R> {}

impl<T, E, B, R> BulkShared<T, E, B, R>
where
    T: Send + Sync,
    B: BulkBody<T>,
    R: Receiver<T, E> + Send,
{
    /// Claims and runs chunks until none is left.
    fn work(&self) {
        // SAFETY: `value`, `body`, `stop` were written before this helper
        // was queued and are not taken before it finishes (see `active`).
        let (value, body, stop) = unsafe {
            (
                self.value.with(|v| (*v).as_ref()),
                self.body.with(|b| (*b).as_ref()),
                self.stop.with(|s| *s),
            )
        };
        let (Some(value), Some(body)) = (value, body) else {
            return;
        };
        let helpers = self.helpers.load(Ordering::Relaxed).max(1);
        loop {
            let cur = self.next.load(Ordering::Relaxed);
            if cur >= self.n {
                return;
            }
            if stop.stop_requested() {
                self.stopped.store(true, Ordering::Relaxed);
                self.next.fetch_max(self.n, Ordering::Relaxed);
                return;
            }
            // Guided self-scheduling: a fraction of what is left.
            let grain = ((self.n - cur) / (4 * helpers)).max(1);
            let start = self.next.fetch_add(grain, Ordering::Relaxed);
            if start >= self.n {
                return;
            }
            let end = (start + grain).min(self.n);
            if let Err(payload) = catch_unwind(|| body.run(start..end, value)) {
                if !self.panicked.swap(true, Ordering::Relaxed) {
                    // SAFETY: only the helper that set `panicked` writes
                    // the cell; it is read after `active` reached zero.
                    self.panic.with_mut(|p| unsafe { *p = Some(payload) });
                }
                // Stop everyone from claiming more.
                self.next.fetch_max(self.n, Ordering::Relaxed);
                return;
            }
        }
    }

    /// Completes the operation once every helper finished.
    ///
    /// Takes the `ParentRef` rather than `&self`: a reference argument
    /// would have to stay valid for the whole call, but the owner may free
    /// the operation as soon as the receiver is completed.
    ///
    /// # Safety
    /// Called once, by the helper that brought `active` to zero (or by the
    /// dispatcher when there are no helpers).
    unsafe fn complete(parent: ParentRef<Self>) {
        let this = parent.get();
        // SAFETY: per the contract, nobody else touches the cells now.
        let (receiver, body, value, panic) = unsafe {
            (
                this.receiver.with_mut(|r| (*r).take()),
                this.body.with_mut(|b| (*b).take()),
                this.value.with_mut(|v| (*v).take()),
                this.panic.with_mut(|p| (*p).take()),
            )
        };
        drop(body);
        let all_ran = !this.stopped.load(Ordering::Relaxed)
            && !this.panicked.load(Ordering::Relaxed)
            && this.next.load(Ordering::Relaxed) >= this.n;
        let receiver = receiver.expect("bulk completes once");
        // Last touch of `self`: the owner may free the op once we complete.
        match (panic, value) {
            (Some(p), v) => {
                drop(v);
                receiver.set_panic(p)
            }
            (None, Some(v)) if all_ran => receiver.set_value(v),
            (None, v) => {
                drop(v);
                receiver.set_stopped()
            }
        }
    }

    /// Input completed with a value: store it and start the helpers.
    ///
    /// Takes the `ParentRef` rather than `&self` (see `complete`): the last
    /// helper may free the operation while this is still running.
    fn dispatch(parent: ParentRef<Self>, value: T) {
        let this = parent.get();
        // SAFETY: no helper exists yet: we are the only accessor. The token
        // is detached from the receiver's env; the receiver outlives every
        // use of it (helpers read it only before the operation completes).
        unsafe {
            this.value.with_mut(|v| *v = Some(value));
            let token = this
                .receiver
                .with(|r| (*r).as_ref().map(|r| r.env().stop_token().detach()));
            this.stop
                .with_mut(|s| *s = token.unwrap_or(StopToken::never()));
        }
        let h = this.pool.workers.len().min(MAX_HELPERS).min(this.n);
        if h == 0 {
            // SAFETY: no helpers: we are the only one to complete it.
            unsafe { Self::complete(parent) };
            return;
        }
        this.helpers.store(h, Ordering::Relaxed);
        this.active.store(h, Ordering::Relaxed);
        // Our own reference to the pool: the operation (and the `Arc` in
        // it) may be freed as soon as the last helper is queued.
        let pool = this.pool.clone();
        let jobs: [Option<JobRef>; MAX_HELPERS] = core::array::from_fn(|i| {
            (i < h).then(|| {
                let job = &this.jobs[i];
                // SAFETY: the helper jobs are not queued yet and only we
                // touch them; each gets one `ParentRef`, used until the
                // helper finishes, i.e. before the operation completes. The
                // job is pinned inside the pinned op.
                unsafe {
                    job.set_payload(Helper {
                        parent: parent.clone_ref(),
                    });
                    Pin::new_unchecked(job).job_ref()
                }
            })
        });
        let _ = parent; // the helpers hold their own copies
        // From here on `self` may be freed by the last helper.
        let worker = pool.current_worker();
        let mut jobs = jobs.into_iter().flatten();
        let inline = if worker.is_some() { jobs.next() } else { None };
        for job in jobs {
            match worker {
                Some(index) => pool.submit_local(index, job, false),
                None => pool.submit_remote(job),
            }
        }
        if let Some(job) = inline {
            job.execute(Mode::Run);
        }
        drop(pool);
    }

    /// Input did not complete with a value: drop the body, forward.
    fn forward(parent: ParentRef<Self>, deliver: impl FnOnce(R)) {
        let this = parent.get();
        // SAFETY: no helper was ever queued; the input's single completion
        // is the only accessor.
        let (receiver, body) = unsafe {
            (
                this.receiver.with_mut(|r| (*r).take()),
                this.body.with_mut(|b| (*b).take()),
            )
        };
        drop(body);
        deliver(receiver.expect("bulk completes once"))
    }
}

/// A helper job's payload: a reference to the shared state.
struct Helper<T, E, B, R> {
    parent: ParentRef<BulkShared<T, E, B, R>>,
}

impl<T, E, B, R> Payload for Helper<T, E, B, R>
where
    T: Send + Sync,
    B: BulkBody<T>,
    R: Receiver<T, E> + Send,
{
    fn run(self, mode: Mode) {
        let shared = self.parent.get();
        if mode == Mode::Run {
            shared.work();
        } else {
            shared.stopped.store(true, Ordering::Relaxed);
        }
        if shared.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            // SAFETY: we brought `active` to zero.
            unsafe { BulkShared::complete(self.parent) };
        }
    }
}

/// The receiver [`Bulk`] connects its input to.
pub struct BulkReceiver<T, E, B, R> {
    parent: ParentRef<BulkShared<T, E, B, R>>,
}

impl<T, E, B, R> fmt::Debug for BulkReceiver<T, E, B, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkReceiver").finish_non_exhaustive()
    }
}

impl<T, E, B, R> Receiver<T, E> for BulkReceiver<T, E, B, R>
where
    T: Send + Sync,
    B: BulkBody<T>,
    R: Receiver<T, E> + Send,
{
    fn set_value(self, value: T) {
        BulkShared::dispatch(self.parent, value);
    }
    fn set_error(self, error: E) {
        BulkShared::forward(self.parent, |r| r.set_error(error));
    }
    fn set_stopped(self) {
        BulkShared::forward(self.parent, |r| r.set_stopped());
    }
    fn set_panic(self, payload: PanicPayload) {
        BulkShared::forward(self.parent, |r| r.set_panic(payload));
    }
    fn env(&self) -> impl Env<'_> {
        // SAFETY: the receiver is taken only at completion, after which the
        // input no longer asks for its environment.
        let r = unsafe { self.parent.get().receiver.with(|r| (*r).as_ref()) };
        InputEnv(r.map(|r| r.env()))
    }
}

/// The input's environment: the downstream receiver's.
struct InputEnv<V>(Option<V>);

impl<'a, V: Env<'a>> Env<'a> for InputEnv<V> {
    fn stop_token(&self) -> StopToken<'a> {
        self.0
            .as_ref()
            .map_or(StopToken::never(), |e| e.stop_token())
    }
    fn scheduler(&self) -> Option<exec_core::SchedulerRef<'a>> {
        self.0.as_ref().and_then(|e| e.scheduler())
    }
}
