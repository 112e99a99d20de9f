//! Unix domain sockets: [`UnixListener`] and [`UnixStream`].

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use crate::IoSender;
use crate::context::{IoScheduler, Shared};
use crate::net::stream_methods;
use crate::op::{Action, Interest, Step};
use crate::source::Source;

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
        })
    }
}

/// Action of [`UnixListener::accept`].
pub struct UnixAcceptAction {
    src: Arc<Source<mio::net::UnixListener>>,
}

impl Action for UnixAcceptAction {
    type Output = (UnixStream, SocketAddr);
    type Error = io::Error;
    fn ctx(&self) -> &Arc<Shared> {
        &self.src.ctx
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
pub struct UnixConnectAction {
    ctx: Arc<Shared>,
    path: std::path::PathBuf,
    stream: Option<Arc<Source<mio::net::UnixStream>>>,
}

impl Action for UnixConnectAction {
    type Output = UnixStream;
    type Error = io::Error;
    fn ctx(&self) -> &Arc<Shared> {
        &self.ctx
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
