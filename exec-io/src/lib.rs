//! An I/O loop of senders for `exec`: sockets, pipes and timers on io_uring
//! or epoll (through `mio`), where every operation is a sender that
//! completes on the loop.
//!
//! An [`IoContext`] is an event loop run on a thread of your choosing
//! ([`IoContext::run`], [`IoContext::run_until`]). Its [`IoScheduler`]
//! schedules work onto the loop and keeps timers
//! ([`TimedScheduler`](exec_core::TimedScheduler)). Sockets
//! ([`TcpListener`], [`TcpStream`], [`UdpSocket`], [`UnixListener`],
//! [`UnixStream`]) and [`pipe`]s return senders for each operation.
//!
//! Buffers are owned by the operation: `read(buf)` takes a `Vec<u8>` and
//! sends it back with the byte count, so no API lets the kernel write into
//! memory the caller may free (the property a completion backend such as
//! io_uring needs).
//!
//! ```
//! use exec_io::{IoContext, TcpListener, TcpStream};
//! use exec_core::{SenderExt};
//!
//! let ctx = IoContext::new()?;
//! let sch = ctx.scheduler();
//! let listener = TcpListener::bind(&sch, "127.0.0.1:0".parse().unwrap())?;
//! let addr = listener.local_addr()?;
//! let client = ctx.run_until(TcpStream::connect(&sch, addr))?.unwrap();
//! let (server, _) = ctx.run_until(listener.accept())?.unwrap();
//! ctx.run_until(client.write_all(b"ping".to_vec()))?;
//! let (n, buf) = ctx.run_until(server.read(vec![0; 16]))?.unwrap();
//! assert_eq!(&buf[..n], b"ping");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Cancellation
//! Every operation observes its receiver's stop token: a stop request
//! removes the pending readiness interest or timer on the loop and completes
//! the operation *stopped*. Dropping the context completes every pending
//! operation *stopped*, exactly once.
//!
//! # Errors
//! I/O errors are [`std::io::Error`] values in the error channel, never
//! panics: connection refused or reset, address in use, `EMFILE`,
//! `BrokenPipe` (without `SIGPIPE`).
//!
//! # Backends
//! Two backends behind one API, chosen with [`IoContext::builder`]:
//! [`Backend::IoUring`] (the default where it starts: stream reads and
//! writes, TCP and Unix accept and connect, UDP `send_to`/`recv_from` and
//! file I/O are native io_uring operations on the operation's own buffer,
//! message header and address; signals wait with an io_uring poll) and
//! [`Backend::Readiness`]
//! (epoll through mio). Both pass the same test suite
//! (`EXEC_IO_BACKEND=readiness cargo test -p exec-io` runs it on epoll).
//!
//! # Direct descriptors (io_uring)
//! [`IoContextBuilder::direct_descriptors`] gives a loop's ring a table of
//! direct descriptors: [`TcpListener::accept`] then puts connections in
//! that table instead of the process's descriptor table (falling back to
//! ordinary descriptors when it is full), so a server with one loop per
//! core is not bound by `RLIMIT_NOFILE`. What such a stream can and cannot
//! do: [`TcpStream::is_direct`].
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::undocumented_unsafe_blocks
)]

mod loom;

mod context;
mod file;
mod inbox;
mod net;
mod op;
mod sender;
mod signal;
mod source;
mod spawn;
mod sys;
mod timeout;
mod timer;
mod uring;

pub use context::{Backend, IoContext, IoContextBuilder, IoHandle, IoScheduler, IoThread};
/// `loop_with_state` lives in exec-core (it is not I/O-specific); re-exported
/// here for the code written against `exec_io::loop_with_state`.
pub use exec_core::{LoopWithState, loop_with_state};
pub use file::{File, FileAction};
pub use net::pipe::{PipeReader, PipeWriter, pipe};
pub use net::tcp::{AcceptAction, ConnectAction, TcpListener, TcpStream};
pub use net::udp::{RecvFromAction, SendToAction, UdpSocket};
pub use net::unix::{UnixAcceptAction, UnixConnectAction, UnixListener, UnixStream};
pub use net::{ReadAction, WriteAction, WriteAllAction};
pub use op::{Action, BlockingJob};
pub use sender::{IoSender, ScheduleAction, TimerAction};
pub use signal::{SignalAction, ctrl_c, signal};
pub use spawn::{DetachedReceiver, spawn_detached};
pub use timeout::{TimedOut, Timeout, timeout};

/// The operation states and receivers of this crate's senders.
///
/// Public because they appear in `SenderTo` impls, compiler messages and
/// where-clauses of generic code; code rarely names them, so they are kept
/// out of the crate root (as in [`exec_core::ops`]).
pub mod ops {
    pub use crate::context::UntilReceiver;
    pub use crate::net::tcp::TcpIo;
    pub use crate::op::IoOp;
    pub use crate::timeout::{TimeoutOp, TimeoutReceiver, TimerReceiver};
}
