//! Anonymous pipes: [`pipe`], [`PipeReader`], [`PipeWriter`].

use std::fmt;
use std::io;
use std::sync::Arc;

use crate::context::IoScheduler;
use crate::source::Source;

/// Creates a non-blocking pipe whose ends run on the loop of `sch`.
///
/// Writing after the reader is gone fails with `BrokenPipe` (Rust programs
/// ignore `SIGPIPE` by default, so there is no signal).
///
/// # Errors
/// The OS error of `pipe2`.
pub fn pipe(sch: &IoScheduler) -> io::Result<(PipeReader, PipeWriter)> {
    let (tx, rx) = mio::unix::pipe::new()?;
    Ok((
        PipeReader {
            src: Source::new_pipe(sch.shared.clone(), rx),
        },
        PipeWriter {
            src: Source::new_pipe(sch.shared.clone(), tx),
        },
    ))
}

/// The reading end of a [`pipe`].
pub struct PipeReader {
    src: Arc<Source<mio::unix::pipe::Receiver>>,
}

impl fmt::Debug for PipeReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipeReader").finish_non_exhaustive()
    }
}

impl PipeReader {
    /// Reads at most `buf.len()` bytes into `buf`; sends `(n, buf)`;
    /// `n == 0` means every writer is gone.
    ///
    /// # Errors
    /// The OS error of `read`.
    pub fn read(
        &self,
        buf: Vec<u8>,
    ) -> crate::IoSender<crate::net::ReadAction<mio::unix::pipe::Receiver>> {
        crate::IoSender::new(crate::net::ReadAction {
            src: self.src.clone(),
            buf: Some(buf),
        })
    }
}

/// The writing end of a [`pipe`].
pub struct PipeWriter {
    src: Arc<Source<mio::unix::pipe::Sender>>,
}

impl fmt::Debug for PipeWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipeWriter").finish_non_exhaustive()
    }
}

impl PipeWriter {
    /// Writes some of `buf`; sends `(n, buf)`.
    ///
    /// # Errors
    /// The OS error of `write` (`BrokenPipe` when the reader is gone).
    pub fn write(
        &self,
        buf: Vec<u8>,
    ) -> crate::IoSender<crate::net::WriteAction<mio::unix::pipe::Sender>> {
        crate::IoSender::new(crate::net::WriteAction {
            src: self.src.clone(),
            buf: Some(buf),
        })
    }

    /// Writes all of `buf`; sends `buf` back.
    ///
    /// # Errors
    /// The first OS error.
    pub fn write_all(
        &self,
        buf: Vec<u8>,
    ) -> crate::IoSender<crate::net::WriteAllAction<mio::unix::pipe::Sender>> {
        crate::IoSender::new(crate::net::WriteAllAction {
            src: self.src.clone(),
            buf: Some(buf),
            pos: 0,
        })
    }
}
