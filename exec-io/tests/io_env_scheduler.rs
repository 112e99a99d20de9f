//! `IoScheduler` as the environment's current scheduler (`DynScheduler`):
//! `starts_on` reports it, `schedule_on_current` / `on` hop back to the
//! loop thread, nodes left queued when the context is dropped complete
//! *stopped* once, and the hop allocates nothing. Runs on the default
//! backend and on `EXEC_IO_BACKEND=readiness`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, ThreadId};

use exec_core::{
    OperationState, Receiver, Scheduler, SenderExt, SenderTo, just, on, read_env,
    schedule_on_current, starts_on, sync_wait,
};
use exec_io::IoContext;

struct Counting;

std::thread_local! {
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

fn loop_thread_id(sch: &exec_io::IoScheduler) -> ThreadId {
    sync_wait(sch.schedule().then(|()| thread::current().id()))
        .unwrap()
        .unwrap()
}

#[test]
fn starts_on_reports_the_io_scheduler() {
    let io = IoContext::builder().spawn().unwrap();
    let sch = io.scheduler();
    let seen = sync_wait(starts_on(
        sch.clone(),
        read_env(|env| format!("{:?}", env.scheduler())),
    ))
    .unwrap()
    .unwrap();
    assert_eq!(seen, format!("{:?}", sch.erased()));
    assert!(sch.erased().is_some());
    let some = sync_wait(starts_on(
        sch.clone(),
        read_env(|env| env.scheduler().is_some()),
    ));
    assert_eq!(some, Ok(Some(true)));
    io.join().unwrap();
}

#[test]
fn schedule_on_current_hops_back_to_the_loop() {
    let io = IoContext::builder().spawn().unwrap();
    let sch = io.scheduler();
    let loop_id = loop_thread_id(&sch);
    assert_ne!(loop_id, thread::current().id());
    for _ in 0..100 {
        let ran_on = sync_wait(starts_on(
            sch.clone(),
            schedule_on_current().then(|()| thread::current().id()),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(ran_on, loop_id);
    }
    io.join().unwrap();
}

#[test]
fn on_elsewhere_returns_to_the_loop() {
    let a = IoContext::builder().spawn().unwrap();
    let b = IoContext::builder().spawn().unwrap();
    let (sa, sb) = (a.scheduler(), b.scheduler());
    let (a_id, b_id) = (loop_thread_id(&sa), loop_thread_id(&sb));
    assert_ne!(a_id, b_id);
    for _ in 0..100 {
        let (ran_on, back_on) = sync_wait(starts_on(
            sa.clone(),
            on(sb.clone(), just(()).then(|()| thread::current().id()))
                .then(|t| (t, thread::current().id())),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(ran_on, b_id);
        assert_eq!(back_on, a_id);
    }
    a.join().unwrap();
    b.join().unwrap();
}

#[derive(Default)]
struct Counts {
    value: AtomicUsize,
    stopped: AtomicUsize,
}

struct CountingReceiver(Arc<Counts>);

impl Receiver<(), Infallible> for CountingReceiver {
    fn set_value(self, (): ()) {
        self.0.value.fetch_add(1, Ordering::SeqCst);
    }
    fn set_error(self, e: Infallible) {
        match e {}
    }
    fn set_stopped(self) {
        self.0.stopped.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn node_queued_when_the_context_is_dropped_completes_stopped_once() {
    let counts = Arc::new(Counts::default());
    let ctx = IoContext::new().unwrap();
    let sch = ctx.scheduler();
    let erased = sch.erased().unwrap();
    let mut op = pin!(erased.schedule().connect(CountingReceiver(counts.clone())));
    // SAFETY: started once; `op` outlives its completion (checked below,
    // before the frame ends).
    unsafe { op.as_mut().start() };
    assert_eq!(counts.stopped.load(Ordering::SeqCst), 0);
    drop(ctx);
    assert_eq!(counts.stopped.load(Ordering::SeqCst), 1);
    assert_eq!(counts.value.load(Ordering::SeqCst), 0);

    // Enqueued after the drop: completes stopped at once.
    let mut late = pin!(erased.schedule().connect(CountingReceiver(counts.clone())));
    // SAFETY: as above.
    unsafe { late.as_mut().start() };
    assert_eq!(counts.stopped.load(Ordering::SeqCst), 2);
    assert_eq!(counts.value.load(Ordering::SeqCst), 0);
}

#[test]
fn node_queued_on_a_running_loop_thread_completes_once() {
    let counts = Arc::new(Counts::default());
    let io = IoContext::builder().spawn().unwrap();
    let sch = io.scheduler();
    {
        let erased = sch.erased().unwrap();
        let mut op = pin!(erased.schedule().connect(CountingReceiver(counts.clone())));
        // SAFETY: started once; `op` outlives its completion: the loop is
        // joined (running or stopping every node) before the frame ends.
        unsafe { op.as_mut().start() };
        io.join().unwrap();
    }
    let (v, s) = (
        counts.value.load(Ordering::SeqCst),
        counts.stopped.load(Ordering::SeqCst),
    );
    assert_eq!(v + s, 1);
}

#[test]
fn hop_allocates_nothing() {
    COUNTING_THREAD.with(|c| c.set(true));
    let ctx = IoContext::new().unwrap();
    let sch = ctx.scheduler();
    for _ in 0..100 {
        ctx.run_until(starts_on(sch.clone(), schedule_on_current()))
            .unwrap();
    }
    ALLOCS.store(0, Ordering::SeqCst);
    COUNT.store(true, Ordering::SeqCst);
    for _ in 0..1000 {
        ctx.run_until(starts_on(sch.clone(), schedule_on_current()))
            .unwrap();
    }
    COUNT.store(false, Ordering::SeqCst);
    assert_eq!(ALLOCS.load(Ordering::SeqCst), 0);
}
