//! UDP on the loop: send_to / recv_from, buffers handed back, stop.

// exec-core's shared fixtures (linted there, not here).
#[allow(clippy::collapsible_if, clippy::type_complexity)]
#[path = "../../exec-core/tests/common/mod.rs"]
mod common;
mod support;

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{recorder_with_stop, start_with};
use exec_core::{StopSource, sync_wait};
use exec_io::UdpSocket;
use support::{BgLoop, wait_for};

#[test]
fn send_to_and_recv_from() {
    let bg = BgLoop::new();
    let a = UdpSocket::bind(&bg.sch, "127.0.0.1:0".parse().unwrap()).unwrap();
    let b = UdpSocket::bind(&bg.sch, "127.0.0.1:0".parse().unwrap()).unwrap();
    let (recv_op, recv) = common::start(b.recv_from(vec![0; 32]));
    thread::sleep(Duration::from_millis(10));
    let (n, buf) = sync_wait(a.send_to(b"datagram".to_vec(), b.local_addr().unwrap()))
        .unwrap()
        .unwrap();
    assert_eq!((n, &buf[..]), (8, &b"datagram"[..]));
    wait_for(5, || recv.is_complete());
    let (n, from, buf) = recv.expect_value();
    assert_eq!(&buf[..n], b"datagram");
    assert_eq!(buf.len(), 32, "the buffer comes back whole");
    assert_eq!(from, a.local_addr().unwrap());
    recv_op.finish();
    // A datagram larger than the buffer is truncated.
    sync_wait(a.send_to(vec![9; 100], b.local_addr().unwrap())).unwrap();
    let (n, _, _) = sync_wait(b.recv_from(vec![0; 10])).unwrap().unwrap();
    assert_eq!(n, 10);
}

#[test]
fn stop_during_recv_from() {
    let bg = BgLoop::new();
    let s = UdpSocket::bind(&bg.sch, "127.0.0.1:0".parse().unwrap()).unwrap();
    let source = Arc::new(StopSource::new());
    let (r, rec) = recorder_with_stop(source.clone());
    let started = start_with(s.recv_from(vec![0; 8]), r, &rec);
    thread::sleep(Duration::from_millis(10));
    assert!(!rec.is_complete());
    source.request_stop();
    wait_for(5, || rec.is_complete());
    rec.expect_stopped();
    started.finish();
}

/// Runs `ctx` for a few milliseconds (a timer), so started operations
/// reach the kernel (on io_uring: their entries are submitted).
fn turn(ctx: &exec_io::IoContext) {
    use exec_core::TimedScheduler;
    ctx.run_until(ctx.scheduler().schedule_after(Duration::from_millis(5)))
        .unwrap();
}

#[test]
fn stopped_recv_from_consumes_nothing_and_frees_the_socket() {
    let ctx = exec_io::IoContext::new().unwrap();
    eprintln!("backend: {:?}", ctx.backend());
    let sch = ctx.scheduler();
    let a = UdpSocket::bind(&sch, "127.0.0.1:0".parse().unwrap()).unwrap();
    let b = UdpSocket::bind(&sch, "127.0.0.1:0".parse().unwrap()).unwrap();
    for round in 0..3 {
        // In flight (on io_uring a native recvmsg), then stopped.
        let source = Arc::new(StopSource::new());
        let (r, rec) = recorder_with_stop(source.clone());
        let op = start_with(b.recv_from(vec![0; 16]), r, &rec);
        turn(&ctx);
        assert!(!rec.is_complete());
        source.request_stop();
        turn(&ctx);
        rec.expect_stopped();
        assert_eq!(rec.completions(), 1);
        op.finish();
        // The receive direction is free again and the next datagram goes
        // to the next receive, whole.
        let msg = format!("round {round}").into_bytes();
        ctx.run_until(a.send_to(msg.clone(), b.local_addr().unwrap()))
            .unwrap();
        let (n, from, buf) = ctx.run_until(b.recv_from(vec![0; 16])).unwrap().unwrap();
        assert_eq!(&buf[..n], &msg[..]);
        assert_eq!(from, a.local_addr().unwrap());
    }
}

#[test]
fn truncated_and_empty_datagrams() {
    let ctx = exec_io::IoContext::new().unwrap();
    let sch = ctx.scheduler();
    let a = UdpSocket::bind(&sch, "127.0.0.1:0".parse().unwrap()).unwrap();
    let b = UdpSocket::bind(&sch, "127.0.0.1:0".parse().unwrap()).unwrap();
    let to = b.local_addr().unwrap();
    // Truncated to the buffer: `n` is the buffer's length (the rest of the
    // datagram is discarded, as `recvfrom` does), the next datagram is
    // separate.
    let big: Vec<u8> = (0..100u8).collect();
    ctx.run_until(a.send_to(big, to)).unwrap();
    ctx.run_until(a.send_to(b"next".to_vec(), to)).unwrap();
    let (n, from, buf) = ctx.run_until(b.recv_from(vec![0; 10])).unwrap().unwrap();
    assert_eq!((n, &buf[..]), (10, &(0..10u8).collect::<Vec<_>>()[..]));
    assert_eq!(from, a.local_addr().unwrap());
    let (n, _, buf) = ctx.run_until(b.recv_from(vec![0; 10])).unwrap().unwrap();
    assert_eq!(&buf[..n], b"next");
    // An empty datagram: zero bytes, with its sender.
    let (n, buf) = ctx.run_until(a.send_to(Vec::new(), to)).unwrap().unwrap();
    assert_eq!((n, buf.len()), (0, 0));
    let (n, from, buf) = ctx.run_until(b.recv_from(vec![7; 4])).unwrap().unwrap();
    assert_eq!((n, from, buf), (0, a.local_addr().unwrap(), vec![7; 4]));
    // Started before the datagram is sent (waits in the kernel).
    let (op, rec) = common::start(b.recv_from(vec![0; 4]));
    turn(&ctx);
    assert!(!rec.is_complete());
    ctx.run_until(a.send_to(b"late".to_vec(), to)).unwrap();
    for _ in 0..200 {
        if rec.is_complete() {
            break;
        }
        turn(&ctx);
    }
    let (n, _, buf) = rec.expect_value();
    assert_eq!(&buf[..n], b"late");
    op.finish();
}

#[test]
fn send_to_errors_are_io_errors() {
    let ctx = exec_io::IoContext::new().unwrap();
    let sch = ctx.scheduler();
    let a = UdpSocket::bind(&sch, "127.0.0.1:0".parse().unwrap()).unwrap();
    // An IPv6 destination on an IPv4 socket: the error std's blocking
    // socket reports for the same call, on both backends.
    let to: std::net::SocketAddr = "[::1]:9".parse().unwrap();
    let want = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"x", to)
        .unwrap_err();
    let err = ctx.run_until(a.send_to(b"x".to_vec(), to)).unwrap_err();
    assert_eq!(err.raw_os_error(), want.raw_os_error());
    assert!(err.raw_os_error().is_some());
    // A datagram larger than the protocol allows.
    let want = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(&vec![0; 70_000], a.local_addr().unwrap())
        .unwrap_err();
    let err = ctx
        .run_until(a.send_to(vec![0; 70_000], a.local_addr().unwrap()))
        .unwrap_err();
    assert_eq!(err.raw_os_error(), want.raw_os_error());
    assert_eq!(err.raw_os_error(), Some(libc::EMSGSIZE));
    // The socket is still usable.
    let (n, _) = ctx
        .run_until(a.send_to(b"ok".to_vec(), a.local_addr().unwrap()))
        .unwrap()
        .unwrap();
    assert_eq!(n, 2);
    let (n, _, buf) = ctx.run_until(a.recv_from(vec![0; 4])).unwrap().unwrap();
    assert_eq!(&buf[..n], b"ok");
}

#[test]
fn dropping_the_loop_with_recv_from_in_flight_stops_it_once() {
    let ctx = exec_io::IoContext::new().unwrap();
    let sch = ctx.scheduler();
    let s = UdpSocket::bind(&sch, "127.0.0.1:0".parse().unwrap()).unwrap();
    let peer = UdpSocket::bind(&sch, "127.0.0.1:0".parse().unwrap()).unwrap();
    let (op1, rec1) = common::start(s.recv_from(vec![0; 8]));
    let (op2, rec2) = common::start(peer.recv_from(vec![0; 8]));
    turn(&ctx);
    // A datagram for the second one arrives while the loop is not running:
    // its completion is reaped by the shutdown (stopped; the datagram was
    // taken, the buffer dropped).
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"x", peer.local_addr().unwrap())
        .unwrap();
    thread::sleep(Duration::from_millis(5));
    drop(ctx);
    rec1.expect_stopped();
    rec2.expect_stopped();
    assert_eq!((rec1.completions(), rec2.completions()), (1, 1));
    op1.finish();
    op2.finish();
}
