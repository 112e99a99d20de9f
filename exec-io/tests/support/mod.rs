//! Helpers for exec-io's tests: a loop on a background thread, bounded
//! waiting, descriptor counting.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::thread;
use std::time::{Duration, Instant};

use exec_io::{IoContext, IoHandle, IoScheduler};

/// A context running on its own thread until dropped.
pub struct BgLoop {
    pub sch: IoScheduler,
    handle: IoHandle,
    thread: Option<thread::JoinHandle<IoContext>>,
}

impl BgLoop {
    pub fn new() -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = thread::spawn(move || {
            let ctx = IoContext::new().unwrap();
            tx.send((ctx.scheduler(), ctx.handle())).unwrap();
            ctx.run().unwrap();
            ctx
        });
        let (sch, handle) = rx.recv().unwrap();
        BgLoop {
            sch,
            handle,
            thread: Some(thread),
        }
    }

    /// Stops the loop and returns the context (not yet dropped).
    pub fn stop(mut self) -> IoContext {
        self.handle.stop();
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for BgLoop {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.handle.stop();
            drop(t.join());
        }
    }
}

/// Waits (bounded) until `cond` holds; panics after `secs` seconds.
#[track_caller]
pub fn wait_for(secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for a condition"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// Number of open descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The per-connection loop of `examples/echo_server.rs` as a sender: read
/// some bytes, write them back, until the peer closes; sends the buffer
/// back at the end.
/// (Macros, so the sender's concrete type connects to any receiver.)
#[macro_export]
macro_rules! echo_session {
    ($stream:expr, $buf:expr) => {{
        use core::ops::ControlFlow::{Break, Continue};
        use exec_core::SenderExt;
        let stream: exec_io::TcpStream = $stream;
        let buf: Vec<u8> = $buf;
        let cap = buf.len();
        exec_io::loop_with_state(buf, move |buf| {
            let s = stream.clone();
            stream
                .read(buf)
                .let_value(move |(n, mut buf)| {
                    buf.truncate(n);
                    s.write_all(buf)
                })
                .then(move |mut buf| {
                    let closed = buf.is_empty();
                    buf.resize(cap, 0);
                    if closed { Break(buf) } else { Continue(buf) }
                })
        })
    }};
}

/// A client of [`echo_session`]: `rounds` times writes `msg` (bytes all
/// equal) and reads until as many bytes came back (each checked), then
/// shuts its write side down. Sends the two buffers back.
#[macro_export]
macro_rules! echo_client {
    ($stream:expr, $rounds:expr, $msg:expr, $inb:expr) => {{
        let stream: exec_io::TcpStream = $stream;
        let (rounds, msg, inb): (usize, Vec<u8>, Vec<u8>) = ($rounds, $msg, $inb);
        use core::ops::ControlFlow::{Break, Continue};
        use exec_core::SenderExt;
        assert!(rounds > 0);
        let end = stream.clone();
        exec_io::loop_with_state((rounds, msg, inb), move |(left, msg, inb)| {
            let reader = stream.clone();
            stream
                .write_all(msg)
                .let_value(move |msg| {
                    let want = msg.len();
                    let byte = msg[0];
                    // Read until `want` bytes came back (a nested loop).
                    exec_io::loop_with_state((inb, 0), move |(inb, got): (Vec<u8>, usize)| {
                        reader.read(inb).then(move |(n, inb)| {
                            assert!(n > 0, "server closed early");
                            assert!(inb[..n].iter().all(|&b| b == byte), "echoed bytes differ");
                            if got + n >= want {
                                Break(inb)
                            } else {
                                Continue((inb, got + n))
                            }
                        })
                    })
                    .then(move |inb| (msg, inb))
                })
                .then(move |(msg, inb)| {
                    if left == 1 {
                        Break((msg, inb))
                    } else {
                        Continue((left - 1, msg, inb))
                    }
                })
        })
        .then(move |bufs| {
            end.shutdown(std::net::Shutdown::Write).unwrap();
            bufs
        })
    }};
}
