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

pub use then::Then;

pub use bulk::Bulk;
pub use continues_on::ContinuesOn;
pub use dematerialize::Dematerialize;
pub use finally::Finally;
pub use into_result::IntoResult;
pub use map_error::MapError;
pub use materialize::Materialize;
pub use on::{On, OnReturningTo, on, on_returning_to};
pub use starts_on::{StartsOn, starts_on};
pub use stopped_as_error::StoppedAsError;
pub use stopped_as_optional::StoppedAsOptional;
pub use unstoppable::Unstoppable;
pub use upon_error::UponError;
pub use upon_stopped::UponStopped;
pub use with_error::WithError;
pub use write_env::{EnvOverlay, OverlayEnv, WithStopToken, WriteEnv};
mod let_error;
mod let_stopped;
mod let_value;
pub use let_error::{LetError, OnError};
pub use let_stopped::{LetStopped, OnStopped};
pub use let_value::{LetBranch, LetInput, LetStep, LetValue, OnValue};
mod any_sender;
mod frame_cache;
pub use any_sender::AnySender;
mod repeat_effect_until;
mod repeat_n;
pub use repeat_effect_until::{RepeatControl, RepeatEffectUntil, Until};
mod iterate;
pub use iterate::LoopBody;
pub use repeat_effect_until::RepeatBody;
pub use repeat_n::{RepeatN, Times};
mod nary;
mod when_all;
pub use when_all::{WhenAll, when_all};
mod when_all_vec;
pub use when_all_vec::{WhenAllVec, when_all_vec};
mod when_any;
pub use when_any::{WhenAny, when_any};
mod stop_when;
pub use stop_when::{StopWhen, stop_when};
mod split;

pub use split::Split;

mod ensure_started;

pub use ensure_started::EnsureStarted;
#[allow(unused_imports)]
pub(crate) use ensure_started::{Hooks, start_eagerly};
/// Per-thread frame recycling: `AnySender`'s frames, `AsyncScope::spawn`'s
/// blocks, the oneshot channel; public as [`crate::frame`]. Without `std`
/// (no thread-local caches) straight to the global allocator.
pub(crate) use frame_cache::{alloc as frame_alloc, dealloc as frame_dealloc};
pub use write_env::WithScheduler;

/// Operation states and receivers, re-exported by [`crate::ops`].
pub(crate) mod op_types {
    pub use super::any_sender::{AnyOp, AnyReceiver};
    pub use super::bulk::BulkReceiver;
    pub use super::dematerialize::DematerializeReceiver;
    pub use super::ensure_started::{EnsureStartedOp, EnsureStartedReceiver};
    pub use super::finally::{FinallyFirstReceiver, FinallyOp, FinallySecondReceiver};
    pub use super::into_result::IntoResultReceiver;
    pub use super::iterate::{LoopOp, LoopReceiver};
    pub use super::let_value::{LetOp, LetReceiver};
    pub use super::map_error::MapErrorReceiver;
    pub use super::materialize::MaterializeReceiver;
    pub use super::repeat_effect_until::{RepeatOp, RepeatReceiver};
    pub use super::split::{SplitOp, SplitReceiver};
    pub use super::starts_on::{StartsOnOp, StartsOnReceiver, StartsOnScheduleReceiver};
    pub use super::stop_when::{
        StopWhenOp, StopWhenReceiver, StopWhenState, StopWhenTriggerReceiver,
    };
    pub use super::stopped_as_error::StoppedAsErrorReceiver;
    pub use super::stopped_as_optional::StoppedAsOptionalReceiver;
    pub use super::then::ThenReceiver;
    pub use super::upon_error::UponErrorReceiver;
    pub use super::upon_stopped::UponStoppedReceiver;
    pub use super::when_all::{WhenAllOp, WhenAllReceiver, WhenAllState};
    pub use super::when_all_vec::{WhenAllVecOp, WhenAllVecReceiver, WhenAllVecState};
    pub use super::when_any::{WhenAnyOp, WhenAnyReceiver, WhenAnyState};
    pub use super::with_error::WithErrorReceiver;
    pub use super::write_env::WriteEnvReceiver;
}
