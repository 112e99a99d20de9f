//! `schedule()`, stoppable socket reads and writes, timers and `timeout` on
//! the loop allocate nothing (counting global allocator), on both backends.
//! Alone in its binary: the allocator counts globally.
//!
//! Every operation here runs under `run_until`, whose receiver has a stop
//! source, so each one registers a stop callback: that callback is stored
//! inline in the operation, not boxed.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use std::time::Duration;

use exec_core::{Scheduler, TimedScheduler, stop_when};
use exec_io::{Backend, IoContext, TcpListener, TcpStream, timeout};

struct Counting;

std::thread_local! {
    /// Only the measuring thread counts (the loop runs on it): the test
    /// harness allocates on other threads meanwhile.
    static COUNTING_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static COUNT: AtomicBool = AtomicBool::new(false);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if COUNT.load(Ordering::Relaxed) && COUNTING_THREAD.with(|c| c.get()) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded contract.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn schedule_allocates_nothing(backend: Backend) {
    COUNTING_THREAD.with(|c| c.set(true));
    let Ok(ctx) = IoContext::builder().backend(backend).build() else {
        return;
    };
    let sch = ctx.scheduler();
    for _ in 0..100 {
        ctx.run_until(sch.schedule()).unwrap();
    }
    ALLOCS.store(0, Ordering::SeqCst);
    COUNT.store(true, Ordering::SeqCst);
    for _ in 0..1000 {
        ctx.run_until(sch.schedule()).unwrap();
    }
    COUNT.store(false, Ordering::SeqCst);
    COUNTING_THREAD.with(|c| c.set(false));
    assert_eq!(ALLOCS.load(Ordering::SeqCst), 0, "{backend:?}");
}

/// The tests of this binary run one at a time (the counter is global).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Counts the allocations of `f` (run after a warm-up of the same `f`).
fn count(mut f: impl FnMut()) -> usize {
    COUNTING_THREAD.with(|c| c.set(true));
    f();
    ALLOCS.store(0, Ordering::SeqCst);
    COUNT.store(true, Ordering::SeqCst);
    f();
    COUNT.store(false, Ordering::SeqCst);
    // (This thread's harness code allocates once the test returns, maybe
    // while the other test counts.)
    COUNTING_THREAD.with(|c| c.set(false));
    ALLOCS.load(Ordering::SeqCst)
}

fn stoppable_ops_allocate_nothing(backend: Backend) {
    let Ok(ctx) = IoContext::builder().backend(backend).build() else {
        return;
    };
    let sch = ctx.scheduler();
    let listener = TcpListener::bind(&sch, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let client = ctx
        .run_until(TcpStream::connect(&sch, addr))
        .unwrap()
        .unwrap();
    let (server, _) = ctx.run_until(listener.accept()).unwrap().unwrap();
    // Buffers travel through the operations and come back: allocated once.
    let mut out = Some(vec![7u8; 64]);
    let mut inb = Some(vec![0u8; 64]);
    let mut round_trip = |with_timeout: bool| {
        let buf = ctx
            .run_until(client.write_all(out.take().unwrap()))
            .unwrap()
            .unwrap();
        out = Some(buf);
        let read = server.read(inb.take().unwrap());
        let (n, buf) = if with_timeout {
            ctx.run_until(timeout(&sch, read, Duration::from_secs(60)))
        } else {
            ctx.run_until(read)
        }
        .unwrap()
        .unwrap();
        assert_eq!(n, 64);
        inb = Some(buf);
    };
    let reads = count(|| {
        for _ in 0..200 {
            round_trip(false);
        }
    });
    assert_eq!(reads, 0, "{backend:?}: read/write_all allocated");
    let timed_reads = count(|| {
        for _ in 0..200 {
            round_trip(true);
        }
    });
    assert_eq!(timed_reads, 0, "{backend:?}: timeout(read) allocated");
    let timers = count(|| {
        for _ in 0..50 {
            ctx.run_until(sch.schedule_after(Duration::from_micros(10)))
                .unwrap();
        }
    });
    assert_eq!(timers, 0, "{backend:?}: schedule_after allocated");
    // A read nobody writes for, stopped by a timer (`stop_when`): the
    // read's kernel operation is cancelled, the timer fires. (`timeout`
    // does the same but then reports `TimedOut` as an `io::Error`, whose
    // payload box is the one allocation on that error path.)
    let mut spare: Vec<Vec<u8>> = (0..2).map(|_| vec![0u8; 64]).collect();
    let timed_out = count(|| {
        let read = server.read(spare.pop().unwrap());
        let res = ctx.run_until(stop_when(
            read,
            sch.schedule_after(Duration::from_micros(10)),
        ));
        assert!(matches!(res, Ok(None)), "stopped by the timer");
    });
    assert_eq!(timed_out, 0, "{backend:?}: timed-out read allocated");
}

/// The echo loop of `examples/echo_server.rs` (`loop_with_state` over the
/// connection's buffer) and its client: no allocation per round trip.
fn echo_loop_allocates_nothing(backend: Backend) {
    let Ok(ctx) = IoContext::builder().backend(backend).build() else {
        return;
    };
    let sch = ctx.scheduler();
    let listener = TcpListener::bind(&sch, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let session = |rounds: usize| {
        let client = ctx
            .run_until(TcpStream::connect(&sch, addr))
            .unwrap()
            .unwrap();
        let (server, _) = ctx.run_until(listener.accept()).unwrap().unwrap();
        let (sbuf, msg, inb) = (vec![0u8; 4096], vec![3u8; 64], vec![0u8; 64]);
        let both = exec_core::when_all(
            echo_session!(server, sbuf),
            echo_client!(client, rounds, msg, inb),
        );
        // Counts from the start of the session to its end (sockets and
        // buffers were made above; they are freed, not allocated, below).
        COUNTING_THREAD.with(|c| c.set(true));
        ALLOCS.store(0, Ordering::SeqCst);
        COUNT.store(true, Ordering::SeqCst);
        let res = ctx.run_until(both);
        COUNT.store(false, Ordering::SeqCst);
        COUNTING_THREAD.with(|c| c.set(false));
        res.unwrap().unwrap();
        ALLOCS.load(Ordering::SeqCst)
    };
    session(50); // warm-up
    let allocs = session(500);
    assert_eq!(allocs, 0, "{backend:?}: 500 echo round trips allocated");
}

#[test]
fn echo_loop_does_not_allocate() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    echo_loop_allocates_nothing(Backend::Readiness);
    echo_loop_allocates_nothing(Backend::IoUring);
}

#[test]
fn stoppable_read_and_timer_do_not_allocate() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The counter sees allocations (so the assertions can fail).
    assert_eq!(count(|| drop(std::hint::black_box(Box::new(1u64)))), 1);
    stoppable_ops_allocate_nothing(Backend::Readiness);
    stoppable_ops_allocate_nothing(Backend::IoUring);
}

#[test]
fn schedule_does_not_allocate() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The counter sees allocations (so the assertion below can fail).
    assert_eq!(count(|| drop(std::hint::black_box(Box::new(1u64)))), 1);
    schedule_allocates_nothing(Backend::Readiness);
    schedule_allocates_nothing(Backend::IoUring);
}
