//! Loom models of the pool's concurrent pieces (`--cfg loom`, run with
//! `LOOM_MAX_PREEMPTIONS=2`). Capacities are shrunk under loom
//! (`queue::CAP` = 4) so the overflow path is explored.
//!
//! Every job used here carries its payload in the job's `UnsafeCell`,
//! written by the submitting thread and taken by the executing one, so a
//! missing happens-before edge on any hand-off is reported by loom as a
//! causality violation; each job counts its executions, so a lost or
//! duplicated job fails the final assertions.

use core::pin::Pin;

use ::loom::sync::Arc;
use ::loom::sync::atomic::{AtomicUsize, Ordering};
use ::loom::thread;

use crate::idle::Idle;
use crate::job::{Job, JobRef, Mode, Payload};
use crate::queue::{Injector, LifoSlot, LocalQueue};

/// Counts how often the job ran (and in which mode).
struct Count {
    runs: Arc<AtomicUsize>,
}

impl Payload for Count {
    fn run(self, mode: Mode) {
        assert_eq!(mode, Mode::Run);
        self.runs.fetch_add(1, Ordering::Relaxed);
    }
}

/// `n` pinned jobs, not armed yet, and their run counters.
fn jobs(n: usize) -> (Vec<Pin<Box<Job<Count>>>>, Vec<Arc<AtomicUsize>>) {
    let counters: Vec<_> = (0..n).map(|_| Arc::new(AtomicUsize::new(0))).collect();
    let jobs = (0..n).map(|_| Box::pin(Job::empty())).collect();
    (jobs, counters)
}

/// Writes job `i`'s payload (on the calling thread, *after* the other
/// threads were spawned, so only the queue hand-off can order the write
/// before the executing thread's read) and returns its reference.
fn arm(jobs: &[Pin<Box<Job<Count>>>], counters: &[Arc<AtomicUsize>], i: usize) -> JobRef {
    // SAFETY: each job is armed and referenced once per model run, before
    // it is queued, and outlives the threads (the boxes are dropped after
    // they are joined).
    unsafe {
        jobs[i].set_payload(Count {
            runs: counters[i].clone(),
        });
        jobs[i].as_ref().job_ref()
    }
}

fn assert_each_ran_once(counters: &[Arc<AtomicUsize>]) {
    for (i, c) in counters.iter().enumerate() {
        assert_eq!(c.load(Ordering::Relaxed), 1, "job {i}");
    }
}

/// Drains everything the owner can still reach.
fn drain(queue: &LocalQueue, injector: &Injector) {
    while let Some(job) = queue.pop().or_else(|| injector.pop()) {
        job.execute(Mode::Run);
    }
}

/// Owner pushes and pops while another worker steals half the queue into
/// its own: every job runs once, with its payload visible.
#[test]
fn local_queue_push_pop_steal() {
    ::loom::model(|| {
        let (jobs, counters) = jobs(3);
        let victim = Arc::new(LocalQueue::new());
        let injector = Arc::new(Injector::new());
        let v2 = victim.clone();
        let stealer = thread::spawn(move || {
            let mine = LocalQueue::new();
            if let Some(job) = v2.steal_into(&mine) {
                job.execute(Mode::Run);
            }
            while let Some(job) = mine.pop() {
                job.execute(Mode::Run);
            }
        });
        for i in 0..3 {
            victim.push(arm(&jobs, &counters, i), &injector).unwrap();
        }
        if let Some(job) = victim.pop() {
            job.execute(Mode::Run);
        }
        stealer.join().unwrap();
        drain(&victim, &injector);
        assert_each_ran_once(&counters);
        drop(jobs);
    });
}

/// The owner fills the ring (CAP = 4) and overflows half of it into the
/// injector while a stealer takes from the same ring.
#[test]
fn local_queue_overflow_into_injector_while_stealing() {
    ::loom::model(|| {
        let (jobs, counters) = jobs(5);
        let victim = Arc::new(LocalQueue::new());
        let injector = Arc::new(Injector::new());
        // Fill the ring (CAP = 4) before the stealer exists...
        for i in 0..4 {
            victim.push(arm(&jobs, &counters, i), &injector).unwrap();
        }
        let (v2, i2) = (victim.clone(), injector.clone());
        let stealer = thread::spawn(move || {
            let mine = LocalQueue::new();
            if let Some(job) = v2.steal_into(&mine).or_else(|| i2.pop()) {
                job.execute(Mode::Run);
            }
            while let Some(job) = mine.pop() {
                job.execute(Mode::Run);
            }
        });
        // ...so this push overflows half of it into the injector, racing
        // the steal, unless the stealer got there first.
        victim.push(arm(&jobs, &counters, 4), &injector).unwrap();
        stealer.join().unwrap();
        drain(&victim, &injector);
        assert_each_ran_once(&counters);
        drop(jobs);
    });
}

/// The LIFO slot: the owner puts two jobs (the second displaces the first
/// into the queue) and takes the slot, while a stealer takes the slot as a
/// last resort.
#[test]
fn lifo_slot_put_take_steal() {
    ::loom::model(|| {
        let (jobs, counters) = jobs(2);
        let lifo = Arc::new(LifoSlot::new());
        let queue = LocalQueue::new();
        let injector = Injector::new();
        let l2 = lifo.clone();
        let stealer = thread::spawn(move || {
            if let Some(job) = l2.take() {
                job.execute(Mode::Run);
            }
        });
        if let Some(displaced) = lifo.put(arm(&jobs, &counters, 0)) {
            queue.push(displaced, &injector).unwrap();
        }
        if let Some(displaced) = lifo.put(arm(&jobs, &counters, 1)) {
            queue.push(displaced, &injector).unwrap();
        }
        if let Some(job) = lifo.take() {
            job.execute(Mode::Run);
        }
        stealer.join().unwrap();
        drain(&queue, &injector);
        assert_each_ran_once(&counters);
        drop(jobs);
    });
}

/// Parking: a worker that finds nothing announces, re-checks and parks; a
/// submitter pushes and notifies. The worker must not sleep through the
/// job (loom reports the deadlock of a lost wake-up at the join).
#[test]
fn parking_has_no_lost_wakeup() {
    ::loom::model(|| {
        let (jobs, counters) = jobs(1);
        let idle = Arc::new(Idle::new(1));
        let injector = Arc::new(Injector::new());
        let (i2, q2) = (idle.clone(), injector.clone());
        let worker = thread::spawn(move || {
            loop {
                if let Some(job) = q2.pop() {
                    job.execute(Mode::Run);
                    return;
                }
                i2.prepare_sleep(0);
                if !q2.is_empty() {
                    i2.cancel_sleep(0);
                    continue;
                }
                i2.park(0);
            }
        });
        injector.push(arm(&jobs, &counters, 0)).unwrap();
        idle.notify_one();
        worker.join().unwrap();
        assert_each_ran_once(&counters);
        drop(jobs);
    });
}

/// Shutdown with in-flight work: a one-worker pool, an operation scheduled
/// from outside racing the pool's drop. It completes exactly once (run or
/// stopped) before the drop returns, and the worker is joined.
#[test]
fn shutdown_completes_in_flight_work_once() {
    use exec_core::{Receiver, Scheduler, SenderTo};

    struct Rec(Arc<AtomicUsize>, Arc<AtomicUsize>);
    impl Receiver<(), core::convert::Infallible> for Rec {
        fn set_value(self, (): ()) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        fn set_error(self, e: core::convert::Infallible) {
            match e {}
        }
        fn set_stopped(self) {
            self.1.fetch_add(1, Ordering::Relaxed);
        }
    }

    ::loom::model(|| {
        let pool = crate::ThreadPool::builder().threads(1).build().unwrap();
        let sched = pool.scheduler();
        let (values, stops) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut op = Box::pin(sched.schedule().connect(Rec(values.clone(), stops.clone())));
        let dropper = thread::spawn(move || drop(pool));
        // SAFETY: the op is kept alive until after the pool is gone, by
        // which time it has completed (asserted below).
        unsafe { exec_core::OperationState::start(op.as_mut()) };
        dropper.join().unwrap();
        // The pool is gone: the op completed before that, exactly once.
        assert_eq!(
            values.load(Ordering::Relaxed) + stops.load(Ordering::Relaxed),
            1
        );
        drop(op);
    });
}

/// `PoolRef` shards: a reference cloned into a worker's shard and dropped
/// there while the last references of the outside shard are dropped on two
/// threads. The state is freed exactly once, after the last reference
/// (loom reports a leaked or doubly released `Arc`).
#[test]
fn pool_ref_shards_free_once() {
    use crate::handle::PoolRef;
    use crate::worker::Shared;
    loom::model(|| {
        let shared = Arc::new(Shared::new(1, None, None));
        let a = PoolRef::new(&shared);
        drop(shared);
        let b = a.clone();
        let t = thread::spawn(move || {
            let keep = PoolRef::enter_worker(&b, 0);
            let c = b.clone();
            drop(b);
            PoolRef::leave_worker(keep);
            drop(c);
        });
        drop(a);
        t.join().unwrap();
    });
}

/// A worker's own shard (counted without read-modify-writes while it is
/// open): references made there are dropped by the worker, by another
/// thread while the worker still runs, and after it closed the shard, on
/// its thread and on others, racing the close and the outside shard's last
/// drop. The state is freed exactly once, after the last reference.
#[test]
fn pool_ref_worker_shard_open_and_close() {
    use crate::handle::PoolRef;
    use crate::worker::Shared;
    loom::model(|| {
        let shared = Arc::new(Shared::new(1, None, None));
        let a = PoolRef::new(&shared);
        drop(shared);
        let b = a.clone();
        let t = thread::spawn(move || {
            let keep = PoolRef::enter_worker(&b, 0);
            drop(b);
            let (c, d, e) = (keep.clone(), keep.clone(), keep.clone());
            drop(c); // by the worker, shard open
            // Dropped on another thread, racing the close.
            let u = thread::spawn(move || drop(d));
            PoolRef::leave_worker(keep);
            u.join().unwrap();
            e // dropped on the main thread, after the close
        });
        drop(a);
        let e = t.join().unwrap();
        drop(e);
    });
}

/// Spinning: a submitter that sees a spinner wakes nobody. The spinner
/// (worker 0) may find the *other* job (J1, queued before) and leave J2 to
/// the parked worker 1 — then, as the last spinner, it must wake worker 1
/// itself. Each worker runs one job and exits, so a stranded job is a
/// deadlock at the join.
#[test]
fn spinner_silences_a_submitter_without_losing_its_job() {
    ::loom::model(|| {
        let (jobs, counters) = jobs(2);
        let idle = Arc::new(Idle::new(2));
        let injector = Arc::new(Injector::new());
        injector.push(arm(&jobs, &counters, 0)).unwrap();
        let worker = |me: usize, spins: bool| {
            let (idle, q) = (idle.clone(), injector.clone());
            thread::spawn(move || {
                let mut spins = spins;
                loop {
                    if spins {
                        // One spin round: count ourselves, look once.
                        spins = false;
                        idle.start_spinning();
                        let found = q.pop();
                        let last = idle.stop_spinning();
                        if let Some(job) = found {
                            if last {
                                idle.notify_one();
                            }
                            job.execute(Mode::Run);
                            return;
                        }
                    } else if let Some(job) = q.pop() {
                        job.execute(Mode::Run);
                        return;
                    }
                    idle.prepare_sleep(me);
                    if !q.is_empty() {
                        idle.cancel_sleep(me);
                        continue;
                    }
                    idle.park(me);
                }
            })
        };
        let w0 = worker(0, true);
        let w1 = worker(1, false);
        injector.push(arm(&jobs, &counters, 1)).unwrap();
        idle.notify_one();
        w0.join().unwrap();
        w1.join().unwrap();
        assert_each_ran_once(&counters);
        drop(jobs);
    });
}

/// A busy worker's own pushes (stdexec#1305): worker 0 runs a job that
/// puts J0 and then J1 into its LIFO slot (J1 displaces J0 into the local
/// queue) through the real `submit_local`, and then never gets back to its
/// queues (it returns here; in real life it waits for those jobs, or runs
/// for a long time). Worker 1 searches (steals from worker 0's queue, takes
/// its LIFO slot as a last resort), announces sleep, re-checks and parks:
/// it must run both jobs. A push that did not announce itself with a fenced
/// `notify_one` (for example, one that deferred it to the end of the
/// running job) leaves worker 1 parked next to a job: a deadlock at the
/// join.
#[test]
fn local_pushes_of_a_busy_worker_wake_a_sleeper() {
    use crate::worker::Shared;
    ::loom::model(|| {
        let (jobs, counters) = jobs(2);
        let shared = Arc::new(Shared::new(2, None, None));
        let s1 = shared.clone();
        let thief = thread::spawn(move || {
            let (victim, me) = (&s1.workers[0], &s1.workers[1]);
            let mut ran = 0;
            while ran < 2 {
                if let Some(job) = me
                    .queue
                    .pop()
                    .or_else(|| victim.queue.steal_into(&me.queue))
                    .or_else(|| victim.lifo.take())
                {
                    job.execute(Mode::Run);
                    ran += 1;
                    continue;
                }
                s1.idle.prepare_sleep(1);
                if !victim.queue.is_empty() || !victim.lifo.is_empty() {
                    s1.idle.cancel_sleep(1);
                    continue;
                }
                s1.idle.park(1);
            }
        });
        shared.set_current_worker(Some(0));
        shared.submit_local(0, arm(&jobs, &counters, 0), true);
        shared.submit_local(0, arm(&jobs, &counters, 1), true);
        shared.set_current_worker(None);
        thief.join().unwrap();
        assert_each_ran_once(&counters);
        drop(jobs);
    });
}
