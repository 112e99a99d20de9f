//! Unix domain sockets: [`UnixListener`] and [`UnixStream`].

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use io_uring::{opcode, squeue, types};

use crate::IoSender;
use crate::context::{IoScheduler, Shared};
use crate::net::stream_methods;
use crate::op::{Action, Interest, Step};
use crate::source::{RawSource, Source};
use crate::sys::UnixAddrBuf;

/// A Unix stream socket listening for connections.
pub struct UnixListener {
    src: Arc<Source<mio::net::UnixListener>>,
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener").finish_non_exhaustive()
    }
}

impl UnixListener {
    /// Binds a listener to the socket file `path` (which must not exist).
    ///
    /// # Errors
    /// The OS error, for example `AddrInUse`.
    pub fn bind(sch: &IoScheduler, path: impl AsRef<Path>) -> io::Result<Self> {
        Ok(UnixListener {
            src: Source::new(sch.shared.clone(), mio::net::UnixListener::bind(path)?),
        })
    }

    /// The address the listener is bound to.
    ///
    /// # Errors
    /// The OS error.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.src.io.local_addr()
    }

    /// Accepts one connection; sends the stream and the peer's address.
    ///
    /// # Errors
    /// The OS error of `accept` (for example `EMFILE`; the listener stays
    /// usable).
    pub fn accept(&self) -> IoSender<UnixAcceptAction> {
        IoSender::new(UnixAcceptAction {
            src: self.src.clone(),
            addr: UnixAddrBuf::new(),
        })
    }
}

/// Action of [`UnixListener::accept`]. On io_uring a native accept entry
/// (the kernel writes the peer's address into `addr`, inside the pinned
/// operation).
pub struct UnixAcceptAction {
    src: Arc<Source<mio::net::UnixListener>>,
    /// io_uring: where the kernel writes the peer's address.
    addr: UnixAddrBuf,
}

impl Action for UnixAcceptAction {
    type Output = (UnixStream, SocketAddr);
    type Error = io::Error;
    fn ctx(&self) -> &Arc<Shared> {
        &self.src.ctx
    }
    fn uring_entry(&mut self) -> Option<(squeue::Entry, RawSource, bool)> {
        // A connecting peer is usually unnamed, and std has no constructor
        // for that address: have one at hand before accepting (if that
        // fails, the readiness path accepts instead).
        crate::sys::unnamed_unix_addr().ok()?;
        let (addr, len) = self.addr.accept_ptrs();
        let entry = opcode::Accept::new(types::Fd(self.src.io.as_raw_fd()), addr, len)
            .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
            .build();
        Some((entry, self.src.raw(), false))
    }
    fn uring_complete(&mut self, res: i32) -> Step<(UnixStream, SocketAddr), io::Error> {
        use std::os::fd::FromRawFd;
        if res >= 0 {
            // SAFETY: a successful accept returns a new descriptor that
            // nothing else owns; the stream takes ownership (closes it).
            let std = unsafe { std::os::unix::net::UnixStream::from_raw_fd(res) };
            let stream = UnixStream {
                src: Source::new(self.src.ctx.clone(), mio::net::UnixStream::from_std(std)),
            };
            Step::Done(self.addr.to_addr().map(|addr| (stream, addr)))
        } else if res == -libc::EAGAIN || res == -libc::EINTR {
            Step::Wait(Interest::Read(self.src.raw()))
        } else {
            Step::Done(Err(io::Error::from_raw_os_error(-res)))
        }
    }
    fn uring_discard(&mut self, res: i32) {
        use std::os::fd::{FromRawFd, OwnedFd};
        if res >= 0 {
            // SAFETY: a successful accept's new descriptor, owned by nobody.
            drop(unsafe { OwnedFd::from_raw_fd(res) });
        }
    }
    fn attempt(&mut self) -> Step<(UnixStream, SocketAddr), io::Error> {
        let src = &self.src;
        crate::net::ops::retry(
            || src.io.accept(),
            || Interest::Read(src.raw()),
            |(s, addr)| {
                (
                    UnixStream {
                        src: Source::new(src.ctx.clone(), s),
                    },
                    addr,
                )
            },
        )
    }
    fn wait_failed(e: io::Error) -> io::Error {
        e
    }
}

/// A Unix stream connection. Cloning shares the socket.
#[derive(Clone)]
pub struct UnixStream {
    src: Arc<Source<mio::net::UnixStream>>,
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream").finish_non_exhaustive()
    }
}

impl UnixStream {
    /// Connects to the socket file `path`; sends the connected stream.
    ///
    /// # Errors
    /// The OS error, for example `NotFound` or `ConnectionRefused`.
    pub fn connect(sch: &IoScheduler, path: impl AsRef<Path>) -> IoSender<UnixConnectAction> {
        IoSender::new(UnixConnectAction {
            ctx: sch.shared.clone(),
            path: path.as_ref().to_path_buf(),
            stream: None,
            raw_addr: UnixAddrBuf::new(),
        })
    }

    /// A connected pair of streams (`socketpair`).
    ///
    /// # Errors
    /// The OS error.
    pub fn pair(sch: &IoScheduler) -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = mio::net::UnixStream::pair()?;
        Ok((
            UnixStream {
                src: Source::new(sch.shared.clone(), a),
            },
            UnixStream {
                src: Source::new(sch.shared.clone(), b),
            },
        ))
    }

    stream_methods!(mio::net::UnixStream);

    /// Shuts down the reading, writing or both halves.
    ///
    /// # Errors
    /// The OS error.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.src.io.shutdown(how)
    }

    /// The peer's address.
    ///
    /// # Errors
    /// The OS error.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.src.io.peer_addr()
    }
}

/// Action of [`UnixStream::connect`].
///
/// On io_uring a native connect entry on a new non-blocking socket (the
/// address it reads lives in `raw_addr`, inside the pinned operation). If
/// the path cannot be an address or the socket cannot be made there, the
/// readiness path below runs (and reports the error); if the entry reports
/// "in progress", the readiness path waits for the result.
pub struct UnixConnectAction {
    ctx: Arc<Shared>,
    path: std::path::PathBuf,
    stream: Option<Arc<Source<mio::net::UnixStream>>>,
    /// io_uring: `path` as the kernel reads it.
    raw_addr: UnixAddrBuf,
}

impl Action for UnixConnectAction {
    type Output = UnixStream;
    type Error = io::Error;
    fn ctx(&self) -> &Arc<Shared> {
        &self.ctx
    }
    fn uring_entry(&mut self) -> Option<(squeue::Entry, RawSource, bool)> {
        if self.stream.is_some() {
            // Already connecting: wait for writability (readiness path).
            return None;
        }
        self.raw_addr = UnixAddrBuf::for_path(&self.path)?;
        let fd = crate::sys::unix_stream_socket().ok()?;
        let std = std::os::unix::net::UnixStream::from(fd);
        let src = Source::new(self.ctx.clone(), mio::net::UnixStream::from_std(std));
        let entry = opcode::Connect::new(
            types::Fd(src.io.as_raw_fd()),
            self.raw_addr.as_ptr(),
            self.raw_addr.len(),
        )
        .build();
        let raw = src.raw();
        self.stream = Some(src);
        Some((entry, raw, true))
    }
    fn uring_complete(&mut self, res: i32) -> Step<UnixStream, io::Error> {
        let Some(src) = &self.stream else {
            return Step::Done(Err(io::Error::other("exec-io: connect without a socket")));
        };
        if res == 0 {
            Step::Done(Ok(UnixStream {
                src: self.stream.take().expect("connect: stream present"),
            }))
        } else if res == -libc::EINPROGRESS || res == -libc::EALREADY {
            Step::Wait(Interest::Write(src.raw()))
        } else {
            // Including `EAGAIN` (the listener's backlog is full), which
            // the readiness path reports as an error too.
            self.stream = None; // closes the socket
            Step::Done(Err(io::Error::from_raw_os_error(-res)))
        }
    }
    fn attempt(&mut self) -> Step<UnixStream, io::Error> {
        let src = match &self.stream {
            None => match mio::net::UnixStream::connect(&self.path) {
                Ok(s) => {
                    let src = Source::new(self.ctx.clone(), s);
                    self.stream = Some(src.clone());
                    src
                }
                Err(e) => return Step::Done(Err(e)),
            },
            Some(src) => src.clone(),
        };
        match src.io.take_error() {
            Ok(Some(e)) | Err(e) => return Step::Done(Err(e)),
            Ok(None) => {}
        }
        match src.io.peer_addr() {
            Ok(_) => Step::Done(Ok(UnixStream {
                src: self.stream.take().expect("connect: stream present"),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                Step::Wait(Interest::Write(src.raw()))
            }
            Err(e) => Step::Done(Err(e)),
        }
    }
    fn wait_failed(e: io::Error) -> io::Error {
        e
    }
}

impl std::fmt::Debug for UnixAcceptAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnixAcceptAction").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for UnixConnectAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnixConnectAction").finish_non_exhaustive()
    }
}
