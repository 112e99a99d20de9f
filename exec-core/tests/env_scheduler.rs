//! The `Env::scheduler` query: who answers it, who forwards it, and the
//! algorithms that use it (`schedule_on_current`, `on`) — on real threads.
mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::thread::{self, ThreadId};

use common::*;
use exec_core::{
    InlineScheduler, RunLoop, Scheduler, SchedulerRef, SenderExt, StopSource, WithScheduler, just,
    on, read_env, schedule_on_current, starts_on, sync_wait, when_all,
};

// ------------------------------------------------------ counting allocator

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations_during;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

// ------------------------------------------------------------------ helpers

/// Runs `f` with a second `RunLoop` driven by a helper thread; passes the
/// loop and the helper's thread id.
fn with_helper_loop<T>(f: impl FnOnce(&RunLoop, ThreadId) -> T) -> T {
    let run_loop = RunLoop::new();
    let run_loop = &run_loop;
    thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        let helper = s.spawn(move || {
            tx.send(thread::current().id()).unwrap();
            run_loop.run();
        });
        let id = rx.recv().unwrap();
        let out = f(run_loop, id);
        run_loop.finish();
        helper.join().unwrap();
        out
    })
}

fn here() -> ThreadId {
    thread::current().id()
}

// ---------------------------------------------------------------- answering

#[test]
fn default_environments_report_no_scheduler() {
    let (op, rec) = start(read_env(|env| env.scheduler().is_none()));
    assert!(rec.expect_value());
    op.finish();
}

#[test]
fn sync_wait_answers_its_run_loop() {
    assert_eq!(
        sync_wait(read_env(|env| env.scheduler().is_some())),
        Ok(Some(true))
    );
    // What it answers runs work on sync_wait's thread: hop to a helper loop
    // first, then come back through the answer.
    let main = here();
    let (ran_on, back_on, helper_id) = with_helper_loop(|helper, helper_id| {
        let (ran_on, back_on) = sync_wait(
            starts_on(helper.scheduler(), just(()).then(|()| here()))
                .let_value(|ran_on| schedule_on_current().then(move |()| (ran_on, here()))),
        )
        .unwrap()
        .unwrap();
        (ran_on, back_on, helper_id)
    });
    assert_eq!(ran_on, helper_id);
    assert_eq!(back_on, main);
    assert_eq!(
        sync_wait(schedule_on_current().then(|()| here())),
        Ok(Some(main))
    );
}

#[test]
fn starts_on_a_run_loop_reports_it() {
    with_helper_loop(|helper, _| {
        let sched = helper.scheduler();
        let expected = SchedulerRef::new(helper);
        let seen = sync_wait(starts_on(
            sched,
            read_env(move |env| env.scheduler() == Some(expected)),
        ));
        assert_eq!(seen, Ok(Some(true)));
        // ... and not sync_wait's own loop once inside.
        let outer = sync_wait(read_env(move |env| env.scheduler() == Some(expected)));
        assert_eq!(outer, Ok(Some(false)));
    });
}

#[test]
fn starts_on_a_scheduler_without_erased_form_reports_none() {
    let sched = ManualScheduler::new();
    static OUTER: ManualContext = ManualContext::new();
    let (op, rec) = start(
        starts_on(sched.clone(), read_env(|env| env.scheduler().is_none()))
            .write_env(WithScheduler::new(Some(OUTER.handle()))),
    );
    sched.run_all();
    assert!(
        rec.expect_value(),
        "work does not run on the outer scheduler"
    );
    op.finish();
}

#[test]
fn inline_scheduler_and_scheduler_ref_identity() {
    let a = InlineScheduler.erased().unwrap();
    let b = InlineScheduler.erased().unwrap();
    assert_eq!(a, b);
    let run_loop = RunLoop::new();
    let sched = run_loop.scheduler();
    let l = sched.erased().unwrap();
    assert_ne!(a, l);
    assert_eq!(l, SchedulerRef::new(&run_loop));
    assert_eq!(l.erased(), Some(l));
    assert_eq!(
        sync_wait(starts_on(
            InlineScheduler,
            read_env(move |env| env.scheduler() == Some(a))
        )),
        Ok(Some(true))
    );
}

// ---------------------------------------------------------------- forwarding

#[test]
fn nary_children_and_let_value_see_the_scheduler() {
    static CTX: ManualContext = ManualContext::new();
    let h = CTX.handle();
    let is_ctx = move || read_env(move |env| env.scheduler() == Some(h));
    let (op, rec) = start(
        when_all(is_ctx(), just(()).let_value(move |()| is_ctx()))
            .then(|(a, b)| a && b)
            .write_env(WithScheduler::new(Some(h))),
    );
    assert!(rec.expect_value());
    op.finish();
    // `boxed` (AnySender) captures the environment too.
    let (op, rec) = start(
        is_ctx()
            .boxed::<bool, Infallible>()
            .write_env(WithScheduler::new(Some(h))),
    );
    assert!(rec.expect_value());
    op.finish();
}

#[test]
fn write_env_overrides_and_forwards() {
    static A: ManualContext = ManualContext::new();
    static B: ManualContext = ManualContext::new();
    let (a, b) = (A.handle(), B.handle());
    // The innermost overlay wins; an overlay that does not answer forwards.
    let (op, rec) = start(
        read_env(move |env| env.scheduler() == Some(b))
            .write_env(WithScheduler::new(Some(b)))
            .write_env(())
            .write_env(WithScheduler::new(Some(a))),
    );
    assert!(rec.expect_value());
    op.finish();
    let (op, rec) = start(
        read_env(move |env| env.scheduler() == Some(a))
            .unstoppable()
            .write_env(WithScheduler::new(Some(a))),
    );
    assert!(rec.expect_value(), "unstoppable forwards the scheduler");
    op.finish();
}

// --------------------------------------------------------- on, on threads

#[test]
fn on_returns_to_sync_waits_thread() {
    let main = here();
    let (ran_on, back_on, helper_id) = with_helper_loop(|helper, helper_id| {
        let (ran_on, back_on) =
            sync_wait(on(helper.scheduler(), just(()).then(|()| here())).then(|t| (t, here())))
                .unwrap()
                .unwrap();
        (ran_on, back_on, helper_id)
    });
    assert_eq!(ran_on, helper_id, "the work ran on the helper loop");
    assert_ne!(ran_on, main);
    assert_eq!(back_on, main, "completed back on sync_wait's thread");
}

#[test]
fn on_inside_starts_on_returns_to_that_scheduler() {
    with_helper_loop(|outer, outer_id| {
        with_helper_loop(|inner, inner_id| {
            let (ran_on, back_on) = sync_wait(starts_on(
                outer.scheduler(),
                on(inner.scheduler(), just(()).then(|()| here())).then(|t| (t, here())),
            ))
            .unwrap()
            .unwrap();
            assert_eq!(ran_on, inner_id);
            assert_eq!(back_on, outer_id);
        })
    });
}

#[test]
fn on_stop_while_hop_back_is_queued_is_stopped() {
    static BACK: ManualContext = ManualContext::new();
    let drops = DropCounter::new();
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(source.clone());
    with_helper_loop(|helper, _| {
        let op = start_with(
            on(helper.scheduler(), just(drops.track(7)))
                .write_env(WithScheduler::new(Some(BACK.handle()))),
            r,
            &rec,
        );
        // Wait until the helper has run the work and queued the hop back.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while BACK.pending() == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "hop back never queued"
            );
            thread::yield_now();
        }
        assert_eq!(drops.alive(), 1);
        source.request_stop();
        assert_eq!(BACK.run_all(), 1);
        rec.expect_stopped();
        assert_eq!((drops.created(), drops.dropped()), (1, 1));
        op.finish();
    });
}

#[test]
fn on_drops_what_it_holds() {
    let drops = DropCounter::new();
    with_helper_loop(|helper, _| {
        let got = sync_wait(on(helper.scheduler(), just(drops.track(3))).then(|t| t.value));
        assert_eq!(got, Ok(Some(3)));
    });
    assert_eq!((drops.created(), drops.dropped()), (1, 1));
}

#[test]
fn many_hops_back_and_forth_complete_once_each() {
    let n = if cfg!(miri) { 3 } else { 200 };
    let main = here();
    with_helper_loop(|helper, helper_id| {
        for i in 0..n {
            let got = sync_wait(
                on(helper.scheduler(), just(i).then(|x| (x, here()))).then(|v| (v, here())),
            );
            assert_eq!(got, Ok(Some(((i, helper_id), main))));
        }
    });
}

// ------------------------------------------------------------ no allocation

#[test]
fn answering_and_hopping_allocate_nothing() {
    with_helper_loop(|helper, _| {
        let sched = helper.scheduler();
        let (out, n) = allocations_during(|| {
            let a = sync_wait(read_env(|env| env.scheduler().is_some()));
            let b = sync_wait(schedule_on_current().then(|()| 1));
            let c = sync_wait(on(sched, just(2).then(|x| x * 10)));
            let d = sync_wait(starts_on(
                InlineScheduler,
                on(sched, just(3)).then(|x| x + 1),
            ));
            let e = sync_wait(just(5).continues_on(SchedulerRef::new(helper)));
            (a, b, c, d, e)
        });
        assert_eq!(
            out,
            (
                Ok(Some(true)),
                Ok(Some(1)),
                Ok(Some(20)),
                Ok(Some(4)),
                Ok(Some(5))
            )
        );
        assert_eq!(n, 0, "allocations on the current-scheduler path");
    });
}
