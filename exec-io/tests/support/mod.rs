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
