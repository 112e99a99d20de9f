//! The loop: [`IoContext`], its builder, its scheduler and its stop handle.
//!
//! # Threads
//! Everything the loop owns (the `mio::Poll`, the readiness slots, the
//! timer table, the ready queue) lives in [`Local`], touched only by the
//! thread currently inside [`IoContext::run`] (recorded in a thread-local,
//! `CURRENT`) or by the thread dropping the context. Other threads reach the
//! loop only through the [`Inbox`] (see `inbox.rs` for the wake protocol).

use core::cell::{Cell, UnsafeCell};
use core::fmt;
use core::pin::pin;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use core::ptr::NonNull;

use exec_core::{
    DynScheduler, Env, NonBlockingGuard, OperationState, PanicPayload, ParentRef, Receiver,
    Scheduler, SchedulerRef, Sender, SenderTo, StopSource, StopToken, TaskNode, TimedScheduler,
};
use mio::unix::SourceFd;
use mio::{Events, Interest as MioInterest, Poll, Token, Waker};

use crate::inbox::Inbox;
use crate::op::{Header, Interest, Signal, Wait};
use crate::sender::IoSender;
use crate::source::RawSource;
use crate::timer::Timers;

const WAKER: Token = Token(usize::MAX);
/// The kernel's largest table of registered files (`IORING_MAX_FIXED_FILES`).
const MAX_DIRECT: u32 = 1 << 20;

std::thread_local! {
    /// The context whose loop this thread is running, or null.
    static CURRENT: Cell<*const Shared> = const { Cell::new(core::ptr::null()) };
    /// The context this thread is shutting down (dropping), or null.
    static SHUTTING_DOWN: Cell<*const Shared> = const { Cell::new(core::ptr::null()) };
}

/// A receiver completed by the loop panicked (the receiver's own code, not
/// user code inside an algorithm, which algorithms catch and deliver through
/// `set_panic`). The loop must not unwind out of the middle of a turn, so
/// the payload is kept here and re-raised by `run`/`run_until` once the
/// turn is over (see `IoContext`'s "Panics" docs). Called on the thread that
/// completed the receiver.
pub(crate) fn contain_panic(payload: PanicPayload) {
    let cur = CURRENT.with(|c| c.get());
    let cur = if cur.is_null() {
        SHUTTING_DOWN.with(|c| c.get())
    } else {
        cur
    };
    if cur.is_null() {
        // Not on a loop (an op completed inline on the starting thread):
        // nothing to protect, the panic continues on this thread.
        std::panic::resume_unwind(payload);
    }
    // SAFETY: `cur` is the context this thread is driving or dropping,
    // alive for as long as that (the thread-local is reset before).
    let shared = unsafe { &*cur };
    let mut slot = shared.contained.lock().unwrap_or_else(|e| e.into_inner());
    // The first panic wins; later ones are dropped (they are reported by
    // the panic hook as they happen).
    if slot.is_none() {
        *slot = Some(payload);
    }
    shared.has_contained.store(true, Ordering::Release);
}

/// Which kernel interface a context uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// The faster backend that works here: [`Backend::IoUring`] (measured
    /// faster than readiness by `benches/io_echo_vs.rs`); if io_uring
    /// cannot start, falls back to [`Backend::Readiness`] with a message on
    /// stderr. The environment variable `EXEC_IO_BACKEND=readiness` (or
    /// `epoll`) forces the readiness backend.
    #[default]
    Auto,
    /// Readiness notification through `mio` (epoll on Linux).
    Readiness,
    /// Completion-based I/O through io_uring (Linux): reads and writes on
    /// streams are native io_uring operations on buffers owned by the
    /// operation; other operations wait for readiness with io_uring polls.
    /// [`IoContextBuilder::build`] fails if io_uring cannot start.
    IoUring,
}

/// Builder for an [`IoContext`].
///
/// ```
/// use exec_io::{Backend, IoContext};
/// let ctx = IoContext::builder().backend(Backend::Readiness).event_capacity(256).build()?;
/// # drop(ctx);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct IoContextBuilder {
    backend: Backend,
    event_capacity: usize,
    direct_descriptors: u32,
}

impl IoContextBuilder {
    /// Chooses the backend (default [`Backend::Auto`]).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// How many readiness events one turn of the loop handles at most
    /// (default 1024).
    pub fn event_capacity(mut self, n: usize) -> Self {
        self.event_capacity = n.max(1);
        self
    }

    /// io_uring: registers a table of `n` *direct descriptors* with the
    /// loop's ring (default 0: none). [`TcpListener::accept`] on this loop
    /// then accepts each connection into a free slot of that table instead
    /// of the process's descriptor table, so a server is not bound by
    /// `RLIMIT_NOFILE` for its connections: each ring's table may hold up
    /// to `RLIMIT_NOFILE` sockets, and a server runs one loop per core.
    /// When the table is full, `accept` falls back to an ordinary
    /// descriptor, so nothing is refused while either kind is left.
    ///
    /// `n` is capped at the soft `RLIMIT_NOFILE` at build time (the
    /// kernel's limit for one table) and at 2^20 (the kernel's maximum);
    /// [`IoContext::direct_descriptors`] says what was registered. A
    /// [`TcpStream`](crate::TcpStream) on a direct descriptor reads,
    /// writes, shuts down and closes through the ring; what it cannot do
    /// is listed at [`TcpStream::is_direct`](crate::TcpStream::is_direct).
    ///
    /// Backends: with [`Backend::Readiness`] [`build`](Self::build) fails
    /// (`InvalidInput`); with [`Backend::Auto`] on a machine (or with an
    /// `EXEC_IO_BACKEND`) where the loop ends up on the readiness
    /// backend, the option is ignored and connections use ordinary
    /// descriptors.
    ///
    /// ```
    /// use exec_io::{Backend, IoContext};
    /// # if IoContext::builder().backend(Backend::IoUring).build().is_err() { return Ok(()) }
    /// let ctx = IoContext::builder().backend(Backend::IoUring).direct_descriptors(4096).build()?;
    /// assert!(ctx.direct_descriptors() > 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// [`TcpListener::accept`]: crate::TcpListener::accept
    pub fn direct_descriptors(mut self, n: u32) -> Self {
        self.direct_descriptors = n;
        self
    }

    /// Creates the context and runs it on a new thread (named `exec-io`)
    /// until the returned [`IoThread`] is dropped or joined.
    ///
    /// # Errors
    /// As [`build`](Self::build), and if the thread cannot be spawned.
    ///
    /// # Example
    /// ```
    /// use exec_core::{Scheduler, SenderExt, sync_wait};
    /// let io = exec_io::IoContext::builder().spawn()?;
    /// let on_loop = sync_wait(io.scheduler().schedule().then(|()| std::thread::current().name().map(String::from)));
    /// assert_eq!(on_loop, Ok(Some(Some("exec-io".to_string()))));
    /// io.join()?; // or drop it: stops the loop and joins the thread
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn(self) -> io::Result<IoThread> {
        let ctx = self.build()?;
        let sch = ctx.scheduler();
        let handle = ctx.handle();
        let thread = std::thread::Builder::new()
            .name("exec-io".into())
            .spawn(move || IoThread::body(ctx))?;
        Ok(IoThread {
            sch,
            handle,
            thread: Some(thread),
        })
    }

    /// Creates the context.
    ///
    /// # Errors
    /// The OS errors of creating the poller and its waker;
    /// `ErrorKind::Unsupported` for [`Backend::IoUring`] where io_uring
    /// cannot start, or the error of registering the
    /// [`direct_descriptors`](Self::direct_descriptors) table;
    /// `ErrorKind::InvalidInput` for direct descriptors on
    /// [`Backend::Readiness`].
    pub fn build(self) -> io::Result<IoContext> {
        let backend = match self.backend {
            Backend::Auto => match std::env::var("EXEC_IO_BACKEND").as_deref() {
                Ok("readiness") | Ok("epoll") => Backend::Readiness,
                // Miri does not model io_uring (it aborts on the syscall).
                _ if cfg!(miri) => Backend::Readiness,
                _ => match self.build_uring() {
                    Ok(ctx) => return Ok(ctx),
                    Err(e) => {
                        eprintln!(
                            "exec-io: io_uring cannot start here ({e}); falling back to the \
                             readiness (epoll) backend"
                        );
                        Backend::Readiness
                    }
                },
            },
            b => b,
        };
        match backend {
            Backend::IoUring => self.build_uring(),
            _ if self.backend == Backend::Readiness && self.direct_descriptors > 0 => {
                Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "exec-io: direct descriptors need the io_uring backend (Backend::IoUring or \
                     Backend::Auto), not Backend::Readiness",
                ))
            }
            _ => self.build_readiness(),
        }
    }

    fn build_readiness(&self) -> io::Result<IoContext> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let registry = poll.registry().try_clone()?;
        Ok(self.finish(
            WakeFd::Mio(waker),
            Some(registry),
            Driver::Mio {
                poll,
                events: Events::with_capacity(self.event_capacity),
            },
            false,
            0,
        ))
    }

    fn build_uring(&self) -> io::Result<IoContext> {
        if cfg!(miri) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring is not available under miri",
            ));
        }
        let fd = crate::uring::eventfd()?;
        let raw = fd.as_raw_fd();
        let mut uring = crate::uring::Uring::new(self.event_capacity as u32, fd)?;
        if self.direct_descriptors > 0 {
            // The kernel refuses a table larger than the soft limit (or
            // than its own maximum, `IORING_MAX_FIXED_FILES`).
            let n = self
                .direct_descriptors
                .min(crate::sys::nofile_limit())
                .min(MAX_DIRECT);
            uring.register_direct(n).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "exec-io: registering a table of {n} io_uring direct descriptors \
                         failed: {e}"
                    ),
                )
            })?;
        }
        let poll_first = uring.recv_poll_first();
        let direct = uring.direct_capacity();
        Ok(self.finish(
            WakeFd::EventFd(raw),
            None,
            Driver::Uring(Box::new(uring)),
            poll_first,
            direct,
        ))
    }

    fn finish(
        &self,
        waker: WakeFd,
        registry: Option<mio::Registry>,
        driver: Driver,
        recv_poll_first: bool,
        direct_capacity: u32,
    ) -> IoContext {
        let shared = Arc::new(Shared {
            inbox: Inbox::new(),
            waker,
            registry,
            driving: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            contained: std::sync::Mutex::new(None),
            has_contained: AtomicBool::new(false),
            recv_poll_first,
            direct_capacity,
            local: UnsafeCell::new(Local {
                driver,
                ready: VecDeque::new(),
                slots: Vec::new(),
                free: Vec::new(),
                timers: Timers::new(),
            }),
        });
        IoContext { shared }
    }
}

/// How other threads wake the loop.
enum WakeFd {
    Mio(Waker),
    /// The eventfd owned by the ring driver (alive as long as `Local`).
    EventFd(RawFd),
}

/// The kernel interface of a loop.
enum Driver {
    Mio { poll: Poll, events: Events },
    Uring(Box<crate::uring::Uring>),
}

/// One readiness registration: the operations waiting on it.
struct Slot {
    generation: u32,
    reader: *const Header,
    writer: *const Header,
}

/// What only the loop thread touches.
pub(crate) struct Local {
    driver: Driver,
    /// Operations to run, in order. Every pointer is a live, started op
    /// registered nowhere else.
    ready: VecDeque<(*const Header, Signal)>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    timers: Timers,
}

/// The state shared by a context, its schedulers, its sources and the
/// operations running on it.
pub struct Shared {
    pub(crate) inbox: Inbox,
    waker: WakeFd,
    /// `None` on the io_uring backend.
    registry: Option<mio::Registry>,
    /// Some thread is inside `run`.
    driving: AtomicBool,
    /// `stop()` was called and `run` has not consumed it yet.
    stop: AtomicBool,
    /// See the module docs: loop thread only.
    local: UnsafeCell<Local>,
    /// A panic contained on the loop ([`contain_panic`]), to re-raise.
    contained: std::sync::Mutex<Option<PanicPayload>>,
    /// `contained` holds a payload (checked once per turn, cheaply).
    has_contained: AtomicBool,
    /// io_uring: receives may carry `IORING_RECVSEND_POLL_FIRST` (the
    /// kernel knows it). Set once at build.
    pub(crate) recv_poll_first: bool,
    /// io_uring: size of the ring's direct-descriptor table (0: none). Set
    /// once at build.
    direct_capacity: u32,
}

// SAFETY: `local` (with its raw pointers) is only accessed by the single
// thread that holds `driving` (while it runs the loop) or by the thread
// dropping the context (which has exclusive access); everything else is
// `Sync` (mutex, atomics, the mio waker and registry).
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

const BUSY_READ: u64 = 1;
const BUSY_WRITE: u64 = 2;
/// io_uring: the last receive on this source returned less than it asked
/// for, so the socket's receive queue was empty afterwards (see
/// [`Source::recv_drained`](crate::source::Source::recv_drained)).
pub(crate) const RECV_DRAINED: u64 = 4;

/// io_uring: claims the source's read or write "busy" bit (its key cell is
/// unused for registration on this backend). The busy bits are only
/// touched by the loop thread (or the thread dropping the context, which
/// then has it to itself), so a plain load and store do (no locked
/// read-modify-write per operation).
fn take_busy(raw: &RawSource, write: bool) -> io::Result<Wait> {
    let bit = if write { BUSY_WRITE } else { BUSY_READ };
    // SAFETY: `raw.key` points into the source the op's action holds.
    let cell = unsafe { &*raw.key };
    let cur = cell.load(Ordering::Relaxed);
    if cur & bit == 0 {
        cell.store(cur | bit, Ordering::Relaxed);
    } else {
        return Err(io::Error::new(
            io::ErrorKind::ResourceBusy,
            "exec-io: another operation is already waiting in this direction on this source",
        ));
    }
    Ok(Wait::Uring {
        busy: raw.key as usize,
        bit: bit as u8,
    })
}

/// Releases what `take_busy` claimed (no-op for other waits).
fn release_busy(wait: Wait) {
    if let Wait::Uring { busy, bit } = wait
        && busy != 0
    {
        // SAFETY: the op whose wait this was holds the source alive.
        let cell = unsafe { &*(busy as *const KeyCell) };
        // Loop thread only (see `take_busy`).
        cell.store(
            cell.load(Ordering::Relaxed) & !u64::from(bit),
            Ordering::Relaxed,
        );
    }
}

fn split_key(key: u64) -> (usize, u32) {
    (((key & 0xffff_ffff) - 1) as usize, (key >> 32) as u32)
}

impl Shared {
    /// Takes the contained panic, if any.
    fn take_contained(&self) -> Option<PanicPayload> {
        if !self.has_contained.load(Ordering::Acquire) {
            return None;
        }
        self.has_contained.store(false, Ordering::Relaxed);
        self.contained
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Whether this thread runs this context's loop.
    pub(crate) fn on_loop(&self) -> bool {
        CURRENT.with(|c| core::ptr::eq(c.get(), self))
    }

    /// # Safety
    /// Loop thread (or the dropping thread), and no other reference from
    /// `local` is alive: callers keep the borrow short and never run user
    /// code (receivers) while holding it.
    #[allow(clippy::mut_from_ref)]
    unsafe fn local(&self) -> &mut Local {
        // SAFETY: per the contract.
        unsafe { &mut *self.local.get() }
    }

    /// Wakes the loop if it is blocked.
    pub(crate) fn wake(&self) {
        match &self.waker {
            WakeFd::Mio(w) => {
                let _ = w.wake();
            }
            WakeFd::EventFd(fd) => crate::uring::wake(*fd),
        }
    }

    /// Whether this loop runs on io_uring.
    pub(crate) fn is_uring(&self) -> bool {
        matches!(self.waker, WakeFd::EventFd(_))
    }

    /// Submits a native io_uring entry for `h` (io_uring backend only).
    ///
    /// # Safety
    /// Loop thread; `h` live and registered nowhere; the entry's buffers
    /// live in `h`'s op, which does not complete before the completion.
    pub(crate) unsafe fn submit_native(
        &self,
        h: *const Header,
        entry: io_uring::squeue::Entry,
        raw: RawSource,
        write: bool,
    ) -> io::Result<()> {
        // SAFETY: loop thread, short borrow.
        let local = unsafe { self.local() };
        let Driver::Uring(u) = &mut local.driver else {
            return Err(io::Error::other(
                "exec-io: native submission on the readiness backend",
            ));
        };
        let wait = take_busy(&raw, write)?;
        // SAFETY: forwarded contract.
        if let Err(e) = unsafe { u.submit_native(h, entry) } {
            release_busy(wait);
            return Err(e);
        }
        // SAFETY: `h` live.
        unsafe { (*h).wait.set(wait) };
        Ok(())
    }

    /// Hands a started op to the loop. Returns `false` if the context is
    /// gone (the caller completes the op itself).
    ///
    /// # Safety
    /// `h` is the header of a pinned, started op registered nowhere, alive
    /// until it completes.
    pub(crate) unsafe fn submit(&self, h: *const Header) -> bool {
        if self.on_loop() {
            if self.is_uring() {
                // Its native entry goes straight into the submission
                // queue, so it leaves with this turn's submission instead
                // of waiting a turn in the ready queue (a server's next
                // read or write, started by the completion of the last).
                // SAFETY: loop thread, no borrow of `local` alive (the
                // callers are ops being run, which hold none); `h` live
                // and registered nowhere, per the contract.
                unsafe {
                    ((*h).run)(h, Signal::TryNative);
                    if (*h).native.get() {
                        return true;
                    }
                }
            }
            // SAFETY: loop thread; short borrow.
            unsafe { self.local().ready.push_back((h, Signal::Start)) };
            return true;
        }
        let mut st = self.inbox.lock();
        if st.closed {
            return false;
        }
        // SAFETY: `h` alive until completion; not queued for a start yet
        // (maybe for a cancel, if stop came during `start`).
        let wake = unsafe { st.push_start(core::ptr::addr_of!((*h).link)) };
        drop(st);
        if wake {
            self.wake();
        }
        true
    }

    /// An owned reference to this state (which always lives in an `Arc`).
    fn me(&self) -> Arc<Shared> {
        let ptr: *const Shared = self;
        // SAFETY: every `Shared` is created by `Arc::new` in the builder and
        // only reached through that `Arc`, which is alive while `&self` is.
        unsafe {
            Arc::increment_strong_count(ptr);
            Arc::from_raw(ptr)
        }
    }

    /// A blocking thread hands op `h` back to the loop (or, if the context
    /// is gone, completes it *stopped* itself).
    ///
    /// # Safety
    /// `h` is a live op in `Wait::Blocking`, owned by the calling thread.
    unsafe fn resume(&self, h: *const Header) {
        let mut st = self.inbox.lock();
        if st.closed {
            drop(st);
            // SAFETY: this thread owns the op (nobody else can reach it).
            unsafe {
                (*h).wait.set(Wait::None);
                ((*h).run)(h, Signal::Shutdown);
            }
            return;
        }
        // SAFETY: `h` live; its start was popped long ago (its link may be
        // queued for a cancel, which this turns into a start). Its `wait`
        // is reset by the loop (see `run_ready`).
        let wake = unsafe { st.push_start(core::ptr::addr_of!((*h).link)) };
        drop(st);
        if wake {
            self.wake();
        }
    }

    /// Called by an op's stop callback, on any thread.
    ///
    /// # Safety
    /// `h` is a live op that has not completed (its `finish` waits for this
    /// callback before completing).
    pub(crate) unsafe fn post_cancel(&self, h: *const Header) {
        let mut st = self.inbox.lock();
        if st.closed {
            return;
        }
        // SAFETY: alive per the contract.
        let header = unsafe { &*h };
        header.cancel_posted.store(true, Ordering::Release);
        // SAFETY: `h` live; if its link is queued (for a start, the only
        // other use: a stop callback runs once), this adds nothing.
        let wake = unsafe { st.push_cancel(core::ptr::addr_of!((*h).link)) };
        drop(st);
        if wake {
            self.wake();
        }
    }

    /// Registers `h` as waiting for `interest`.
    ///
    /// # Safety
    /// Loop thread; `h` is live and registered nowhere.
    pub(crate) unsafe fn wait(&self, h: *const Header, interest: Interest) -> io::Result<()> {
        // SAFETY: loop thread, short borrow, no user code below.
        let local = unsafe { self.local() };
        // SAFETY: `h` live.
        let header = unsafe { &*h };
        let (raw, write) = match interest {
            Interest::Until(at) => {
                let id = local.timers.insert(at, h);
                header.wait.set(Wait::Timer { id });
                return Ok(());
            }
            Interest::Read(raw) => (raw, false),
            Interest::Write(raw) => (raw, true),
            Interest::Resubmit => {
                return Err(io::Error::other("exec-io: resubmit outside io_uring"));
            }
            Interest::Blocking(job) => {
                header.wait.set(Wait::Blocking);
                let hp = crate::op::SendPtr::new(h);
                let shared = self.me();
                let spawned = std::thread::Builder::new()
                    .name("exec-io-blocking".into())
                    .spawn(move || {
                        (job.0)();
                        // SAFETY: the op waits (Wait::Blocking) for this
                        // hand-back and cannot complete before it.
                        unsafe { shared.resume(hp.get()) };
                    });
                if let Err(e) = spawned {
                    header.wait.set(Wait::None);
                    return Err(e);
                }
                return Ok(());
            }
        };
        if let Driver::Uring(u) = &mut local.driver {
            let wait = take_busy(&raw, write)?;
            // SAFETY: `h` stays alive until the poll's completion is reaped
            // (cancellation waits for it too).
            if let Err(e) = unsafe { u.poll_add(h, &raw, write) } {
                release_busy(wait);
                return Err(e);
            }
            header.wait.set(wait);
            return Ok(());
        }
        let registry = self
            .registry
            .as_ref()
            .expect("readiness backend has a registry");
        // SAFETY: `raw.key` points into the source the op's action holds.
        let key_cell = unsafe { &*raw.key };
        let mut key = key_cell.load(Ordering::Relaxed);
        if key == 0 {
            let idx = match local.free.pop() {
                Some(i) => i as usize,
                None => {
                    local.slots.push(Slot {
                        generation: 0,
                        reader: core::ptr::null(),
                        writer: core::ptr::null(),
                    });
                    local.slots.len() - 1
                }
            };
            key = ((local.slots[idx].generation as u64) << 32) | (idx as u64 + 1);
            if let Err(e) = registry.register(
                &mut SourceFd(&raw.fd),
                Token(key as usize),
                MioInterest::READABLE | MioInterest::WRITABLE,
            ) {
                local.free.push(idx as u32);
                return Err(e);
            }
            key_cell.store(key, Ordering::Relaxed);
        }
        let (idx, _) = split_key(key);
        let slot = &mut local.slots[idx];
        let waiter = if write {
            &mut slot.writer
        } else {
            &mut slot.reader
        };
        if !waiter.is_null() {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "exec-io: another operation is already waiting in this direction on this source",
            ));
        }
        *waiter = h;
        header.wait.set(Wait::Io { key, write });
        Ok(())
    }

    /// Removes `h` from wherever its `wait` says it is registered. Returns
    /// `false` if that takes a while (an io_uring entry in flight: its
    /// completion arrives later and the op completes then).
    ///
    /// # Safety
    /// Loop thread; `h` live.
    pub(crate) unsafe fn cancel_wait(&self, h: *const Header) -> bool {
        // SAFETY: loop thread, short borrow.
        let local = unsafe { self.local() };
        // SAFETY: `h` live.
        let header = unsafe { &*h };
        match header.wait.replace(Wait::None) {
            Wait::None => {}
            w @ Wait::Uring { .. } => {
                header.wait.set(w);
                if let Driver::Uring(u) = &mut local.driver {
                    u.cancel(h);
                }
                return false;
            }
            Wait::Blocking => {
                // The thread hands the op back when done; it completes then.
                header.wait.set(Wait::Blocking);
                return false;
            }
            Wait::Timer { id } => {
                local.timers.cancel(id);
            }
            Wait::Io { key, write } => {
                let (idx, generation) = split_key(key);
                if let Some(slot) = local
                    .slots
                    .get_mut(idx)
                    .filter(|s| s.generation == generation)
                {
                    let waiter = if write {
                        &mut slot.writer
                    } else {
                        &mut slot.reader
                    };
                    if *waiter == h {
                        *waiter = core::ptr::null();
                    }
                }
            }
        }
        true
    }

    /// io_uring: runs `f` on the ring if this is the loop thread of an
    /// io_uring context (`None` otherwise).
    ///
    /// Only called from operations' code (an action's `uring_entry` or
    /// `uring_complete`, a source's drop, a stream's method), which the
    /// loop never runs while it holds a borrow of `local`, and from
    /// `run_ready` outside its borrows.
    fn with_ring<T>(&self, f: impl FnOnce(&mut crate::uring::Uring) -> T) -> Option<T> {
        if !self.on_loop() {
            return None;
        }
        // SAFETY: this thread runs the loop (checked) and, per the above,
        // no borrow of `local` is alive; `f` only touches the ring.
        let local = unsafe { self.local() };
        match &mut local.driver {
            Driver::Uring(u) => Some(f(u)),
            Driver::Mio { .. } => None,
        }
    }

    /// io_uring, loop thread: counts one direct-descriptor slot as taken
    /// for an accept about to be submitted. `false` if there is no table,
    /// it is full, or this is not the loop thread.
    pub(crate) fn direct_reserve(&self) -> bool {
        self.direct_capacity > 0 && self.with_ring(|u| u.direct_reserve()).unwrap_or(false)
    }

    /// io_uring, loop thread: gives back a slot counted by
    /// [`direct_reserve`](Self::direct_reserve) that its accept did not
    /// fill. Elsewhere (the context is being dropped) a no-op: the table
    /// goes with the ring.
    pub(crate) fn direct_unreserve(&self) {
        self.with_ring(|u| u.direct_unreserve());
    }

    /// io_uring: queues an operation on a direct descriptor (a close, a
    /// shutdown) on the loop, from any thread. Dropped if the context is
    /// gone: the ring's table, with every socket in it, is freed with the
    /// ring.
    pub(crate) fn slot_op(&self, op: crate::uring::SlotOp) {
        if self.with_ring(|u| u.slot_op(op)).is_some() {
            return;
        }
        let mut st = self.inbox.lock();
        if st.closed {
            return;
        }
        st.slot_ops.push(op);
        let wake = core::mem::replace(&mut st.sleeping, false);
        drop(st);
        if wake {
            self.wake();
        }
    }

    /// io_uring: slots of the direct-descriptor table taken. Loop thread
    /// only.
    pub(crate) fn direct_in_use(&self) -> u32 {
        assert!(
            self.on_loop(),
            "direct_descriptors_in_use: not on the loop thread"
        );
        self.with_ring(|u| u.direct_in_use()).unwrap_or(0)
    }

    /// A source with registration `key` and descriptor `fd` is being
    /// dropped (the descriptor is closed right after).
    pub(crate) fn release(&self, key: u64, fd: RawFd) {
        if self.on_loop() {
            if let Some(registry) = &self.registry {
                let _ = registry.deregister(&mut SourceFd(&fd));
            }
            // SAFETY: loop thread, short borrow.
            unsafe { self.free_slot(key) };
        } else {
            let mut st = self.inbox.lock();
            if !st.closed {
                st.released.push(key);
                let wake = core::mem::replace(&mut st.sleeping, false);
                drop(st);
                if wake {
                    self.wake();
                }
            }
        }
    }

    /// # Safety
    /// Loop thread, no borrow of `local` alive.
    unsafe fn free_slot(&self, key: u64) {
        // SAFETY: per the contract.
        let local = unsafe { self.local() };
        let (idx, generation) = split_key(key);
        if let Some(slot) = local
            .slots
            .get_mut(idx)
            .filter(|s| s.generation == generation)
        {
            slot.generation = slot.generation.wrapping_add(1);
            slot.reader = core::ptr::null();
            slot.writer = core::ptr::null();
            local.free.push(idx as u32);
        }
    }

    /// Number of pending timers (loop thread).
    pub(crate) fn pending_timers(&self) -> usize {
        // SAFETY: only called from the loop thread (checked).
        assert!(self.on_loop(), "pending_timers: not on the loop thread");
        // SAFETY: loop thread, short borrow.
        unsafe { self.local().timers.len() }
    }

    /// One pass over the inbox, the ready queue and the timers. Never
    /// blocks.
    ///
    /// # Safety
    /// Loop thread.
    unsafe fn run_ready(&self) {
        // The inbox: cancels run at once (the op may complete through
        // another path otherwise); starts join the ready queue.
        loop {
            let (link, released, slot_ops) = {
                let mut st = self.inbox.lock();
                let released = if st.released.is_empty() {
                    Vec::new()
                } else {
                    core::mem::take(&mut st.released)
                };
                let slot_ops = if st.slot_ops.is_empty() {
                    Vec::new()
                } else {
                    core::mem::take(&mut st.slot_ops)
                };
                (st.pop(), released, slot_ops)
            };
            for key in released {
                // SAFETY: loop thread, no borrow alive.
                unsafe { self.free_slot(key) };
            }
            for op in slot_ops {
                // Loop thread, no borrow alive: queued on the ring.
                self.with_ring(|u| u.slot_op(op));
            }
            if link.is_null() {
                break;
            }
            // SAFETY: just popped: one of a live header's links, no longer
            // linked, so nobody else writes it.
            let (h, is_cancel) = unsafe { Header::from_link(link) };
            if is_cancel {
                // SAFETY: the link was in the inbox, so the op has not
                // completed (`finish` unlinks it first); loop thread.
                unsafe { ((*h).run)(h, Signal::Cancel) };
            } else {
                // SAFETY: loop thread, short borrow; `h` was linked, so it
                // is live (a new start, or handed back by a blocking thread).
                unsafe {
                    (*h).wait.set(Wait::None);
                    self.local().ready.push_back((h, Signal::Start));
                }
            }
        }
        // Type-erased nodes queued so far (nodes they queue wait for the
        // next turn, so I/O is polled in between).
        let tasks = self.inbox.lock().take_tasks();
        // SAFETY: the nodes were handed over by `enqueue` and are executed
        // once each, here; no borrow of `local` is alive.
        unsafe { run_tasks(tasks, false) };
        // Timers due now.
        {
            // SAFETY: loop thread, short borrow, no user code.
            let local = unsafe { self.local() };
            if local.timers.len() > 0 {
                let now = Instant::now();
                let ready = &mut local.ready;
                local.timers.expire(now, |h| {
                    // SAFETY: timer owners are live ops.
                    unsafe { (*h).wait.set(Wait::None) };
                    ready.push_back((h, Signal::Ready));
                });
            }
        }
        // The ready queue, as it is now (work queued meanwhile waits for
        // the next turn, so I/O is polled in between).
        // SAFETY: loop thread, short borrow.
        let n = unsafe { self.local().ready.len() };
        for _ in 0..n {
            // SAFETY: loop thread, short borrow.
            let Some((h, signal)) = (unsafe { self.local().ready.pop_front() }) else {
                break;
            };
            // SAFETY: ready entries are live ops registered nowhere else;
            // no borrow of `local` is alive here.
            unsafe { ((*h).run)(h, signal) };
        }
    }

    /// Blocks in the poller until an event, a wake or the next deadline.
    ///
    /// # Safety
    /// Loop thread.
    unsafe fn park(&self) -> io::Result<()> {
        // SAFETY: loop thread, short borrow (held across `poll`, which runs
        // no user code).
        let local = unsafe { self.local() };
        let mut timeout = if local.ready.is_empty() {
            local
                .timers
                .next_deadline()
                .map(|at| at.saturating_duration_since(Instant::now()))
        } else {
            Some(Duration::ZERO)
        };
        let mut slept = false;
        if timeout != Some(Duration::ZERO) {
            let mut st = self.inbox.lock();
            if st.is_empty() && st.released.is_empty() && st.slot_ops.is_empty() {
                st.sleeping = true;
                slept = true;
            } else {
                timeout = Some(Duration::ZERO);
            }
        }
        let (poll, events) = match &mut local.driver {
            Driver::Mio { poll, events } => (poll, events),
            Driver::Uring(u) => {
                let ready = &mut local.ready;
                let res = u.park(timeout, |h, res| {
                    // SAFETY: completions carry the header of a live op
                    // whose entry was in flight.
                    release_busy(unsafe { (*h).wait.replace(Wait::None) });
                    ready.push_back((h, Signal::Completed(res)));
                });
                if slept {
                    self.inbox.lock().sleeping = false;
                }
                return res;
            }
        };
        let res = poll.poll(events, timeout);
        if slept {
            self.inbox.lock().sleeping = false;
        }
        match res {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        for ev in events.iter() {
            let token = ev.token();
            if token == WAKER {
                continue;
            }
            let (idx, generation) = split_key(token.0 as u64);
            let Some(slot) = local
                .slots
                .get_mut(idx)
                .filter(|s| s.generation == generation)
            else {
                continue;
            };
            let closed = ev.is_error() || ev.is_read_closed() || ev.is_write_closed();
            if (ev.is_readable() || closed) && !slot.reader.is_null() {
                let h = core::mem::replace(&mut slot.reader, core::ptr::null());
                // SAFETY: slot waiters are live ops.
                unsafe { (*h).wait.set(Wait::None) };
                local.ready.push_back((h, Signal::Ready));
            }
            if (ev.is_writable() || closed) && !slot.writer.is_null() {
                let h = core::mem::replace(&mut slot.writer, core::ptr::null());
                // SAFETY: slot waiters are live ops.
                unsafe { (*h).wait.set(Wait::None) };
                local.ready.push_back((h, Signal::Ready));
            }
        }
        Ok(())
    }

    /// Runs the loop until `until()` holds after a turn. `on_stop` is
    /// called when `stop()` was requested; it returns whether to return.
    /// Runs turns of the loop until `until()` (checked after each turn) or
    /// a stop that `on_stop()` accepts. A panic contained during a turn is
    /// re-raised after that turn, or, if `defer_panics`, once `until()`
    /// holds (`run_until` may not unwind while its operation runs).
    fn drive(
        &self,
        until: &mut dyn FnMut() -> bool,
        on_stop: &dyn Fn() -> bool,
        defer_panics: bool,
    ) -> io::Result<()> {
        if self
            .driving
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            panic!("exec-io: IoContext::run called while another thread runs the same context");
        }
        struct Exit<'a> {
            shared: &'a Shared,
            previous: *const Shared,
        }
        impl Drop for Exit<'_> {
            fn drop(&mut self) {
                CURRENT.with(|c| c.set(self.previous));
                self.shared.driving.store(false, Ordering::Release);
            }
        }
        let _guard = NonBlockingGuard::enter("an exec-io loop");
        let _exit = Exit {
            shared: self,
            previous: CURRENT.with(|c| c.replace(self)),
        };
        let mut deferred: Option<PanicPayload> = None;
        loop {
            // SAFETY: this thread holds `driving` and is CURRENT.
            unsafe { self.run_ready() };
            if let Some(p) = self.take_contained() {
                if !defer_panics {
                    std::panic::resume_unwind(p);
                }
                deferred.get_or_insert(p);
            }
            if until() {
                if let Some(p) = deferred {
                    // Handed back to the caller, who re-raises it once its
                    // operation is finished.
                    *self.contained.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
                    self.has_contained.store(true, Ordering::Release);
                }
                return Ok(());
            }
            if self.stop.swap(false, Ordering::AcqRel) && on_stop() {
                return Ok(());
            }
            // SAFETY: as above.
            unsafe { self.park()? };
        }
    }

    /// Completes every operation still known to the loop with *stopped*
    /// and refuses new ones. Called by the dropping context.
    fn shutdown(&self) {
        let (links, tasks) = {
            let mut st = self.inbox.lock();
            st.closed = true;
            let tasks = st.take_tasks();
            let mut links = Vec::new();
            loop {
                let l = st.pop();
                if l.is_null() {
                    break;
                }
                links.push(l);
            }
            (links, tasks)
        };
        // SAFETY: the nodes were handed over by `enqueue` and are executed
        // once each, here (nothing more can be queued: `closed`).
        unsafe { run_tasks(tasks, true) };
        let mut ops: Vec<(*const Header, Signal)> = Vec::new();
        for l in links {
            // SAFETY: popped above (the inbox is closed: nothing is pushed
            // any more), one of a live header's links.
            let (h, is_cancel) = unsafe { Header::from_link(l) };
            if !is_cancel {
                ops.push((h, Signal::Shutdown));
            }
        }
        {
            // SAFETY: the dropping thread has exclusive access (`&mut
            // IoContext`, nobody inside `run`); short borrow.
            let local = unsafe { self.local() };
            // A reaped io_uring completion waiting here may own a resource
            // (an accepted descriptor): hand it over as `Reaped`.
            ops.extend(local.ready.drain(..).map(|(h, sig)| match sig {
                Signal::Completed(res) => (h, Signal::Reaped(res)),
                _ => (h, Signal::Shutdown),
            }));
            for slot in &mut local.slots {
                for w in [&mut slot.reader, &mut slot.writer] {
                    if !w.is_null() {
                        ops.push((core::mem::replace(w, core::ptr::null()), Signal::Shutdown));
                    }
                }
            }
            local.timers.drain(|h| ops.push((h, Signal::Shutdown)));
        }
        for (h, sig) in ops {
            // SAFETY: each pointer is a live op removed from the only place
            // it was registered; this thread now owns it.
            unsafe {
                (*h).wait.set(Wait::None);
                ((*h).run)(h, sig);
            }
        }
        // io_uring: cancel what is in flight and reap every completion
        // before completing its op (the kernel may still use its buffer).
        loop {
            let mut reaped = Vec::new();
            {
                // SAFETY: exclusive access (see above); short borrow.
                let local = unsafe { self.local() };
                let Driver::Uring(u) = &mut local.driver else {
                    break;
                };
                if !u.has_inflight() {
                    break;
                }
                u.cancel_all();
                if u.park(Some(Duration::from_millis(100)), |h, res| {
                    reaped.push((h, res))
                })
                .is_err()
                {
                    // Cannot reap: leave the ops pending (leaked) rather
                    // than free memory the kernel may still write.
                    break;
                }
            }
            for (h, res) in reaped {
                // SAFETY: the entry of this live op was reaped; this
                // thread now owns it.
                unsafe {
                    release_busy((*h).wait.replace(Wait::None));
                    ((*h).run)(h, Signal::Reaped(res));
                }
            }
        }
    }
}

/// Executes a list of type-erased nodes taken from the inbox, oldest
/// first. A panicking receiver is contained ([`contain_panic`]) so the rest
/// of the list still runs.
///
/// # Safety
/// Every node of the list (linked through [`TaskNode::next`]) was handed
/// over by [`DynScheduler::enqueue`] and is queued nowhere else; this is
/// its single execution.
unsafe fn run_tasks(mut next: *mut TaskNode, stopped: bool) {
    while let Some(node) = NonNull::new(next) {
        // SAFETY: the node is alive until executed; read its link first,
        // since executing it may free it.
        next = unsafe { TaskNode::next(node, Ordering::Relaxed) };
        // SAFETY: single execution of a node this list owns.
        if let Err(p) = exec_core::catch_unwind(|| unsafe { TaskNode::execute(node, stopped) }) {
            contain_panic(p);
        }
    }
}

// SAFETY: a node is linked into the inbox under its lock, once, and the
// loop (or the dropping context's `shutdown`, with `stopped`) takes it out
// under that lock and executes it once; a node enqueued after the context
// was dropped (`closed`) is executed at once with `stopped`. `this` is only
// ever a `Shared` inside an `Arc`, with that allocation's provenance (the
// `SchedulerRef` is made from `Arc::as_ptr` in `IoScheduler::erased`): we
// take our own reference first, so the state stays alive across the
// unlock and the wake-up even if the node's completion frees every other
// handle meanwhile. Pushing allocates nothing (the list is intrusive).
unsafe impl DynScheduler for Shared {
    unsafe fn enqueue(this: NonNull<Self>, node: NonNull<TaskNode>) {
        let ptr: *const Shared = this.as_ptr();
        // SAFETY: `ptr` is the pointee of a live `Arc<Shared>` (see above),
        // alive when called per the contract.
        let shared = unsafe {
            Arc::increment_strong_count(ptr);
            Arc::from_raw(ptr)
        };
        let mut st = shared.inbox.lock();
        if st.closed {
            drop(st);
            // SAFETY: the context is gone and will never take the node:
            // this is its single execution.
            unsafe { TaskNode::execute(node, true) };
            return;
        }
        // SAFETY: per the caller's contract, alive, pinned and queued
        // nowhere else until executed.
        let wake = unsafe { st.push_task(node) };
        drop(st);
        if wake {
            shared.wake();
        }
    }
}

/// An event loop of I/O and timers on which every operation is a sender.
///
/// Run it on a thread of your choosing with [`run`](Self::run) (until
/// [`stop`](Self::stop)) or [`run_until`](Self::run_until) (until a sender
/// completes). Operations started from other threads are handed to the
/// loop and complete on it. Dropping the context completes every operation
/// still pending with *stopped*; operations started afterwards complete
/// *stopped* at once.
///
/// # Several cores
/// One context runs on one thread. A server that wants every core runs one
/// context per core, each with its own listener bound with `SO_REUSEPORT`
/// ([`TcpListener::bind_reuseport`](crate::TcpListener::bind_reuseport)), so
/// the kernel spreads connections and no connection ever crosses threads.
/// [`IoContextBuilder::spawn`] runs a context on a thread of its own.
///
/// # Panics
/// User code inside algorithms (a `then` closure) never unwinds into the
/// loop: algorithms catch it and deliver it through `set_panic` to whoever
/// awaits the result ([`run_until`](Self::run_until) re-raises it,
/// [`spawn_detached`](crate::spawn_detached) reports it). A *receiver*
/// that panics while the loop completes it (its own code) is caught at the
/// operation's completion: the loop finishes its turn, so every other
/// operation carries on, then [`run`](Self::run) re-raises the panic with
/// its original payload (the context stays usable: call `run` again to go
/// on). [`run_until`](Self::run_until) keeps going until its own sender
/// completed, then re-raises it; a panic contained while the context is
/// dropped is re-raised by the drop. Only the first of several is kept.
///
/// ```
/// use exec_core::{Scheduler, SenderExt};
/// use exec_io::IoContext;
///
/// let ctx = IoContext::new()?;
/// let sch = ctx.scheduler();
/// let v = ctx.run_until(sch.schedule().then(|()| 42));
/// assert_eq!(v.unwrap(), Some(42));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct IoContext {
    shared: Arc<Shared>,
}

impl fmt::Debug for IoContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoContext").finish_non_exhaustive()
    }
}

impl IoContext {
    /// A context with the default options ([`Backend::Auto`]).
    ///
    /// # Errors
    /// If the OS poller cannot be created.
    pub fn new() -> io::Result<Self> {
        Self::builder().build()
    }

    /// A builder for a context with options.
    pub fn builder() -> IoContextBuilder {
        IoContextBuilder {
            backend: Backend::Auto,
            event_capacity: 1024,
            direct_descriptors: 0,
        }
    }

    /// The size of this loop's table of io_uring direct descriptors (see
    /// [`IoContextBuilder::direct_descriptors`]); 0 if it has none.
    pub fn direct_descriptors(&self) -> usize {
        self.shared.direct_capacity as usize
    }

    /// The backend this context runs on ([`Backend::Readiness`] or
    /// [`Backend::IoUring`]).
    pub fn backend(&self) -> Backend {
        if self.shared.is_uring() {
            Backend::IoUring
        } else {
            Backend::Readiness
        }
    }

    /// A scheduler for this context.
    pub fn scheduler(&self) -> IoScheduler {
        IoScheduler {
            shared: self.shared.clone(),
        }
    }

    /// A handle that can stop [`run`](Self::run) from any thread.
    pub fn handle(&self) -> IoHandle {
        IoHandle {
            shared: self.shared.clone(),
        }
    }

    /// Runs the loop on this thread until [`stop`](Self::stop) is called
    /// (from any thread, or from work running on the loop). A stop
    /// requested while no `run` is active makes the next `run` return after
    /// one turn.
    ///
    /// While it runs, this thread counts as driving an execution context:
    /// `sync_wait` on it panics instead of deadlocking.
    ///
    /// # Errors
    /// If polling the OS fails.
    ///
    /// # Panics
    /// If another thread is running this context.
    pub fn run(&self) -> io::Result<()> {
        self.shared.drive(&mut || false, &|| true, false)
    }

    /// Asks [`run`](Self::run) to return. Same as
    /// [`IoHandle::stop`].
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake();
    }

    /// Starts `sender` on this thread and runs the loop until it completes;
    /// returns `Ok(Some(value))`, `Err(error)` or `Ok(None)` (stopped),
    /// like `sync_wait`. The sender may borrow from the caller.
    ///
    /// A [`stop`](Self::stop) during `run_until` requests stop of the
    /// sender (through its environment's stop token) and keeps running the
    /// loop until it has completed.
    ///
    /// # Panics
    /// Re-raises a panic the sender delivered. Panics like [`run`](Self::run)
    /// if another thread runs the context, and if polling the OS fails.
    pub fn run_until<S>(&self, sender: S) -> Result<Option<S::Output>, S::Error>
    where
        S: Sender + SenderTo<UntilReceiver<<S as Sender>::Output, <S as Sender>::Error>>,
    {
        let state = pin!(UntilState::<S::Output, S::Error> {
            outcome: std::sync::Mutex::new(None),
            done: AtomicBool::new(false),
            stop: StopSource::new(),
        });
        // SAFETY: `state` is pinned on this frame and we do not return (or
        // unwind, see `Bomb`) before the operation completed.
        let parent = unsafe { ParentRef::new(state.as_ref()) };
        let mut op = pin!(sender.connect(UntilReceiver {
            state: parent,
            shared: self.shared.clone(),
        }));
        {
            let bomb = Bomb;
            // The op is started with this thread marked as the loop (so it
            // goes straight to the ready queue) inside `drive`.
            let started = Cell::new(false);
            let res = self.shared.drive(
                &mut || {
                    if !started.replace(true) {
                        // SAFETY: started once; `op` lives on this frame
                        // until it completed (we loop until `done`).
                        unsafe { op.as_mut().start() };
                    }
                    state.done.load(Ordering::Acquire)
                },
                &|| {
                    state.stop.request_stop();
                    false
                },
                true,
            );
            if let Err(e) = res {
                panic!("exec-io: polling failed in run_until: {e}");
            }
            core::mem::forget(bomb);
        }
        if let Some(p) = self.shared.take_contained() {
            // Another operation's receiver panicked on the loop meanwhile.
            std::panic::resume_unwind(p);
        }
        let outcome = state
            .outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match outcome {
            Some(Outcome::Value(v)) => Ok(Some(v)),
            Some(Outcome::Error(e)) => Err(e),
            Some(Outcome::Stopped) => Ok(None),
            Some(Outcome::Panic(p)) => std::panic::resume_unwind(p),
            None => unreachable!("run_until returned without a completion"),
        }
    }
}

impl Drop for IoContext {
    fn drop(&mut self) {
        let previous = SHUTTING_DOWN.with(|c| c.replace(Arc::as_ptr(&self.shared)));
        self.shared.shutdown();
        SHUTTING_DOWN.with(|c| c.set(previous));
        if let Some(p) = self.shared.take_contained() {
            if std::thread::panicking() {
                drop(p); // already unwinding: a second panic would abort
            } else {
                std::panic::resume_unwind(p);
            }
        }
    }
}

struct Bomb;
impl Drop for Bomb {
    fn drop(&mut self) {
        eprintln!(
            "exec-io: run_until unwound while its operation was still running; aborting to \
             avoid a use-after-free"
        );
        std::process::abort();
    }
}

enum Outcome<T, E> {
    Value(T),
    Error(E),
    Stopped,
    Panic(PanicPayload),
}

struct UntilState<T, E> {
    outcome: std::sync::Mutex<Option<Outcome<T, E>>>,
    done: AtomicBool,
    stop: StopSource,
}

/// The receiver [`IoContext::run_until`] connects its sender to. Its
/// environment's stop token fires when the context is stopped.
pub struct UntilReceiver<T, E> {
    state: ParentRef<UntilState<T, E>>,
    shared: Arc<Shared>,
}

impl<T, E> fmt::Debug for UntilReceiver<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UntilReceiver").finish_non_exhaustive()
    }
}

impl<T, E> UntilReceiver<T, E> {
    fn complete(self, outcome: Outcome<T, E>) {
        let UntilReceiver { state, shared } = self;
        let st = state.get();
        *st.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
        // Last touch of `state`: afterwards `run_until` may return.
        st.done.store(true, Ordering::Release);
        // On the loop thread, `run_until` checks `done` after this turn
        // without blocking; from elsewhere the loop may be asleep.
        if !shared.on_loop() {
            shared.wake();
        }
    }
}

impl<T, E> Receiver<T, E> for UntilReceiver<T, E> {
    fn set_value(self, value: T) {
        self.complete(Outcome::Value(value));
    }
    fn set_error(self, error: E) {
        self.complete(Outcome::Error(error));
    }
    fn set_stopped(self) {
        self.complete(Outcome::Stopped);
    }
    fn set_panic(self, payload: PanicPayload) {
        self.complete(Outcome::Panic(payload));
    }
    fn env(&self) -> impl Env<'_> {
        UntilEnv {
            stop: &self.state.get().stop,
        }
    }
}

struct UntilEnv<'a> {
    stop: &'a StopSource,
}
impl<'a> Env<'a> for UntilEnv<'a> {
    fn stop_token(&self) -> StopToken<'a> {
        self.stop.token()
    }
}

// SAFETY: the state is only touched through its mutex and atomics.
unsafe impl<T: Send, E: Send> Sync for UntilState<T, E> {}

/// An [`IoContext`] running on its own thread, made by
/// [`IoContextBuilder::spawn`].
///
/// Dropping it (or [`join`](Self::join)) stops the loop, drops the context
/// on its thread (operations still pending complete *stopped*) and joins
/// the thread.
///
/// # Panics
/// A receiver that panics on the loop (see [`IoContext`]'s "Panics") does
/// not end the loop: the thread keeps running it, and the first such panic
/// is re-raised, with its payload, by [`join`](Self::join) or by the drop
/// (unless the dropping thread is already panicking).
pub struct IoThread {
    sch: IoScheduler,
    handle: IoHandle,
    thread: Option<std::thread::JoinHandle<(io::Result<()>, Option<PanicPayload>)>>,
}

impl fmt::Debug for IoThread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoThread").finish_non_exhaustive()
    }
}

impl IoThread {
    /// The loop thread: runs until stopped, containing receiver panics.
    fn body(ctx: IoContext) -> (io::Result<()>, Option<PanicPayload>) {
        let mut first: Option<PanicPayload> = None;
        let res = loop {
            match exec_core::catch_unwind(|| ctx.run()) {
                Ok(res) => break res,
                // `run` re-raised a contained panic after a complete turn:
                // keep the loop going, report the panic at join.
                Err(p) => {
                    first.get_or_insert(p);
                }
            }
        };
        if let Err(p) = exec_core::catch_unwind(move || drop(ctx)) {
            first.get_or_insert(p);
        }
        (res, first)
    }

    /// The scheduler of the context.
    pub fn scheduler(&self) -> IoScheduler {
        self.sch.clone()
    }

    /// A handle that stops the loop (the thread then finishes as on drop).
    pub fn handle(&self) -> IoHandle {
        self.handle.clone()
    }

    fn stop_and_join(&mut self) -> Option<(io::Result<()>, Option<PanicPayload>)> {
        let t = self.thread.take()?;
        self.handle.stop();
        Some(match t.join() {
            Ok(r) => r,
            Err(p) => (Ok(()), Some(p)),
        })
    }

    /// Stops the loop and waits for its thread; returns the loop's I/O
    /// error, if polling failed.
    ///
    /// # Panics
    /// Re-raises the first panic contained on the loop.
    pub fn join(mut self) -> io::Result<()> {
        match self.stop_and_join() {
            Some((_, Some(p))) => std::panic::resume_unwind(p),
            Some((res, None)) => res,
            None => Ok(()),
        }
    }
}

impl Drop for IoThread {
    fn drop(&mut self) {
        if let Some((_, Some(p))) = self.stop_and_join()
            && !std::thread::panicking()
        {
            std::panic::resume_unwind(p);
        }
    }
}

/// A handle to stop an [`IoContext`]'s [`run`](IoContext::run) from any
/// thread.
#[derive(Clone)]
pub struct IoHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for IoHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoHandle").finish_non_exhaustive()
    }
}

impl IoHandle {
    /// Asks the context's [`run`](IoContext::run) to return (a `run_until`
    /// instead requests stop of its sender).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake();
    }
}

/// The scheduler of an [`IoContext`]: `schedule()` completes on the loop
/// thread; `schedule_at`/`schedule_after` complete there at a deadline.
///
/// Cheap to clone (one reference count); equal when it refers to the same
/// context. Scheduling allocates nothing: the operation state is the queue
/// node.
#[derive(Clone)]
pub struct IoScheduler {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for IoScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IoScheduler")
            .field(&Arc::as_ptr(&self.shared))
            .finish()
    }
}

impl PartialEq for IoScheduler {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}
impl Eq for IoScheduler {}

impl IoScheduler {
    /// Whether the calling thread is running this scheduler's loop.
    pub fn is_loop_thread(&self) -> bool {
        self.shared.on_loop()
    }

    /// Number of timers pending on the loop.
    ///
    /// # Panics
    /// If not called on the loop thread.
    pub fn pending_timers(&self) -> usize {
        self.shared.pending_timers()
    }

    /// io_uring: how many slots of the loop's direct-descriptor table
    /// ([`IoContextBuilder::direct_descriptors`]) are taken: by direct
    /// streams, by accepts in flight that may fill one, and by closes of
    /// dropped streams the kernel has not completed yet. 0 without a table.
    ///
    /// # Panics
    /// If not called on the loop thread.
    pub fn direct_descriptors_in_use(&self) -> usize {
        self.shared.direct_in_use() as usize
    }
}

impl Scheduler for IoScheduler {
    type Sender = IoSender<crate::sender::ScheduleAction>;
    fn schedule(&self) -> Self::Sender {
        IoSender::new(crate::sender::ScheduleAction {
            ctx: self.shared.clone(),
        })
    }
    fn erased(&self) -> Option<SchedulerRef<'_>> {
        // `Arc::as_ptr` keeps the provenance of the whole allocation:
        // `enqueue` takes a reference count through it.
        let ptr = NonNull::new(Arc::as_ptr(&self.shared).cast_mut())?;
        // SAFETY: the `Arc` in `self` keeps the state alive for the borrow
        // of `self`.
        Some(unsafe { SchedulerRef::from_ptr(ptr) })
    }
}

impl TimedScheduler for IoScheduler {
    type Instant = Instant;
    type Duration = Duration;
    type TimedSender = IoSender<crate::sender::TimerAction>;
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn schedule_at(&self, at: Instant) -> Self::TimedSender {
        IoSender::new(crate::sender::TimerAction {
            ctx: self.shared.clone(),
            at,
        })
    }
    fn schedule_after(&self, after: Duration) -> Self::TimedSender {
        self.schedule_at(Instant::now() + after)
    }
}

/// Shared by sources: their registration key cell type.
pub(crate) type KeyCell = AtomicU64;
