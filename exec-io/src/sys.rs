//! The few raw socket calls std and mio do not offer.

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn setsockopt<T>(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: T,
) -> io::Result<()> {
    // SAFETY: `value` lives across the call and its size is passed along.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `SO_LINGER` with a zero timeout: closing resets the connection.
pub(crate) fn set_linger_zero(fd: &impl AsRawFd) -> io::Result<()> {
    setsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_LINGER,
        libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    )
}

/// A non-blocking listener with `SO_REUSEADDR` and `SO_REUSEPORT`.
pub(crate) fn reuseport_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: plain syscall; the result is checked.
    let fd = cvt(unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: `fd` is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    setsockopt(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1 as libc::c_int)?;
    setsockopt(&fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1 as libc::c_int)?;
    // SAFETY: an all-zero `sockaddr_storage` is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: `sockaddr_storage` is larger than and aligned for
            // `sockaddr_in`.
            unsafe {
                (&mut storage as *mut libc::sockaddr_storage)
                    .cast::<libc::sockaddr_in>()
                    .write(sin)
            };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for `sockaddr_in6`.
            unsafe {
                (&mut storage as *mut libc::sockaddr_storage)
                    .cast::<libc::sockaddr_in6>()
                    .write(sin6)
            };
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    // SAFETY: `storage` holds a valid address of `len` bytes.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&storage as *const libc::sockaddr_storage).cast(),
            len as libc::socklen_t,
        )
    })?;
    // SAFETY: plain syscall on our descriptor.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), 1024) })?;
    Ok(std::net::TcpListener::from(fd))
}

/// The socket address the kernel wrote into `st`.
pub(crate) fn sockaddr_to_addr(st: &libc::sockaddr_storage) -> io::Result<SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    match st.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a `sockaddr_in`
            // (`sockaddr_storage` is large and aligned enough for it).
            let a = unsafe { &*(st as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Ok(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for `sockaddr_in6`.
            let a = unsafe { &*(st as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Ok(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "exec-io: the kernel returned an unexpected address family",
        )),
    }
}

/// Writes `addr` into `st`; returns its length.
pub(crate) fn addr_to_sockaddr(
    addr: &SocketAddr,
    st: &mut libc::sockaddr_storage,
) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: `sockaddr_storage` is large and aligned enough for a
            // `sockaddr_in`; every field is written below.
            let sin =
                unsafe { &mut *(st as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from(*a.ip()).to_be(),
            };
            sin.sin_zero = [0; 8];
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for `sockaddr_in6`.
            let sin6 =
                unsafe { &mut *(st as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// io_uring: what one `sendmsg`/`recvmsg` entry points at besides the
/// data buffer: the message header, its one `iovec` and the peer address.
///
/// Kept inside the operation's action, so inside the pinned operation
/// state, which does not complete (is not freed or moved) before the
/// entry's completion has been reaped: the pointers the kernel follows
/// (`hdr` → `iov` → the buffer, `hdr` → `addr`) stay valid for as long as
/// it may use them. They are set by [`recv`](Self::recv) and
/// [`send`](Self::send) right before each submission, after the operation
/// was pinned.
pub(crate) struct MsgBuf {
    hdr: libc::msghdr,
    iov: libc::iovec,
    addr: libc::sockaddr_storage,
}

// SAFETY: the raw pointers in `hdr` and `iov` are never dereferenced
// through this type (only by the kernel, while the entry is in flight);
// they point into this value and into the buffer of the action that owns
// it, which moves between threads only together with it (the action is
// `Send` because its buffer is).
unsafe impl Send for MsgBuf {}

impl MsgBuf {
    pub(crate) fn new() -> Self {
        // SAFETY: all-zero is a valid value of these plain C structs (null
        // pointers, zero lengths).
        unsafe { mem::zeroed() }
    }

    /// Points the header at `buf` (one `iovec`) and at the address
    /// storage, for a `recvmsg` into `buf`; returns the header.
    ///
    /// The pointers stay valid while neither `self` nor `buf`'s allocation
    /// moves or is freed (see the type's docs).
    pub(crate) fn recv(&mut self, buf: &mut [u8]) -> *mut libc::msghdr {
        self.iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        self.prepare(mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t)
    }

    /// Writes `to` into the address storage and points the header at it
    /// and at `buf`, for a `sendmsg` of `buf`; returns the header.
    ///
    /// The pointers stay valid as for [`recv`](Self::recv). (The kernel
    /// only reads through them; `*mut` is what the `iovec` type holds.)
    pub(crate) fn send(&mut self, buf: &[u8], to: &SocketAddr) -> *const libc::msghdr {
        let len = addr_to_sockaddr(to, &mut self.addr);
        self.iov = libc::iovec {
            iov_base: buf.as_ptr().cast_mut().cast(),
            iov_len: buf.len(),
        };
        self.prepare(len)
    }

    fn prepare(&mut self, name_len: libc::socklen_t) -> *mut libc::msghdr {
        // SAFETY: as in `new`.
        self.hdr = unsafe { mem::zeroed() };
        self.hdr.msg_name = (&mut self.addr as *mut libc::sockaddr_storage).cast();
        self.hdr.msg_namelen = name_len;
        self.hdr.msg_iov = &mut self.iov;
        self.hdr.msg_iovlen = 1;
        &mut self.hdr
    }

    /// After a completed `recvmsg`: the sender's address.
    pub(crate) fn peer(&self) -> io::Result<SocketAddr> {
        sockaddr_to_addr(&self.addr)
    }
}

/// A Unix socket address as the kernel reads or writes it, with its length
/// (io_uring's connect reads it; its accept writes the peer's address into
/// it). Kept inside the pinned operation like [`MsgBuf`].
pub(crate) struct UnixAddrBuf {
    addr: libc::sockaddr_un,
    len: libc::socklen_t,
}

/// Offset of `sun_path` in `sockaddr_un`.
const SUN_PATH_OFFSET: usize = mem::offset_of!(libc::sockaddr_un, sun_path);

impl UnixAddrBuf {
    pub(crate) fn new() -> Self {
        UnixAddrBuf {
            // SAFETY: all-zero is a valid `sockaddr_un` (plain data).
            addr: unsafe { mem::zeroed() },
            len: 0,
        }
    }

    /// `path` as a pathname address, built as std builds it for `connect`;
    /// `None` if it cannot be one (an interior NUL byte, too long): the
    /// caller then lets the readiness path report the OS library's error.
    pub(crate) fn for_path(path: &std::path::Path) -> Option<Self> {
        use std::os::unix::ffi::OsStrExt;
        let bytes = path.as_os_str().as_bytes();
        let mut a = UnixAddrBuf::new();
        if bytes.contains(&0) || bytes.len() >= a.addr.sun_path.len() {
            return None;
        }
        a.addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (d, s) in a.addr.sun_path.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        let nul = usize::from(!bytes.is_empty());
        a.len = (SUN_PATH_OFFSET + bytes.len() + nul) as libc::socklen_t;
        Some(a)
    }

    /// The address, for a connect entry (valid while `self` stays put).
    pub(crate) fn as_ptr(&self) -> *const libc::sockaddr {
        (&self.addr as *const libc::sockaddr_un).cast()
    }

    /// The address's length.
    pub(crate) fn len(&self) -> libc::socklen_t {
        self.len
    }

    /// For an accept entry: where the kernel writes the peer's address and
    /// its length (valid while `self` stays put).
    pub(crate) fn accept_ptrs(&mut self) -> (*mut libc::sockaddr, *mut libc::socklen_t) {
        self.len = mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        (
            (&mut self.addr as *mut libc::sockaddr_un).cast(),
            &mut self.len,
        )
    }

    /// After a completed accept: the peer's address as std represents it.
    pub(crate) fn to_addr(&self) -> io::Result<std::os::unix::net::SocketAddr> {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::net::SocketAddr as UnixAddr;
        let len = (self.len as usize).min(mem::size_of::<libc::sockaddr_un>());
        let n = len.saturating_sub(SUN_PATH_OFFSET);
        if n == 0 {
            return unnamed_unix_addr();
        }
        let mut bytes = [0u8; 108];
        for (d, s) in bytes.iter_mut().zip(&self.addr.sun_path[..n]) {
            *d = *s as u8;
        }
        let path = &bytes[..n];
        if path[0] == 0 {
            UnixAddr::from_abstract_name(&path[1..])
        } else {
            let end = path.iter().position(|&b| b == 0).unwrap_or(n);
            UnixAddr::from_pathname(std::ffi::OsStr::from_bytes(&path[..end]))
        }
    }
}

/// An unnamed Unix socket address (std offers no constructor for one: it
/// is taken from an unbound socket once per process and cloned).
pub(crate) fn unnamed_unix_addr() -> io::Result<std::os::unix::net::SocketAddr> {
    static UNNAMED: std::sync::OnceLock<std::os::unix::net::SocketAddr> =
        std::sync::OnceLock::new();
    if let Some(a) = UNNAMED.get() {
        return Ok(a.clone());
    }
    let a = std::os::unix::net::UnixDatagram::unbound()?.local_addr()?;
    Ok(UNNAMED.get_or_init(|| a).clone())
}

/// A new non-blocking, close-on-exec, unconnected Unix stream socket (for
/// io_uring's connect).
pub(crate) fn unix_stream_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the result is checked.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: `fd` is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The soft `RLIMIT_NOFILE` (capped to `u32`).
pub(crate) fn nofile_limit() -> u32 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscall writing into a live local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return u32::MAX;
    }
    lim.rlim_cur.min(u64::from(u32::MAX)) as u32
}

/// `TCP_NODELAY` on a socket.
pub(crate) fn set_nodelay(fd: &impl AsRawFd, on: bool) -> io::Result<()> {
    setsockopt(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_NODELAY,
        libc::c_int::from(on),
    )
}
