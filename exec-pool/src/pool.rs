//! [`ThreadPool`] and its [`Builder`].

use core::fmt;
use std::io;
#[cfg(not(loom))]
use std::time::Duration;

use crate::loom::sync::Arc;
use crate::loom::thread::{self, JoinHandle};
use crate::scheduler::PoolScheduler;
use crate::worker::{self, Hook, Shared};

/// A work-stealing pool of worker threads: the CPU execution context.
///
/// Each worker has a bounded local queue that the others steal from, and a
/// LIFO slot for the operation it scheduled last; work submitted from
/// outside goes through a global injection queue. Idle workers spin briefly,
/// then park; a submission wakes one whenever a worker is parked.
/// [`schedule`](exec_core::Scheduler::schedule) allocates nothing: the
/// pinned operation state is the queue node.
///
/// Workers refuse to block: [`sync_wait`](exec_core::sync_wait) called on a
/// worker panics with an explanation instead of deadlocking. Blocking calls
/// belong on the [`blocking_scheduler`](Self::blocking_scheduler).
///
/// # Shutdown
/// Dropping the pool (or calling [`shutdown`](Self::shutdown)) completes
/// every queued operation *stopped* (operations already running finish),
/// joins the workers, and leaves nothing behind. Scheduling onto a
/// shut-down pool through a surviving [`PoolScheduler`] completes *stopped*.
///
/// ```
/// use exec_core::{sync_wait, Scheduler, SenderExt};
/// use exec_pool::ThreadPool;
///
/// let pool = ThreadPool::builder().threads(2).thread_name("demo").build().unwrap();
/// let sched = pool.scheduler();
/// assert_eq!(sync_wait(sched.schedule().then(|()| 6 * 7)), Ok(Some(42)));
/// drop(pool);
/// assert_eq!(sync_wait(sched.schedule().then(|()| 0)), Ok(None)); // stopped
/// ```
pub struct ThreadPool {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
}

impl ThreadPool {
    /// A pool with one worker per available CPU
    /// ([`std::thread::available_parallelism`]) and default settings.
    ///
    /// # Panics
    /// If the operating system refuses to start a thread (use
    /// [`Builder::build`] to handle that).
    ///
    /// ```
    /// let pool = exec_pool::ThreadPool::new();
    /// assert!(pool.num_threads() >= 1);
    /// ```
    pub fn new() -> Self {
        Self::builder()
            .build()
            .expect("exec-pool: failed to start worker threads")
    }

    /// A [`Builder`] to configure a pool.
    ///
    /// ```
    /// let pool = exec_pool::ThreadPool::builder().threads(2).build().unwrap();
    /// assert_eq!(pool.num_threads(), 2);
    /// ```
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A scheduler handle whose `schedule()` completes on this pool.
    ///
    /// ```
    /// use exec_core::{sync_wait, Scheduler};
    /// let pool = exec_pool::ThreadPool::new();
    /// assert_eq!(sync_wait(pool.scheduler().schedule()), Ok(Some(())));
    /// ```
    pub fn scheduler(&self) -> PoolScheduler {
        PoolScheduler {
            shared: crate::handle::PoolRef::new(&self.shared),
        }
    }

    /// A scheduler for blocking calls, on threads separate from the workers.
    ///
    /// ```
    /// use exec_core::{sync_wait, Scheduler, SenderExt};
    /// let pool = exec_pool::ThreadPool::new();
    /// let nested = sync_wait(pool.blocking_scheduler().schedule().then(|()| {
    ///     exec_core::sync_wait(exec_core::just(1)) // blocking is fine here
    /// }));
    /// assert_eq!(nested, Ok(Some(Ok(Some(1)))));
    /// ```
    #[cfg(not(loom))]
    pub fn blocking_scheduler(&self) -> crate::BlockingScheduler {
        crate::BlockingScheduler {
            shared: self.shared.clone(),
        }
    }

    /// The number of worker threads.
    ///
    /// ```
    /// let pool = exec_pool::ThreadPool::builder().threads(1).build().unwrap();
    /// assert_eq!(pool.num_threads(), 1);
    /// ```
    pub fn num_threads(&self) -> usize {
        self.shared.workers.len()
    }

    /// How many panics escaped a completion on a worker and were contained
    /// there (a receiver's completion method panicked). User code run by
    /// exec-core algorithms never counts here: its panics travel to the
    /// awaiting consumer through `set_panic`.
    ///
    /// ```
    /// let pool = exec_pool::ThreadPool::new();
    /// assert_eq!(pool.contained_panics(), 0);
    /// ```
    pub fn contained_panics(&self) -> usize {
        self.shared
            .escaped_panics
            .load(crate::loom::sync::atomic::Ordering::Relaxed)
    }

    /// Shuts the pool down: every queued operation completes *stopped*,
    /// running ones finish, then the workers (and blocking threads) are
    /// joined. Equivalent to dropping the pool.
    ///
    /// Called on one of the pool's own workers, that worker is not joined
    /// (it cannot wait for itself); it exits once the running job returns.
    ///
    /// ```
    /// use exec_core::{sync_wait, Scheduler};
    /// let pool = exec_pool::ThreadPool::new();
    /// let sched = pool.scheduler();
    /// pool.shutdown();
    /// assert_eq!(sync_wait(sched.schedule()), Ok(None));
    /// ```
    pub fn shutdown(self) {
        drop(self)
    }
}

impl Default for ThreadPool {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.begin_shutdown();
        let me = thread::current().id();
        let mut joined_all = true;
        for h in self.handles.drain(..) {
            if h.thread().id() == me {
                joined_all = false;
            } else {
                let _ = h.join();
            }
        }
        if joined_all {
            // Every worker has exited: nothing can be left, but make sure.
            self.shared.drain_all();
        }
        #[cfg(not(loom))]
        self.shared.blocking.shutdown(&self.shared);
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("threads", &self.num_threads())
            .finish_non_exhaustive()
    }
}

/// Configures and starts a [`ThreadPool`].
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let started = Arc::new(AtomicUsize::new(0));
/// let s = started.clone();
/// let pool = exec_pool::ThreadPool::builder()
///     .threads(2)
///     .thread_name("cpu")
///     .stack_size(1 << 20)
///     .on_thread_start(move || { s.fetch_add(1, Ordering::SeqCst); })
///     .on_thread_stop(|| {})
///     .build()
///     .unwrap();
/// drop(pool); // joins the workers
/// assert_eq!(started.load(Ordering::SeqCst), 2);
/// ```
pub struct Builder {
    threads: Option<usize>,
    thread_name: String,
    stack_size: Option<usize>,
    on_start: Option<Hook>,
    on_stop: Option<Hook>,
    #[cfg(not(loom))]
    max_blocking_threads: usize,
    #[cfg(not(loom))]
    blocking_keep_alive: Duration,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            threads: None,
            thread_name: "exec-pool".to_owned(),
            stack_size: None,
            on_start: None,
            on_stop: None,
            #[cfg(not(loom))]
            max_blocking_threads: 512,
            #[cfg(not(loom))]
            blocking_keep_alive: Duration::from_secs(10),
        }
    }
}

impl Builder {
    /// The number of worker threads (at least 1). Default: the available
    /// parallelism.
    ///
    /// ```
    /// let pool = exec_pool::ThreadPool::builder().threads(1).build().unwrap();
    /// assert_eq!(pool.num_threads(), 1);
    /// ```
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n.max(1));
        self
    }

    /// The prefix of the threads' names: workers are named `{name}-{index}`,
    /// blocking threads `{name}-blocking`. Default: `exec-pool`.
    ///
    /// ```
    /// use exec_core::{sync_wait, Scheduler, SenderExt};
    /// let pool = exec_pool::ThreadPool::builder().threads(1).thread_name("w").build().unwrap();
    /// let name = sync_wait(pool.scheduler().schedule().then(|()| {
    ///     std::thread::current().name().unwrap().to_owned()
    /// }));
    /// assert_eq!(name, Ok(Some("w-0".to_owned())));
    /// ```
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.thread_name = name.into();
        self
    }

    /// The stack size of every thread, in bytes. Default: the platform's.
    ///
    /// ```
    /// let pool = exec_pool::ThreadPool::builder().stack_size(256 * 1024).build().unwrap();
    /// # drop(pool);
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Runs `f` on each worker thread when it starts (before any work). A
    /// panic in it is contained.
    ///
    /// ```
    /// let pool = exec_pool::ThreadPool::builder().on_thread_start(|| {}).build().unwrap();
    /// # drop(pool);
    /// ```
    pub fn on_thread_start(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_start = Some(std::sync::Arc::new(f));
        self
    }

    /// Runs `f` on each worker thread when it exits (after its last job). A
    /// panic in it is contained.
    ///
    /// ```
    /// let pool = exec_pool::ThreadPool::builder().on_thread_stop(|| {}).build().unwrap();
    /// # drop(pool);
    /// ```
    pub fn on_thread_stop(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_stop = Some(std::sync::Arc::new(f));
        self
    }

    /// The most threads the blocking scheduler starts (at least 1).
    /// Default: 512.
    ///
    /// ```
    /// let pool = exec_pool::ThreadPool::builder().max_blocking_threads(4).build().unwrap();
    /// # drop(pool);
    /// ```
    #[cfg(not(loom))]
    pub fn max_blocking_threads(mut self, n: usize) -> Self {
        self.max_blocking_threads = n.max(1);
        self
    }

    /// How long an idle blocking thread waits for work before it exits.
    /// Default: 10 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = exec_pool::ThreadPool::builder()
    ///     .blocking_keep_alive(Duration::from_millis(100))
    ///     .build()
    ///     .unwrap();
    /// # drop(pool);
    /// ```
    #[cfg(not(loom))]
    pub fn blocking_keep_alive(mut self, keep_alive: Duration) -> Self {
        self.blocking_keep_alive = keep_alive;
        self
    }

    /// Starts the pool's worker threads.
    ///
    /// # Errors
    /// If a thread cannot be started; the threads already started are shut
    /// down again.
    ///
    /// ```
    /// let pool = exec_pool::ThreadPool::builder().threads(2).build()?;
    /// # drop(pool);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn build(self) -> io::Result<ThreadPool> {
        let threads = self.threads.unwrap_or_else(default_threads);
        let shared = Arc::new(Shared::new(
            threads,
            self.on_start,
            self.on_stop,
            #[cfg(not(loom))]
            crate::blocking::BlockingPool::new(
                self.max_blocking_threads,
                self.blocking_keep_alive,
                format!("{}-blocking", self.thread_name),
                self.stack_size,
            ),
        ));
        let mut pool = ThreadPool {
            shared,
            handles: Vec::with_capacity(threads),
        };
        for index in 0..threads {
            let mut builder = thread::Builder::new().name(format!("{}-{index}", self.thread_name));
            if let Some(size) = self.stack_size {
                builder = builder.stack_size(size);
            }
            let shared = pool.shared.clone();
            // On error `pool` is dropped here, which shuts down the workers
            // already started.
            let handle = builder.spawn(move || worker::main(shared, index))?;
            pool.handles.push(handle);
        }
        Ok(pool)
    }
}

fn default_threads() -> usize {
    #[cfg(loom)]
    return 2;
    #[cfg(not(loom))]
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("threads", &self.threads)
            .field("thread_name", &self.thread_name)
            .field("stack_size", &self.stack_size)
            .field("on_thread_start", &self.on_start.is_some())
            .field("on_thread_stop", &self.on_stop.is_some())
            .finish_non_exhaustive()
    }
}

// The pool's state stays consistent across a panic in user code: jobs run
// under `catch_unwind` and the queues are never left half-updated.
impl std::panic::UnwindSafe for ThreadPool {}
impl std::panic::RefUnwindSafe for ThreadPool {}
