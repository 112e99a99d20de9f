//! [`Source`]: a non-blocking descriptor owned by an I/O object, with its
//! (lazily created) readiness registration on the loop.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::context::{KeyCell, Shared};

/// A descriptor and its registration. Shared (`Arc`) by the I/O object and
/// the operations running on it, so it outlives them.
pub(crate) struct Source<T: AsRawFd> {
    pub(crate) ctx: Arc<Shared>,
    /// Registration key on the loop, `0` until the first wait. Written by
    /// the loop thread only.
    key: KeyCell,
    /// A socket (send with `MSG_NOSIGNAL`) rather than a pipe.
    pub(crate) socket: bool,
    pub(crate) io: T,
}

/// What the loop needs to register a wait on a source: its descriptor and
/// its key cell. Only used on the loop thread, while the source is alive.
#[derive(Debug)]
pub struct RawSource {
    pub(crate) fd: RawFd,
    pub(crate) key: *const KeyCell,
}

impl<T: AsRawFd> Source<T> {
    pub(crate) fn new(ctx: Arc<Shared>, io: T) -> Arc<Self> {
        Arc::new(Source {
            ctx,
            key: KeyCell::new(0),
            socket: true,
            io,
        })
    }

    /// A source that is not a socket (a pipe end).
    pub(crate) fn new_pipe(ctx: Arc<Shared>, io: T) -> Arc<Self> {
        Arc::new(Source {
            ctx,
            key: KeyCell::new(0),
            socket: false,
            io,
        })
    }

    pub(crate) fn raw(&self) -> RawSource {
        RawSource {
            fd: self.io.as_raw_fd(),
            key: &self.key,
        }
    }
}

impl<T: AsRawFd> Drop for Source<T> {
    fn drop(&mut self) {
        let key = self.key.load(Ordering::Relaxed);
        if key != 0 && !self.ctx.is_uring() {
            self.ctx.release(key, self.io.as_raw_fd());
        }
        // `io` closes the descriptor when it drops, after this.
    }
}
