//! The run queues: a bounded per-worker [`LocalQueue`] that other workers
//! steal from, the global [`Injector`] for submissions from outside the pool
//! (and for overflow), and the per-worker [`LifoSlot`].
//!
//! # The local queue
//! A ring of `CAP` atomic pointer slots indexed by two ever-increasing
//! counters: `tail` (written only by the owner) and `head` (advanced by
//! whoever takes jobs: the owner popping, a stealer, the owner moving half
//! the ring to the injector on overflow).
//!
//! - **push** (owner): load `head` (Acquire), and if `tail - head < CAP`
//!   store the job into slot `tail % CAP` and publish it with a Release
//!   store of `tail + 1`.
//! - **take k jobs** (pop: k = 1 by the owner; steal: half the jobs; overflow:
//!   half the ring): load `head`, load `tail` (Acquire: synchronizes with the
//!   push that wrote those slots), *read* the k slots, then claim them by a
//!   CAS of `head` from `h` to `h + k` (AcqRel). A failed CAS discards what
//!   was read and retries.
//!
//! Why reading before claiming is sound: the slots are atomics, so a racing
//! read is not a data race; and a successful CAS from `h` proves that what
//! was read is the jobs pushed at indices `h..h+k`. The owner rewrites slot
//! `i % CAP` for index `i + CAP` only after its Acquire load of `head` saw a
//! value `> i`, i.e. after (in `head`'s modification order, and by
//! release/acquire, in happens-before) the CAS that claimed index `i`; if our
//! CAS succeeded from `h`, no one had claimed `h..h+k` before, so no rewrite
//! of those slots happened before our reads, and a later rewrite cannot be
//! seen by an earlier read (read-write coherence). The counters are `usize`
//! and never wrap in practice (2^64 jobs), so a stale `h` cannot come back
//! (no ABA).

use crossbeam_utils::CachePadded;

use crate::job::{self, JobHeader, JobRef};
use crate::loom::sync::Mutex;
use crate::loom::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// Capacity of a local queue (a power of two); shrunk under loom so the
/// overflow path is explored.
pub(crate) const CAP: usize = if cfg!(loom) { 4 } else { 256 };
const MASK: usize = CAP - 1;
/// How many jobs an overflow moves to the injector.
const HALF: usize = CAP / 2;

/// A worker's bounded local run queue (see the module docs).
pub(crate) struct LocalQueue {
    head: CachePadded<AtomicUsize>,
    tail: CachePadded<AtomicUsize>,
    slots: Box<[AtomicPtr<JobHeader>]>,
}

impl LocalQueue {
    pub(crate) fn new() -> Self {
        LocalQueue {
            head: CachePadded::new(AtomicUsize::new(0)),
            tail: CachePadded::new(AtomicUsize::new(0)),
            slots: (0..CAP)
                .map(|_| AtomicPtr::new(core::ptr::null_mut()))
                .collect(),
        }
    }

    /// Whether the queue looked empty (racy; for the idle re-check).
    pub(crate) fn is_empty(&self) -> bool {
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        tail == head
    }

    /// Free slots (owner only). Acquire on `head`, as in `push`: the slots
    /// it reports free may be rewritten by the caller.
    fn room(&self) -> usize {
        let head = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Relaxed);
        CAP - tail.wrapping_sub(head).min(CAP)
    }

    /// Pushes `job` (owner only). If the ring is full, half of it and `job`
    /// move to `injector`; if the injector is closed they are handed back.
    #[inline]
    pub(crate) fn push(&self, job: JobRef, injector: &Injector) -> Result<(), Vec<JobRef>> {
        let tail = self.tail.load(Ordering::Relaxed); // only the owner writes it
        let mut job = job;
        loop {
            // Acquire: a slot is rewritten only after the CAS that claimed
            // its previous job (and the claimer's reads) happened-before.
            let head = self.head.load(Ordering::Acquire);
            if tail.wrapping_sub(head) < CAP {
                self.slots[tail & MASK].store(job.into_raw(), Ordering::Relaxed);
                // Release: publishes the slot and the job's contents.
                self.tail.store(tail.wrapping_add(1), Ordering::Release);
                return Ok(());
            }
            match self.push_overflow(job, head, tail, injector) {
                Ok(result) => return result,
                Err(back) => job = back,
            }
        }
    }

    /// Moves `HALF` jobs starting at `head` plus `job` to the injector.
    /// `Err(job)` if a stealer took some jobs first (retry the push).
    /// Out of line: with its `HALF`-slot buffer inlined, every `push` paid
    /// for saving registers and a stack frame it almost never needs.
    #[allow(clippy::type_complexity)]
    #[cold]
    #[inline(never)]
    fn push_overflow(
        &self,
        job: JobRef,
        head: usize,
        tail: usize,
        injector: &Injector,
    ) -> Result<Result<(), Vec<JobRef>>, JobRef> {
        debug_assert_eq!(tail.wrapping_sub(head), CAP);
        let mut raw = [core::ptr::null_mut(); HALF];
        for (i, r) in raw.iter_mut().enumerate() {
            *r = self.slots[head.wrapping_add(i) & MASK].load(Ordering::Relaxed);
        }
        if self
            .head
            .compare_exchange(
                head,
                head.wrapping_add(HALF),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return Err(job);
        }
        // The claimed batch, in FIFO order, then the new job.
        let batch = raw.into_iter().map(|r| {
            // SAFETY: the CAS claimed exactly these HALF jobs for us.
            unsafe { JobRef::from_raw(r) }.expect("claimed slots hold jobs")
        });
        Ok(injector.push_batch(batch.chain(core::iter::once(job))))
    }

    /// Pops the oldest job (owner only).
    #[inline]
    pub(crate) fn pop(&self) -> Option<JobRef> {
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            let tail = self.tail.load(Ordering::Relaxed); // the owner wrote it
            if tail == head {
                return None;
            }
            let raw = self.slots[head & MASK].load(Ordering::Relaxed);
            match self.head.compare_exchange(
                head,
                head.wrapping_add(1),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                // SAFETY: the CAS claimed index `head`, whose slot holds `raw`
                // (module docs).
                Ok(_) => return unsafe { JobRef::from_raw(raw) },
                Err(actual) => head = actual,
            }
        }
    }

    /// Steals about half of this queue: returns one job and pushes the rest
    /// into `dst`, which must be the calling worker's own queue.
    pub(crate) fn steal_into(&self, dst: &LocalQueue) -> Option<JobRef> {
        // Room in `dst`: only we push to it, others can only shrink it.
        let room = dst.room();
        // Only we write `dst`'s tail, so it stays put. The jobs after the
        // first are copied straight into `dst`'s free slots (from `tail`
        // on), which nobody reads until the Release store of `tail` below
        // publishes them: an attempt whose claim fails leaves nothing
        // behind, and no scratch buffer is zeroed on every attempt (the
        // idle workers' spinning calls this in a loop).
        let dst_tail = dst.tail.load(Ordering::Relaxed);
        let mut head = self.head.load(Ordering::Acquire);
        let (first, k) = loop {
            // Acquire: synchronizes with the pushes that wrote the slots.
            let tail = self.tail.load(Ordering::Acquire);
            let n = tail.wrapping_sub(head);
            if n == 0 {
                return None;
            }
            if n > CAP {
                // `head` is stale (older than `tail`'s reading): reload.
                head = self.head.load(Ordering::Acquire);
                continue;
            }
            let k = (n - n / 2).min(HALF).min(room + 1);
            let first = self.slots[head & MASK].load(Ordering::Relaxed);
            for i in 1..k {
                let job = self.slots[head.wrapping_add(i) & MASK].load(Ordering::Relaxed);
                dst.slots[dst_tail.wrapping_add(i - 1) & MASK].store(job, Ordering::Relaxed);
            }
            match self.head.compare_exchange(
                head,
                head.wrapping_add(k),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break (first, k),
                Err(actual) => head = actual,
            }
        };
        // SAFETY: the CAS claimed these k jobs for us (module docs).
        let first = unsafe { JobRef::from_raw(first) }.expect("claimed slot holds a job");
        if k > 1 {
            // Release: publishes the moved jobs to stealers of `dst`.
            dst.tail
                .store(dst_tail.wrapping_add(k - 1), Ordering::Release);
        }
        Some(first)
    }
}

impl Drop for LocalQueue {
    fn drop(&mut self) {
        debug_assert!(
            std::thread::panicking() || self.is_empty(),
            "a local queue was dropped with jobs in it"
        );
    }
}

/// A worker's LIFO slot: the job the worker scheduled last, run next by the
/// owner (for cache locality), stolen by an idle worker only as a last
/// resort before it parks.
pub(crate) struct LifoSlot {
    job: AtomicPtr<JobHeader>,
}

impl LifoSlot {
    pub(crate) fn new() -> Self {
        LifoSlot {
            job: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// Puts `job` in the slot (owner only); returns the job it displaced.
    ///
    /// The newest job takes the slot even when a job pushes many (a
    /// fan-out pays a `swap` per push for it): keeping the first occupant
    /// and queueing the later pushes instead saved ~1% per child on
    /// `when_all_fanout` but made `fib_join` (a fork pushes its left half,
    /// then the forks inside its right half push theirs) 7–12% slower per
    /// fork, measured with `fib_pool_cost` and `hot_paths` (issue 3).
    #[inline]
    pub(crate) fn put(&self, job: JobRef) -> Option<JobRef> {
        // Only the owner fills the slot; others only empty it. So an empty
        // slot seen by the owner stays empty until the owner fills it, and
        // a plain store suffices (no read-modify-write on the common path,
        // where the owner has just taken the slot's job to run it).
        if self.job.load(Ordering::Relaxed).is_null() {
            // Release: publishes `job` to a stealer's Acquire swap.
            self.job.store(job.into_raw(), Ordering::Release);
            return None;
        }
        // AcqRel: Release publishes `job` to a stealer's Acquire; Acquire
        // takes ownership of the displaced job.
        let prev = self.job.swap(job.into_raw(), Ordering::AcqRel);
        // SAFETY: the swap removed `prev` from the slot: it is ours now.
        unsafe { JobRef::from_raw(prev) }
    }

    /// Takes the job out of the slot (owner or stealer).
    #[inline]
    pub(crate) fn take(&self) -> Option<JobRef> {
        if self.job.load(Ordering::Relaxed).is_null() {
            return None;
        }
        let raw = self.job.swap(core::ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: the swap removed it from the slot: it is ours now.
        unsafe { JobRef::from_raw(raw) }
    }

    /// Whether the slot looked empty (racy).
    pub(crate) fn is_empty(&self) -> bool {
        self.job.load(Ordering::Relaxed).is_null()
    }
}

/// The intrusive FIFO list behind the injector's mutex: jobs linked
/// through their headers, owned by the list while linked.
struct List {
    head: *mut JobHeader,
    tail: *mut JobHeader,
    closed: bool,
}

// SAFETY: the list only holds jobs (whose `JobRef`s are `Send`), touched
// only with the mutex held.
unsafe impl Send for List {}

impl List {
    /// Unlinks the first job.
    fn pop(&mut self) -> Option<JobRef> {
        let head = self.head;
        if head.is_null() {
            return None;
        }
        // SAFETY: `head` is a live job owned by the list (mutex held).
        self.head = unsafe { job::next(head) };
        if self.head.is_null() {
            self.tail = core::ptr::null_mut();
        }
        // SAFETY: unlinked just now, so the list gives up its ownership.
        unsafe { JobRef::from_raw(head) }
    }
}

/// The global queue: submissions from outside the pool and overflow from
/// local queues. An intrusive list (through the jobs' headers) behind a
/// mutex, with an atomic length for the lock-free emptiness check.
pub(crate) struct Injector {
    len: AtomicUsize,
    list: Mutex<List>,
}

impl Injector {
    pub(crate) fn new() -> Self {
        Injector {
            len: AtomicUsize::new(0),
            list: Mutex::new(List {
                head: core::ptr::null_mut(),
                tail: core::ptr::null_mut(),
                closed: false,
            }),
        }
    }

    fn lock(&self) -> crate::loom::sync::MutexGuard<'_, List> {
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether it looked empty (racy; exact after a SeqCst fence that
    /// follows the push, see `idle`).
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::Relaxed) == 0
    }

    /// Appends `job`; hands it back if the injector is closed.
    pub(crate) fn push(&self, job: JobRef) -> Result<(), JobRef> {
        self.push_batch(core::iter::once(job))
            .map_err(|mut v| v.pop().expect("one job"))
    }

    /// Appends `jobs` in order; hands them back if the injector is closed.
    pub(crate) fn push_batch(&self, jobs: impl Iterator<Item = JobRef>) -> Result<(), Vec<JobRef>> {
        let mut list = self.lock();
        if list.closed {
            drop(list);
            return Err(jobs.collect());
        }
        let mut n = 0;
        for job in jobs {
            let raw = job.into_raw();
            // SAFETY: we own `raw` (it came from a `JobRef`) and the list's
            // `tail` is owned by the list, whose mutex we hold. Linking moves
            // `raw`'s ownership into the list.
            unsafe {
                job::set_next(raw, core::ptr::null_mut());
                if list.tail.is_null() {
                    list.head = raw;
                } else {
                    job::set_next(list.tail, raw);
                }
            }
            list.tail = raw;
            n += 1;
        }
        self.len.fetch_add(n, Ordering::Relaxed);
        drop(list);
        Ok(())
    }

    /// Pops the oldest job.
    pub(crate) fn pop(&self) -> Option<JobRef> {
        if self.is_empty() {
            return None;
        }
        let mut list = self.lock();
        let job = list.pop()?;
        self.len.fetch_sub(1, Ordering::Relaxed);
        Some(job)
    }

    /// Pops one job and moves up to `max` more into `dst` (the caller's own
    /// local queue).
    pub(crate) fn pop_batch_into(&self, dst: &LocalQueue, max: usize) -> Option<JobRef> {
        if self.is_empty() {
            return None;
        }
        let room = dst.room();
        let mut list = self.lock();
        let first = list.pop()?;
        let dst_tail = dst.tail.load(Ordering::Relaxed);
        let mut moved = 0;
        while moved < max.min(room) {
            let Some(job) = list.pop() else { break };
            dst.slots[dst_tail.wrapping_add(moved) & MASK].store(job.into_raw(), Ordering::Relaxed);
            moved += 1;
        }
        self.len.fetch_sub(moved + 1, Ordering::Relaxed);
        drop(list);
        if moved > 0 {
            // Release: publishes the moved jobs to stealers of `dst`.
            dst.tail
                .store(dst_tail.wrapping_add(moved), Ordering::Release);
        }
        Some(first)
    }

    /// Refuses further pushes and returns every queued job.
    pub(crate) fn close(&self) -> Vec<JobRef> {
        let mut list = self.lock();
        list.closed = true;
        let mut out = Vec::new();
        while let Some(job) = list.pop() {
            out.push(job);
        }
        self.len.store(0, Ordering::Relaxed);
        out
    }
}
