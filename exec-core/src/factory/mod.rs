//! Sender factories: senders made from nothing but values.

mod just;
mod just_error;
mod just_stopped;
mod read_env;

pub use just::{Just, just};
pub use just_error::{JustError, JustErrorOp, just_error};
pub use just_stopped::{JustStopped, JustStoppedOp, just_stopped};
pub use read_env::{ReadEnv, ReadEnvOp, read_env};
mod schedule_on_current;
pub use schedule_on_current::{ScheduleOnCurrent, schedule_on_current};
mod schedule;
pub use schedule::schedule;
mod loop_with_state;
pub use loop_with_state::{LoopWithState, StateBody, loop_with_state};
