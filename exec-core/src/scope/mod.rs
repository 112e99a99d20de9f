//! Structured scopes: [`AsyncScope`] (P3149 `counting_scope`).

#[cfg(feature = "std")]
mod async_scope;

#[cfg(feature = "std")]
pub use async_scope::{
    Associate, AssociateOp, AssociateReceiver, AsyncScope, Join, JoinOp, ScopeHooks, SpawnFuture,
    SpawnReceiver,
};
