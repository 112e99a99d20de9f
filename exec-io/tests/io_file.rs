//! Files: positioned reads and writes (io_uring natively, a blocking
//! thread on the readiness backend), errors as values, concurrency.

use std::io::ErrorKind;

use exec_core::sync_wait;
use exec_io::{Backend, File, IoContext};

fn path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("exec-io-{}-{name}", std::process::id()))
}

fn exercise(ctx: &IoContext, name: &str) {
    let sch = ctx.scheduler();
    let p = path(name);
    let f = File::create(&sch, &p).unwrap();
    let (n, buf) = ctx
        .run_until(f.write_at(b"0123456789".to_vec(), 0))
        .unwrap()
        .unwrap();
    assert_eq!((n, &buf[..]), (10, &b"0123456789"[..]));
    ctx.run_until(f.write_at(b"AB".to_vec(), 4)).unwrap();
    let (n, buf) = ctx.run_until(f.read_at(vec![0; 4], 3)).unwrap().unwrap();
    assert_eq!(&buf[..n], b"3AB6");
    // At and past the end: 0 bytes.
    let (n, _) = ctx.run_until(f.read_at(vec![0; 4], 10)).unwrap().unwrap();
    assert_eq!(n, 0);
    // Writing past the end extends the file.
    ctx.run_until(f.write_at(b"Z".to_vec(), 20)).unwrap();
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 21);
    // Read-only descriptor: writing is an error value.
    let ro = File::from_std(&sch, std::fs::File::open(&p).unwrap());
    let err = ctx.run_until(ro.write_at(b"x".to_vec(), 0)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    // Opening a missing file fails synchronously.
    assert_eq!(
        File::open(&sch, path("missing-file")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn files_on_readiness() {
    let ctx = IoContext::builder()
        .backend(Backend::Readiness)
        .build()
        .unwrap();
    exercise(&ctx, "readiness");
}

#[test]
fn files_on_io_uring() {
    let Ok(ctx) = IoContext::builder().backend(Backend::IoUring).build() else {
        eprintln!("io_uring cannot start here; skipped");
        return;
    };
    exercise(&ctx, "uring");
}

#[test]
fn concurrent_positioned_reads_from_other_threads() {
    let bg_ctx = IoContext::new().unwrap();
    let sch = bg_ctx.scheduler();
    let h = bg_ctx.handle();
    let p = path("concurrent");
    std::fs::write(&p, (0..=255u8).collect::<Vec<_>>()).unwrap();
    let f = File::open(&sch, &p).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| bg_ctx.run().unwrap());
        let readers: Vec<_> = (0..8u64)
            .map(|i| {
                let f = f.clone();
                s.spawn(move || {
                    let (n, buf) = sync_wait(f.read_at(vec![0; 16], i * 16)).unwrap().unwrap();
                    assert_eq!(n, 16);
                    assert_eq!(buf[0], (i * 16) as u8);
                })
            })
            .collect();
        for r in readers {
            r.join().unwrap();
        }
        h.stop();
    });
    std::fs::remove_file(&p).unwrap();
}
