//! `repeat_n`: run a sender `n` times in a row. Built on the loop of
//! `repeat_effect_until` ([`RepeatOp`](super::repeat_effect_until::RepeatOp)).

use crate::adaptor::repeat_effect_until::{RepeatBody, RepeatControl, RepeatOp, RepeatReceiver};
use crate::{Receiver, Sender, SenderTo};

/// Sender for the [`repeat_n`](crate::SenderExt::repeat_n) method.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Debug)]
pub struct RepeatN<S> {
    sender: S,
    n: usize,
}

impl<S> RepeatN<S> {
    pub(crate) fn new(sender: S, n: usize) -> Self {
        RepeatN { sender, n }
    }
}

impl<S: Sender> Sender for RepeatN<S> {
    type Output = ();
    type Error = S::Error;
    const SENDS_STOPPED: bool = true;
}

impl<S, R> SenderTo<R> for RepeatN<S>
where
    S: Sender
        + Clone
        + SenderTo<
            RepeatReceiver<<S as Sender>::Output, <S as Sender>::Error, (RepeatBody<S, Times>, R)>,
        >,
    R: Receiver<(), S::Error>,
{
    type Operation = RepeatOp<S, Times, R>;
    fn connect(self, receiver: R) -> Self::Operation {
        RepeatOp::new(
            RepeatBody::new(self.sender, Times { remaining: self.n }),
            receiver,
        )
    }
}

/// The [`RepeatControl`] of `repeat_n`: finish after a number of iterations.
#[derive(Clone, Copy, Debug)]
pub struct Times {
    remaining: usize,
}

impl<T> RepeatControl<T> for Times {
    fn done_before_first(&mut self) -> bool {
        self.remaining == 0
    }
    fn done_after(&mut self, value: T) -> bool {
        drop(value);
        self.remaining -= 1;
        self.remaining == 0
    }
}
