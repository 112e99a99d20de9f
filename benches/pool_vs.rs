//! Side-by-side: exec-pool vs tokio vs rayon, 2 workers each, same
//! scenarios, one process. Prints ns/op for each and the ratios.
//!
//! Run: `cargo bench --bench pool_vs` (add `-- --quick` for fewer rounds;
//! `-- fib_join when_all` runs only the scenarios whose names contain one of
//! the words given).
//!
//! The spawn scenarios spawn into an exec-core `AsyncScope` (one allocation
//! per task); `spawn_many (raw)` repeats spawn_many with a minimal detached
//! spawn written here (one boxed schedule operation, freed by its own
//! completion), to show what the scope's bookkeeping costs.

use std::convert::Infallible;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use exec::pool::ops::ScheduleOp;
use exec::pool::{PoolScheduler, ThreadPool};
use exec::{
    AnySender, AsyncScope, OperationState, Receiver, Scheduler, SenderExt, SenderTo, just, oneshot,
    sync_wait, when_all, when_all_vec,
};

const THREADS: usize = 2;

// ------------------------------------------------ counting allocator

/// Counts heap bytes while `COUNT_BYTES` is on (idle_task_memory only).
struct CountingAlloc;
static COUNT_BYTES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if COUNT_BYTES.load(Ordering::Relaxed) {
            BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: same contract.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        if COUNT_BYTES.load(Ordering::Relaxed) {
            BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: same contract.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Net heap bytes allocated by `f`.
fn heap_bytes(f: impl FnOnce()) -> isize {
    BYTES.store(0, Ordering::SeqCst);
    COUNT_BYTES.store(true, Ordering::SeqCst);
    f();
    COUNT_BYTES.store(false, Ordering::SeqCst);
    BYTES.load(Ordering::SeqCst) as isize
}

// ------------------------------------------------------------------ latch

/// Counts down; `wait` blocks (no spinning: the bench thread must not steal
/// CPU from the 2 workers).
struct Latch {
    remaining: AtomicUsize,
    done: Mutex<bool>,
    cv: Condvar,
}

impl Latch {
    fn new(n: usize) -> Arc<Self> {
        Arc::new(Latch {
            remaining: AtomicUsize::new(n),
            done: Mutex::new(false),
            cv: Condvar::new(),
        })
    }
    fn count_down(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.done.lock().unwrap() = true;
            self.cv.notify_all();
        }
    }
    fn wait(&self) {
        let mut done = self.done.lock().unwrap();
        while !*done {
            done = self.cv.wait(done).unwrap();
        }
    }
}

// ------------------------------------------------- detached spawn (exec)

/// Receiver of a detached task: frees its own boxed operation, then runs.
struct SpawnRecv<F: FnOnce() + Send + 'static> {
    f: F,
    me: *mut ScheduleOp<SpawnRecv<F>>,
}

// SAFETY: `me` is only used by the completion, on whichever thread runs it.
unsafe impl<F: FnOnce() + Send + 'static> Send for SpawnRecv<F> {}

impl<F: FnOnce() + Send + 'static> Receiver<(), Infallible> for SpawnRecv<F> {
    fn set_value(self, (): ()) {
        let SpawnRecv { f, me } = self;
        // SAFETY: allocated by `spawn`; the operation completed and no
        // longer touches its memory.
        drop(unsafe { Box::from_raw(me) });
        f();
    }
    fn set_error(self, e: Infallible) {
        match e {}
    }
    fn set_stopped(self) {
        // SAFETY: as in `set_value`.
        drop(unsafe { Box::from_raw(self.me) });
    }
}

fn spawn<F: FnOnce() + Send + 'static>(sched: &PoolScheduler, f: F) {
    let me = Box::into_raw(Box::new(MaybeUninit::<ScheduleOp<SpawnRecv<F>>>::uninit()))
        as *mut ScheduleOp<SpawnRecv<F>>;
    // SAFETY: `me` is a fresh allocation for exactly this type; the op is
    // started once and freed only by its own completion.
    unsafe {
        me.write(sched.schedule().connect(SpawnRecv { f, me }));
        Pin::new_unchecked(&mut *me).start();
    }
}

/// A task that reschedules itself `remaining` times, reusing its operation
/// state's memory (no allocation per reschedule), then counts down.
struct YieldRecv {
    me: *mut ScheduleOp<YieldRecv>,
    sched: PoolScheduler,
    remaining: usize,
    latch: Arc<Latch>,
}

// SAFETY: as for `SpawnRecv`.
unsafe impl Send for YieldRecv {}

impl Receiver<(), Infallible> for YieldRecv {
    fn set_value(self, (): ()) {
        let YieldRecv {
            me,
            sched,
            remaining,
            latch,
        } = self;
        if remaining == 0 {
            // SAFETY: allocated by `yield_task`; completed.
            drop(unsafe { Box::from_raw(me) });
            latch.count_down();
            return;
        }
        // SAFETY: the previous operation in this memory completed; drop it
        // in place and start a new one there.
        unsafe {
            std::ptr::drop_in_place(me);
            let s = sched.schedule();
            me.write(s.connect(YieldRecv {
                me,
                sched,
                remaining: remaining - 1,
                latch,
            }));
            Pin::new_unchecked(&mut *me).start();
        }
    }
    fn set_error(self, e: Infallible) {
        match e {}
    }
    fn set_stopped(self) {
        // SAFETY: as above.
        drop(unsafe { Box::from_raw(self.me) });
        self.latch.count_down();
    }
}

fn yield_task(sched: &PoolScheduler, remaining: usize, latch: Arc<Latch>) {
    let me = Box::into_raw(Box::new(MaybeUninit::<ScheduleOp<YieldRecv>>::uninit()))
        as *mut ScheduleOp<YieldRecv>;
    // SAFETY: fresh allocation of this type; freed by the last completion.
    unsafe {
        me.write(sched.schedule().connect(YieldRecv {
            me,
            sched: sched.clone(),
            remaining,
            latch,
        }));
        Pin::new_unchecked(&mut *me).start();
    }
}

// ---------------------------------------------------------------- timing

/// Median ns per op over `rounds` runs of `f` (each doing `ops` operations).
fn measure(rounds: usize, ops: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm up
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_nanos() as f64 / ops as f64
        })
        .collect();
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[samples.len() / 2]
}

fn report(name: &str, ours: f64, tokio: f64, rayon: f64) {
    println!(
        "{name:<16} exec-pool {ours:>9.1} ns/op | tokio {tokio:>9.1} | rayon {rayon:>9.1} | \
         exec/tokio {:>5.2}x | exec/rayon {:>5.2}x",
        ours / tokio,
        ours / rayon
    );
}

// ------------------------------------------------------------- scenarios

fn spawn_many(
    rounds: usize,
    pool: &ThreadPool,
    rt: &tokio::runtime::Runtime,
    rp: &rayon::ThreadPool,
) {
    const N: usize = 100_000;
    let sched = pool.scheduler();
    let ours = measure(rounds, N, || {
        let scope = AsyncScope::new();
        let hits = Arc::new(AtomicUsize::new(0));
        for _ in 0..N {
            let h = hits.clone();
            scope.spawn(sched.schedule().then(move |()| {
                h.fetch_add(1, Ordering::Relaxed);
            }));
        }
        sync_wait(scope.join()).unwrap();
        assert_eq!(hits.load(Ordering::Relaxed), N);
    });
    let raw = measure(rounds, N, || {
        let latch = Latch::new(N);
        for _ in 0..N {
            let l = latch.clone();
            spawn(&sched, move || l.count_down());
        }
        latch.wait();
    });
    let tokio = measure(rounds, N, || {
        let latch = Latch::new(N);
        for _ in 0..N {
            let l = latch.clone();
            rt.spawn(async move { l.count_down() });
        }
        latch.wait();
    });
    let rayon = measure(rounds, N, || {
        let latch = Latch::new(N);
        for _ in 0..N {
            let l = latch.clone();
            rp.spawn(move || l.count_down());
        }
        latch.wait();
    });
    report("spawn_many", ours, tokio, rayon);
    report("spawn_many (raw)", raw, tokio, rayon);
}

fn chained_spawn(
    rounds: usize,
    pool: &ThreadPool,
    rt: &tokio::runtime::Runtime,
    rp: &rayon::ThreadPool,
) {
    const N: usize = 1_000;
    fn ours_iter(
        scope: Arc<AsyncScope<'static>>,
        sched: PoolScheduler,
        n: usize,
        latch: Arc<Latch>,
    ) {
        if n == 0 {
            latch.count_down();
        } else {
            let (s2, sc2) = (sched.clone(), scope.clone());
            scope.spawn(
                sched
                    .schedule()
                    .then(move |()| ours_iter(sc2, s2, n - 1, latch)),
            );
        }
    }
    fn tokio_iter(n: usize, latch: Arc<Latch>) {
        if n == 0 {
            latch.count_down();
        } else {
            tokio::spawn(async move { tokio_iter(n - 1, latch) });
        }
    }
    fn rayon_iter(n: usize, latch: Arc<Latch>) {
        if n == 0 {
            latch.count_down();
        } else {
            rayon::spawn(move || rayon_iter(n - 1, latch));
        }
    }
    let sched = pool.scheduler();
    let ours = measure(rounds, N, || {
        let scope = Arc::new(AsyncScope::new());
        let latch = Latch::new(1);
        ours_iter(scope.clone(), sched.clone(), N, latch.clone());
        latch.wait();
        sync_wait(scope.join()).unwrap();
    });
    let tokio = measure(rounds, N, || {
        let latch = Latch::new(1);
        let l = latch.clone();
        rt.spawn(async move { tokio_iter(N, l) });
        latch.wait();
    });
    let rayon = measure(rounds, N, || {
        let latch = Latch::new(1);
        let l = latch.clone();
        rp.spawn(move || rayon_iter(N, l));
        latch.wait();
    });
    report("chained_spawn", ours, tokio, rayon);
}

fn yield_many(
    rounds: usize,
    pool: &ThreadPool,
    rt: &tokio::runtime::Runtime,
    rp: &rayon::ThreadPool,
) {
    const TASKS: usize = 200;
    const YIELDS: usize = 1_000;
    let ops = TASKS * YIELDS;
    let sched = pool.scheduler();
    let ours = measure(rounds, ops, || {
        let scope = AsyncScope::new();
        for _ in 0..TASKS {
            scope.spawn(sched.schedule().repeat_n(YIELDS));
        }
        sync_wait(scope.join()).unwrap();
    });
    let raw = measure(rounds, ops, || {
        let latch = Latch::new(TASKS);
        for _ in 0..TASKS {
            yield_task(&sched, YIELDS, latch.clone());
        }
        latch.wait();
    });
    let tokio = measure(rounds, ops, || {
        let latch = Latch::new(TASKS);
        for _ in 0..TASKS {
            let l = latch.clone();
            rt.spawn(async move {
                for _ in 0..YIELDS {
                    tokio::task::yield_now().await;
                }
                l.count_down();
            });
        }
        latch.wait();
    });
    // rayon has no task that yields; the closest is a job re-spawning itself.
    fn rayon_yield(n: usize, latch: Arc<Latch>) {
        if n == 0 {
            latch.count_down();
        } else {
            rayon::spawn(move || rayon_yield(n - 1, latch));
        }
    }
    let rayon = measure(rounds, ops, || {
        let latch = Latch::new(TASKS);
        for _ in 0..TASKS {
            let l = latch.clone();
            rp.spawn(move || rayon_yield(YIELDS, l));
        }
        latch.wait();
    });
    report("yield_many", ours, tokio, rayon);
    report("yield_many (raw)", raw, tokio, rayon);
}

fn pool_roundtrip(
    rounds: usize,
    pool: &ThreadPool,
    rt: &tokio::runtime::Runtime,
    rp: &rayon::ThreadPool,
) {
    const N: usize = 2_000;
    let sched = pool.scheduler();
    let ours = measure(rounds, N, || {
        for i in 0..N {
            let r = sync_wait(sched.schedule().then(move |()| std::hint::black_box(i) + 1));
            assert_eq!(r, Ok(Some(i + 1)));
        }
    });
    let tokio = measure(rounds, N, || {
        for i in 0..N {
            let r = rt.block_on(rt.spawn(async move { std::hint::black_box(i) + 1 }));
            assert_eq!(r.unwrap(), i + 1);
        }
    });
    let rayon = measure(rounds, N, || {
        for i in 0..N {
            let r = rp.install(move || std::hint::black_box(i) + 1);
            assert_eq!(r, i + 1);
        }
    });
    report("pool_roundtrip", ours, tokio, rayon);
}

fn fib_seq(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fib_seq(n - 1) + fib_seq(n - 2)
    }
}

/// Forks in fib(n) when sequential below 10 (the "ops" of fib_join).
fn forks(n: u64) -> usize {
    if n < 10 {
        0
    } else {
        1 + forks(n - 1) + forks(n - 2)
    }
}

/// Recursive fork-join through `when_all`: one branch is scheduled on the
/// pool (stealable), the other runs inline, like `rayon::join`. Recursion
/// needs type erasure: `AnySender`.
fn exec_fib(sched: PoolScheduler, n: u64) -> AnySender<u64, Infallible> {
    if n < 10 {
        return AnySender::new(just(fib_seq(n)));
    }
    let s1 = sched.clone();
    let left = sched.schedule().let_value(move |()| exec_fib(s1, n - 1));
    let right = exec_fib(sched, n - 2);
    AnySender::new(when_all(left, right).then(|(a, b)| a + b))
}

/// The same composition with no pool (the left branch does not hop): what
/// `when_all` + `let_value` + `AnySender` cost per fork by themselves.
fn exec_fib_inline(n: u64) -> AnySender<u64, Infallible> {
    if n < 10 {
        return AnySender::new(just(fib_seq(n)));
    }
    let left = just(()).let_value(move |()| exec_fib_inline(n - 1));
    let right = exec_fib_inline(n - 2);
    AnySender::new(when_all(left, right).then(|(a, b)| a + b))
}

fn tokio_fib(n: u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send>> {
    Box::pin(async move {
        if n < 10 {
            return fib_seq(n);
        }
        let left = tokio::spawn(tokio_fib(n - 1));
        let right = tokio_fib(n - 2).await;
        left.await.unwrap() + right
    })
}

fn rayon_fib(n: u64) -> u64 {
    if n < 10 {
        return fib_seq(n);
    }
    let (a, b) = rayon::join(|| rayon_fib(n - 1), || rayon_fib(n - 2));
    a + b
}

fn fib_join(
    rounds: usize,
    pool: &ThreadPool,
    rt: &tokio::runtime::Runtime,
    rp: &rayon::ThreadPool,
) {
    const N: u64 = 30;
    let ops = forks(N);
    let expect = fib_seq(N);
    let sched = pool.scheduler();
    let ours = measure(rounds, ops, || {
        assert_eq!(sync_wait(exec_fib(sched.clone(), N)), Ok(Some(expect)));
    });
    let tokio = measure(rounds, ops, || {
        assert_eq!(rt.block_on(rt.spawn(tokio_fib(N))).unwrap(), expect);
    });
    let rayon = measure(rounds, ops, || {
        assert_eq!(rp.install(|| rayon_fib(N)), expect);
    });
    let seq = measure(rounds, ops, || {
        assert_eq!(
            std::hint::black_box(fib_seq(std::hint::black_box(N))),
            expect
        );
    });
    let inline = measure(rounds, ops, || {
        assert_eq!(sync_wait(exec_fib_inline(N)), Ok(Some(expect)));
    });
    report("fib_join", ours, tokio, rayon);
    println!(
        "{:<16} per fork, for reference: plain recursion {seq:.1} ns; the same exec \
         composition on one thread, no pool {inline:.1} ns",
        ""
    );
}

fn when_all_fanout(
    rounds: usize,
    pool: &ThreadPool,
    rt: &tokio::runtime::Runtime,
    rp: &rayon::ThreadPool,
) {
    use rayon::prelude::*;
    const N: u64 = 1_000;
    let expect: u64 = (0..N).map(|i| i * 2).sum();
    let sched = pool.scheduler();
    // Started on the pool, as rayon's `install` runs its `par_iter` on the
    // pool and tokio's `block_on` spawns from its runtime's context: the
    // children are scheduled from a worker (local queue, stealable).
    let ours = measure(rounds, N as usize, || {
        let s = sched.clone();
        let all = sched.schedule().let_value(move |()| {
            when_all_vec(
                (0..N).map(move |i| s.schedule().then(move |()| std::hint::black_box(i) * 2)),
            )
        });
        let sum: u64 = sync_wait(all).unwrap().unwrap().iter().sum();
        assert_eq!(sum, expect);
    });
    // The same fan-out started from outside the pool: every child goes
    // through the injection queue.
    let outside = measure(rounds, N as usize, || {
        let all = when_all_vec(
            (0..N).map(|i| sched.schedule().then(move |()| std::hint::black_box(i) * 2)),
        );
        let sum: u64 = sync_wait(all).unwrap().unwrap().iter().sum();
        assert_eq!(sum, expect);
    });
    let tokio = measure(rounds, N as usize, || {
        let sum: u64 = rt.block_on(async {
            let handles: Vec<_> = (0..N)
                .map(|i| tokio::spawn(async move { std::hint::black_box(i) * 2 }))
                .collect();
            let mut sum = 0;
            for h in handles {
                sum += h.await.unwrap();
            }
            sum
        });
        assert_eq!(sum, expect);
    });
    let rayon = measure(rounds, N as usize, || {
        let sum: u64 = rp.install(|| {
            (0..N)
                .into_par_iter()
                .map(|i| std::hint::black_box(i) * 2)
                .sum()
        });
        assert_eq!(sum, expect);
    });
    let inline = measure(rounds, N as usize, || {
        let all =
            when_all_vec((0..N).map(|i| just(()).then(move |()| std::hint::black_box(i) * 2)));
        let sum: u64 = sync_wait(all).unwrap().unwrap().iter().sum();
        assert_eq!(sum, expect);
    });
    report("when_all_fanout", ours, tokio, rayon);
    report("  (from outside)", outside, tokio, rayon);
    println!(
        "{:<16} per op, for reference: the same when_all_vec on one thread, no pool {inline:.1} ns",
        ""
    );
}

fn ping_pong(rounds: usize, pool: &ThreadPool, rt: &tokio::runtime::Runtime) {
    const N: usize = 1_000;
    let sched = pool.scheduler();
    // Each round trip: a task on the pool waits for a ping, answers with a
    // pong; another task sends the ping and waits for the pong.
    let ours = measure(rounds, N, || {
        let scope = AsyncScope::new();
        for _ in 0..N {
            let (ping_tx, ping_rx) = oneshot::channel::<()>();
            let (pong_tx, pong_rx) = oneshot::channel::<()>();
            scope.spawn(
                sched
                    .schedule()
                    .with_error::<oneshot::RecvError>()
                    .let_value(move |()| {
                        ping_rx.then(move |()| {
                            let _ = pong_tx.send(());
                        })
                    })
                    .upon_error(|_| ()),
            );
            scope.spawn(
                sched
                    .schedule()
                    .with_error::<oneshot::RecvError>()
                    .let_value(move |()| {
                        let _ = ping_tx.send(());
                        pong_rx
                    })
                    .upon_error(|_| ()),
            );
        }
        sync_wait(scope.join()).unwrap();
    });
    let tokio = measure(rounds, N, || {
        let latch = Latch::new(N);
        for _ in 0..N {
            let (ping_tx, ping_rx) = tokio::sync::oneshot::channel::<()>();
            let (pong_tx, pong_rx) = tokio::sync::oneshot::channel::<()>();
            rt.spawn(async move {
                ping_rx.await.unwrap();
                pong_tx.send(()).unwrap();
            });
            let l = latch.clone();
            rt.spawn(async move {
                ping_tx.send(()).unwrap();
                pong_rx.await.unwrap();
                l.count_down();
            });
        }
        latch.wait();
    });
    println!(
        "{:<16} exec-pool {ours:>9.1} ns/op | tokio {tokio:>9.1} | rayon       n/a | exec/tokio {:>5.2}x",
        "ping_pong",
        ours / tokio
    );
}

fn idle_task_memory(pool: &ThreadPool, rt: &tokio::runtime::Runtime) {
    const N: usize = 100_000;
    let sched = pool.scheduler();
    // The user's own state: one oneshot channel per task.
    let exec_chan = heap_bytes(|| {
        let chans: Vec<_> = (0..N).map(|_| oneshot::channel::<u64>()).collect();
        std::mem::forget(chans);
    }) - (N
        * size_of::<(oneshot::OneshotSender<u64>, oneshot::OneshotReceiver<u64>)>())
        as isize;
    let tokio_chan = heap_bytes(|| {
        let chans: Vec<_> = (0..N)
            .map(|_| tokio::sync::oneshot::channel::<u64>())
            .collect();
        std::mem::forget(chans);
    }) - (N * size_of::<(
        tokio::sync::oneshot::Sender<u64>,
        tokio::sync::oneshot::Receiver<u64>,
    )>()) as isize;
    // N tasks parked on their channel; the senders are kept outside.
    let scope = AsyncScope::new();
    let mut txs = Vec::with_capacity(N);
    let ours = heap_bytes(|| {
        for _ in 0..N {
            let (tx, rx) = oneshot::channel::<u64>();
            txs.push(tx);
            scope.spawn(
                sched
                    .schedule()
                    .with_error::<oneshot::RecvError>()
                    .let_value(move |()| rx)
                    .then(|_| ())
                    .upon_error(|_| ()),
            );
        }
    }) - (N * size_of::<oneshot::OneshotSender<u64>>()) as isize;
    for tx in txs {
        let _ = tx.send(1);
    }
    sync_wait(scope.join()).unwrap();
    let mut txs = Vec::with_capacity(N);
    let latch = Latch::new(N);
    let tokio = heap_bytes(|| {
        for _ in 0..N {
            let (tx, rx) = tokio::sync::oneshot::channel::<u64>();
            txs.push(tx);
            let l = latch.clone();
            rt.spawn(async move {
                let _ = rx.await;
                l.count_down();
            });
        }
    }) - (N * size_of::<tokio::sync::oneshot::Sender<u64>>()) as isize;
    for tx in txs {
        let _ = tx.send(1);
    }
    latch.wait();
    let per = |b: isize, c: isize| (b as f64 / N as f64, (b - c) as f64 / N as f64);
    let (o, o_task) = per(ours, exec_chan);
    let (t, t_task) = per(tokio, tokio_chan);
    println!(
        "{:<16} exec-pool {o:>7.1} B/task ({o_task:.1} beyond its channel) | tokio {t:>7.1} B/task \
         ({t_task:.1} beyond its channel)",
        "idle_task_memory"
    );
}

fn bulk_sum(rounds: usize, pool: &ThreadPool, rp: &rayon::ThreadPool) {
    use rayon::prelude::*;
    const N: usize = 1_000_000;
    let data: Vec<u64> = (0..N as u64).collect();
    let sched = pool.scheduler();
    let ours = measure(rounds, N, || {
        let total = AtomicUsize::new(0);
        sync_wait(exec::pool::bulk_chunked(
            &sched,
            exec::just(()),
            N,
            |r, &()| {
                let s: u64 = data[r].iter().sum();
                total.fetch_add(s as usize, Ordering::Relaxed);
            },
        ))
        .unwrap();
        assert_eq!(total.into_inner() as u64, (N as u64 - 1) * N as u64 / 2);
    });
    let rayon = measure(rounds, N, || {
        let s: u64 = rp.install(|| data.par_iter().sum());
        assert_eq!(s, (N as u64 - 1) * N as u64 / 2);
    });
    println!(
        "{:<16} exec-pool {ours:>9.3} ns/elem | rayon par_iter {rayon:>9.3} | exec/rayon {:>5.2}x",
        "bulk_sum (extra)",
        ours / rayon
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `--quick` lowers the rounds.
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 3 } else { 9 };
    let pool = ThreadPool::builder().threads(THREADS).build().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS)
        .build()
        .unwrap();
    let rp = rayon::ThreadPoolBuilder::new()
        .num_threads(THREADS)
        .build()
        .unwrap();
    println!("exec-pool vs tokio vs rayon, {THREADS} workers each, median of {rounds} rounds");
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let on = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    if on("spawn_many") {
        spawn_many(rounds, &pool, &rt, &rp);
    }
    if on("chained_spawn") {
        chained_spawn(rounds, &pool, &rt, &rp);
    }
    if on("ping_pong") {
        ping_pong(rounds, &pool, &rt);
    }
    if on("yield_many") {
        yield_many(rounds, &pool, &rt, &rp);
    }
    if on("pool_roundtrip") {
        pool_roundtrip(rounds, &pool, &rt, &rp);
    }
    if on("fib_join") {
        fib_join(rounds, &pool, &rt, &rp);
    }
    if on("when_all_fanout") {
        when_all_fanout(rounds, &pool, &rt, &rp);
    }
    if on("idle_task_memory") {
        idle_task_memory(&pool, &rt);
    }
    if on("bulk_sum") {
        bulk_sum(rounds, &pool, &rp);
    }
    let _ = Duration::ZERO;
}
