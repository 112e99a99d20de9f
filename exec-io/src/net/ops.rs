//! The actions shared by every byte stream (TCP, Unix, pipes): read,
//! write, write-all. Each owns its buffer and hands it back.

use std::io::{self, Read as _, Write as _};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use io_uring::{opcode, squeue, types};

use crate::context::Shared;
use crate::op::{Action, Interest, Step};
use crate::source::{RawSource, Source};

/// `IORING_RECVSEND_POLL_FIRST` (Linux 5.19, `ioprio` of a receive): arm
/// the readiness poll before trying. Only on kernels that know it
/// (`Shared::recv_poll_first`).
const IORING_RECVSEND_POLL_FIRST: u16 = 1;

/// Builds `$op::new(target, ...)` with the source's direct descriptor
/// (`types::Fixed`) if it has one, else with its descriptor.
macro_rules! on_target {
    ($src:expr, |$t:ident| $build:expr) => {
        match $src.fixed() {
            Some(slot) => {
                let $t = types::Fixed(slot);
                $build
            }
            None => {
                let $t = types::Fd($src.io.as_raw_fd());
                $build
            }
        }
    };
}

/// io_uring: the entry reading into `buf`.
fn read_entry<T: AsRawFd>(src: &Source<T>, buf: &mut [u8]) -> squeue::Entry {
    let len = buf.len().min(u32::MAX as usize) as u32;
    if src.socket {
        // The last receive emptied the socket: wait for data first rather
        // than fail once with EAGAIN and then wait (the common case for a
        // request/response protocol, whose next request comes only after
        // the response went out).
        let ioprio = if src.ctx.recv_poll_first && src.recv_drained() {
            IORING_RECVSEND_POLL_FIRST
        } else {
            0
        };
        on_target!(src, |fd| opcode::Recv::new(fd, buf.as_mut_ptr(), len)
            .ioprio(ioprio)
            .build())
    } else {
        on_target!(src, |fd| opcode::Read::new(fd, buf.as_mut_ptr(), len)
            .offset(u64::MAX)
            .build())
    }
}

/// io_uring: the entry writing `buf` (sockets: `MSG_NOSIGNAL`).
fn write_entry<T: AsRawFd>(src: &Source<T>, buf: &[u8]) -> squeue::Entry {
    let len = buf.len().min(u32::MAX as usize) as u32;
    if src.socket {
        on_target!(src, |fd| opcode::Send::new(fd, buf.as_ptr(), len)
            .flags(libc::MSG_NOSIGNAL)
            .build())
    } else {
        on_target!(src, |fd| opcode::Write::new(fd, buf.as_ptr(), len)
            .offset(u64::MAX)
            .build())
    }
}

/// io_uring: a completion result as a byte count, "not ready", or an error.
pub(crate) fn uring_result(res: i32) -> Result<Option<usize>, io::Error> {
    if res >= 0 {
        Ok(Some(res as usize))
    } else if res == -libc::EAGAIN || res == -libc::EINTR {
        Ok(None)
    } else {
        Err(io::Error::from_raw_os_error(-res))
    }
}

/// Runs `f` until it does not fail with `Interrupted`; maps `WouldBlock`
/// to a wait on `interest`.
pub(crate) fn retry<T, U>(
    mut f: impl FnMut() -> io::Result<T>,
    wait: impl FnOnce() -> Interest,
    done: impl FnOnce(T) -> U,
) -> Step<U, io::Error> {
    loop {
        match f() {
            Ok(v) => return Step::Done(Ok(done(v))),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Wait(wait()),
            Err(e) => return Step::Done(Err(e)),
        }
    }
}

/// One readiness attempt of an action that owns its buffer: `op` runs on
/// the buffer (retried on `EINTR`); the buffer goes back into `slot` if the
/// action has to wait, and is handed back with the byte count otherwise.
fn attempt_with_buf(
    slot: &mut Option<Vec<u8>>,
    mut op: impl FnMut(&mut Vec<u8>) -> io::Result<usize>,
    wait: Interest,
) -> Step<(usize, Vec<u8>), io::Error> {
    let mut buf = slot.take().unwrap_or_default();
    match retry(|| op(&mut buf), || wait, |n| n) {
        Step::Done(r) => Step::Done(r.map(|n| (n, buf))),
        Step::Wait(i) => {
            *slot = Some(buf);
            Step::Wait(i)
        }
    }
}

/// An io_uring completion of an action that owns its buffer: the byte count
/// with the buffer, or wait for `wait` and try again (`EAGAIN`).
fn complete_with_buf(
    res: i32,
    slot: &mut Option<Vec<u8>>,
    wait: Interest,
) -> Step<(usize, Vec<u8>), io::Error> {
    match uring_result(res) {
        Ok(Some(n)) => Step::Done(Ok((n, slot.take().unwrap_or_default()))),
        Ok(None) => Step::Wait(wait),
        Err(e) => Step::Done(Err(e)),
    }
}

/// Action of `read(buf)`: reads at most `buf.len()` bytes into `buf`.
pub struct ReadAction<T: AsRawFd> {
    pub(crate) src: Arc<Source<T>>,
    pub(crate) buf: Option<Vec<u8>>,
}

impl<T> Action for ReadAction<T>
where
    T: AsRawFd + Send + Sync,
    for<'a> &'a T: io::Read,
{
    type Output = (usize, Vec<u8>);
    type Error = io::Error;
    fn ctx(&self) -> &Arc<Shared> {
        &self.src.ctx
    }
    fn uring_entry(&mut self) -> Option<(squeue::Entry, RawSource, bool)> {
        let buf = self.buf.as_mut()?;
        Some((read_entry(&self.src, buf), self.src.raw(), false))
    }
    fn uring_complete(&mut self, res: i32) -> Step<(usize, Vec<u8>), io::Error> {
        if self.src.socket {
            let asked = self.buf.as_ref().map_or(0, Vec::len);
            // Fewer bytes than asked (or end of stream, or an error): the
            // receive queue is empty now.
            self.src
                .set_recv_drained(usize::try_from(res).map_or(true, |n| n < asked));
        }
        complete_with_buf(res, &mut self.buf, Interest::Read(self.src.raw()))
    }
    fn attempt(&mut self) -> Step<(usize, Vec<u8>), io::Error> {
        let src = &self.src;
        attempt_with_buf(
            &mut self.buf,
            |buf| (&src.io).read(buf),
            Interest::Read(src.raw()),
        )
    }
    fn wait_failed(e: io::Error) -> io::Error {
        e
    }
}

/// Action of `write(buf)`: writes some of `buf` (one syscall's worth).
pub struct WriteAction<T: AsRawFd> {
    pub(crate) src: Arc<Source<T>>,
    pub(crate) buf: Option<Vec<u8>>,
}

impl<T> Action for WriteAction<T>
where
    T: AsRawFd + Send + Sync,
    for<'a> &'a T: io::Write,
{
    type Output = (usize, Vec<u8>);
    type Error = io::Error;
    fn ctx(&self) -> &Arc<Shared> {
        &self.src.ctx
    }
    fn uring_entry(&mut self) -> Option<(squeue::Entry, RawSource, bool)> {
        let buf = self.buf.as_ref()?;
        Some((write_entry(&self.src, buf), self.src.raw(), true))
    }
    fn uring_complete(&mut self, res: i32) -> Step<(usize, Vec<u8>), io::Error> {
        complete_with_buf(res, &mut self.buf, Interest::Write(self.src.raw()))
    }
    fn attempt(&mut self) -> Step<(usize, Vec<u8>), io::Error> {
        let src = &self.src;
        attempt_with_buf(
            &mut self.buf,
            |buf| (&src.io).write(buf),
            Interest::Write(src.raw()),
        )
    }
    fn wait_failed(e: io::Error) -> io::Error {
        e
    }
}

/// Action of `write_all(buf)`: writes all of `buf`, waiting as needed.
pub struct WriteAllAction<T: AsRawFd> {
    pub(crate) src: Arc<Source<T>>,
    pub(crate) buf: Option<Vec<u8>>,
    pub(crate) pos: usize,
}

impl<T> Action for WriteAllAction<T>
where
    T: AsRawFd + Send + Sync,
    for<'a> &'a T: io::Write,
{
    type Output = Vec<u8>;
    type Error = io::Error;
    fn ctx(&self) -> &Arc<Shared> {
        &self.src.ctx
    }
    fn uring_entry(&mut self) -> Option<(squeue::Entry, RawSource, bool)> {
        // Nothing (left) to write: `attempt` completes at once.
        let buf = self.buf.as_ref().filter(|b| self.pos < b.len())?;
        Some((
            write_entry(&self.src, &buf[self.pos..]),
            self.src.raw(),
            true,
        ))
    }
    fn uring_complete(&mut self, res: i32) -> Step<Vec<u8>, io::Error> {
        match uring_result(res) {
            Ok(Some(0)) if self.buf.as_ref().is_some_and(|b| self.pos < b.len()) => {
                Step::Done(Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "failed to write the whole buffer",
                )))
            }
            Ok(Some(n)) => {
                self.pos += n;
                if self.buf.as_ref().is_some_and(|b| self.pos < b.len()) {
                    Step::Wait(Interest::Resubmit)
                } else {
                    Step::Done(Ok(self.buf.take().unwrap_or_default()))
                }
            }
            Ok(None) => Step::Wait(Interest::Write(self.src.raw())),
            Err(e) => Step::Done(Err(e)),
        }
    }
    fn attempt(&mut self) -> Step<Vec<u8>, io::Error> {
        let buf = self.buf.take().unwrap_or_default();
        while self.pos < buf.len() {
            match (&self.src.io).write(&buf[self.pos..]) {
                Ok(0) => {
                    return Step::Done(Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "failed to write the whole buffer",
                    )));
                }
                Ok(n) => self.pos += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.buf = Some(buf);
                    return Step::Wait(Interest::Write(self.src.raw()));
                }
                Err(e) => return Step::Done(Err(e)),
            }
        }
        Step::Done(Ok(buf))
    }
    fn wait_failed(e: io::Error) -> io::Error {
        e
    }
}

impl<T: AsRawFd> std::fmt::Debug for ReadAction<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAction").finish_non_exhaustive()
    }
}

impl<T: AsRawFd> std::fmt::Debug for WriteAction<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteAction").finish_non_exhaustive()
    }
}

impl<T: AsRawFd> std::fmt::Debug for WriteAllAction<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteAllAction").finish_non_exhaustive()
    }
}
