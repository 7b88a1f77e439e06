//! The loom shim: under `--cfg loom` the atomics that carry the reactor's
//! lock-free protocols (the readiness word, the poller's wake word) are
//! loom's, so the models in `state.rs` explore every interleaving; otherwise
//! they are std's. Code in this crate imports those atomics from here.
#![allow(unused_imports)]

#[cfg(loom)]
pub(crate) use loom::{
    sync::{
        atomic::{AtomicU64, AtomicU8, Ordering},
        Arc,
    },
    thread,
};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
