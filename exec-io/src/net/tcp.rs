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
        })
    }
}

/// Action of [`TcpListener::accept`].
pub struct AcceptAction {
    src: Arc<Source<mio::net::TcpListener>>,
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
pub struct ConnectAction {
    ctx: Arc<Shared>,
    addr: SocketAddr,
    stream: Option<Arc<Source<mio::net::TcpStream>>>,
}

impl Action for ConnectAction {
    type Output = TcpStream;
    type Error = io::Error;
    fn ctx(&self) -> &Arc<Shared> {
        &self.ctx
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
