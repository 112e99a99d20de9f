//! The io_uring driver: submission of native operations and of readiness
//! polls (for operations without a native form), completion reaping, and
//! the eventfd that wakes the loop from other threads.
//!
//! # Buffers and lifetimes
//! Every submitted entry carries the address of its operation's header as
//! `user_data`. Native entries point into buffers owned by that operation's
//! action, inside the pinned operation state; the operation does not
//! complete (so its memory is not freed) before the entry's completion has
//! been reaped, also when it is cancelled (the cancel only hurries the
//! completion along) and when the context is dropped (shutdown cancels
//! everything and reaps until nothing is in flight).

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use io_uring::{IoUring, opcode, squeue, types};

use crate::op::Header;

/// `user_data` of the eventfd read that wakes the loop.
const WAKE: u64 = u64::MAX;
/// `user_data` of cancel requests (their completions are ignored).
const CANCEL: u64 = u64::MAX - 1;
/// `user_data` of the close of a direct descriptor: its completion frees
/// the slot in [`Uring::direct_used`]'s count.
const CLOSE_DIRECT: u64 = u64::MAX - 2;
/// `user_data` of the other operations on direct descriptors that nobody
/// waits for (a shutdown); their completions are ignored.
const SLOT_MISC: u64 = u64::MAX - 3;

/// An operation on a direct descriptor (a slot of the ring's registered
/// file table) that no operation state waits for: queued by a stream's
/// drop or by a `shutdown`, submitted by the loop. It points at no memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlotOp {
    /// Close the slot (the stream's last handle is gone).
    Close(u32),
    /// `shutdown(2)` the socket in the slot with this `how`.
    Shutdown(u32, i32),
    /// Set `TCP_NODELAY` on the socket in the slot (`URING_CMD`, 6.7+).
    SetNoDelay(u32, bool),
    /// Set `SO_LINGER` to zero on the socket in the slot (`URING_CMD`).
    LingerZero(u32),
}

/// Option values the kernel reads for [`SlotOp::SetNoDelay`] and
/// [`SlotOp::LingerZero`]: statics, so they outlive any entry.
static ONE: libc::c_int = 1;
static ZERO: libc::c_int = 0;
static LINGER_ZERO: libc::linger = libc::linger {
    l_onoff: 1,
    l_linger: 0,
};

/// Hashes the header addresses of the in-flight set: one multiplication
/// (the addresses are distinct and aligned; SipHash's resistance to chosen
/// keys buys nothing here and costs a visible share of a round trip).
#[derive(Default)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, n: usize) {
        // Fibonacci hashing; the high bits (which hashbrown uses for its
        // control bytes) depend on every bit of the address.
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The ring and what is in flight on it. Loop-thread only.
pub(crate) struct Uring {
    ring: IoUring,
    wake_fd: OwnedFd,
    /// Target of the armed eventfd read.
    wake_buf: Box<u64>,
    wake_armed: bool,
    /// Headers of operations with an entry in flight.
    inflight: HashSet<usize, BuildHasherDefault<AddrHasher>>,
    /// The kernel took the 5.19 setup flags, so it also knows 5.19's
    /// `IORING_RECVSEND_POLL_FIRST` (older ones reject it).
    modern: bool,
    /// Size of the registered (sparse) file table of direct descriptors;
    /// 0 if none was registered.
    direct_cap: u32,
    /// Slots of that table counted as taken: accepts in flight that may
    /// fill one, live direct streams, and closes not yet completed. An
    /// accept asks for a direct slot only while this is below
    /// `direct_cap`, because a direct accept that finds the table full
    /// fails with `ENFILE` *after* accepting, and the kernel then closes
    /// the connection it accepted.
    direct_used: u32,
}

/// Creates the eventfd the loop's waker writes to.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the result is checked.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Wakes a loop blocked on `fd` (an eventfd).
pub(crate) fn wake(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live local; errors (a full counter)
    // mean the loop is already due to wake.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

impl Uring {
    /// A ring of `entries` submission entries (rounded up to a power of
    /// two, at least 64) and eight times as many completion entries (a
    /// server keeps a read in flight per connection, and a turn that
    /// reaps them all should not overflow into the kernel's slower
    /// overflow list).
    ///
    /// Setup flags, where the kernel has them (each set falls back to the
    /// next): `COOP_TASKRUN` + `TASKRUN_FLAG` (5.19: completions that
    /// arrive while the loop runs do not interrupt it with an IPI; they
    /// are processed at its next `io_uring_enter`, and the kernel flags
    /// the ring when some are pending, so a turn that has nothing to
    /// submit can skip the syscall) and `SUBMIT_ALL` (5.18: an entry that
    /// fails inline does not stop the rest of the batch).
    ///
    /// Not used: `SINGLE_ISSUER`/`DEFER_TASKRUN`. They bind the ring to
    /// one thread, but an `IoContext` may be run by one thread and later
    /// by another, and is shut down (cancels submitted, completions
    /// reaped) by whichever thread drops it; on another thread the
    /// kernel refuses to enter the ring (`EEXIST`), and the shutdown
    /// could not wait for the kernel to let go of the operations'
    /// buffers.
    pub(crate) fn new(entries: u32, wake_fd: OwnedFd) -> io::Result<Self> {
        let entries = entries.next_power_of_two().max(64);
        let cq = entries.saturating_mul(8);
        let mut modern = true;
        let ring = IoUring::builder()
            .setup_cqsize(cq)
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .setup_submit_all()
            .build(entries)
            .or_else(|_| {
                modern = false;
                IoUring::builder().setup_cqsize(cq).build(entries)
            })
            .or_else(|_| IoUring::builder().build(entries))?;
        Ok(Uring {
            modern,
            ring,
            wake_fd,
            wake_buf: Box::new(0),
            wake_armed: false,
            inflight: HashSet::default(),
            direct_cap: 0,
            direct_used: 0,
        })
    }

    /// Registers a sparse table of `n` direct descriptors (all slots free).
    pub(crate) fn register_direct(&mut self, n: u32) -> io::Result<()> {
        self.ring.submitter().register_files_sparse(n)?;
        self.direct_cap = n;
        Ok(())
    }

    /// The size of the direct-descriptor table (0: none).
    pub(crate) fn direct_capacity(&self) -> u32 {
        self.direct_cap
    }

    /// Slots of the direct-descriptor table counted as taken (see
    /// `direct_used`).
    pub(crate) fn direct_in_use(&self) -> u32 {
        self.direct_used
    }

    /// Counts one slot as taken for an accept about to be submitted;
    /// `false` if the table is (or may be) full.
    pub(crate) fn direct_reserve(&mut self) -> bool {
        if self.direct_used < self.direct_cap {
            self.direct_used += 1;
            true
        } else {
            false
        }
    }

    /// Gives back a slot counted by [`direct_reserve`](Self::direct_reserve)
    /// that the accept did not fill (it failed or was cancelled).
    pub(crate) fn direct_unreserve(&mut self) {
        self.direct_used = self.direct_used.saturating_sub(1);
    }

    /// Submits `op`. A close that
    /// cannot be queued leaves its slot taken (and counted) until the ring
    /// is dropped, which frees the whole table.
    pub(crate) fn slot_op(&mut self, op: SlotOp) {
        let entry = match op {
            SlotOp::Close(slot) => opcode::Close::new(types::Fixed(slot))
                .build()
                .user_data(CLOSE_DIRECT),
            SlotOp::Shutdown(slot, how) => opcode::Shutdown::new(types::Fixed(slot), how)
                .build()
                .user_data(SLOT_MISC),
            SlotOp::SetNoDelay(slot, on) => {
                let v: &'static libc::c_int = if on { &ONE } else { &ZERO };
                opcode::SetSockOpt::new(
                    types::Fixed(slot),
                    libc::IPPROTO_TCP as u32,
                    libc::TCP_NODELAY as u32,
                    (v as *const libc::c_int).cast(),
                    core::mem::size_of::<libc::c_int>() as u32,
                )
                .build()
                .user_data(SLOT_MISC)
            }
            SlotOp::LingerZero(slot) => opcode::SetSockOpt::new(
                types::Fixed(slot),
                libc::SOL_SOCKET as u32,
                libc::SO_LINGER as u32,
                (&LINGER_ZERO as *const libc::linger).cast(),
                core::mem::size_of::<libc::linger>() as u32,
            )
            .build()
            .user_data(SLOT_MISC),
        };
        // SAFETY: a close or shutdown points at no memory; a setsockopt
        // points at a static option value, alive for ever.
        if unsafe { self.push(&entry) }.is_ok() {
            // Submitted at once, as the system call it stands for would
            // be: a loop that is not run again (a `run_until` that just
            // returned) must not hold a close or a shutdown back. (Rare
            // next to reads and writes: one syscall per connection.)
            let _ = self.ring.submit();
        }
    }

    /// Queues `entry`, submitting first if the queue is full.
    ///
    /// # Safety
    /// Whatever `entry` points to stays valid until its completion has been
    /// reaped.
    unsafe fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: forwarded contract.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            self.ring.submit()?;
        }
    }

    /// Submits the native entry of operation `h`.
    ///
    /// # Safety
    /// `h` is a live op that will not complete before this entry's
    /// completion is reaped; the entry's buffers live in that op.
    pub(crate) unsafe fn submit_native(
        &mut self,
        h: *const Header,
        entry: squeue::Entry,
    ) -> io::Result<()> {
        let entry = entry.user_data(h as u64);
        // SAFETY: forwarded contract.
        unsafe { self.push(&entry)? };
        self.inflight.insert(h as usize);
        Ok(())
    }

    /// Submits a one-shot readiness poll on `fd` for operation `h`.
    ///
    /// # Safety
    /// `h` is a live op that will not complete before the poll's completion
    /// is reaped.
    pub(crate) unsafe fn poll_add(
        &mut self,
        h: *const Header,
        raw: &crate::source::RawSource,
        write: bool,
    ) -> io::Result<()> {
        let mask = if write {
            libc::POLLOUT
        } else {
            libc::POLLIN | libc::POLLRDHUP
        } | libc::POLLERR
            | libc::POLLHUP;
        let entry = match raw.fixed {
            Some(slot) => opcode::PollAdd::new(types::Fixed(slot), mask as u32).build(),
            None => opcode::PollAdd::new(types::Fd(raw.fd), mask as u32).build(),
        }
        .user_data(h as u64);
        // SAFETY: a poll points at no memory.
        unsafe { self.push(&entry)? };
        self.inflight.insert(h as usize);
        Ok(())
    }

    /// Asks the kernel to cancel `h`'s entry; its completion still arrives.
    pub(crate) fn cancel(&mut self, h: *const Header) {
        let entry = opcode::AsyncCancel::new(h as u64).build().user_data(CANCEL);
        // SAFETY: a cancel points at no memory.
        let _ = unsafe { self.push(&entry) };
    }

    /// Whether receives may carry `IORING_RECVSEND_POLL_FIRST` (Linux
    /// 5.19; this ring was set up with that kernel's flags).
    pub(crate) fn recv_poll_first(&self) -> bool {
        self.modern
    }

    /// Whether anything is in flight for operations.
    pub(crate) fn has_inflight(&self) -> bool {
        !self.inflight.is_empty()
    }

    /// Cancels every operation in flight (used at shutdown).
    pub(crate) fn cancel_all(&mut self) {
        let all: Vec<usize> = self.inflight.iter().copied().collect();
        for h in all {
            self.cancel(h as *const Header);
        }
    }

    /// Submits, then waits for at least one completion unless `timeout`
    /// is zero, at most `timeout` if given; calls `f(header, result)` for
    /// each operation completion reaped.
    pub(crate) fn park(
        &mut self,
        timeout: Option<Duration>,
        mut f: impl FnMut(*const Header, i32),
    ) -> io::Result<()> {
        if !self.wake_armed {
            let entry = opcode::Read::new(
                types::Fd(self.wake_fd.as_raw_fd()),
                (&mut *self.wake_buf as *mut u64).cast(),
                8,
            )
            .build()
            .user_data(WAKE);
            // SAFETY: `wake_buf` is boxed and lives as long as the ring
            // (`Uring` drops the ring first, see `Drop`).
            unsafe { self.push(&entry)? };
            self.wake_armed = true;
        }
        let res = match timeout {
            Some(d) if d.is_zero() => {
                // Nothing to submit, nothing the kernel holds back (task
                // work flagged by `TASKRUN_FLAG`, an overflowed CQ): the
                // completions are in the shared ring already, reap them
                // without a syscall.
                let sq = self.ring.submission();
                if sq.is_empty() && !sq.taskrun() && !sq.cq_overflow() {
                    Ok(0)
                } else {
                    drop(sq);
                    self.ring.submit()
                }
            }
            Some(d) => {
                let ts = types::Timespec::from(d);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
            None => self.ring.submit_and_wait(1),
        };
        match res {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => return Err(e),
        }
        let Uring {
            ring,
            inflight,
            wake_armed,
            direct_used,
            ..
        } = self;
        for cqe in ring.completion() {
            match cqe.user_data() {
                WAKE => *wake_armed = false,
                CANCEL | SLOT_MISC => {}
                CLOSE_DIRECT => *direct_used = direct_used.saturating_sub(1),
                h => {
                    inflight.remove(&(h as usize));
                    f(h as *const Header, cqe.result());
                }
            }
        }
        Ok(())
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        // Operations are all reaped by shutdown before we get here; the
        // eventfd read may still be armed: wait for it to be cancelled so
        // the kernel never writes into a freed `wake_buf`.
        if self.wake_armed {
            let entry = opcode::AsyncCancel::new(WAKE).build().user_data(CANCEL);
            // SAFETY: a cancel points at no memory.
            if unsafe { self.push(&entry) }.is_ok() {
                for _ in 0..100 {
                    if self.ring.submit_and_wait(1).is_err() {
                        break;
                    }
                    let mut seen = false;
                    for cqe in self.ring.completion() {
                        seen |= cqe.user_data() == WAKE;
                    }
                    if seen {
                        self.wake_armed = false;
                        break;
                    }
                }
            }
            if self.wake_armed {
                // Could not confirm: leak the buffer rather than free it.
                std::mem::forget(std::mem::replace(&mut self.wake_buf, Box::new(0)));
            }
        }
    }
}
