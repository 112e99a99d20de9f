//! TCP: [`TcpListener`] and [`TcpStream`].

use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;

use crate::IoSender;
use crate::context::{IoScheduler, Shared};
use crate::net::stream_methods;
use crate::op::{Action, Interest, Step};
use crate::source::Source;

/// A TCP socket listening for connections on an [`IoContext`](crate::IoContext).
///
/// ```no_run
/// use exec_io::{IoContext, TcpListener};
/// let ctx = IoContext::new()?;
/// let listener = TcpListener::bind(&ctx.scheduler(), "127.0.0.1:0".parse().unwrap())?;
/// let (stream, peer) = ctx.run_until(listener.accept())?.unwrap();
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpListener {
    src: Arc<Source<mio::net::TcpListener>>,
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}

impl TcpListener {
    /// Binds a listener to `addr` (with `SO_REUSEADDR`), for the loop of
    /// `sch`.
    ///
    /// # Errors
    /// The OS error, for example `AddrInUse`.
    pub fn bind(sch: &IoScheduler, addr: SocketAddr) -> io::Result<Self> {
        let l = mio::net::TcpListener::bind(addr)?;
        Ok(TcpListener {
            src: Source::new(sch.shared.clone(), l),
        })
    }

    /// Binds like [`bind`](Self::bind) and also sets `SO_REUSEPORT`, so
    /// several loops (one per core) can each own a listener on the same
    /// port and the kernel spreads connections between them.
    ///
    /// # Errors
    /// The OS error.
    pub fn bind_reuseport(sch: &IoScheduler, addr: SocketAddr) -> io::Result<Self> {
        let l = crate::sys::reuseport_listener(addr)?;
        Ok(TcpListener {
            src: Source::new(sch.shared.clone(), mio::net::TcpListener::from_std(l)),
        })
    }

    /// A server on several loops: on each scheduler's loop, binds a
    /// [`bind_reuseport`](Self::bind_reuseport) listener on `addr` and
    /// starts `serve(listener)` there, detached (as by
    /// [`spawn_detached`](crate::spawn_detached)). All listeners share one
    /// port (with port 0, the first one's), and the kernel spreads
    /// connections between the loops. Returns the bound address.
    ///
    /// # Errors
    /// The OS error of a bind; the listeners bound before it keep serving.
    ///
    /// # Example
    /// ```
    /// use exec_core::SenderExt;
    /// use exec_io::{IoContext, TcpListener, TcpStream};
    ///
    /// let (a, b) = (IoContext::new()?, IoContext::builder().spawn()?);
    /// let addr = TcpListener::serve_on_each(
    ///     [a.scheduler(), b.scheduler()],
    ///     "127.0.0.1:0".parse().unwrap(),
    ///     |l| l.accept().then(|(stream, _)| drop(stream)), // one connection each
    /// )?;
    /// let sch = a.scheduler();
    /// a.run_until(TcpStream::connect(&sch, addr)).unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn serve_on_each<S>(
        schedulers: impl IntoIterator<Item = IoScheduler>,
        mut addr: SocketAddr,
        mut serve: impl FnMut(TcpListener) -> S,
    ) -> io::Result<SocketAddr>
    where
        S: exec_core::Sender + exec_core::SenderTo<crate::DetachedReceiver> + 'static,
        S::Operation: Send,
    {
        for sch in schedulers {
            let listener = TcpListener::bind_reuseport(&sch, addr)?;
            // Port 0: the next ones join the port the first one got.
            addr = listener.local_addr()?;
            // Started here; the listener's operations run on `sch`'s loop.
            crate::spawn_detached(serve(listener));
        }
        Ok(addr)
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
    /// The OS error of `accept`, for example `EMFILE` (too many open files):
    /// the listener stays usable and a later `accept` succeeds once
    /// descriptors are free again.
    pub fn accept(&self) -> IoSender<AcceptAction> {
        IoSender::new(AcceptAction {
            src: self.src.clone(),
            // SAFETY: all-zero is a valid `sockaddr_storage` (plain data).
            addr: unsafe { core::mem::zeroed() },
            addr_len: 0,
        })
    }
}

/// Action of [`TcpListener::accept`]. On io_uring a native accept entry
/// (the peer address is written into `addr`, inside the pinned operation).
pub struct AcceptAction {
    src: Arc<Source<mio::net::TcpListener>>,
    /// io_uring: where the kernel writes the peer's address.
    addr: libc::sockaddr_storage,
    addr_len: libc::socklen_t,
}

impl Action for AcceptAction {
    type Output = (TcpStream, SocketAddr);
    type Error = io::Error;
    fn ctx(&self) -> &Arc<Shared> {
        &self.src.ctx
    }
    fn attempt(&mut self) -> Step<(TcpStream, SocketAddr), io::Error> {
        let src = &self.src;
        crate::net::ops::retry(
            || src.io.accept(),
            || Interest::Read(src.raw()),
            |(s, addr)| {
                (
                    TcpStream {
                        src: Source::new(src.ctx.clone(), s),
                    },
                    addr,
                )
            },
        )
    }
    fn uring_entry(&mut self) -> Option<(io_uring::squeue::Entry, crate::source::RawSource, bool)> {
        use io_uring::{opcode, types};
        use std::os::fd::AsRawFd;
        self.addr_len = core::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let entry = opcode::Accept::new(
            types::Fd(self.src.io.as_raw_fd()),
            (&mut self.addr as *mut libc::sockaddr_storage).cast(),
            &mut self.addr_len,
        )
        .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
        .build();
        Some((entry, self.src.raw(), false))
    }
    fn uring_complete(&mut self, res: i32) -> Step<(TcpStream, SocketAddr), io::Error> {
        use std::os::fd::FromRawFd;
        if res >= 0 {
            // SAFETY: a successful accept returns a new descriptor that
            // nothing else owns; `TcpStream` takes ownership (closes it).
            let std = unsafe { std::net::TcpStream::from_raw_fd(res) };
            let peer = crate::sys::sockaddr_to_addr(&self.addr);
            let stream = TcpStream {
                src: Source::new(self.src.ctx.clone(), mio::net::TcpStream::from_std(std)),
            };
            Step::Done(peer.map(|addr| (stream, addr)))
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
    fn wait_failed(e: io::Error) -> io::Error {
        e
    }
}

/// A TCP connection on an [`IoContext`](crate::IoContext).
///
/// Cloning shares the socket (it is closed when the last clone and the last
/// operation on it are gone). At most one read and one write may be pending
/// at a time; a second one fails with `ResourceBusy`.
#[derive(Clone)]
pub struct TcpStream {
    src: Arc<Source<mio::net::TcpStream>>,
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .finish()
    }
}

impl TcpStream {
    /// Connects to `addr`; sends the connected stream.
    ///
    /// # Errors
    /// The OS error, for example `ConnectionRefused`.
    pub fn connect(sch: &IoScheduler, addr: SocketAddr) -> IoSender<ConnectAction> {
        IoSender::new(ConnectAction {
            ctx: sch.shared.clone(),
            addr,
            stream: None,
            // SAFETY: all-zero is a valid `sockaddr_storage` (plain data).
            raw_addr: unsafe { core::mem::zeroed() },
        })
    }

    stream_methods!(mio::net::TcpStream);

    /// Shuts down the reading, writing or both halves of the connection.
    ///
    /// # Errors
    /// The OS error.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.src.io.shutdown(how)
    }

    /// The remote address.
    ///
    /// # Errors
    /// The OS error (`NotConnected`).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.src.io.peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    /// The OS error.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.src.io.local_addr()
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    ///
    /// # Errors
    /// The OS error.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.src.io.set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    ///
    /// # Errors
    /// The OS error.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.src.io.nodelay()
    }

    /// Sets `SO_LINGER` to zero, so that dropping the stream resets the
    /// connection (the peer sees `ConnectionReset`) instead of closing it.
    ///
    /// # Errors
    /// The OS error.
    pub fn set_linger_zero(&self) -> io::Result<()> {
        crate::sys::set_linger_zero(&self.src.io)
    }
}

/// Action of [`TcpStream::connect`].
///
/// On io_uring a native connect entry on a new non-blocking socket (the
/// address it reads lives in `raw_addr`, inside the pinned operation); if
/// the socket cannot be made there, or the entry reports "in progress",
/// the readiness path below takes over.
pub struct ConnectAction {
    ctx: Arc<Shared>,
    addr: SocketAddr,
    stream: Option<Arc<Source<mio::net::TcpStream>>>,
    /// io_uring: `addr` as the kernel reads it.
    raw_addr: libc::sockaddr_storage,
}

impl Action for ConnectAction {
    type Output = TcpStream;
    type Error = io::Error;
    fn ctx(&self) -> &Arc<Shared> {
        &self.ctx
    }
    fn uring_entry(&mut self) -> Option<(io_uring::squeue::Entry, crate::source::RawSource, bool)> {
        use io_uring::{opcode, types};
        use std::os::fd::{AsRawFd, FromRawFd};
        if self.stream.is_some() {
            // Already connecting: wait for writability (readiness path).
            return None;
        }
        let family = match self.addr {
            SocketAddr::V4(_) => libc::AF_INET,
            SocketAddr::V6(_) => libc::AF_INET6,
        };
        // SAFETY: plain syscall.
        let fd = unsafe {
            libc::socket(
                family,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if fd < 0 {
            // `attempt` makes the socket again and reports the error.
            return None;
        }
        // SAFETY: a new descriptor nobody else owns.
        let std = unsafe { std::net::TcpStream::from_raw_fd(fd) };
        let src = Source::new(self.ctx.clone(), mio::net::TcpStream::from_std(std));
        let len = crate::sys::addr_to_sockaddr(&self.addr, &mut self.raw_addr);
        let entry = opcode::Connect::new(
            types::Fd(src.io.as_raw_fd()),
            (&self.raw_addr as *const libc::sockaddr_storage).cast(),
            len,
        )
        .build();
        let raw = src.raw();
        self.stream = Some(src);
        Some((entry, raw, true))
    }
    fn uring_complete(&mut self, res: i32) -> Step<TcpStream, io::Error> {
        let Some(src) = &self.stream else {
            return Step::Done(Err(io::Error::other("exec-io: connect without a socket")));
        };
        if res == 0 {
            Step::Done(Ok(TcpStream {
                src: self.stream.take().expect("connect: stream present"),
            }))
        } else if res == -libc::EINPROGRESS || res == -libc::EALREADY || res == -libc::EAGAIN {
            Step::Wait(Interest::Write(src.raw()))
        } else {
            self.stream = None; // closes the socket
            Step::Done(Err(io::Error::from_raw_os_error(-res)))
        }
    }
    fn attempt(&mut self) -> Step<TcpStream, io::Error> {
        let src = match &self.stream {
            None => match mio::net::TcpStream::connect(self.addr) {
                Ok(s) => {
                    let src = Source::new(self.ctx.clone(), s);
                    self.stream = Some(src.clone());
                    return Step::Wait(Interest::Write(src.raw()));
                }
                Err(e) => return Step::Done(Err(e)),
            },
            Some(src) => src,
        };
        match src.io.take_error() {
            Ok(Some(e)) | Err(e) => return Step::Done(Err(e)),
            Ok(None) => {}
        }
        match src.io.peer_addr() {
            Ok(_) => Step::Done(Ok(TcpStream {
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

impl std::fmt::Debug for AcceptAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceptAction").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ConnectAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectAction").finish_non_exhaustive()
    }
}
