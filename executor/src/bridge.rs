//! PLACEHOLDER: the bridge contract. `enter` returns `None` (run inline) until
//! the slot state machine lands.

/// What kind of call is being entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `blocking`: keep the slot; the monitor retakes it if the call lasts.
    Short,
    /// `blocking_long`: hand the slot off before the call runs.
    Long,
}

/// How a call's exit got its thread a slot back.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The old slot was still ours: one CAS `Syscall -> Running`.
    Fast,
    /// The old slot was retaken; another idle slot was taken.
    IdleSlot,
    /// No slot: the caller must store its output, wake the task (it lands in the
    /// global queue) and return `Pending`; the worker parks after the poll.
    Slow,
}

/// A call in progress on a worker thread. Not `Send`: exit on the thread that entered.
#[derive(Debug)]
pub struct Syscall {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Syscall {
    /// Leaves the call (Go's `exitsyscall`).
    pub fn exit(self) -> Exit {
        Exit::Fast
    }
}

/// Enters a call (Go's `entersyscall`). `None`: this thread holds no slot
/// (not a worker, `block_on`, nested call): run the call inline.
pub fn enter(_call: Call) -> Option<Syscall> {
    None
}
