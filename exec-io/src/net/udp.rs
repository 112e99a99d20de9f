//! UDP: [`UdpSocket`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use io_uring::{opcode, squeue, types};

use crate::IoSender;
use crate::context::{IoScheduler, Shared};
use crate::net::ops::uring_result;
use crate::op::{Action, Interest, Step};
use crate::source::{RawSource, Source};
use crate::sys::MsgBuf;

/// A UDP socket on an [`IoContext`](crate::IoContext).
///
/// At most one receive and one send may be pending at a time.
#[derive(Clone)]
pub struct UdpSocket {
    src: Arc<Source<mio::net::UdpSocket>>,
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}

impl UdpSocket {
    /// Binds a socket to `addr`.
    ///
    /// # Errors
    /// The OS error, for example `AddrInUse`.
    pub fn bind(sch: &IoScheduler, addr: SocketAddr) -> io::Result<Self> {
        Ok(UdpSocket {
            src: Source::new(sch.shared.clone(), mio::net::UdpSocket::bind(addr)?),
        })
    }

    /// The local address.
    ///
    /// # Errors
    /// The OS error.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.src.io.local_addr()
    }

    /// Sends `buf` as one datagram to `addr`; sends `(n, buf)` back.
    ///
    /// # Errors
    /// The OS error of `sendto`.
    pub fn send_to(&self, buf: Vec<u8>, addr: SocketAddr) -> IoSender<SendToAction> {
        IoSender::new(SendToAction {
            src: self.src.clone(),
            buf: Some(buf),
            addr,
            msg: MsgBuf::new(),
        })
    }

    /// Receives one datagram into `buf` (truncated to `buf.len()`); sends
    /// `(n, from, buf)`.
    ///
    /// # Errors
    /// The OS error of `recvfrom`.
    pub fn recv_from(&self, buf: Vec<u8>) -> IoSender<RecvFromAction> {
        IoSender::new(RecvFromAction {
            src: self.src.clone(),
            buf: Some(buf),
            msg: MsgBuf::new(),
        })
    }
}

/// Action of [`UdpSocket::send_to`]. On io_uring a native `sendmsg`
/// entry (its header, `iovec` and destination address live in `msg`,
/// inside the pinned operation).
pub struct SendToAction {
    src: Arc<Source<mio::net::UdpSocket>>,
    buf: Option<Vec<u8>>,
    addr: SocketAddr,
    /// io_uring: what the entry points at besides `buf`.
    msg: MsgBuf,
}

impl Action for SendToAction {
    type Output = (usize, Vec<u8>);
    type Error = io::Error;
    fn ctx(&self) -> &Arc<Shared> {
        &self.src.ctx
    }
    fn uring_entry(&mut self) -> Option<(squeue::Entry, RawSource, bool)> {
        let buf = self.buf.as_ref()?;
        let hdr = self.msg.send(buf, &self.addr);
        let entry = opcode::SendMsg::new(types::Fd(self.src.io.as_raw_fd()), hdr)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build();
        Some((entry, self.src.raw(), true))
    }
    fn uring_complete(&mut self, res: i32) -> Step<(usize, Vec<u8>), io::Error> {
        match uring_result(res) {
            Ok(Some(n)) => Step::Done(Ok((n, self.buf.take().unwrap_or_default()))),
            Ok(None) => Step::Wait(Interest::Write(self.src.raw())),
            Err(e) => Step::Done(Err(e)),
        }
    }
    fn attempt(&mut self) -> Step<(usize, Vec<u8>), io::Error> {
        let buf = self.buf.take().unwrap_or_default();
        let src = &self.src;
        let addr = self.addr;
        match crate::net::ops::retry(
            || src.io.send_to(&buf, addr),
            || Interest::Write(src.raw()),
            |n| n,
        ) {
            Step::Done(Ok(n)) => Step::Done(Ok((n, buf))),
            Step::Done(Err(e)) => Step::Done(Err(e)),
            Step::Wait(i) => {
                self.buf = Some(buf);
                Step::Wait(i)
            }
        }
    }
    fn wait_failed(e: io::Error) -> io::Error {
        e
    }
}

/// Action of [`UdpSocket::recv_from`]. On io_uring a native `recvmsg`
/// entry (its header, `iovec` and the sender's address the kernel writes
/// live in `msg`, inside the pinned operation).
pub struct RecvFromAction {
    src: Arc<Source<mio::net::UdpSocket>>,
    buf: Option<Vec<u8>>,
    /// io_uring: what the entry points at besides `buf`.
    msg: MsgBuf,
}

impl Action for RecvFromAction {
    type Output = (usize, SocketAddr, Vec<u8>);
    type Error = io::Error;
    fn ctx(&self) -> &Arc<Shared> {
        &self.src.ctx
    }
    fn uring_entry(&mut self) -> Option<(squeue::Entry, RawSource, bool)> {
        let buf = self.buf.as_mut()?;
        let hdr = self.msg.recv(buf);
        let entry = opcode::RecvMsg::new(types::Fd(self.src.io.as_raw_fd()), hdr).build();
        Some((entry, self.src.raw(), false))
    }
    fn uring_complete(&mut self, res: i32) -> Step<(usize, SocketAddr, Vec<u8>), io::Error> {
        match uring_result(res) {
            Ok(Some(n)) => {
                let buf = self.buf.take().unwrap_or_default();
                Step::Done(self.msg.peer().map(|from| (n, from, buf)))
            }
            Ok(None) => Step::Wait(Interest::Read(self.src.raw())),
            Err(e) => Step::Done(Err(e)),
        }
    }
    fn attempt(&mut self) -> Step<(usize, SocketAddr, Vec<u8>), io::Error> {
        let mut buf = self.buf.take().unwrap_or_default();
        let src = &self.src;
        match crate::net::ops::retry(
            || src.io.recv_from(&mut buf),
            || Interest::Read(src.raw()),
            |r| r,
        ) {
            Step::Done(Ok((n, from))) => Step::Done(Ok((n, from, buf))),
            Step::Done(Err(e)) => Step::Done(Err(e)),
            Step::Wait(i) => {
                self.buf = Some(buf);
                Step::Wait(i)
            }
        }
    }
    fn wait_failed(e: io::Error) -> io::Error {
        e
    }
}

impl std::fmt::Debug for SendToAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendToAction").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for RecvFromAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvFromAction").finish_non_exhaustive()
    }
}
