//! The actions shared by every byte stream (TCP, Unix, pipes): read,
//! write, write-all. Each owns its buffer and hands it back.

use std::io::{self, Read as _, Write as _};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use crate::context::Shared;
use crate::op::{Action, Interest, Step};
use crate::source::Source;

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
    fn attempt(&mut self) -> Step<(usize, Vec<u8>), io::Error> {
        let src = &self.src;
        let slot = &mut self.buf;
        let mut buf = slot.take().unwrap_or_default();
        let step = retry(
            || (&src.io).read(&mut buf),
            || Interest::Read(src.raw()),
            |n| n,
        );
        match step {
            Step::Done(Ok(n)) => Step::Done(Ok((n, buf))),
            Step::Done(Err(e)) => Step::Done(Err(e)),
            Step::Wait(i) => {
                *slot = Some(buf);
                Step::Wait(i)
            }
        }
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
    fn attempt(&mut self) -> Step<(usize, Vec<u8>), io::Error> {
        let src = &self.src;
        let slot = &mut self.buf;
        let buf = slot.take().unwrap_or_default();
        let step = retry(
            || (&src.io).write(&buf),
            || Interest::Write(src.raw()),
            |n| n,
        );
        match step {
            Step::Done(Ok(n)) => Step::Done(Ok((n, buf))),
            Step::Done(Err(e)) => Step::Done(Err(e)),
            Step::Wait(i) => {
                *slot = Some(buf);
                Step::Wait(i)
            }
        }
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
