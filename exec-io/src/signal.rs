//! Unix signals as senders: [`signal`] and [`ctrl_c`].
//!
//! A process-wide handler (installed on first use of a signal, never
//! removed, like tokio's) counts deliveries per signal and writes a byte to
//! a process-wide pipe. Each waiting operation watches its own duplicate of
//! the pipe's read end and completes once the count of its signal moved
//! past what it saw when it started.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::IoSender;
use crate::context::{IoScheduler, Shared};
use crate::op::{Action, Interest, Step};
use crate::source::Source;

const NSIG: usize = 65;

static COUNTS: [AtomicU64; NSIG] = [const { AtomicU64::new(0) }; NSIG];
static INSTALLED: [AtomicBool; NSIG] = [const { AtomicBool::new(false) }; NSIG];
/// Write end of the wake pipe (never closed once created).
static PIPE_W: AtomicI32 = AtomicI32::new(-1);
/// Read end of the wake pipe (never closed; waiters `dup` it).
static PIPE_R: AtomicI32 = AtomicI32::new(-1);
static SETUP: Mutex<()> = Mutex::new(());

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe work: atomics and `write`.
    if let Some(c) = COUNTS.get(sig as usize) {
        c.fetch_add(1, Ordering::SeqCst);
    }
    let fd = PIPE_W.load(Ordering::SeqCst);
    if fd >= 0 {
        let b = 1u8;
        // SAFETY: writes one byte from a live local; errors are ignored
        // (a full pipe already wakes every waiter).
        unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
    }
}

fn install(sig: i32) -> io::Result<()> {
    if sig <= 0 || sig as usize >= NSIG {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let _g = SETUP.lock().unwrap_or_else(|e| e.into_inner());
    if PIPE_W.load(Ordering::SeqCst) < 0 {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        PIPE_R.store(fds[0], Ordering::SeqCst);
        PIPE_W.store(fds[1], Ordering::SeqCst);
    }
    if !INSTALLED[sig as usize].load(Ordering::SeqCst) {
        // SAFETY: a zeroed `sigaction` is valid; we fill the handler and
        // flags, and pass valid pointers.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_signal as *const () as usize;
            act.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut act.sa_mask);
            if libc::sigaction(sig, &act, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        INSTALLED[sig as usize].store(true, Ordering::SeqCst);
    }
    Ok(())
}

/// A duplicate of the wake pipe's read end, owned by one waiter.
struct PipeFd(OwnedFd);

impl AsRawFd for PipeFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// A sender that completes (with `()`) when signal `signum` is next
/// delivered to the process after the operation started.
///
/// The first use of a signal installs a process-wide handler for it, which
/// stays: the signal's default action (for `SIGINT`, terminating) no
/// longer happens.
///
/// # Completion
/// - value: `()`, on the loop, after the signal arrived.
/// - error: an invalid signal number, or failing to set up the handler.
/// - stopped: on a stop request.
///
/// # Example
/// ```
/// use exec_io::{IoContext, signal};
/// let ctx = IoContext::new()?;
/// let sig = signal(&ctx.scheduler(), libc::SIGUSR2);
/// std::thread::spawn(|| {
///     std::thread::sleep(std::time::Duration::from_millis(20));
///     // SAFETY (doc example): sends a signal to this process.
///     unsafe { libc::kill(libc::getpid(), libc::SIGUSR2) };
/// });
/// ctx.run_until(sig)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn signal(sch: &IoScheduler, signum: i32) -> IoSender<SignalAction> {
    IoSender::new(SignalAction {
        ctx: sch.shared.clone(),
        signum,
        seen: None,
        src: None,
    })
}

/// A sender completing on the next `SIGINT` (ctrl-c); see [`signal`].
pub fn ctrl_c(sch: &IoScheduler) -> IoSender<SignalAction> {
    signal(sch, libc::SIGINT)
}

/// Action of [`signal`].
pub struct SignalAction {
    ctx: Arc<Shared>,
    signum: i32,
    /// The count seen at the first attempt.
    seen: Option<u64>,
    src: Option<Arc<Source<PipeFd>>>,
}

impl fmt::Debug for SignalAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalAction")
            .field("signum", &self.signum)
            .finish_non_exhaustive()
    }
}

impl Action for SignalAction {
    type Output = ();
    type Error = io::Error;
    fn ctx(&self) -> &Arc<Shared> {
        &self.ctx
    }
    fn attempt(&mut self) -> Step<(), io::Error> {
        let src = match &self.src {
            Some(s) => s.clone(),
            None => {
                if let Err(e) = install(self.signum) {
                    return Step::Done(Err(e));
                }
                // SAFETY: plain syscall; the result is checked.
                let fd =
                    unsafe { libc::fcntl(PIPE_R.load(Ordering::SeqCst), libc::F_DUPFD_CLOEXEC, 0) };
                if fd < 0 {
                    return Step::Done(Err(io::Error::last_os_error()));
                }
                // SAFETY: a fresh descriptor we own.
                let fd = PipeFd(unsafe { OwnedFd::from_raw_fd(fd) });
                let src = Source::new_pipe(self.ctx.clone(), fd);
                self.src = Some(src.clone());
                self.seen = Some(COUNTS[self.signum as usize].load(Ordering::SeqCst));
                src
            }
        };
        // Drain the shared pipe (other waiters were woken by the same
        // bytes; they check the counts, not the bytes).
        let mut b = [0u8; 64];
        // SAFETY: reads into a live local buffer.
        while unsafe { libc::read(src.io.as_raw_fd(), b.as_mut_ptr().cast(), b.len()) } > 0 {}
        if COUNTS[self.signum as usize].load(Ordering::SeqCst) != self.seen.unwrap_or(0) {
            return Step::Done(Ok(()));
        }
        Step::Wait(Interest::Read(src.raw()))
    }
    fn wait_failed(e: io::Error) -> io::Error {
        e
    }
}
