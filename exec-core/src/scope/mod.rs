//! Structured scopes: [`AsyncScope`] (P3149 `counting_scope`).

#[cfg(feature = "std")]
mod async_scope;

#[cfg(feature = "std")]
pub use async_scope::{Associate, AsyncScope, Join, ScopeHooks, SpawnFuture};

/// Operation states and receivers, re-exported by [`crate::ops`].
pub(crate) mod op_types {
    #[cfg(feature = "std")]
    pub use super::async_scope::{AssociateOp, AssociateReceiver, JoinOp, SpawnReceiver};
}
