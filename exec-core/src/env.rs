//! Environments: what a receiver tells the operation it is connected to.

use crate::stop::StopToken;

/// The queries an operation can ask of its receiver's environment.
///
/// Every query has a default answer, so adding a query never breaks an
/// existing environment. An environment is obtained with
/// [`Receiver::env`](crate::Receiver::env) and usually borrows the receiver.
pub trait Env {
    /// The stop token operations should observe. Default: one on which stop
    /// is never requested.
    #[inline]
    fn stop_token(&self) -> StopToken<'_> {
        StopToken::never()
    }
}

/// The environment that answers every query with its default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmptyEnv;

impl Env for EmptyEnv {}

impl<E: Env + ?Sized> Env for &E {
    #[inline]
    fn stop_token(&self) -> StopToken<'_> {
        (**self).stop_token()
    }
}
