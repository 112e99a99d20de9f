//! Pins the size of an idle spawned task (benches/pool_vs.rs
//! `idle_task_memory`): scope bookkeeping + schedule + `let_value` + a
//! oneshot receive, so that it cannot silently regrow.

use exec_core::{
    AsyncScope, Scheduler, SenderExt, SenderTo, StopCallback, oneshot, ops::SpawnReceiver,
    sync_wait,
};

fn op_size<S: SenderTo<SpawnReceiver>>(_: &S) -> usize {
    size_of::<S::Operation>()
}

#[test]
fn idle_spawned_task_fits_in_128_bytes() {
    let pool = exec_pool::ThreadPool::builder().threads(1).build().unwrap();
    let sched = pool.scheduler();
    let (tx, rx) = oneshot::channel::<u64>();
    let task = sched
        .schedule()
        .with_error::<oneshot::RecvError>()
        .let_value(move |()| rx)
        .then(|_| ())
        .upon_error(|_| ());
    // The spawn block is a two-word header plus the operation: 80 B, which
    // the frame cache's 16-byte classes hold without rounding up.
    assert!(op_size(&task) <= 64, "spawned op is {} B", op_size(&task));
    assert_eq!(size_of::<SpawnReceiver>(), size_of::<usize>());
    // And it still works.
    let scope = AsyncScope::new();
    assert!(scope.spawn(task));
    tx.send(7).unwrap();
    assert_eq!(sync_wait(scope.join()), Ok(Some(())));
}

#[test]
fn stop_callback_is_four_words_plus_its_callback() {
    struct Ptr(#[allow(dead_code)] Box<u8>);
    impl exec_core::OnStop for Ptr {
        fn on_stop(self) {}
    }
    assert!(size_of::<StopCallback<'static, Ptr>>() <= 5 * size_of::<usize>());
}
