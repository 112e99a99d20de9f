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
use exec_io::{IoContext, TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream, pipe};

#[test]
fn no_fd_leak() {
    let dir = std::env::temp_dir().join(format!("exec-io-fd-leak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
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
        // Unix sockets: connect/accept, a cancelled accept, and an accept
        // whose connection arrives while the loop is not running (on
        // io_uring the accepted descriptor is reaped at shutdown and
        // closed); UDP: a cancelled receive and one pending at the drop.
        let path = dir.join("l");
        let _ = std::fs::remove_file(&path);
        let ul = UnixListener::bind(&sch, &path).unwrap();
        let uc = ctx
            .run_until(UnixStream::connect(&sch, &path))
            .unwrap()
            .unwrap();
        let (us, _) = ctx.run_until(ul.accept()).unwrap().unwrap();
        drop((uc, us));
        let err = ctx
            .run_until(UnixStream::connect(&sch, dir.join("missing")))
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        let u = UdpSocket::bind(&sch, "127.0.0.1:0".parse().unwrap()).unwrap();
        let source = Arc::new(StopSource::new());
        let (r, rec3) = recorder_with_stop(source.clone());
        let op3 = start_with(u.recv_from(vec![0; 4]), r, &rec3);
        let source2 = Arc::new(StopSource::new());
        let (r, rec4) = recorder_with_stop(source2.clone());
        let op4 = start_with(ul.accept(), r, &rec4);
        ctx.run_until(sch.schedule_after(Duration::from_millis(5)))
            .unwrap();
        source.request_stop();
        source2.request_stop();
        ctx.run_until(sch.schedule_after(Duration::from_millis(5)))
            .unwrap();
        rec3.expect_stopped();
        rec4.expect_stopped();
        op3.finish();
        op4.finish();
        let (op5, rec5) = common::start(ul.accept());
        let (op6, rec6) = common::start(u.recv_from(vec![0; 4]));
        ctx.run_until(sch.schedule_after(Duration::from_millis(5)))
            .unwrap();
        let late = std::os::unix::net::UnixStream::connect(&path).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        drop(ctx);
        rec2.expect_stopped();
        op2.finish();
        rec5.expect_stopped();
        rec6.expect_stopped();
        assert_eq!((rec5.completions(), rec6.completions()), (1, 1));
        op5.finish();
        op6.finish();
        drop((late, ul, u));
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(support::open_fds(), before);
}
