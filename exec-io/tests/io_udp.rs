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
