//! The stress suite's hang reporting, tested: a scenario that hangs on
//! purpose must fail (not time out silently) with the runtime's metrics and
//! the child's schedtrace lines in the failure message.
mod stress_common;

use handoff::Runtime;
use std::time::Duration;
use stress_common::{isolated, watch, CHILD_ENV};

const HANG: &str = "stress_watchdog_hanging_scenario";

/// Run only as the child of `stress_watchdog_reports_a_hang`: a task that
/// never completes, awaited under a 2 s watchdog.
#[test]
fn stress_watchdog_hanging_scenario() {
    if std::env::var(CHILD_ENV).map_or(true, |v| v != HANG) {
        return; // only meaningful as the deliberately hanging child
    }
    isolated(HANG, 2, &[], || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let _w = watch(rt.handle());
        rt.block_on(async {
            handoff::spawn(async {
                handoff::time::sleep(Duration::from_millis(1)).await;
                std::future::pending::<()>().await
            })
            .await
            .unwrap()
        });
    });
}

#[test]
fn stress_watchdog_reports_a_hang() {
    if stress_common::under_valgrind() {
        return; // needs a child process
    }
    let r = std::panic::catch_unwind(|| isolated(HANG, 2, &[], || {}));
    let msg = match r {
        Ok(()) => panic!("a hanging scenario passed"),
        Err(p) => p
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| "<non-string panic>".into()),
    };
    assert!(msg.contains("child failed"), "{msg}");
    assert!(msg.contains("WATCHDOG"), "the watchdog fired: {msg}");
    assert!(msg.contains("tasks_alive"), "metrics were printed: {msg}");
    assert!(
        msg.contains("handoff schedtrace:"),
        "schedtrace lines were printed: {msg}"
    );
}
