//! Unix sockets and pipes on the loop.

mod support;

use std::net::Shutdown;

use exec_core::sync_wait;
use exec_io::{UnixListener, UnixStream, pipe};
use support::BgLoop;

#[test]
fn unix_listener_stream_roundtrip() {
    let bg = BgLoop::new();
    let dir = std::env::temp_dir().join(format!("exec-io-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sock");
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&bg.sch, &path).unwrap();
    assert_eq!(l.local_addr().unwrap().as_pathname(), Some(path.as_path()));
    let c = sync_wait(UnixStream::connect(&bg.sch, &path))
        .unwrap()
        .unwrap();
    let (s, _) = sync_wait(l.accept()).unwrap().unwrap();
    assert_eq!(c.peer_addr().unwrap().as_pathname(), Some(path.as_path()));
    sync_wait(c.write_all(b"over unix".to_vec())).unwrap();
    let (n, buf) = sync_wait(s.read(vec![0; 32])).unwrap().unwrap();
    assert_eq!(&buf[..n], b"over unix");
    c.shutdown(Shutdown::Write).unwrap();
    let (n, _) = sync_wait(s.read(vec![0; 32])).unwrap().unwrap();
    assert_eq!(n, 0);
    let (n, _) = sync_wait(s.write(b"back".to_vec())).unwrap().unwrap();
    assert_eq!(n, 4);
    let (n, buf) = sync_wait(c.read(vec![0; 32])).unwrap().unwrap();
    assert_eq!(&buf[..n], b"back");
    // Connecting to a missing socket fails with an error value.
    let err = sync_wait(UnixStream::connect(&bg.sch, dir.join("missing"))).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    drop((l, s, c));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unix_pair_and_pipe() {
    let bg = BgLoop::new();
    let (a, b) = UnixStream::pair(&bg.sch).unwrap();
    sync_wait(a.write_all(vec![1, 2, 3])).unwrap();
    let (n, buf) = sync_wait(b.read(vec![0; 8])).unwrap().unwrap();
    assert_eq!(&buf[..n], &[1, 2, 3]);

    let (r, w) = pipe(&bg.sch).unwrap();
    let big = vec![5u8; 1 << 20]; // larger than the pipe buffer
    let writer = std::thread::spawn(move || {
        let buf = sync_wait(w.write_all(big)).unwrap().unwrap();
        buf.len()
    });
    let mut total = 0;
    let mut buf = vec![0; 1 << 16];
    while total < 1 << 20 {
        let (n, b) = sync_wait(r.read(buf)).unwrap().unwrap();
        assert!(b[..n].iter().all(|&x| x == 5));
        total += n;
        buf = b;
    }
    assert_eq!(writer.join().unwrap(), 1 << 20);
    // Writer gone (dropped with its thread): EOF.
    let (n, _) = sync_wait(r.read(vec![0; 8])).unwrap().unwrap();
    assert_eq!(n, 0);
}
