//! `repeat_effect_until` and the loop body `repeat_n` shares: run a clone
//! of a sender again and again in one operation state, without growing the
//! stack. The loop itself is `iterate.rs`'s ([`LoopOp`]).

use core::ops::ControlFlow;

use crate::adaptor::iterate::{LoopBody, LoopOp, LoopReceiver};
use crate::{Receiver, Sender, SenderTo};

/// Sender for the [`repeat_effect_until`](crate::SenderExt::repeat_effect_until) method.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Debug)]
pub struct RepeatEffectUntil<S, P> {
    sender: S,
    pred: P,
}

impl<S, P> RepeatEffectUntil<S, P> {
    pub(crate) fn new(sender: S, pred: P) -> Self {
        RepeatEffectUntil { sender, pred }
    }
}

impl<S: Sender, P: FnMut(S::Output) -> bool> Sender for RepeatEffectUntil<S, P> {
    type Output = ();
    type Error = S::Error;
    const SENDS_STOPPED: bool = true;
}

impl<S, P, R> SenderTo<R> for RepeatEffectUntil<S, P>
where
    S: Sender
        + Clone
        + SenderTo<
            RepeatReceiver<
                <S as Sender>::Output,
                <S as Sender>::Error,
                (RepeatBody<S, Until<P>>, R),
            >,
        >,
    P: FnMut(S::Output) -> bool,
    R: Receiver<(), S::Error>,
{
    type Operation = RepeatOp<S, Until<P>, R>;
    fn connect(self, receiver: R) -> Self::Operation {
        RepeatOp::new(RepeatBody::new(self.sender, Until(self.pred)), receiver)
    }
}

/// When a repeat loop ends. Implemented by [`Until`]
/// (`repeat_effect_until`) and [`Times`](crate::Times) (`repeat_n`); public
/// only because it appears in their operation types.
pub trait RepeatControl<T> {
    /// Whether to finish before running the sender at all.
    fn done_before_first(&mut self) -> bool;
    /// An iteration sent `value`: whether to finish now.
    fn done_after(&mut self, value: T) -> bool;
}

/// The [`RepeatControl`] of `repeat_effect_until`: finish once the predicate
/// returns `true` for an iteration's value.
#[derive(Clone, Debug)]
pub struct Until<P>(P);

impl<T, P: FnMut(T) -> bool> RepeatControl<T> for Until<P> {
    fn done_before_first(&mut self) -> bool {
        false
    }
    fn done_after(&mut self, value: T) -> bool {
        (self.0)(value)
    }
}

/// The [`LoopBody`] of `repeat_effect_until` and `repeat_n`: clones the
/// sender for every iteration while its [`RepeatControl`] says to go on;
/// public only because it appears in their operation types.
#[derive(Clone, Debug)]
pub struct RepeatBody<S, C> {
    sender: S,
    control: C,
}

impl<S, C> RepeatBody<S, C> {
    pub(crate) fn new(sender: S, control: C) -> Self {
        RepeatBody { sender, control }
    }
}

impl<S, C> LoopBody for RepeatBody<S, C>
where
    S: Sender + Clone,
    C: RepeatControl<S::Output>,
{
    type Sender = S;
    type Output = ();
    type Carry = ();
    fn decide(&mut self, last: Option<S::Output>) -> ControlFlow<(), ()> {
        let done = match last {
            None => self.control.done_before_first(),
            Some(value) => self.control.done_after(value),
        };
        if done {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
    fn next(&mut self, (): ()) -> S {
        self.sender.clone()
    }
}

/// The receiver each iteration of a repeat loop is connected to (the
/// shared loop's [`LoopReceiver`]).
pub type RepeatReceiver<T, E, M> = LoopReceiver<T, E, M>;

/// Operation state of [`RepeatEffectUntil`] and [`RepeatN`](crate::RepeatN)
/// (the shared loop's [`LoopOp`]).
pub type RepeatOp<S, C, R> = LoopOp<RepeatBody<S, C>, R>;
