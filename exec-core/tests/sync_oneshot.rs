//! oneshot channel: value, sender dropped (error), stop before/while
//! waiting, send from another thread, values dropped when not received.
mod common;

use common::*;
use exec_core::{SenderExt, SenderTo, StopSource, oneshot, sync_wait};
use std::sync::Arc;

#[test]
fn value_sent_before_receive() {
    let (tx, rx) = oneshot::channel();
    tx.send(7).unwrap();
    let (op, rec) = start(rx);
    assert_eq!(rec.expect_value(), 7);
    op.finish();
}

#[test]
fn value_sent_while_waiting() {
    let (tx, rx) = oneshot::channel();
    let (op, rec) = start(rx.then(|s: String| s + "!"));
    assert!(!rec.is_complete());
    tx.send("hey".to_string()).unwrap();
    assert_eq!(rec.expect_value(), "hey!");
    op.finish();
}

#[test]
fn dropped_sender_is_an_error_before_and_while_waiting() {
    let (tx, rx) = oneshot::channel::<i32>();
    drop(tx);
    assert_eq!(sync_wait(rx), Err(oneshot::RecvError));

    let (tx, rx) = oneshot::channel::<i32>();
    let (op, rec) = start(rx);
    drop(tx);
    assert_eq!(rec.expect_error(), oneshot::RecvError);
    op.finish();
    assert!(!oneshot::RecvError.to_string().is_empty());
}

#[test]
fn send_to_a_dropped_receiver_returns_the_value() {
    let (tx, rx) = oneshot::channel();
    assert!(!tx.is_closed());
    drop(rx);
    assert!(tx.is_closed());
    assert_eq!(tx.send(3), Err(3));
}

#[test]
fn stop_before_start_and_while_waiting() {
    let (tx, rx) = oneshot::channel::<i32>();
    tx.send(1).unwrap();
    let source = Arc::new(StopSource::new());
    source.request_stop();
    let (r, rec) = recorder_with_stop(source);
    let op = start_with(rx, r, &rec);
    rec.expect_stopped();
    op.finish();

    let (tx, rx) = oneshot::channel::<i32>();
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(source.clone());
    let op = start_with(rx, r, &rec);
    source.request_stop();
    rec.expect_stopped();
    drop(op);
    assert_eq!(tx.send(2), Err(2), "receiver gone after its op was dropped");
}

#[test]
fn unreceived_values_are_dropped() {
    let drops = DropCounter::new();
    let (tx, rx) = oneshot::channel();
    tx.send(drops.track(1)).unwrap();
    assert_eq!(drops.alive(), 1);
    drop(rx);
    assert_eq!(drops.alive(), 0);

    let (tx, rx) = oneshot::channel();
    let (r, _rec) = recorder();
    let op = rx.connect(r);
    tx.send(drops.track(2)).unwrap();
    drop(op);
    assert_eq!(drops.alive(), 0);
}

#[test]
fn send_from_another_thread() {
    let rounds = if cfg!(miri) { 3 } else { 300 };
    for i in 0..rounds {
        let (tx, rx) = oneshot::channel();
        let t = std::thread::spawn(move || tx.send(i).unwrap());
        assert_eq!(sync_wait(rx), Ok(Some(i)));
        t.join().unwrap();
    }
}

#[test]
fn stop_races_send_and_drop() {
    let rounds = if cfg!(miri) { 3 } else { 300 };
    for i in 0..rounds {
        let (tx, rx) = oneshot::channel::<usize>();
        let source = Arc::new(StopSource::new());
        let (r, rec) = recorder_with_stop(source.clone());
        let op = start_with(rx, r, &rec);
        let stopper = std::thread::spawn(move || source.request_stop());
        let sender = std::thread::spawn(move || {
            if i % 2 == 0 {
                let _ = tx.send(i);
            } else {
                drop(tx);
            }
        });
        stopper.join().unwrap();
        sender.join().unwrap();
        match rec.take() {
            Seen::Value(v) => assert_eq!(v, i),
            Seen::Error(oneshot::RecvError) => assert_eq!(i % 2, 1),
            Seen::Stopped => {}
            Seen::Panic(_) => panic!("unexpected panic"),
        }
        op.finish();
    }
}

#[test]
fn receive_op_is_small() {
    // Stop node (4 words), wake fn, receiver, channel handle: with a
    // one-word receiver (the recorder's `Arc`), 7 words. It was 17.
    let (_tx, rx) = oneshot::channel::<u64>();
    let (r, _rec) = recorder::<u64, oneshot::RecvError>();
    assert_eq!(size_of_val(&r), size_of::<usize>());
    let op = rx.connect(r);
    assert!(
        size_of_val(&op) <= 7 * size_of::<usize>(),
        "RecvOp is {} B",
        size_of_val(&op)
    );
}

#[test]
fn values_are_dropped_once_on_every_path() {
    let drops = DropCounter::new();
    // Stored, then a stopped receive: dropped when it completes.
    let (tx, rx) = oneshot::channel();
    tx.send(drops.track(1)).unwrap();
    let source = Arc::new(StopSource::new());
    source.request_stop();
    let (r, rec) = recorder_with_stop(source);
    let op = start_with(rx, r, &rec);
    rec.expect_stopped();
    assert_eq!(drops.alive(), 0, "unreceived value held by a completed op");
    op.finish();

    // Stopped while waiting: a later send gets its value back.
    let (tx, rx) = oneshot::channel();
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(source.clone());
    let op = start_with(rx, r, &rec);
    source.request_stop();
    rec.expect_stopped();
    let back = tx.send(drops.track(2)).expect_err("receiver was stopped");
    assert_eq!(back.value, 2);
    drop(back);
    assert_eq!(drops.alive(), 0);
    op.finish();

    // Handed to a waiting receive: exactly one live value, then none.
    let (tx, rx) = oneshot::channel();
    let (op, rec) = start(rx);
    tx.send(drops.track(3)).unwrap();
    assert_eq!(rec.expect_value().value, 3);
    op.finish();
    assert_eq!(drops.alive(), 0);
}
