//! I/O operations behind `AnySender`, started off the loop thread: the
//! erased frame frees the inner operation inside that operation's own
//! completion, on the loop thread, possibly while `start` is still
//! returning on the starting thread (PROTOCOL.md rule 5). Every completion
//! arrives once, with the right value, and stop still cancels. Runs on the
//! default backend and on `EXEC_IO_BACKEND=readiness`.

use std::time::Duration;

use exec_core::{AnySender, Scheduler, SenderExt, TimedScheduler, stop_when, sync_wait};
use exec_io::{IoContext, TcpListener, TcpStream};

#[test]
fn erased_schedule_and_timer_complete_once_each() {
    let io = IoContext::builder().spawn().unwrap();
    let sch = io.scheduler();
    for i in 0..5_000u32 {
        let s = AnySender::new(sch.schedule().then(move |()| i));
        assert_eq!(sync_wait(s), Ok(Some(i)));
    }
    for i in 0..500u32 {
        let t = AnySender::new(sch.schedule_after(Duration::ZERO).then(move |()| i));
        assert_eq!(sync_wait(t), Ok(Some(i)));
    }
}

#[test]
fn erased_socket_reads_complete_on_the_loop_and_stop_cancels() {
    let io = IoContext::builder().spawn().unwrap();
    let sch = io.scheduler();
    let l = TcpListener::bind(&sch, "127.0.0.1:0".parse().unwrap()).unwrap();
    let c = sync_wait(TcpStream::connect(&sch, l.local_addr().unwrap()))
        .unwrap()
        .unwrap();
    let (s, _) = sync_wait(l.accept()).unwrap().unwrap();
    for i in 0..=255u8 {
        let w = AnySender::new(c.write_all(vec![i; 3]));
        sync_wait(w).unwrap();
        let r = AnySender::new(s.read(vec![0; 8]).then(|(n, buf)| buf[..n].to_vec()));
        assert_eq!(sync_wait(r).unwrap(), Some(vec![i; 3]));
    }
    // An erased read with nothing to read, stopped by a timer on the loop.
    for _ in 0..50 {
        let read = AnySender::new(s.read(vec![0; 8]));
        let out = sync_wait(stop_when(
            read,
            sch.schedule_after(Duration::from_micros(200)),
        ));
        assert!(matches!(out, Ok(None)), "stopped, not completed with data");
    }
}
