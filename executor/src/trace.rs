//! Schedtrace: `HANDOFF_SCHEDTRACE=<ms>` prints one line per interval to
//! stderr, like Go's `GODEBUG=schedtrace=<ms>`. Printed by the monitor
//! thread (which then never parks for longer than the interval), so a
//! runtime without the variable pays nothing.
//!
//! ```text
//! handoff schedtrace: 1003ms slots=4 idle=3 incall=1 threads=6 idlethreads=2 spinning=0 runqueue=0 [0 2 0 0] retakes=3 handoffs=3 exits=fast:120,idle:2,slow:1 polls=5120
//! ```
use crate::handle::Shared;
use crate::metrics::Metrics;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

pub(crate) struct Trace {
    every: Duration,
    start: Instant,
    next: Instant,
}

impl Trace {
    pub(crate) fn new(every: Duration) -> Trace {
        let now = Instant::now();
        Trace {
            every,
            start: now,
            next: now + every,
        }
    }

    pub(crate) fn next_deadline(&self) -> Instant {
        self.next
    }

    pub(crate) fn maybe_print(&mut self, shared: &Shared) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + self.every;
        eprintln!("{}", line(shared, now.duration_since(self.start)));
    }
}

/// One schedtrace line.
pub(crate) fn line(shared: &Shared, since_start: Duration) -> String {
    let m = Metrics::snapshot(shared);
    let mut queues = String::new();
    for (i, s) in shared.slots.iter().enumerate() {
        if i > 0 {
            queues.push(' ');
        }
        let _ = write!(queues, "{}", s.steal.len());
    }
    format!(
        "handoff schedtrace: {}ms slots={} idle={} incall={} threads={} idlethreads={} \
         spinning={} runqueue={} [{}] retakes={} handoffs={} exits=fast:{},idle:{},slow:{} polls={}",
        since_start.as_millis(),
        m.slots,
        m.slots_idle,
        m.slots_in_call,
        m.threads_alive,
        m.threads_idle,
        m.threads_spinning,
        m.global_queue_depth,
        queues,
        m.retakes,
        m.handoffs,
        m.blocking_fast_exits,
        m.blocking_idle_slot_exits,
        m.blocking_slow_exits,
        m.polls,
    )
}
