//! Sender adaptors: senders built from other senders.

mod inplace;
mod probe;
mod then;

mod bulk;
mod continues_on;
mod dematerialize;
mod finally;
mod into_result;
mod map_error;
mod materialize;
mod on;
mod starts_on;
mod stopped_as_error;
mod stopped_as_optional;
mod unstoppable;
mod upon_error;
mod upon_stopped;
mod with_error;
mod write_env;

pub use then::{Then, ThenReceiver};

pub use bulk::{Bulk, BulkReceiver};
pub use continues_on::ContinuesOn;
pub use dematerialize::{Dematerialize, DematerializeReceiver};
pub use finally::{Finally, FinallyFirstReceiver, FinallyOp, FinallySecondReceiver};
pub use into_result::{IntoResult, IntoResultReceiver};
pub use map_error::{MapError, MapErrorReceiver};
pub use materialize::{Materialize, MaterializeReceiver};
pub use on::{On, OnReturningTo, on, on_returning_to};
pub use starts_on::{StartsOn, StartsOnOp, StartsOnReceiver, StartsOnScheduleReceiver, starts_on};
pub use stopped_as_error::{StoppedAsError, StoppedAsErrorReceiver};
pub use stopped_as_optional::{StoppedAsOptional, StoppedAsOptionalReceiver};
pub use unstoppable::Unstoppable;
pub use upon_error::{UponError, UponErrorReceiver};
pub use upon_stopped::{UponStopped, UponStoppedReceiver};
pub use with_error::{WithError, WithErrorReceiver};
pub use write_env::{EnvOverlay, OverlayEnv, WithStopToken, WriteEnv, WriteEnvReceiver};
mod let_error;
mod let_stopped;
mod let_value;
pub use let_error::{LetError, OnError};
pub use let_stopped::{LetStopped, OnStopped};
pub use let_value::{LetBranch, LetInput, LetOp, LetReceiver, LetStep, LetValue, OnValue};
mod any_sender;
mod frame_cache;
pub use any_sender::{AnyOp, AnyReceiver, AnySender};
mod repeat_effect_until;
mod repeat_n;
pub use repeat_effect_until::{RepeatControl, RepeatEffectUntil, RepeatOp, RepeatReceiver, Until};
mod iterate;
pub use iterate::{LoopBody, LoopOp, LoopReceiver};
pub use repeat_effect_until::RepeatBody;
pub use repeat_n::{RepeatN, Times};
mod nary;
mod when_all;
pub use when_all::{WhenAll, WhenAllOp, WhenAllReceiver, WhenAllState, when_all};
mod when_all_vec;
pub use when_all_vec::{
    WhenAllVec, WhenAllVecOp, WhenAllVecReceiver, WhenAllVecState, when_all_vec,
};
mod when_any;
pub use when_any::{WhenAny, WhenAnyOp, WhenAnyReceiver, WhenAnyState, when_any};
mod stop_when;
pub use stop_when::{
    StopWhen, StopWhenOp, StopWhenReceiver, StopWhenState, StopWhenTriggerReceiver, stop_when,
};
mod split;

pub use split::{Split, SplitOp, SplitReceiver};

mod ensure_started;

pub use ensure_started::{EnsureStarted, EnsureStartedOp, EnsureStartedReceiver};
#[allow(unused_imports)]
pub(crate) use ensure_started::{Hooks, start_eagerly};
/// Per-thread frame recycling, also used by `AsyncScope::spawn`'s blocks.
#[cfg(feature = "std")]
pub(crate) use frame_cache::{alloc as frame_alloc, dealloc as frame_dealloc};
/// Without `std` (no thread-local caches: straight to the global allocator),
/// for the oneshot channel.
#[cfg(not(feature = "std"))]
pub(crate) use frame_cache::{alloc as frame_alloc, dealloc as frame_dealloc};
pub use write_env::WithScheduler;
