//! Sender factories: senders made from nothing but values.

mod just;
mod just_error;
mod just_stopped;
mod read_env;

pub use just::{Just, just};
pub use just_error::{JustError, just_error};
pub use just_stopped::{JustStopped, just_stopped};
pub use read_env::{ReadEnv, read_env};
mod schedule_on_current;
pub use schedule_on_current::{ScheduleOnCurrent, schedule_on_current};
mod schedule;
pub use schedule::schedule;
mod loop_with_state;
pub use loop_with_state::{LoopWithState, StateBody, loop_with_state};

/// Operation states and receivers, re-exported by [`crate::ops`].
pub(crate) mod op_types {
    pub use super::just_error::JustErrorOp;
    pub use super::just_stopped::JustStoppedOp;
    pub use super::read_env::ReadEnvOp;
}
