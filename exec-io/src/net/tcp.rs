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
use crate::uring::SlotOp;
use std::os::fd::{AsRawFd, RawFd};

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
    /// The bound address if it names one host address (not `0.0.0.0` or
    /// `::`): then it is also the local address of every accepted
    /// connection, which a direct stream cannot ask the kernel for.
    local: Option<SocketAddr>,
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
        Ok(TcpListener::new(sch, l))
    }

    fn new(sch: &IoScheduler, l: mio::net::TcpListener) -> Self {
        let local = l.local_addr().ok().filter(|a| !a.ip().is_unspecified());
        TcpListener {
            src: Source::new(sch.shared.clone(), l),
            local,
        }
    }

    /// Binds like [`bind`](Self::bind) and also sets `SO_REUSEPORT`, so
    /// several loops (one per core) can each own a listener on the same
    /// port and the kernel spreads connections between them.
    ///
    /// # Errors
    /// The OS error.
    pub fn bind_reuseport(sch: &IoScheduler, addr: SocketAddr) -> io::Result<Self> {
        let l = crate::sys::reuseport_listener(addr)?;
        Ok(TcpListener::new(sch, mio::net::TcpListener::from_std(l)))
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

    /// Sets `TCP_NODELAY` on the listening socket. On Linux, connections
    /// accepted afterwards inherit it (the kernel copies the listener's
    /// socket options into each new connection), so no per-connection call
    /// is needed; the way to set it on [direct](TcpStream::is_direct)
    /// streams at no cost.
    ///
    /// # Errors
    /// The OS error.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        crate::sys::set_nodelay(&self.src.io, nodelay)
    }

    /// Accepts one connection; sends the stream and the peer's address.
    ///
    /// On an io_uring loop with
    /// [`direct_descriptors`](crate::IoContextBuilder::direct_descriptors),
    /// the connection goes into a free slot of the loop's table of direct
    /// descriptors ([`TcpStream::is_direct`]); if every slot is taken, it
    /// gets an ordinary descriptor instead.
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
            local: self.local,
            no_direct: false,
            direct: false,
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
    /// The listener's address, if it names one host (see `TcpListener`).
    local: Option<SocketAddr>,
    /// The table was found full by an accept that asked for a slot: this
    /// action asks for no more.
    no_direct: bool,
    /// io_uring: the entry in flight accepts into a direct slot, one that
    /// `Shared::direct_reserve` counted as taken; given back (on the
    /// completion, or by the drop if the entry was cancelled) unless the
    /// accept filled it.
    direct: bool,
}

impl Drop for AcceptAction {
    fn drop(&mut self) {
        if self.direct {
            // Cancelled (the op completed without `uring_complete`).
            self.src.ctx.direct_unreserve();
        }
    }
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
                        src: Source::new(src.ctx.clone(), TcpIo::fd(s)),
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
        // A slot counted for an entry that could not be queued (this is
        // its retry) is given back first.
        if core::mem::take(&mut self.direct) {
            self.src.ctx.direct_unreserve();
        }
        self.direct = !self.no_direct && self.src.ctx.direct_reserve();
        let accept = opcode::Accept::new(
            types::Fd(self.src.io.as_raw_fd()),
            (&mut self.addr as *mut libc::sockaddr_storage).cast(),
            &mut self.addr_len,
        );
        let accept = if self.direct {
            // (The kernel rejects `SOCK_CLOEXEC` for a direct descriptor,
            // which no `exec` can inherit anyway.)
            accept
                .flags(libc::SOCK_NONBLOCK)
                .file_index(Some(types::DestinationSlot::auto_target()))
        } else {
            accept.flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
        };
        Some((accept.build(), self.src.raw(), false))
    }
    fn uring_complete(&mut self, res: i32) -> Step<(TcpStream, SocketAddr), io::Error> {
        use std::os::fd::FromRawFd;
        if core::mem::take(&mut self.direct) {
            if res >= 0 {
                // The slot the kernel picked; it stays counted as taken
                // until the stream's close completes.
                let peer = crate::sys::sockaddr_to_addr(&self.addr);
                let io = TcpIo(Kind::Direct(Box::new(DirectAddrs {
                    peer: peer.as_ref().ok().copied(),
                    local: self.local,
                })));
                let stream = TcpStream {
                    src: Source::new_direct(self.src.ctx.clone(), io, res as u32),
                };
                return Step::Done(peer.map(|addr| (stream, addr)));
            }
            self.src.ctx.direct_unreserve();
            if res == -libc::ENFILE {
                self.no_direct = true;
                // The table was full after all (only if something else
                // fills it): the kernel closed the connection it had
                // accepted. Take the next one.
                return Step::Wait(Interest::Resubmit);
            }
        }
        if res >= 0 {
            // SAFETY: a successful accept returns a new descriptor that
            // nothing else owns; `TcpStream` takes ownership (closes it).
            let std = unsafe { std::net::TcpStream::from_raw_fd(res) };
            let peer = crate::sys::sockaddr_to_addr(&self.addr);
            let stream = TcpStream {
                src: Source::new(
                    self.src.ctx.clone(),
                    TcpIo::fd(mio::net::TcpStream::from_std(std)),
                ),
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
        if core::mem::take(&mut self.direct) {
            // The context is being dropped: a filled slot is freed with the
            // ring's table.
            return;
        }
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
///
/// A stream accepted on a loop with
/// [`direct_descriptors`](crate::IoContextBuilder::direct_descriptors) may
/// be a *direct* stream: see [`is_direct`](Self::is_direct).
#[derive(Clone)]
pub struct TcpStream {
    src: Arc<Source<TcpIo>>,
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .field("direct_slot", &self.src.fixed())
            .finish()
    }
}

/// The socket of a [`TcpStream`]: an ordinary descriptor, or an io_uring
/// direct descriptor (a slot of the loop's ring's file table), which the
/// process's descriptor table does not hold.
///
/// It appears in the types of the stream's operations
/// ([`ReadAction<TcpIo>`](crate::ReadAction)); code does not use it
/// directly. On a direct stream, [`as_raw_fd`](AsRawFd::as_raw_fd) is `-1`
/// (a descriptor every call rejects) and reading or writing through it
/// fails with `Unsupported`: the stream's operations go through the ring.
pub struct TcpIo(Kind);

enum Kind {
    Fd(mio::net::TcpStream),
    /// Boxed: the two addresses would make every TCP stream's shared state
    /// 64 B larger, direct or not (`Source`'s size test).
    Direct(Box<DirectAddrs>),
}

/// What a direct stream cannot ask the kernel for.
struct DirectAddrs {
    /// The peer's address, from the accept.
    peer: Option<SocketAddr>,
    /// The listener's address, if it named one host.
    local: Option<SocketAddr>,
}

impl TcpIo {
    fn fd(s: mio::net::TcpStream) -> Self {
        TcpIo(Kind::Fd(s))
    }

    /// The ordinary socket, or the error of asking a direct one for `what`.
    fn sock(&self, what: &str) -> io::Result<&mio::net::TcpStream> {
        match &self.0 {
            Kind::Fd(s) => Ok(s),
            Kind::Direct(_) => Err(direct_unsupported(what)),
        }
    }
}

fn direct_unsupported(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!(
            "exec-io: {what} is not available on a direct (io_uring fixed-file) TCP stream, \
             which has no descriptor of its own"
        ),
    )
}

impl fmt::Debug for TcpIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Fd(s) => f.debug_tuple("TcpIo").field(s).finish(),
            Kind::Direct(a) => f.debug_struct("TcpIo").field("peer", &a.peer).finish(),
        }
    }
}

impl AsRawFd for TcpIo {
    fn as_raw_fd(&self) -> RawFd {
        match &self.0 {
            Kind::Fd(s) => s.as_raw_fd(),
            Kind::Direct(_) => -1,
        }
    }
}

impl io::Read for &TcpIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut sock = self.sock("a read without io_uring")?;
        sock.read(buf)
    }
}

impl io::Write for &TcpIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut sock = self.sock("a write without io_uring")?;
        sock.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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

    stream_methods!(TcpIo);

    /// Whether this stream is an io_uring *direct descriptor*: a slot of
    /// its loop's ring's file table (see
    /// [`IoContextBuilder::direct_descriptors`](crate::IoContextBuilder::direct_descriptors)),
    /// not a descriptor of the process.
    ///
    /// A direct stream belongs to its loop's ring. Its operations work as
    /// on any stream (started from any thread, they run on the loop):
    /// [`read`](Self::read), [`write`](Self::write),
    /// [`write_all`](Self::write_all) use the slot, and dropping the last
    /// handle (once no operation runs on it) closes the slot on the loop,
    /// freeing it for the next accept; if the loop is gone, the ring's
    /// table, with the socket, is freed with the ring.
    ///
    /// The synchronous methods, which need a descriptor, differ:
    /// - [`shutdown`](Self::shutdown), [`set_nodelay`](Self::set_nodelay)
    ///   and [`set_linger_zero`](Self::set_linger_zero) queue an io_uring
    ///   operation on the slot and return `Ok`; the kernel runs it with the
    ///   loop's next submission, in order with operations started after
    ///   the call, and its error, if any, is not reported (setting options
    ///   needs Linux 6.7). For `TCP_NODELAY` prefer
    ///   [`TcpListener::set_nodelay`], which accepted streams inherit.
    /// - [`peer_addr`](Self::peer_addr) is the address the accept
    ///   reported; [`local_addr`](Self::local_addr) is the listener's
    ///   address when it was bound to one host address (with `0.0.0.0` or
    ///   `::` it fails with `Unsupported`).
    /// - [`nodelay`](Self::nodelay) fails with `Unsupported` (io_uring
    ///   reads only `SOL_SOCKET` options).
    pub fn is_direct(&self) -> bool {
        self.src.fixed().is_some()
    }

    /// Shuts down the reading, writing or both halves of the connection.
    /// On a [direct](Self::is_direct) stream, queued on the loop (see
    /// there).
    ///
    /// # Errors
    /// The OS error (ordinary streams).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        if let Some(slot) = self.src.fixed() {
            let how = match how {
                Shutdown::Read => libc::SHUT_RD,
                Shutdown::Write => libc::SHUT_WR,
                Shutdown::Both => libc::SHUT_RDWR,
            };
            self.src.ctx.slot_op(SlotOp::Shutdown(slot, how));
            return Ok(());
        }
        self.src.io.sock("shutdown")?.shutdown(how)
    }

    /// The remote address.
    ///
    /// # Errors
    /// The OS error (`NotConnected`).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match &self.src.io.0 {
            Kind::Fd(s) => s.peer_addr(),
            Kind::Direct(a) => a.peer.ok_or_else(|| direct_unsupported("peer_addr")),
        }
    }

    /// The local address.
    ///
    /// # Errors
    /// The OS error; `Unsupported` on a [direct](Self::is_direct) stream
    /// accepted by a listener bound to an unspecified address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.src.io.0 {
            Kind::Fd(s) => s.local_addr(),
            Kind::Direct(a) => a.local.ok_or_else(|| {
                direct_unsupported("local_addr (the listener was bound to an unspecified address)")
            }),
        }
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm). On a
    /// [direct](Self::is_direct) stream, queued on the loop (see there).
    ///
    /// # Errors
    /// The OS error (ordinary streams).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        if let Some(slot) = self.src.fixed() {
            self.src.ctx.slot_op(SlotOp::SetNoDelay(slot, nodelay));
            return Ok(());
        }
        self.src.io.sock("set_nodelay")?.set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    ///
    /// # Errors
    /// The OS error; `Unsupported` on a [direct](Self::is_direct) stream.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.src.io.sock("nodelay")?.nodelay()
    }

    /// Sets `SO_LINGER` to zero, so that dropping the stream resets the
    /// connection (the peer sees `ConnectionReset`) instead of closing it.
    /// On a [direct](Self::is_direct) stream, queued on the loop (see
    /// there).
    ///
    /// # Errors
    /// The OS error (ordinary streams).
    pub fn set_linger_zero(&self) -> io::Result<()> {
        if let Some(slot) = self.src.fixed() {
            self.src.ctx.slot_op(SlotOp::LingerZero(slot));
            return Ok(());
        }
        crate::sys::set_linger_zero(self.src.io.sock("set_linger_zero")?)
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
    stream: Option<Arc<Source<TcpIo>>>,
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
        let src = Source::new(
            self.ctx.clone(),
            TcpIo::fd(mio::net::TcpStream::from_std(std)),
        );
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
                    let src = Source::new(self.ctx.clone(), TcpIo::fd(s));
                    self.stream = Some(src.clone());
                    return Step::Wait(Interest::Write(src.raw()));
                }
                Err(e) => return Step::Done(Err(e)),
            },
            Some(src) => src,
        };
        let sock = match src.io.sock("connect") {
            Ok(s) => s,
            Err(e) => return Step::Done(Err(e)),
        };
        match sock.take_error() {
            Ok(Some(e)) | Err(e) => return Step::Done(Err(e)),
            Ok(None) => {}
        }
        match sock.peer_addr() {
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
