//! Parking idle workers with no lost wake-ups. The protocol and its proof
//! sketch are in `idle.md` next to this file.

use crate::loom::sync::atomic::{AtomicUsize, Ordering, fence};
use crate::loom::sync::{Condvar, Mutex};

/// One worker's parking spot: a "notified" token behind a mutex, and a
/// condition variable to sleep on.
struct Parker {
    notified: Mutex<bool>,
    cv: Condvar,
}

impl Parker {
    fn new() -> Self {
        Parker {
            notified: Mutex::new(false),
            cv: Condvar::new(),
        }
    }

    /// Sleeps until the token is set, then consumes it.
    fn park(&self) {
        let mut notified = self.notified.lock().unwrap_or_else(|e| e.into_inner());
        while !*notified {
            notified = self.cv.wait(notified).unwrap_or_else(|e| e.into_inner());
        }
        *notified = false;
    }

    /// Sets the token and wakes the sleeper if there is one.
    fn unpark(&self) {
        let mut notified = self.notified.lock().unwrap_or_else(|e| e.into_inner());
        *notified = true;
        self.cv.notify_one();
        drop(notified);
    }
}

/// The set of sleeping workers and how to wake them.
pub(crate) struct Idle {
    /// How many workers are spinning for work (between `start_spinning`
    /// and `stop_spinning`). While one is, a submitter wakes nobody: the
    /// spinner finds the work, or re-checks every queue before it sleeps,
    /// or — if it found other work and was the last spinner — notifies in
    /// the submitter's place (idle.md, "Spinning workers").
    num_spinning: AtomicUsize,
    /// How many workers are in `sleepers`. Changed only with the `sleepers`
    /// lock held; read without it by `notify_one`'s fast path.
    num_sleeping: AtomicUsize,
    /// Indices of the workers that announced they will sleep and have not
    /// been woken since. Capacity reserved up front: no allocation later.
    sleepers: Mutex<Vec<usize>>,
    parkers: Box<[Parker]>,
}

impl Idle {
    pub(crate) fn new(workers: usize) -> Self {
        Idle {
            num_spinning: AtomicUsize::new(0),
            num_sleeping: AtomicUsize::new(0),
            sleepers: Mutex::new(Vec::with_capacity(workers)),
            parkers: (0..workers).map(|_| Parker::new()).collect(),
        }
    }

    fn lock(&self) -> crate::loom::sync::MutexGuard<'_, Vec<usize>> {
        self.sleepers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called after work was made visible (pushed to a queue): wakes one
    /// sleeping worker, if any.
    #[inline]
    pub(crate) fn notify_one(&self) {
        // The fence pairs with the one in `prepare_sleep` (see idle.md):
        // either we see the sleeper's announcement, or it sees our work.
        fence(Ordering::SeqCst);
        if self.num_spinning.load(Ordering::Relaxed) != 0
            || self.num_sleeping.load(Ordering::Relaxed) == 0
        {
            return;
        }
        self.wake_one();
    }

    /// The calling worker starts spinning for work.
    #[inline]
    #[cfg_attr(loom, allow(dead_code))] // the worker loop is not built under loom
    pub(crate) fn start_spinning(&self) {
        self.num_spinning.fetch_add(1, Ordering::Relaxed);
    }

    /// The calling worker stops spinning (it found work, or it is going to
    /// announce that it sleeps). Returns whether it was the last spinner:
    /// if it found work, it must then call [`notify_one`](Self::notify_one)
    /// in place of the submitters it silenced.
    #[inline]
    #[cfg_attr(loom, allow(dead_code))] // as `start_spinning`
    pub(crate) fn stop_spinning(&self) -> bool {
        self.num_spinning.fetch_sub(1, Ordering::Relaxed) == 1
    }

    #[cold]
    fn wake_one(&self) {
        let mut sleepers = self.lock();
        let worker = sleepers.pop();
        if worker.is_some() {
            self.num_sleeping.fetch_sub(1, Ordering::Relaxed);
        }
        drop(sleepers);
        if let Some(w) = worker {
            self.parkers[w].unpark();
        }
    }

    /// Wakes every sleeping worker (shutdown).
    pub(crate) fn notify_all(&self) {
        let mut sleepers = self.lock();
        let all: Vec<usize> = sleepers.drain(..).collect();
        self.num_sleeping.store(0, Ordering::Relaxed);
        drop(sleepers);
        for w in all {
            self.parkers[w].unpark();
        }
    }

    /// Announces that worker `me` is about to sleep. The caller must then
    /// re-check every queue (and the shutdown flag) before calling
    /// [`park`](Self::park), and call [`cancel_sleep`](Self::cancel_sleep)
    /// instead if it found something.
    pub(crate) fn prepare_sleep(&self, me: usize) {
        let mut sleepers = self.lock();
        sleepers.push(me);
        self.num_sleeping.fetch_add(1, Ordering::Relaxed);
        drop(sleepers);
        // Pairs with the fence in `notify_one` (see idle.md).
        fence(Ordering::SeqCst);
    }

    /// Withdraws the announcement of `me`. If a waker already took `me` out
    /// of the set, its token stays pending and the next `park` returns at
    /// once (a harmless spurious wake-up).
    pub(crate) fn cancel_sleep(&self, me: usize) {
        let mut sleepers = self.lock();
        if let Some(pos) = sleepers.iter().position(|&w| w == me) {
            sleepers.swap_remove(pos);
            self.num_sleeping.fetch_sub(1, Ordering::Relaxed);
        }
        drop(sleepers);
    }

    /// Sleeps until woken by `notify_one`/`notify_all` (or returns at once
    /// if a wake-up is pending).
    pub(crate) fn park(&self, me: usize) {
        self.parkers[me].park();
    }

    /// How many workers are asleep (racy; for tests and metrics).
    #[allow(dead_code)]
    pub(crate) fn sleeping(&self) -> usize {
        self.num_sleeping.load(Ordering::Relaxed)
    }
}
