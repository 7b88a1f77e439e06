//! ctrl_c through the reactor's signalfd. SIGINT is raised in a re-executed
//! child copy of this test binary, so a bug can only kill the child.
mod common;

use handoff_reactor::block_on;
use handoff_reactor::signal::{ctrl_c, unix};
use std::task::Context;
use std::time::Duration;

const CHILD_ENV: &str = "HANDOFF_SIGNAL_CHILD";

#[test]
fn ctrl_c_is_delivered_and_does_not_kill_the_process() {
    let _w = common::watchdog("ctrl_c", 60);
    common::run_child("ctrl_c_child", CHILD_ENV, "ctrl_c child: ok");
}

#[test]
fn ctrl_c_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    block_on(async {
        let t = Duration::from_secs(20);
        // 1. Thread-directed SIGINT at this (blocking) thread: the signalfd path.
        let mut fut = Box::pin(ctrl_c());
        let w = futures::task::noop_waker();
        // The first poll registers the listener.
        assert!(fut.as_mut().poll(&mut Context::from_waker(&w)).is_pending());
        // SAFETY: sends SIGINT to this thread, which now blocks it.
        let rc = unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGINT) };
        assert_eq!(rc, 0);
        handoff_reactor::time::timeout(t, fut)
            .await
            .expect("ctrl_c not delivered (thread-directed)")
            .unwrap();

        // 2. Process-directed SIGINT, several times: the kernel may pick a
        //    thread that does not block it (the harness's main thread, the
        //    watchdog); the fallback handler must catch it.
        let mut s = unix::signal(unix::SignalKind::interrupt()).unwrap();
        for _ in 0..3 {
            // SAFETY: kill with our own pid and a valid signal.
            assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGINT) }, 0);
            handoff_reactor::time::timeout(t, s.recv())
                .await
                .expect("SIGINT not delivered (process-directed)");
        }
    });
    println!("ctrl_c child: ok");
}

use std::future::Future;
