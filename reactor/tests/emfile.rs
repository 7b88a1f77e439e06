//! EMFILE on accept: returned to the caller (no busy loop, no panic), and
//! the listener keeps working once descriptors are free again.
//!
//! The work runs in a re-executed copy of this test binary (a child
//! process), because it lowers RLIMIT_NOFILE and fills the descriptor table,
//! which would break any other test running in the same process.
mod common;

use handoff_reactor::block_on;
use handoff_reactor::net::TcpListener;
use std::io;

const CHILD_ENV: &str = "HANDOFF_EMFILE_CHILD";

#[test]
fn emfile_on_accept_is_returned_and_listener_recovers() {
    let _w = common::watchdog("emfile", 60);
    common::run_child("emfile_child", CHILD_ENV, "emfile child: ok");
}

#[test]
fn emfile_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return; // only meaningful inside the re-executed child
    }
    block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        // Two clients connect while descriptors are still available; the
        // kernel completes the handshakes into the backlog.
        let c1 = std::net::TcpStream::connect(addr)?;
        let c2 = std::net::TcpStream::connect(addr)?;
        // Lower the limit to what is open now plus a few, then fill it.
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `r` is a valid rlimit to fill.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
        let saved = r;
        r.rlim_cur = 256;
        // SAFETY: `r` is a valid rlimit.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) }, 0);
        let mut fillers = Vec::new();
        loop {
            match std::fs::File::open("/dev/null") {
                Ok(f) => fillers.push(f),
                Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
                Err(e) => return Err(e),
            }
        }
        let err = l
            .accept()
            .await
            .expect_err("accept with no descriptor left must fail");
        assert_eq!(
            err.raw_os_error(),
            Some(libc::EMFILE),
            "unexpected error {err}"
        );
        // Asking again is not a busy loop inside the runtime: it is one more
        // failed accept4, reported the same way.
        let err = l.accept().await.expect_err("still no descriptor");
        assert_eq!(err.raw_os_error(), Some(libc::EMFILE));
        // Free descriptors: both pending connections are accepted.
        fillers.truncate(fillers.len() - 8);
        let (s1, p1) = l.accept().await?;
        let (s2, p2) = l.accept().await?;
        assert_eq!(p1, c1.local_addr()?);
        assert_eq!(p2, c2.local_addr()?);
        drop((s1, s2, fillers));
        // SAFETY: restores the saved limit.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &saved) };
        println!("emfile child: ok");
        Ok::<(), io::Error>(())
    })
    .unwrap();
}
