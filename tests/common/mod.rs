//! Fixtures for the law and randomized suites of the `exec` package: run a
//! sender to its outcome, leaves that complete as told (inline or from a
//! small thread pool), a manually stepped queue, drop-counted values and a
//! panic hook that keeps planted panics quiet.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::any::Any;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Debug;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once, OnceLock};
use std::time::Duration;

use exec::{
    Env, OperationState, PanicPayload, Receiver, Scheduler, Sender, SenderTo, StopSource, StopToken,
};
use proptest::test_runner::Config as ProptestConfig;

// ------------------------------------------------------------------ config

/// 1,000 cases unless `PROPTEST_CASES` says otherwise (either way).
pub fn proptest_config() -> ProptestConfig {
    let default = ProptestConfig::default(); // reads PROPTEST_CASES
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() {
        default.cases
    } else {
        1000
    };
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..default
    }
}

// ------------------------------------------------------------------ panics

/// Prefix of every panic the suites plant on purpose.
pub const PLANTED: &str = "planted";

/// Installs (once) a panic hook that stays silent for planted panics and
/// delegates every other panic to the previous hook.
pub fn quiet_planted_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if payload_message(info.payload()).starts_with(PLANTED) {
                return;
            }
            previous(info)
        }));
    });
}

pub fn payload_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".into()
    }
}

// ----------------------------------------------------------------- outcome

/// How an operation completed, as a comparable value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out<T, E> {
    Value(T),
    Error(E),
    Stopped,
    /// The panic channel, with the payload's message.
    Panic(String),
}

impl<T, E> Out<T, E> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Out<U, E> {
        match self {
            Out::Value(v) => Out::Value(f(v)),
            Out::Error(e) => Out::Error(e),
            Out::Stopped => Out::Stopped,
            Out::Panic(m) => Out::Panic(m),
        }
    }
    pub fn map_err<F>(self, f: impl FnOnce(E) -> F) -> Out<T, F> {
        match self {
            Out::Value(v) => Out::Value(v),
            Out::Error(e) => Out::Error(f(e)),
            Out::Stopped => Out::Stopped,
            Out::Panic(m) => Out::Panic(m),
        }
    }
    pub fn is_value(&self) -> bool {
        matches!(self, Out::Value(_))
    }
    /// Error or panic: what `when_all` counts as a failure.
    pub fn is_failure(&self) -> bool {
        matches!(self, Out::Error(_) | Out::Panic(_))
    }
}

impl<T> Out<T, Infallible> {
    /// Gives an `Infallible` error channel any error type.
    pub fn widen<E>(self) -> Out<T, E> {
        self.map_err(|e| match e {})
    }
}

/// The outcome of `f()`: its value, or the planted panic it raised.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| payload_message(&*p))
}

// -------------------------------------------------------------------- sink

struct SinkShared<T, E> {
    state: Mutex<(usize, Option<Out<T, E>>)>,
    cv: Condvar,
    stop: StopSource,
}

/// A receiver that counts its completions and stores the first one. Its
/// environment carries the stop token of its [`SinkHandle`].
pub struct Sink<T, E> {
    shared: Arc<SinkShared<T, E>>,
}

/// The test's end of a [`Sink`].
pub struct SinkHandle<T, E> {
    shared: Arc<SinkShared<T, E>>,
}

impl<T, E> Clone for SinkHandle<T, E> {
    fn clone(&self) -> Self {
        SinkHandle {
            shared: self.shared.clone(),
        }
    }
}

pub fn sink<T, E>() -> (Sink<T, E>, SinkHandle<T, E>) {
    let shared = Arc::new(SinkShared {
        state: Mutex::new((0, None)),
        cv: Condvar::new(),
        stop: StopSource::new(),
    });
    (
        Sink {
            shared: shared.clone(),
        },
        SinkHandle { shared },
    )
}

impl<T, E> Sink<T, E> {
    fn record(self, out: Out<T, E>) {
        let mut state = self.shared.state.lock().unwrap();
        state.0 += 1;
        if state.1.is_none() && state.0 == 1 {
            state.1 = Some(out);
        }
        drop(state);
        self.shared.cv.notify_all();
    }
}

impl<T, E> Receiver<T, E> for Sink<T, E> {
    fn set_value(self, value: T) {
        self.record(Out::Value(value))
    }
    fn set_error(self, error: E) {
        self.record(Out::Error(error))
    }
    fn set_stopped(self) {
        self.record(Out::Stopped)
    }
    fn set_panic(self, payload: PanicPayload) {
        self.record(Out::Panic(payload_message(&*payload)))
    }
    fn env(&self) -> impl Env<'_> {
        SinkEnv(&self.shared.stop)
    }
}

struct SinkEnv<'a>(&'a StopSource);
impl<'a> Env<'a> for SinkEnv<'a> {
    fn stop_token(&self) -> StopToken<'a> {
        self.0.token()
    }
}

impl<T, E> SinkHandle<T, E> {
    /// Completions so far.
    pub fn completions(&self) -> usize {
        self.shared.state.lock().unwrap().0
    }
    pub fn request_stop(&self) {
        self.shared.stop.request_stop();
    }
    pub fn stop_requested(&self) -> bool {
        self.shared.stop.stop_requested()
    }
    /// Waits (at most `timeout`) for the completion and takes it.
    pub fn wait_for(&self, timeout: Duration) -> Option<Out<T, E>> {
        let state = self.shared.state.lock().unwrap();
        let (mut state, _) = self
            .shared
            .cv
            .wait_timeout_while(state, timeout, |s| s.0 == 0)
            .unwrap();
        assert!(state.0 <= 1, "completed {} times", state.0);
        state.1.take()
    }
}

/// How long a test waits for an operation before calling it a hang.
pub const HANG: Duration = Duration::from_secs(20);

/// Connects `sender` to `sink`, starts it, waits for its completion (it
/// may come from another thread), checks it came exactly once.
pub fn run_with<S, T, E>(sender: S, sink: Sink<T, E>, handle: &SinkHandle<T, E>) -> Out<T, E>
where
    S: SenderTo<Sink<T, E>>,
{
    let mut op = Box::pin(sender.connect(sink));
    // SAFETY: `op` is dropped only after the sink saw the completion; if it
    // never comes, the op is leaked, not freed.
    unsafe { op.as_mut().start() };
    match handle.wait_for(HANG) {
        Some(out) => {
            drop(op);
            assert_eq!(handle.completions(), 1, "completed more than once");
            out
        }
        None => {
            std::mem::forget(op);
            panic!("operation did not complete within {HANG:?}");
        }
    }
}

/// Runs `sender` to its outcome (see [`run_with`]).
pub fn run<S, T, E>(sender: S) -> Out<T, E>
where
    S: Sender<Output = T, Error = E> + SenderTo<Sink<T, E>>,
{
    let (sink, handle) = sink();
    run_with(sender, sink, &handle)
}

// -------------------------------------------------------------------- pool

type Job = Box<dyn FnOnce() + Send>;

struct PoolInner {
    queue: Mutex<VecDeque<Job>>,
    cv: Condvar,
    ran: AtomicUsize,
}

/// Two worker threads that run queued jobs in a random order, after a
/// random short spin, so that completions race each other and stop
/// requests. One global instance, never shut down.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

impl Pool {
    pub fn global() -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        POOL.get_or_init(|| {
            let pool = Pool {
                inner: Arc::new(PoolInner {
                    queue: Mutex::new(VecDeque::new()),
                    cv: Condvar::new(),
                    ran: AtomicUsize::new(0),
                }),
            };
            for i in 0..2u64 {
                let inner = pool.inner.clone();
                std::thread::Builder::new()
                    .name(format!("test-pool-{i}"))
                    .spawn(move || worker(inner, 0x9E37_79B9_7F4A_7C15 ^ (i + 1)))
                    .expect("spawn pool worker");
            }
            pool
        })
    }
    pub fn spawn(&self, job: impl FnOnce() + Send + 'static) {
        self.inner.queue.lock().unwrap().push_back(Box::new(job));
        self.inner.cv.notify_one();
    }
    /// Jobs run so far.
    pub fn ran(&self) -> usize {
        self.inner.ran.load(Ordering::Relaxed)
    }
}

fn worker(inner: Arc<PoolInner>, mut seed: u64) {
    loop {
        let job = {
            let mut queue = inner.queue.lock().unwrap();
            loop {
                if !queue.is_empty() {
                    seed = xorshift(seed);
                    let i = (seed % queue.len() as u64) as usize;
                    break queue.swap_remove_back(i).unwrap();
                }
                queue = inner.cv.wait(queue).unwrap();
            }
        };
        seed = xorshift(seed);
        for _ in 0..(seed % 64) {
            std::hint::spin_loop();
        }
        job();
        inner.ran.fetch_add(1, Ordering::Relaxed);
    }
}

/// One step of xorshift64 (never returns 0 for a non-zero seed).
pub fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// Schedules onto [`Pool::global`]. The schedule operation completes
/// *stopped* if stop was requested by the time its job runs.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolScheduler;

impl Scheduler for PoolScheduler {
    type Sender = Leaf<(), Infallible>;
    fn schedule(&self) -> Leaf<(), Infallible> {
        Leaf::remote(Kind::Value(()))
    }
}

// -------------------------------------------------------------------- leaf

/// How a [`Leaf`] completes.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind<T, E> {
    Value(T),
    Error(E),
    Stopped,
    /// Delivered through `set_panic` with this message (no actual unwind).
    Panic(String),
}

impl<T, E> Kind<T, E> {
    pub fn out(self) -> Out<T, E> {
        match self {
            Kind::Value(v) => Out::Value(v),
            Kind::Error(e) => Out::Error(e),
            Kind::Stopped => Out::Stopped,
            Kind::Panic(m) => Out::Panic(m),
        }
    }
    fn deliver<R: Receiver<T, E>>(self, r: R) {
        match self {
            Kind::Value(v) => r.set_value(v),
            Kind::Error(e) => r.set_error(e),
            Kind::Stopped => r.set_stopped(),
            Kind::Panic(m) => r.set_panic(Box::new(m)),
        }
    }
}

/// A sender that completes as its [`Kind`] says: inline in `start`
/// (ignoring stop requests, like `just`), or from a job on [`Pool::global`]
/// that completes *stopped* instead if stop was requested by then.
#[derive(Clone, Debug)]
pub struct Leaf<T, E> {
    pub kind: Kind<T, E>,
    pub remote: bool,
}

impl<T, E> Leaf<T, E> {
    pub fn inline(kind: Kind<T, E>) -> Self {
        Leaf {
            kind,
            remote: false,
        }
    }
    pub fn remote(kind: Kind<T, E>) -> Self {
        Leaf { kind, remote: true }
    }
}

impl<T, E> Sender for Leaf<T, E> {
    type Output = T;
    type Error = E;
}

impl<T, E, R> SenderTo<R> for Leaf<T, E>
where
    T: Send + 'static,
    E: Send + 'static,
    R: Receiver<T, E> + Send + 'static,
{
    type Operation = LeafOp<T, E, R>;
    fn connect(self, receiver: R) -> LeafOp<T, E, R> {
        LeafOp {
            state: Some((self.kind, receiver)),
            remote: self.remote,
        }
    }
}

/// Operation of [`Leaf`]. Nothing in it is pinned; a remote leaf moves its
/// receiver into the pool job at start.
pub struct LeafOp<T, E, R> {
    state: Option<(Kind<T, E>, R)>,
    remote: bool,
}

// Nothing is structurally pinned.
impl<T, E, R> Unpin for LeafOp<T, E, R> {}

impl<T, E, R> OperationState for LeafOp<T, E, R>
where
    T: Send + 'static,
    E: Send + 'static,
    R: Receiver<T, E> + Send + 'static,
{
    unsafe fn start(self: Pin<&mut Self>) {
        let this = self.get_mut();
        let (kind, r) = this.state.take().expect("started twice");
        if !this.remote {
            return kind.deliver(r);
        }
        Pool::global().spawn(move || {
            if r.env().stop_token().stop_requested() {
                drop(kind); // drop what we hold before completing
                r.set_stopped()
            } else {
                kind.deliver(r)
            }
        });
    }
}

// ----------------------------------------------------------- manual queue

/// Jobs queued by [`Observer`]s, run when the test says so.
#[derive(Clone, Default)]
pub struct ManualQueue {
    jobs: Arc<Mutex<VecDeque<Job>>>,
}

impl ManualQueue {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn run_all(&self) -> usize {
        let mut n = 0;
        loop {
            let job = self.jobs.lock().unwrap().pop_front();
            match job {
                Some(job) => {
                    job();
                    n += 1;
                }
                None => return n,
            }
        }
    }
    pub fn pending(&self) -> usize {
        self.jobs.lock().unwrap().len()
    }
}

/// A sender that, when its job on a [`ManualQueue`] runs, records whether
/// stop had been requested on its token, then completes with `value`.
#[derive(Clone)]
pub struct Observer<T> {
    pub queue: ManualQueue,
    pub value: T,
    /// Set when the job runs: `Some(stop_requested)`.
    pub saw_stop: Arc<Mutex<Option<bool>>>,
}

impl<T> Observer<T> {
    pub fn new(queue: &ManualQueue, value: T) -> Self {
        Observer {
            queue: queue.clone(),
            value,
            saw_stop: Arc::new(Mutex::new(None)),
        }
    }
    /// `Some(stop_requested)` once its job ran.
    pub fn saw_stop(&self) -> Option<bool> {
        *self.saw_stop.lock().unwrap()
    }
}

impl<T> Sender for Observer<T> {
    type Output = T;
    type Error = i32;
}

impl<T: Send + 'static, R: Receiver<T, i32> + Send + 'static> SenderTo<R> for Observer<T> {
    type Operation = ObserverOp<T, R>;
    fn connect(self, receiver: R) -> ObserverOp<T, R> {
        ObserverOp(Some((self, receiver)))
    }
}

/// Operation of [`Observer`].
pub struct ObserverOp<T, R>(Option<(Observer<T>, R)>);

// Nothing is structurally pinned.
impl<T, R> Unpin for ObserverOp<T, R> {}

impl<T: Send + 'static, R: Receiver<T, i32> + Send + 'static> OperationState for ObserverOp<T, R> {
    unsafe fn start(self: Pin<&mut Self>) {
        let (obs, r) = self.get_mut().0.take().expect("started twice");
        let queue = obs.queue.clone();
        queue.jobs.lock().unwrap().push_back(Box::new(move || {
            let stop = r.env().stop_token().stop_requested();
            *obs.saw_stop.lock().unwrap() = Some(stop);
            r.set_value(obs.value)
        }));
    }
}

// ------------------------------------------------------------ drop counter

/// Counts live [`Tracked`] values.
#[derive(Clone, Default)]
pub struct DropCounter {
    inner: Arc<(AtomicUsize, AtomicUsize)>,
}

impl DropCounter {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn track<T>(&self, value: T) -> Tracked<T> {
        self.inner.0.fetch_add(1, Ordering::SeqCst);
        Tracked {
            value,
            counter: self.inner.clone(),
        }
    }
    pub fn created(&self) -> usize {
        self.inner.0.load(Ordering::SeqCst)
    }
    pub fn alive(&self) -> usize {
        self.inner.0.load(Ordering::SeqCst) - self.inner.1.load(Ordering::SeqCst)
    }
}

/// A value whose drop its [`DropCounter`] counts.
pub struct Tracked<T> {
    pub value: T,
    counter: Arc<(AtomicUsize, AtomicUsize)>,
}

impl<T: Debug> Debug for Tracked<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

impl<T> Drop for Tracked<T> {
    fn drop(&mut self) {
        self.counter.1.fetch_add(1, Ordering::SeqCst);
    }
}
