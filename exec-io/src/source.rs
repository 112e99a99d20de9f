//! [`Source`]: a non-blocking descriptor owned by an I/O object, with its
//! (lazily created) readiness registration on the loop.

use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::context::{KeyCell, RECV_DRAINED, Shared};
use crate::uring::SlotOp;

/// A descriptor and its registration. Shared (`Arc`) by the I/O object and
/// the operations running on it, so it outlives them.
pub(crate) struct Source<T: AsRawFd> {
    pub(crate) ctx: Arc<Shared>,
    /// Registration key on the loop, `0` until the first wait. Written by
    /// the loop thread only.
    key: KeyCell,
    /// A socket (send with `MSG_NOSIGNAL`) rather than a pipe.
    pub(crate) socket: bool,
    /// io_uring: the socket is the direct descriptor in slot `n - 1` of the
    /// loop's registered file table (it has no descriptor in the process's
    /// table: `io` then holds none either). Closed on the loop when the
    /// source is dropped. Four bytes, so that a TCP stream's shared state
    /// stays in glibc's 64-B chunk (see `source_stays_small`).
    direct: Option<NonZeroU32>,
    pub(crate) io: T,
}

/// What the loop needs to register a wait on a source: its descriptor and
/// its key cell. Only used on the loop thread, while the source is alive.
#[derive(Debug)]
pub struct RawSource {
    pub(crate) fd: RawFd,
    /// io_uring: the direct descriptor's slot (then `fd` is meaningless).
    pub(crate) fixed: Option<u32>,
    pub(crate) key: *const KeyCell,
}

impl<T: AsRawFd> Source<T> {
    pub(crate) fn new(ctx: Arc<Shared>, io: T) -> Arc<Self> {
        Arc::new(Source {
            ctx,
            key: KeyCell::new(0),
            socket: true,
            direct: None,
            io,
        })
    }

    /// A socket that is the direct descriptor in `slot` of `ctx`'s ring
    /// (io_uring); the source owns the slot and closes it when dropped.
    pub(crate) fn new_direct(ctx: Arc<Shared>, io: T, slot: u32) -> Arc<Self> {
        Arc::new(Source {
            ctx,
            key: KeyCell::new(0),
            socket: true,
            // Slots are below the kernel's 2^20 maximum.
            direct: NonZeroU32::new(slot.wrapping_add(1)),
            io,
        })
    }

    /// A source that is not a socket (a pipe end).
    pub(crate) fn new_pipe(ctx: Arc<Shared>, io: T) -> Arc<Self> {
        Arc::new(Source {
            ctx,
            key: KeyCell::new(0),
            socket: false,
            direct: None,
            io,
        })
    }

    /// io_uring: whether the last receive on this socket returned fewer
    /// bytes than it asked for (it emptied the receive queue), so the next
    /// one most likely finds nothing and should wait for data before it
    /// tries (`IORING_RECVSEND_POLL_FIRST`) instead of failing once with
    /// `EAGAIN` inside the kernel first. Loop thread only (the key cell's
    /// bits are loop-thread state on this backend, see `take_busy`).
    pub(crate) fn recv_drained(&self) -> bool {
        self.key.load(Ordering::Relaxed) & RECV_DRAINED != 0
    }

    /// io_uring: records how the last receive went (see
    /// [`recv_drained`](Self::recv_drained)). Loop thread only.
    pub(crate) fn set_recv_drained(&self, drained: bool) {
        let cur = self.key.load(Ordering::Relaxed);
        let new = if drained {
            cur | RECV_DRAINED
        } else {
            cur & !RECV_DRAINED
        };
        if new != cur {
            self.key.store(new, Ordering::Relaxed);
        }
    }

    /// io_uring: the direct-descriptor slot this socket lives in, if any.
    #[inline]
    pub(crate) fn fixed(&self) -> Option<u32> {
        self.direct.map(|n| n.get() - 1)
    }

    pub(crate) fn raw(&self) -> RawSource {
        RawSource {
            fd: self.io.as_raw_fd(),
            fixed: self.fixed(),
            key: &self.key,
        }
    }
}

impl<T: AsRawFd> Drop for Source<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.fixed() {
            // Every operation on the slot has completed (each holds the
            // source): close it on the loop, which owns the ring.
            self.ctx.slot_op(SlotOp::Close(slot));
            return;
        }
        let key = self.key.load(Ordering::Relaxed);
        if key != 0 && !self.ctx.is_uring() {
            self.ctx.release(key, self.io.as_raw_fd());
        }
        // `io` closes the descriptor when it drops, after this.
    }
}

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    /// A TCP stream's shared state (`Arc<Source<TcpIo>>`, one per
    /// connection) stays at 56 bytes with the `Arc` counts: glibc's 64-B
    /// chunk. Raising it costs every connection 16 B (issue 4's RSS
    /// figure).
    #[test]
    fn source_stays_small() {
        let size = core::mem::size_of::<super::Source<crate::net::tcp::TcpIo>>();
        assert!(size <= 40, "Source<TcpIo> is {size} B");
    }
}
