//! [`loop_with_state`]: a loop of senders that hands owned state from one
//! iteration to the next, in one operation state.
//!
//! `repeat_effect_until` runs clones of one sender, so state that changes
//! hands between iterations (a connection's buffer, moved into a read and
//! given back with the bytes) would need a shared cell. This loop instead
//! calls `f(state)` for every iteration; the sender `f` returns sends
//! `ControlFlow::Continue(next_state)` or `ControlFlow::Break(value)`. The
//! loop itself (iterating, not recursing, when iterations complete inline)
//! is the one `repeat_effect_until` uses: [`LoopOp`] (`adaptor/iterate.rs`).

use core::fmt;
use core::marker::PhantomData;
use core::ops::ControlFlow;

use crate::ops::{LoopOp, LoopReceiver};
use crate::{LoopBody, Receiver, Sender, SenderTo};

/// Runs `f(state)`, then `f` of the state its sender continued with, and so
/// on, until an iteration sends `ControlFlow::Break(value)`; completes with
/// that `value`.
///
/// Each iteration owns the state it was given and hands it (or a new one)
/// back through `Continue`, so a connection loop keeps its buffer without
/// sharing it. Only the running iteration's operation is alive (each one is
/// connected in the place of the previous one): no allocation per
/// iteration, no stack growth when iterations complete inline.
///
/// # Completion
/// - value: the `Break` value of the last iteration.
/// - error: the first iteration error, forwarded; the loop ends.
/// - stopped: an iteration completed *stopped*, or a stop request was seen
///   between iterations.
///
/// # Cancellation
/// Each iteration sees the receiver's stop token (and its scheduler); the
/// token is also checked before each iteration.
///
/// # Panics
/// A panic in `f` or of an iteration ends the loop and is delivered through
/// [`Receiver::set_panic`].
///
/// # Example
/// ```
/// use core::ops::ControlFlow;
/// use exec_core::{just, loop_with_state, sync_wait, SenderExt};
///
/// // Double a number until it exceeds 100, one sender per step.
/// let s = loop_with_state(3u32, |n| {
///     just(n * 2).then(|m| if m > 100 { ControlFlow::Break(m) } else { ControlFlow::Continue(m) })
/// });
/// assert_eq!(sync_wait(s), Ok(Some(192)));
/// ```
///
/// # See also
/// [`SenderExt::repeat_effect_until`](crate::SenderExt::repeat_effect_until)
/// (clones one sender, shares this loop),
/// [`SenderExt::let_value`](crate::SenderExt::let_value).
pub fn loop_with_state<St, F, N, T>(state: St, f: F) -> LoopWithState<St, F>
where
    F: FnMut(St) -> N,
    N: Sender<Output = ControlFlow<T, St>>,
{
    LoopWithState { state, f }
}

/// Sender for the [`loop_with_state`] function.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone)]
pub struct LoopWithState<St, F> {
    state: St,
    f: F,
}

impl<St, F> fmt::Debug for LoopWithState<St, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopWithState").finish_non_exhaustive()
    }
}

impl<St, F, N, T> Sender for LoopWithState<St, F>
where
    F: FnMut(St) -> N,
    N: Sender<Output = ControlFlow<T, St>>,
{
    type Output = T;
    type Error = N::Error;
}

impl<St, F, N, T, R> SenderTo<R> for LoopWithState<St, F>
where
    F: FnMut(St) -> N,
    N: Sender<Output = ControlFlow<T, St>>
        + SenderTo<LoopReceiver<<N as Sender>::Output, <N as Sender>::Error, (StateBody<St, F>, R)>>,
    R: Receiver<T, N::Error>,
{
    type Operation = LoopOp<StateBody<St, F>, R>;
    fn connect(self, receiver: R) -> Self::Operation {
        // The state waits in the loop's stash (idle until the first
        // iteration), not in the body: it is only needed before the first
        // iteration, and the body lives as long as the loop.
        LoopOp::with_first(
            StateBody {
                f: self.f,
                _state: PhantomData,
            },
            ControlFlow::Continue(self.state),
            receiver,
        )
    }
}

/// The [`LoopBody`] of [`loop_with_state`]: hands each `Continue` state
/// (the first one is the initial state, which the loop holds until it
/// starts) to the next iteration; public only because it appears in the
/// operation type.
pub struct StateBody<St, F> {
    /// Makes each iteration's sender.
    f: F,
    /// The state is never stored here (it travels through the iterations).
    _state: PhantomData<fn(St) -> St>,
}

impl<St, F> fmt::Debug for StateBody<St, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateBody").finish_non_exhaustive()
    }
}

impl<St, F, N, T> LoopBody for StateBody<St, F>
where
    F: FnMut(St) -> N,
    N: Sender<Output = ControlFlow<T, St>>,
{
    type Sender = N;
    type Output = T;
    type Carry = St;
    fn decide(&mut self, last: Option<ControlFlow<T, St>>) -> ControlFlow<T, St> {
        match last {
            Some(flow) => flow,
            // The loop is made `with_first` (the initial state) and starts
            // once, so only a second `start` gets here.
            None => panic!("loop_with_state: started twice"),
        }
    }
    fn next(&mut self, state: St) -> N {
        (self.f)(state)
    }
}
