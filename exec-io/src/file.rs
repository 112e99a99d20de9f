//! Files: positioned reads and writes as senders. Natively on io_uring; on
//! the readiness backend (regular files are always "ready" to epoll, which
//! would block the loop) each operation runs on a blocking thread.

use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Arc, Mutex};

use io_uring::{opcode, squeue, types};

use crate::IoSender;
use crate::context::{IoScheduler, Shared};
use crate::op::{Action, BlockingJob, Interest, Step};
use crate::source::{RawSource, Source};

/// A file whose positioned reads and writes run on an
/// [`IoContext`](crate::IoContext). Cloning shares the descriptor.
///
/// ```
/// use exec_io::{File, IoContext};
/// let ctx = IoContext::new()?;
/// let path = std::env::temp_dir().join(format!("exec-io-doc-{}", std::process::id()));
/// let f = File::create(&ctx.scheduler(), &path)?;
/// ctx.run_until(f.write_at(b"hello".to_vec(), 0))?;
/// let (n, buf) = ctx.run_until(f.read_at(vec![0; 8], 1))?.unwrap();
/// assert_eq!(&buf[..n], b"ello");
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct File {
    src: Arc<Source<std::fs::File>>,
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File").finish_non_exhaustive()
    }
}

impl File {
    /// Opens `path` for reading and writing.
    ///
    /// # Errors
    /// The OS error of `open`.
    pub fn open(sch: &IoScheduler, path: impl AsRef<Path>) -> io::Result<File> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        Ok(Self::from_std(sch, f))
    }

    /// Creates (or truncates) `path` for reading and writing.
    ///
    /// # Errors
    /// The OS error of `open`.
    pub fn create(sch: &IoScheduler, path: impl AsRef<Path>) -> io::Result<File> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Self::from_std(sch, f))
    }

    /// Wraps an open file.
    pub fn from_std(sch: &IoScheduler, file: std::fs::File) -> File {
        File {
            src: Source::new_pipe(sch.shared.clone(), file),
        }
    }

    /// Reads at most `buf.len()` bytes at `offset`; sends `(n, buf)`
    /// (`n == 0` at the end of the file).
    ///
    /// # Errors
    /// The OS error of `pread`.
    pub fn read_at(&self, buf: Vec<u8>, offset: u64) -> IoSender<FileAction> {
        self.op(buf, offset, false)
    }

    /// Writes `buf` at `offset` (possibly partially); sends `(n, buf)`.
    ///
    /// # Errors
    /// The OS error of `pwrite`.
    pub fn write_at(&self, buf: Vec<u8>, offset: u64) -> IoSender<FileAction> {
        self.op(buf, offset, true)
    }

    fn op(&self, buf: Vec<u8>, offset: u64, write: bool) -> IoSender<FileAction> {
        IoSender::new(FileAction {
            src: self.src.clone(),
            buf: Some(buf),
            offset,
            write,
            result: None,
            busy: crate::context::KeyCell::new(0),
        })
    }
}

/// Action of [`File::read_at`] and [`File::write_at`].
pub struct FileAction {
    src: Arc<Source<std::fs::File>>,
    buf: Option<Vec<u8>>,
    offset: u64,
    write: bool,
    /// Readiness backend: where the blocking thread leaves its result.
    result: Option<Arc<Mutex<Option<io::Result<usize>>>>>,
    /// io_uring: this op's own busy bits (positioned file operations may
    /// run concurrently, unlike stream reads).
    busy: crate::context::KeyCell,
}

impl fmt::Debug for FileAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileAction").finish_non_exhaustive()
    }
}

/// The buffer a blocking thread reads into or writes from.
struct RawBuf {
    fd: i32,
    ptr: *mut u8,
    len: usize,
    offset: u64,
    write: bool,
}

// SAFETY: the buffer lives in the action inside the pinned op, which waits
// (`Wait::Blocking`) for the thread and is not completed, moved or freed
// before the thread handed it back; nothing else touches the buffer
// meanwhile.
unsafe impl Send for RawBuf {}

impl RawBuf {
    fn run(self) -> io::Result<usize> {
        loop {
            // SAFETY: `ptr`/`len` describe a live buffer (see the `Send`
            // impl); `fd` is held open by the action's source.
            let n = unsafe {
                if self.write {
                    libc::pwrite(self.fd, self.ptr as *const _, self.len, self.offset as i64)
                } else {
                    libc::pread(self.fd, self.ptr as *mut _, self.len, self.offset as i64)
                }
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl Action for FileAction {
    type Output = (usize, Vec<u8>);
    type Error = io::Error;
    fn ctx(&self) -> &Arc<Shared> {
        &self.src.ctx
    }
    fn attempt(&mut self) -> Step<(usize, Vec<u8>), io::Error> {
        if let Some(slot) = &self.result {
            let r = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(r) = r {
                self.result = None;
                return Step::Done(r.map(|n| (n, self.buf.take().unwrap_or_default())));
            }
        }
        let Some(buf) = self.buf.as_mut() else {
            return Step::Done(Err(io::Error::other("exec-io: file buffer missing")));
        };
        let raw = RawBuf {
            fd: self.src.io.as_raw_fd(),
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            offset: self.offset,
            write: self.write,
        };
        let slot = Arc::new(Mutex::new(None));
        self.result = Some(slot.clone());
        Step::Wait(Interest::Blocking(BlockingJob(Box::new(move || {
            let r = raw.run();
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        }))))
    }
    fn wait_failed(e: io::Error) -> io::Error {
        e
    }
    fn uring_entry(&mut self) -> Option<(squeue::Entry, RawSource, bool)> {
        let buf = self.buf.as_mut()?;
        let fd = types::Fd(self.src.io.as_raw_fd());
        let len = buf.len().min(u32::MAX as usize) as u32;
        let entry = if self.write {
            opcode::Write::new(fd, buf.as_ptr(), len)
                .offset(self.offset)
                .build()
        } else {
            opcode::Read::new(fd, buf.as_mut_ptr(), len)
                .offset(self.offset)
                .build()
        };
        let raw = RawSource {
            fd: self.src.io.as_raw_fd(),
            fixed: None,
            key: &self.busy,
        };
        Some((entry, raw, self.write))
    }
    fn uring_complete(&mut self, res: i32) -> Step<(usize, Vec<u8>), io::Error> {
        if res >= 0 {
            Step::Done(Ok((res as usize, self.buf.take().unwrap_or_default())))
        } else if res == -libc::EAGAIN || res == -libc::EINTR {
            Step::Wait(Interest::Resubmit)
        } else {
            Step::Done(Err(io::Error::from_raw_os_error(-res)))
        }
    }
}
