//! Sender adaptors: senders built from other senders.

mod then;

pub use then::{Then, ThenReceiver};
mod let_error;
mod let_stopped;
mod let_value;

pub use let_error::{LetError, OnError};
pub use let_stopped::{LetStopped, OnStopped};
pub use let_value::{LetBranch, LetInput, LetOp, LetReceiver, LetStep, LetValue, OnValue};
mod any_sender;

pub use any_sender::{AnyOp, AnyReceiver, AnySender};
mod repeat_effect_until;
mod repeat_n;

pub use repeat_effect_until::{RepeatControl, RepeatEffectUntil, RepeatOp, RepeatReceiver, Until};
pub use repeat_n::{RepeatN, Times};
