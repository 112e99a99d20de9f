use core::convert::Infallible;
use core::fmt;
use core::marker::PhantomPinned;
use core::pin::Pin;

use crate::{Env, OperationState, Receiver, Sender, SenderTo, catch_unwind};

/// A sender that, when started, asks the receiver's environment a query and
/// sends the answer as its value.
///
/// `f` sees the environment as `&dyn Env` and returns an owned value: its
/// type `T` cannot borrow the environment (the signature is
/// `for<'e> FnOnce(&'e dyn Env) -> T`, so `T` does not depend on `'e`), and
/// the environment is gone by the time the value is delivered.
///
/// # Completion
/// - value: `f(env)`, inline in `start`.
/// - error: never (`Error = Infallible`).
/// - stopped: never.
///
/// # Cancellation
/// None: it completes inline. (Asking the environment about cancellation is
/// one of its uses, see the example.)
///
/// # Panics
/// A panic in `f` is caught and delivered through
/// [`Receiver::set_panic`](crate::Receiver::set_panic).
///
/// # Example
/// ```
/// use exec_core::{read_env, sync_wait};
/// // sync_wait's environment carries a stop token that never stops.
/// let possible = sync_wait(read_env(|env| env.stop_token().stop_possible()));
/// assert_eq!(possible, Ok(Some(false)));
/// ```
///
/// The value cannot borrow the environment:
/// ```compile_fail
/// use exec_core::{read_env, sync_wait};
/// let token = sync_wait(read_env(|env| env.stop_token()));
/// ```
///
/// # See also
/// [`write_env`](crate::SenderExt::write_env), [`Env`].
pub fn read_env<F, T>(f: F) -> ReadEnv<F>
where
    F: FnOnce(&dyn Env<'_>) -> T,
{
    ReadEnv { f }
}

/// Sender for the [`read_env`] function.
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone)]
pub struct ReadEnv<F> {
    f: F,
}

impl<F> fmt::Debug for ReadEnv<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadEnv").finish_non_exhaustive()
    }
}

impl<F, T> Sender for ReadEnv<F>
where
    F: FnOnce(&dyn Env<'_>) -> T,
{
    type Output = T;
    type Error = Infallible;
    const SENDS_STOPPED: bool = false;
}

impl<F, T, R> SenderTo<R> for ReadEnv<F>
where
    F: FnOnce(&dyn Env<'_>) -> T,
    R: Receiver<T, Infallible>,
{
    type Operation = ReadEnvOp<F, R>;
    fn connect(self, receiver: R) -> ReadEnvOp<F, R> {
        ReadEnvOp {
            inner: Some((self.f, receiver)),
            _pin: PhantomPinned,
        }
    }
}

/// Operation state of [`ReadEnv`].
pub struct ReadEnvOp<F, R> {
    inner: Option<(F, R)>,
    /// Never `Unpin`: see [`OperationState`]'s rule on `Unpin`.
    _pin: PhantomPinned,
}

impl<F, R> fmt::Debug for ReadEnvOp<F, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadEnvOp")
            .field("started", &self.inner.is_none())
            .finish()
    }
}

impl<F, T, R> OperationState for ReadEnvOp<F, R>
where
    F: FnOnce(&dyn Env<'_>) -> T,
    R: Receiver<T, Infallible>,
{
    unsafe fn start(self: Pin<&mut Self>) {
        // SAFETY: nothing here is structurally pinned; we only take the
        // option's contents out.
        let this = unsafe { self.get_unchecked_mut() };
        if let Some((f, receiver)) = this.inner.take() {
            let answer = {
                let env = receiver.env();
                catch_unwind(move || f(&env))
            };
            match answer {
                Ok(value) => receiver.set_value(value),
                Err(payload) => receiver.set_panic(payload),
            }
        }
    }
}
