//! Both backends, chosen explicitly, behind one API. (The whole suite runs
//! on either: `IoContext::new()` picks io_uring where it starts, and
//! `EXEC_IO_BACKEND=readiness cargo test -p exec-io` selects epoll.)

use std::time::Duration;

use exec_core::{Scheduler, SenderExt, TimedScheduler};
use exec_io::{Backend, IoContext, TcpListener, TcpStream, UnixStream};

fn exercise(ctx: &IoContext) {
    let sch = ctx.scheduler();
    assert_eq!(ctx.run_until(sch.schedule().then(|()| 1)).unwrap(), Some(1));
    ctx.run_until(sch.schedule_after(Duration::from_millis(2)))
        .unwrap();
    let l = TcpListener::bind(&sch, "127.0.0.1:0".parse().unwrap()).unwrap();
    let c = ctx
        .run_until(TcpStream::connect(&sch, l.local_addr().unwrap()))
        .unwrap()
        .unwrap();
    let (s, _) = ctx.run_until(l.accept()).unwrap().unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let (a, b) = UnixStream::pair(&sch).unwrap();
    for _ in 0..3 {
        ctx.run_until(c.write_all(b"abc".to_vec())).unwrap();
        let (n, buf) = ctx.run_until(s.read(vec![0; 8])).unwrap().unwrap();
        assert_eq!(&buf[..n], b"abc");
        let (n, _) = ctx.run_until(a.write(vec![1; 4])).unwrap().unwrap();
        assert_eq!(n, 4);
        let (n, _) = ctx.run_until(b.read(vec![0; 8])).unwrap().unwrap();
        assert_eq!(n, 4);
    }
    // A write larger than the socket buffer, read concurrently on the loop.
    let wr = start_detached(c.write_all(data.clone()));
    let mut got = Vec::new();
    while got.len() < data.len() {
        let (n, buf) = ctx.run_until(s.read(vec![0; 65536])).unwrap().unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got == data);
    ctx.run_until(sch.schedule()).unwrap();
    assert!(wr.load(std::sync::atomic::Ordering::SeqCst));
}

/// Starts a sender with `exec_io::spawn_detached`, flagging its value.
fn start_detached<S>(s: S) -> std::sync::Arc<std::sync::atomic::AtomicBool>
where
    S: exec_core::Sender<Output = Vec<u8>> + 'static,
    exec_core::Then<S, Box<dyn FnOnce(Vec<u8>) + Send>>:
        exec_core::SenderTo<exec_io::DetachedReceiver, Operation: Send> + exec_core::Sender,
{
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f2 = flag.clone();
    let f: Box<dyn FnOnce(Vec<u8>) + Send> =
        Box::new(move |_| f2.store(true, std::sync::atomic::Ordering::SeqCst));
    exec_io::spawn_detached(s.then(f));
    flag
}

#[test]
fn readiness_backend() {
    let ctx = IoContext::builder()
        .backend(Backend::Readiness)
        .build()
        .unwrap();
    assert_eq!(ctx.backend(), Backend::Readiness);
    exercise(&ctx);
}

#[test]
fn io_uring_backend() {
    let ctx = match IoContext::builder().backend(Backend::IoUring).build() {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("io_uring cannot start here ({e}); test skipped");
            return;
        }
    };
    assert_eq!(ctx.backend(), Backend::IoUring);
    exercise(&ctx);
}

#[test]
fn auto_follows_the_environment() {
    let ctx = IoContext::new().unwrap();
    match std::env::var("EXEC_IO_BACKEND").as_deref() {
        Ok("readiness") | Ok("epoll") => assert_eq!(ctx.backend(), Backend::Readiness),
        // io_uring where it starts (it does on this machine).
        _ => assert!(
            ctx.backend() == Backend::IoUring
                || IoContext::builder()
                    .backend(Backend::IoUring)
                    .build()
                    .is_err()
        ),
    }
}

/// `run_until`'s sender completing on another thread (here: another loop's)
/// wakes the blocked loop; completing on the loop itself needs no wake-up
/// (and gets none). A watchdog stops the context after 10 s, so a lost
/// wake-up fails the test instead of hanging it.
#[test]
fn run_until_is_woken_by_a_completion_on_another_thread() {
    for backend in [Backend::Readiness, Backend::IoUring] {
        let Ok(ctx) = IoContext::builder().backend(backend).build() else {
            continue;
        };
        let other = IoContext::builder().backend(backend).spawn().unwrap();
        for _ in 0..50 {
            let handle = ctx.handle();
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let watchdog = std::thread::spawn(move || {
                if rx.recv_timeout(Duration::from_secs(10)).is_err() {
                    handle.stop();
                }
            });
            let t0 = std::time::Instant::now();
            let got = ctx.run_until(
                other
                    .scheduler()
                    .schedule_after(Duration::from_millis(1))
                    .then(|()| std::thread::current().name().map(String::from)),
            );
            tx.send(()).unwrap();
            watchdog.join().unwrap();
            assert_eq!(got, Ok(Some(Some("exec-io".to_string()))), "{backend:?}");
            assert!(t0.elapsed() < Duration::from_secs(5), "{backend:?}");
        }
        other.join().unwrap();
    }
}
