//! Loom model of the waker-registration half of the readiness protocol
//! (`io.rs`, `Registration::poll_ready` against `ScheduledIo::dispatch`):
//!
//! - task: look at the word; not ready: register the waker; look again;
//!   still not ready: return `Pending` (sleep until woken);
//! - poller: set the bits (`transition_to_event`), then take the waker and
//!   wake it.
//!
//! The real waker slot is `futures::task::AtomicWaker`, which loom cannot
//! see into; here it is a loom `Mutex<Option<Waker>>`, which has the
//! property the protocol relies on (a `register` and a `take` are ordered:
//! whichever comes second sees the first). The model checks that a task
//! that returns `Pending` is always woken: the edge is never lost between
//! its second look and the poller's take.
use crate::loom::{thread, Arc};
use crate::state::{Interest, Observed, Readiness};
use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::sync::Mutex;
use std::task::{Wake, Waker};

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.store(true, SeqCst);
    }
}

#[test]
fn loom_register_waker_vs_event_never_loses_the_wake() {
    loom::model(|| {
        let word = Arc::new(Readiness::new());
        let slot = Arc::new(Mutex::new(None::<Waker>));
        let flag = std::sync::Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());

        let (w2, s2) = (word.clone(), slot.clone());
        let poller = thread::spawn(move || {
            w2.transition_to_event(Interest::READ, false);
            let taken = s2.lock().unwrap().take();
            if let Some(w) = taken {
                w.wake();
            }
        });

        // The task's poll_ready.
        let ready = match word.observe(Interest::READ) {
            Observed::Ready(_) => true,
            _ => {
                *slot.lock().unwrap() = Some(waker);
                matches!(word.observe(Interest::READ), Observed::Ready(_))
            }
        };
        poller.join().unwrap();
        assert!(
            ready || flag.0.load(SeqCst),
            "the task returned Pending and was never woken"
        );
    });
}
