use super::finally::Finally;
use crate::Scheduler;

/// Sender for the [`continues_on`](crate::SenderExt::continues_on) method.
///
/// `continues_on(sched)` is [`finally`](crate::SenderExt::finally) with
/// `sched.schedule()` as the second sender: the predecessor's completion is
/// stored in the operation while the schedule operation runs, then delivered
/// from the scheduler's context. Being the same type costs nothing and keeps
/// one audited implementation.
pub type ContinuesOn<S, Sch> = Finally<S, <Sch as Scheduler>::Sender>;
