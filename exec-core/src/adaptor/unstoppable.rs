use super::write_env::{WithStopToken, WriteEnv};

/// Sender for the [`unstoppable`](crate::SenderExt::unstoppable) method:
/// [`write_env`](crate::SenderExt::write_env) with an overlay that reports
/// a never-stop token.
pub type Unstoppable<S> = WriteEnv<S, WithStopToken<'static>>;
