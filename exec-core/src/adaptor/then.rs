use crate::{Env, PanicPayload, Receiver, Sender, SenderTo, catch_unwind};

/// Sender for the [`then`](crate::SenderExt::then) method.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone, Debug)]
pub struct Then<S, F> {
    sender: S,
    f: F,
}

impl<S, F> Then<S, F> {
    pub(crate) fn new(sender: S, f: F) -> Self {
        Then { sender, f }
    }
}

impl<S, F, U> Sender for Then<S, F>
where
    S: Sender,
    F: FnOnce(S::Output) -> U,
{
    type Output = U;
    type Error = S::Error;
    const SENDS_STOPPED: bool = S::SENDS_STOPPED;
}

impl<S, F, U, R> SenderTo<R> for Then<S, F>
where
    S: SenderTo<ThenReceiver<R, F>>,
    F: FnOnce(S::Output) -> U,
    R: Receiver<U, S::Error>,
{
    type Operation = S::Operation;
    fn connect(self, receiver: R) -> S::Operation {
        self.sender.connect(ThenReceiver {
            receiver,
            f: self.f,
        })
    }
}

/// The receiver [`Then`] connects its predecessor to.
#[derive(Debug)]
pub struct ThenReceiver<R, F> {
    receiver: R,
    f: F,
}

impl<R, F, T, E, U> Receiver<T, E> for ThenReceiver<R, F>
where
    F: FnOnce(T) -> U,
    R: Receiver<U, E>,
{
    fn set_value(self, value: T) {
        let ThenReceiver { receiver, f } = self;
        match catch_unwind(move || f(value)) {
            Ok(u) => receiver.set_value(u),
            Err(payload) => receiver.set_panic(payload),
        }
    }
    fn set_error(self, error: E) {
        let ThenReceiver { receiver, f } = self;
        drop(f);
        receiver.set_error(error)
    }
    fn set_stopped(self) {
        let ThenReceiver { receiver, f } = self;
        drop(f);
        receiver.set_stopped()
    }
    fn set_panic(self, payload: PanicPayload) {
        let ThenReceiver { receiver, f } = self;
        drop(f);
        receiver.set_panic(payload)
    }
    fn env(&self) -> impl Env<'_> {
        self.receiver.env()
    }
}
