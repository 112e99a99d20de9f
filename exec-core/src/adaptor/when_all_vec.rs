use alloc::vec::Vec;
use core::marker::PhantomPinned;
use core::pin::Pin;

use crate::adaptor::nary::{
    ChildOp, Downstream, Failure, Join, JoinParent, Outcome, OutcomeParent, Slot, Verdict,
    uninhabited,
};
use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::{Env, OperationState, PanicPayload, ParentRef, Receiver, Sender, SenderTo};

/// Children per chunk counter (see [`WhenAllVecState::chunks`]); tiny under
/// loom so that a model of three children has two chunks.
const CHUNK: usize = if cfg!(loom) { 2 } else { 32 };
/// From this many children on, arrivals are counted per chunk.
const CHUNKED_FROM: usize = if cfg!(loom) { 3 } else { 2 * CHUNK };

/// Runs every sender of an iterator concurrently and completes with their
/// values, in the iterator's order, as a `Vec`.
///
/// The dynamic form of [`when_all`](fn@crate::when_all), for a number of
/// children known only at run time; the senders share one type (box or
/// type-erase them, or use an enum, if they differ). The same result is
/// available as `iter.collect::<WhenAllVec<_>>()`.
///
/// Allocation: the senders are collected into a `Vec` here; `connect`
/// allocates the children's operation states (one allocation) and their
/// value slots (one more); the output `Vec` is the third. From 64 children
/// on, `connect` allocates one more buffer: a counter per 32 consecutive
/// children, each on its own cache line. A child's completion then
/// decrements its chunk's counter, and only the last of a chunk decrements
/// the shared one, so children completing on different threads (a pool's
/// workers, which steal contiguous runs of them) do not contend on one
/// cache line for every completion.
///
/// # Completion
/// Once every child has completed, exactly once:
/// - value: every child's value, in order — even if stop was requested
///   meanwhile. No children: an empty `Vec`, at once.
/// - error: otherwise the first error (or panic) wins over stopped.
/// - stopped: if some child completed stopped and none failed.
///
/// Values already received are dropped before an error or stopped is
/// forwarded.
///
/// # Cancellation
/// As [`when_all`](fn@crate::when_all): the first child that fails or stops
/// requests stop of its siblings through a stop source in the operation,
/// which is also chained to the receiver's stop token; skipped (children see
/// the receiver's token) when the children can neither fail nor stop.
///
/// # Panics
/// A child's panic counts like an error (first failure wins) and is
/// delivered through [`Receiver::set_panic`] once every child has completed.
///
/// # Example
/// ```
/// use exec_core::{just, sync_wait, when_all_vec, SenderExt};
///
/// let squares = when_all_vec((1..=4).map(|i| just(i).then(|x| x * x)));
/// assert_eq!(sync_wait(squares), Ok(Some(vec![1, 4, 9, 16])));
/// ```
///
/// # See also
/// [`when_all`](fn@crate::when_all), [`when_any`](fn@crate::when_any).
pub fn when_all_vec<I>(senders: I) -> WhenAllVec<I::Item>
where
    I: IntoIterator,
    I::Item: Sender,
{
    WhenAllVec {
        senders: senders.into_iter().collect(),
    }
}

/// Sender for the [`when_all_vec`] function.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Debug)]
pub struct WhenAllVec<S> {
    senders: Vec<S>,
}

impl<S: Sender> FromIterator<S> for WhenAllVec<S> {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        when_all_vec(iter)
    }
}

impl<S: Sender> Sender for WhenAllVec<S> {
    type Output = Vec<S::Output>;
    type Error = S::Error;
    const SENDS_STOPPED: bool = S::SENDS_STOPPED;
}

type StateOf<S, R> = WhenAllVecState<<S as Sender>::Output, <S as Sender>::Error, R>;

impl<S, R> SenderTo<R> for WhenAllVec<S>
where
    S: SenderTo<WhenAllVecReceiver<StateOf<S, R>>>,
    R: Receiver<Vec<S::Output>, S::Error>,
{
    type Operation = WhenAllVecOp<
        StateOf<S, R>,
        ChildOp<S, <S as SenderTo<WhenAllVecReceiver<StateOf<S, R>>>>::Operation>,
    >;

    fn connect(self, receiver: R) -> Self::Operation {
        let n = self.senders.len();
        let stoppable = S::SENDS_STOPPED || !uninhabited::<S::Error>();
        let chunks: Vec<ChunkCount> = if n >= CHUNKED_FROM {
            (0..n.div_ceil(CHUNK))
                .map(|c| ChunkCount(AtomicUsize::new(CHUNK.min(n - c * CHUNK))))
                .collect()
        } else {
            Vec::new()
        };
        // The join counts chunks when there are chunks, else children.
        let refs = if chunks.is_empty() { n } else { chunks.len() };
        WhenAllVecOp {
            state: WhenAllVecState {
                join: Join::new(refs, stoppable),
                chunks,
                outcome: Outcome::new(),
                values: (0..n).map(|_| Slot::new()).collect(),
                receiver: Downstream::new(receiver),
            },
            children: self.senders.into_iter().map(ChildOp::new).collect(),
            _pin: PhantomPinned,
        }
    }
}

/// What the children of a [`WhenAllVec`] share.
pub struct WhenAllVecState<T, E, R> {
    /// Counts children (fewer than `CHUNKED_FROM`) or unfinished chunks.
    join: Join<Self>,
    /// Empty for fewer than `CHUNKED_FROM` children. Otherwise one counter
    /// per `CHUNK` consecutive children (the last chunk may be shorter),
    /// initialised to the chunk's size: while it is non-zero, the chunk
    /// holds one reference of `join`, which its last child to arrive gives
    /// up (see [`arrive`](Self::arrive)).
    chunks: Vec<ChunkCount>,
    outcome: Outcome<E>,
    /// Slot `i` is written only by child `i`.
    values: Vec<Slot<T>>,
    receiver: Downstream<R>,
}

impl<T, E, R> core::fmt::Debug for WhenAllVecState<T, E, R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WhenAllVecState")
            .field("join", &self.join)
            .field("children", &self.values.len())
            .field("chunks", &self.chunks.len())
            .finish_non_exhaustive()
    }
}

/// A chunk's count of children that have not arrived, alone on its cache
/// line(s): 128 bytes, as adjacent-line prefetching pairs 64-byte lines.
#[repr(align(128))]
struct ChunkCount(AtomicUsize);

impl<T, E, R: Receiver<Vec<T>, E>> WhenAllVecState<T, E, R> {
    /// Child `index` gives up its reference: directly on `join` without
    /// chunks, else on its chunk, whose last child gives up the chunk's
    /// reference on `join`.
    ///
    /// Ordering: child `i` writes its slot (or the outcome) and then
    /// decrements its chunk's counter with `AcqRel`. The decrements of one
    /// counter are read-modify-writes, so each releases into the release
    /// sequence the next one reads from; the chunk's last decrement
    /// therefore acquires every write its chunk-mates made before they
    /// arrived. Its `AcqRel` decrement of `join` then releases those too,
    /// and the decrement of `join` that reaches zero (the completer, in
    /// [`Join::arrive`]) acquires every chunk's. So every slot write
    /// happens-before the completer reads the slots. (The loom model
    /// `two_chunks_race_into_the_join` reports a causality violation with
    /// the chunk decrement weakened to `Release`, `Acquire` or `Relaxed`,
    /// and with the join's weakened to `Release`.)
    ///
    /// # Safety
    /// Called once per child, by child `index`, which holds its reference
    /// until now and touches nothing of the parent afterwards.
    #[inline]
    unsafe fn arrive(this: ParentRef<Self>, index: usize) {
        if let Some(chunk) = this.get().chunks.get(index / CHUNK)
            && chunk.0.fetch_sub(1, Ordering::AcqRel) != 1
        {
            // Others of the chunk are still running; the last of them
            // carries our writes on to `join`.
            return;
        }
        // SAFETY: we hold a reference of `join`: the child's own (no
        // chunks), or its chunk's, which the last child of the chunk holds.
        unsafe { Join::arrive(this) }
    }

    /// Child `index` ended without a value: records `failure` (`None`: it
    /// was stopped), stops its siblings while it still holds its reference,
    /// and arrives (as `nary::arrive_without_value`, through the chunks).
    ///
    /// # Safety
    /// As [`arrive`](Self::arrive).
    unsafe fn arrive_without_value(
        this: ParentRef<Self>,
        index: usize,
        failure: Option<Failure<E>>,
    ) {
        let state = this.get();
        match failure {
            Some(failure) => state.outcome.fail(failure),
            None => state.outcome.stopped(),
        }
        state.join.stop_siblings();
        // SAFETY: per the caller.
        unsafe { Self::arrive(this, index) }
    }
}

// SAFETY: as for `WhenAllState`: atomics, plus cells made exclusive by the
// join protocol (slot `i` by child `i`, the failure by its claimer, the
// receiver by the completer); what crosses threads is `Send`.
unsafe impl<T: Send, E: Send, R: Send> Sync for WhenAllVecState<T, E, R> {}

impl<T, E, R: Receiver<Vec<T>, E>> OutcomeParent for WhenAllVecState<T, E, R> {
    type Error = E;
    fn outcome(&self) -> &Outcome<E> {
        &self.outcome
    }
}

impl<T, E, R: Receiver<Vec<T>, E>> JoinParent for WhenAllVecState<T, E, R> {
    fn join(&self) -> &Join<Self> {
        &self.join
    }

    unsafe fn complete(this: ParentRef<Self>) {
        let state = this.get();
        // SAFETY: we are the completer: every child has arrived.
        let (receiver, verdict) = unsafe { (state.receiver.take(), state.outcome.take()) };
        match verdict {
            Verdict::Values => {
                let values: Vec<T> = state
                    .values
                    .iter()
                    // SAFETY: completer; every child sent its value.
                    .map(|s| unsafe { s.take() }.expect("exec: when_all child sent no value"))
                    .collect();
                receiver.set_value(values)
            }
            Verdict::Stopped => {
                // SAFETY: completer.
                state.values.iter().for_each(|s| drop(unsafe { s.take() }));
                receiver.set_stopped()
            }
            Verdict::Failed(failure) => {
                // SAFETY: completer.
                state.values.iter().for_each(|s| drop(unsafe { s.take() }));
                failure.deliver(receiver)
            }
        }
    }
}

/// Operation state of [`WhenAllVec`]: the shared state, and the children's
/// operation states in one heap buffer that never moves or grows.
pub struct WhenAllVecOp<P, C> {
    state: P,
    children: Vec<C>,
    _pin: PhantomPinned,
}

impl<P, C> core::fmt::Debug for WhenAllVecOp<P, C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WhenAllVecOp")
            .field("children", &self.children.len())
            .finish_non_exhaustive()
    }
}

impl<S, O, T, E, R> OperationState for WhenAllVecOp<WhenAllVecState<T, E, R>, ChildOp<S, O>>
where
    S: SenderTo<WhenAllVecReceiver<WhenAllVecState<T, E, R>>, Operation = O>,
    O: OperationState,
    R: Receiver<Vec<T>, E>,
{
    unsafe fn start(self: Pin<&mut Self>) {
        // SAFETY: we never move out of the op; the children's buffer is
        // never reallocated once started.
        let this: *mut Self = unsafe { self.get_unchecked_mut() };
        // SAFETY: `this` is valid; `state` is never moved.
        let state = unsafe { Pin::new_unchecked(&(*this).state) };
        // SAFETY: `this` is valid; no child runs yet. `as_mut_ptr` creates
        // no reference to the elements, so later children can be borrowed
        // while earlier ones run.
        let (base, n) = unsafe { ((*this).children.as_mut_ptr(), (*this).children.len()) };
        if n == 0 {
            // SAFETY: no children: we are the completer.
            let receiver = unsafe { state.receiver.take() };
            receiver.set_value(Vec::new());
            return;
        }
        // SAFETY: called once, before any child starts.
        unsafe { state.receiver.with(|r| state.join.start(state, &r.env())) };
        for index in 0..n {
            // SAFETY: element `index` is in bounds, pinned in the buffer and
            // kept alive until it completed (it holds a reference). After the
            // last `start` we touch nothing of ours.
            unsafe {
                let receiver = WhenAllVecReceiver {
                    state: ParentRef::new(state),
                    index,
                };
                Pin::new_unchecked(&mut *base.add(index)).start(receiver);
            }
        }
    }
}

/// The receiver each child of a [`WhenAllVec`] is connected to.
pub struct WhenAllVecReceiver<P> {
    state: ParentRef<P>,
    index: usize,
}

impl<P> core::fmt::Debug for WhenAllVecReceiver<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WhenAllVecReceiver")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl<T, E, R: Receiver<Vec<T>, E>> Receiver<T, E> for WhenAllVecReceiver<WhenAllVecState<T, E, R>> {
    fn set_value(self, value: T) {
        // SAFETY: slot `index` belongs to this child, written once, before
        // it arrives.
        unsafe { self.state.get().values[self.index].put(value) };
        // SAFETY: this child holds a reference until now.
        unsafe { WhenAllVecState::arrive(self.state, self.index) };
    }
    fn set_error(self, error: E) {
        let failure = Some(Failure::Error(error));
        // SAFETY: this child holds a reference until now.
        unsafe { WhenAllVecState::arrive_without_value(self.state, self.index, failure) };
    }
    fn set_stopped(self) {
        // SAFETY: this child holds a reference until now.
        unsafe { WhenAllVecState::arrive_without_value(self.state, self.index, None) };
    }
    fn set_panic(self, payload: PanicPayload) {
        let failure = Some(Failure::Panic(payload));
        // SAFETY: this child holds a reference until now.
        unsafe { WhenAllVecState::arrive_without_value(self.state, self.index, failure) };
    }
    fn env(&self) -> impl Env<'_> {
        self.state.get().join.child_env()
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! The chunked count: under loom a chunk holds two children, so three
    //! children make two chunks racing into the join.
    use super::{CHUNK, CHUNKED_FROM, when_all_vec};
    use crate::loom::sync::atomic::Ordering;
    use crate::loom_fixtures::{OnThread, Out, handles, join_all};
    use crate::{OperationState, SenderTo};
    use alloc::boxed::Box;
    use alloc::vec;
    use alloc::vec::Vec;

    /// Three children, each completing on its own thread: two race on the
    /// first chunk's counter, the third (second chunk) races them into the
    /// join. Whoever completes reads every value slot: loom reports a
    /// causality violation unless each slot write happens-before that read
    /// (weakening the chunk decrement to `Release` or `Acquire` does).
    #[test]
    fn two_chunks_race_into_the_join() {
        const {
            assert!(
                CHUNK == 2 && CHUNKED_FROM == 3,
                "the model needs two chunks"
            )
        };
        ::loom::model(|| {
            let hs = handles();
            let (out, seen, completions) = Out::<Vec<u32>>::new();
            let children = (0..3u32).map(|i| OnThread {
                handles: hs.clone(),
                value: i * 10,
                touch_after_spawn: false,
            });
            let mut op = Box::pin(when_all_vec(children).connect(out));
            // SAFETY: `op` is dropped only after every completing thread
            // has been joined, i.e. after the operation completed.
            unsafe { op.as_mut().start() };
            join_all(&hs);
            assert_eq!(completions.load(Ordering::Relaxed), 1);
            assert_eq!(seen.lock().unwrap().take(), Some(vec![0, 10, 20]));
            drop(op);
        });
    }
}
