//! The escape hatch for blocking calls: a separate set of threads, started
//! on demand, that run work which would otherwise stall a worker (like
//! tokio's `spawn_blocking`).

use core::convert::Infallible;
use core::fmt;
use core::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use exec_core::{CompletionScheduler, OperationState, Receiver, Scheduler, Sender, SenderTo};

use crate::job::{Job, JobRef, Mode};
use crate::scheduler::Complete;
use crate::worker::{Shared, run_contained};

/// The FIFO of blocking jobs and the threads that run them.
struct State {
    queue: std::collections::VecDeque<JobRef>,
    /// Threads alive (running a job or waiting for one).
    threads: usize,
    /// Threads waiting for a job.
    idle: usize,
    /// Wake-ups handed out to idle threads and not yet consumed.
    pending_wakeups: usize,
    shutdown: bool,
    handles: Vec<JoinHandle<()>>,
}

/// The blocking-thread pool inside a [`ThreadPool`](crate::ThreadPool).
pub(crate) struct BlockingPool {
    state: Mutex<State>,
    cv: Condvar,
    max_threads: usize,
    keep_alive: Duration,
    thread_name: String,
    stack_size: Option<usize>,
}

impl BlockingPool {
    pub(crate) fn new(
        max_threads: usize,
        keep_alive: Duration,
        thread_name: String,
        stack_size: Option<usize>,
    ) -> Self {
        BlockingPool {
            state: Mutex::new(State {
                queue: std::collections::VecDeque::new(),
                threads: 0,
                idle: 0,
                pending_wakeups: 0,
                shutdown: false,
                handles: Vec::new(),
            }),
            cv: Condvar::new(),
            max_threads: max_threads.max(1),
            keep_alive,
            thread_name,
            stack_size,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `job`, waking an idle thread or starting a new one.
    fn submit(&self, shared: &Arc<Shared>, job: JobRef) {
        let mut st = self.lock();
        if st.shutdown {
            drop(st);
            job.execute(Mode::Cancel);
            return;
        }
        st.queue.push_back(job);
        if st.idle > st.pending_wakeups {
            st.pending_wakeups += 1;
            self.cv.notify_one();
        } else if st.threads < self.max_threads {
            st.threads += 1;
            st.handles.retain(|h| !h.is_finished());
            let shared = shared.clone();
            let mut builder = std::thread::Builder::new().name(self.thread_name.clone());
            if let Some(size) = self.stack_size {
                builder = builder.stack_size(size);
            }
            match builder.spawn(move || blocking_main(&shared)) {
                Ok(handle) => st.handles.push(handle),
                Err(_) => st.threads -= 1, // an existing thread will get to it
            }
        }
        drop(st);
    }

    /// Refuses new work, cancels queued work, waits for running work.
    pub(crate) fn shutdown(&self, shared: &Shared) {
        let mut st = self.lock();
        st.shutdown = true;
        let queued: Vec<JobRef> = st.queue.drain(..).collect();
        let handles = core::mem::take(&mut st.handles);
        self.cv.notify_all();
        drop(st);
        for job in queued {
            run_contained(shared, job, Mode::Cancel);
        }
        let me = std::thread::current().id();
        for h in handles {
            if h.thread().id() != me {
                let _ = h.join();
            }
        }
    }

    /// Threads currently alive (for tests).
    pub(crate) fn threads(&self) -> usize {
        self.lock().threads
    }
}

fn blocking_main(shared: &Shared) {
    let pool = &shared.blocking;
    let mut st = pool.lock();
    loop {
        if let Some(job) = st.queue.pop_front() {
            drop(st);
            let mode = if pool.lock().shutdown {
                Mode::Cancel
            } else {
                Mode::Run
            };
            run_contained(shared, job, mode);
            st = pool.lock();
            continue;
        }
        if st.shutdown {
            break;
        }
        st.idle += 1;
        let (guard, timeout) = pool
            .cv
            .wait_timeout(st, pool.keep_alive)
            .unwrap_or_else(|e| e.into_inner());
        st = guard;
        st.idle -= 1;
        if st.pending_wakeups > 0 {
            st.pending_wakeups -= 1;
        } else if timeout.timed_out() && st.queue.is_empty() && !st.shutdown {
            break;
        }
    }
    st.threads -= 1;
    drop(st);
}

/// A scheduler whose `schedule()` completes on a thread reserved for
/// blocking calls, never on one of the pool's cooperative workers.
///
/// Threads are started on demand (up to the builder's
/// [`max_blocking_threads`](crate::Builder::max_blocking_threads)) and exit
/// after being idle for [`blocking_keep_alive`](crate::Builder::blocking_keep_alive).
/// [`sync_wait`](exec_core::sync_wait) is allowed there.
///
/// ```
/// use exec_core::{sync_wait, Scheduler, SenderExt};
/// let pool = exec_pool::ThreadPool::builder().threads(1).build().unwrap();
/// let io = pool.blocking_scheduler();
/// let thread = sync_wait(io.schedule().then(|()| {
///     std::thread::sleep(std::time::Duration::from_millis(1)); // a blocking call
///     std::thread::current().name().map(str::to_owned)
/// }));
/// // On one of the pool's blocking threads, not on its worker.
/// assert_eq!(thread.unwrap().unwrap().as_deref(), Some("exec-pool-blocking"));
/// ```
#[derive(Clone)]
pub struct BlockingScheduler {
    pub(crate) shared: Arc<Shared>,
}

impl PartialEq for BlockingScheduler {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}
impl Eq for BlockingScheduler {}

impl fmt::Debug for BlockingScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingScheduler")
            .field("pool", &Arc::as_ptr(&self.shared))
            .finish()
    }
}

impl BlockingScheduler {
    /// How many blocking threads are alive right now.
    ///
    /// ```
    /// let pool = exec_pool::ThreadPool::builder().threads(1).build().unwrap();
    /// assert_eq!(pool.blocking_scheduler().threads(), 0); // started on demand
    /// ```
    pub fn threads(&self) -> usize {
        self.shared.blocking.threads()
    }
}

impl Scheduler for BlockingScheduler {
    type Sender = BlockingSender;
    fn schedule(&self) -> BlockingSender {
        BlockingSender {
            shared: self.shared.clone(),
        }
    }
}

/// Sender of [`BlockingScheduler::schedule`].
///
/// # Completion
/// - value: `()`, on a blocking thread.
/// - error: never.
/// - stopped: if the receiver's stop token is triggered when a thread gets
///   to it, or the pool is (or gets) shut down before it runs.
///
/// # Cancellation
/// The stop token is checked when a thread picks the operation up.
///
/// # Panics
/// Never itself; a panic escaping the receiver is contained on the thread.
///
/// # Example
/// ```
/// use exec_core::{sync_wait, Scheduler, SenderExt};
/// let pool = exec_pool::ThreadPool::builder().threads(1).build().unwrap();
/// let r = sync_wait(pool.blocking_scheduler().schedule().then(|()| 5));
/// assert_eq!(r, Ok(Some(5)));
/// ```
///
/// # See also
/// [`PoolScheduler`](crate::PoolScheduler).
#[must_use = "senders do nothing unless connected and started"]
#[derive(Clone)]
pub struct BlockingSender {
    shared: Arc<Shared>,
}

impl fmt::Debug for BlockingSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingSender").finish_non_exhaustive()
    }
}

impl Sender for BlockingSender {
    type Output = ();
    type Error = Infallible;
}

impl CompletionScheduler for BlockingSender {
    type Scheduler = BlockingScheduler;
    fn completion_scheduler(&self) -> BlockingScheduler {
        BlockingScheduler {
            shared: self.shared.clone(),
        }
    }
}

impl<R: Receiver<(), Infallible> + Send> SenderTo<R> for BlockingSender {
    type Operation = BlockingOp<R>;
    fn connect(self, receiver: R) -> BlockingOp<R> {
        BlockingOp {
            job: Job::new(Complete(receiver)),
            shared: Some(self.shared),
        }
    }
}

/// Operation state of [`BlockingSender`]: the queue node itself.
pub struct BlockingOp<R> {
    job: Job<Complete<R>>,
    shared: Option<Arc<Shared>>,
}

impl<R> fmt::Debug for BlockingOp<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingOp").finish_non_exhaustive()
    }
}

impl<R: Receiver<(), Infallible> + Send> OperationState for BlockingOp<R> {
    unsafe fn start(self: Pin<&mut Self>) {
        // SAFETY: `job` is structurally pinned and never moved; `shared` is
        // only taken out of its `Option`.
        let this = unsafe { self.get_unchecked_mut() };
        let Some(shared) = this.shared.take() else {
            return;
        };
        // SAFETY: pinned inside the pinned op, kept alive by `start`'s
        // contract until executed; first and only call.
        let job = unsafe { Pin::new_unchecked(&this.job).job_ref() };
        shared.blocking.submit(&shared, job);
        drop(shared);
    }
}
