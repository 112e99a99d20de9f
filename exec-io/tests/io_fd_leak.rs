//! No descriptor leaks: contexts, listeners, streams, datagram sockets,
//! pipes and cancelled operations all give their descriptors back.
//! (Alone in its binary so no other test opens descriptors meanwhile.)

// exec-core's shared fixtures (linted there, not here).
#[allow(clippy::collapsible_if, clippy::type_complexity)]
#[path = "../../exec-core/tests/common/mod.rs"]
mod common;
mod support;

use std::sync::Arc;
use std::time::Duration;

use common::{recorder_with_stop, start_with};
use exec_core::{StopSource, TimedScheduler};
use exec_io::{IoContext, TcpListener, TcpStream, UdpSocket, UnixStream, pipe};

#[test]
fn no_fd_leak() {
    let before = support::open_fds();
    for _ in 0..3 {
        let ctx = IoContext::new().unwrap();
        let sch = ctx.scheduler();
        let l = TcpListener::bind(&sch, "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        for _ in 0..10 {
            let c = ctx
                .run_until(TcpStream::connect(&sch, addr))
                .unwrap()
                .unwrap();
            let (s, _) = ctx.run_until(l.accept()).unwrap().unwrap();
            ctx.run_until(c.write_all(b"x".to_vec())).unwrap();
            ctx.run_until(s.read(vec![0; 1])).unwrap();
        }
        let _u = UdpSocket::bind(&sch, "127.0.0.1:0".parse().unwrap()).unwrap();
        let _p = pipe(&sch).unwrap();
        let _x = UnixStream::pair(&sch).unwrap();
        // A cancelled read and a read pending when the context drops.
        let (a, b) = UnixStream::pair(&sch).unwrap();
        let source = Arc::new(StopSource::new());
        let (r, rec) = recorder_with_stop(source.clone());
        let op = start_with(a.read(vec![0; 4]), r, &rec);
        ctx.run_until(sch.schedule_after(Duration::from_millis(5)))
            .unwrap();
        source.request_stop();
        ctx.run_until(sch.schedule_after(Duration::from_millis(5)))
            .unwrap();
        rec.expect_stopped();
        op.finish();
        let (op2, rec2) = common::start(b.read(vec![0; 4]));
        ctx.run_until(sch.schedule_after(Duration::from_millis(5)))
            .unwrap();
        drop(ctx);
        rec2.expect_stopped();
        op2.finish();
    }
    assert_eq!(support::open_fds(), before);
}
