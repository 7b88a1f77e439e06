//! Unix signals, delivered through a `signalfd` in the reactor:
//! [`ctrl_c`] and [`unix::signal`].
//!
//! # How a signal reaches a task
//!
//! 1. The first listener for a signal number (in the process) blocks that
//!    signal in the calling thread's mask and installs a small fallback
//!    handler for it (see below). A listener also adds the number to its
//!    reactor's `signalfd` mask (creating the signalfd, non-blocking and
//!    close-on-exec, registered edge-triggered under `TOKEN_SIGNAL`).
//! 2. A signal sent to the process stays pending while every thread blocks
//!    it; the signalfd becomes readable; the poller reads every queued
//!    `signalfd_siginfo` and bumps the counter of each listener for that
//!    number, waking it.
//! 3. `signalfd` only sees signals that are blocked, and the kernel delivers
//!    a process-directed signal to *any* thread that does not block it. We
//!    cannot change other threads' masks (there is no process-wide mask), so
//!    a thread created before the first listener, or a thread that never
//!    blocked the signal, would take the default action: for `SIGINT`, kill
//!    the process. The fallback handler closes that hole: in such a thread it
//!    sets a bit in a static atomic word and writes a static eventfd (both
//!    async-signal-safe) that every reactor with listeners has in its epoll
//!    set under the same token; the poller then delivers the bit like a
//!    signalfd record. So a signal is never lost and never kills the
//!    process once a listener exists, whichever thread it hits.
//!
//! # Limits (documented, not hidden)
//! - Signals are process-wide: with several reactors listening to the same
//!   signal, each occurrence goes to the reactor that reads it first.
//! - Once listened to, a signal stays blocked in the threads that blocked it
//!   and keeps the fallback handler after the listeners are dropped (the
//!   default action does not come back). Threads spawned later inherit the
//!   mask; `std::process::Command` resets the mask in children.
//! - Occurrences that arrive while the signal is pending coalesce (the
//!   kernel keeps one pending standard signal), so a listener counts
//!   "at least one since last time", like tokio.
//!
//! Rejected: only a handler and a self-pipe (tokio's way). It works, but the
//! issue asks for a signalfd, and signalfd carries the whole siginfo and
//! needs no handler in the common case where the signal hits a blocking
//! thread.
use crate::driver::{lock, Handle, Inner, TOKEN_SIGNAL};
use crate::sys;
use futures::task::AtomicWaker;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll, Waker};

/// Signals set by the fallback handler, one bit per number (1..=63).
static PENDING: AtomicU64 = AtomicU64::new(0);
/// The fallback eventfd written by the handler (-1 until created). Created
/// once and never closed (a handler may run at any time).
static FALLBACK_FD: AtomicI32 = AtomicI32::new(-1);
/// Signal numbers already blocked/handled in this process (a bit each).
static INSTALLED: Mutex<u64> = Mutex::new(0);
static FALLBACK: OnceLock<io::Result<i32>> = OnceLock::new();

extern "C" fn fallback_handler(sig: libc::c_int) {
    // SAFETY: __errno_location returns this thread's errno slot; we save and
    // restore it so the interrupted code does not see our write's errno.
    let errno = unsafe { *libc::__errno_location() };
    if (1..64).contains(&sig) {
        // Release: pairs with the Acquire swap in `dispatch`.
        PENDING.fetch_or(1 << sig, Ordering::Release);
    }
    let fd = FALLBACK_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let one: u64 = 1;
        // SAFETY: write(2) is async-signal-safe; the buffer is a live u64.
        // An error (EAGAIN on a full counter) still leaves the fd readable.
        let _ = unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

fn fallback_fd() -> io::Result<i32> {
    match FALLBACK.get_or_init(|| {
        let fd = sys::eventfd()?;
        let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
        FALLBACK_FD.store(raw, Ordering::Relaxed);
        Ok(raw)
    }) {
        Ok(fd) => Ok(*fd),
        Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
    }
}

fn sigset_of(bits: u64) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    for sig in 1..64 {
        if bits & (1 << sig) != 0 {
            // SAFETY: `set` is valid; `sig` is in range.
            unsafe { libc::sigaddset(&mut set, sig) };
        }
    }
    set
}

/// Blocks `sig` in this thread and installs the fallback handler (once).
fn install(sig: libc::c_int) -> io::Result<()> {
    let fd_ok = fallback_fd()?;
    let _ = fd_ok;
    let mut installed = lock(&INSTALLED);
    let set = sigset_of(1 << sig);
    // SAFETY: `set` is a valid sigset; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    if *installed & (1 << sig) == 0 {
        // SAFETY: a zeroed sigaction is valid; we fill handler, mask and flags.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = fallback_handler as *const () as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESTART;
        // SAFETY: `sa.sa_mask` is a valid sigset_t.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: `sa` is fully initialised; a null old action is allowed.
        syscall!(sigaction(sig, &sa, std::ptr::null_mut()))?;
        *installed |= 1 << sig;
    }
    Ok(())
}

struct Listener {
    count: AtomicU64,
    closed: AtomicBool,
    waker: AtomicWaker,
}

/// The per-reactor signal state (under `Inner::signals`).
#[derive(Default)]
pub(crate) struct SignalState {
    fd: Option<OwnedFd>,
    mask: u64,
    fallback_registered: bool,
    listeners: Vec<(libc::c_int, Arc<Listener>)>,
}

impl SignalState {
    fn deliver(&self, sig: libc::c_int, wakers: &mut Vec<Waker>) {
        for (s, l) in &self.listeners {
            if *s == sig {
                // Release: pairs with the Acquire load in `Signal::poll_recv`.
                l.count.fetch_add(1, Ordering::Release);
                wakers.extend(l.waker.take());
            }
        }
    }

    pub(crate) fn shutdown(&mut self, wakers: &mut Vec<Waker>) {
        for (_, l) in self.listeners.drain(..) {
            // Release: pairs with the Acquire in `Signal::poll_recv`.
            l.closed.store(true, Ordering::Release);
            wakers.extend(l.waker.take());
        }
    }
}

/// The poller saw `TOKEN_SIGNAL`: read the signalfd dry, take the fallback
/// bits, bump and wake the listeners.
pub(crate) fn dispatch(inner: &Inner, wakers: &mut Vec<Waker>) {
    let state = lock(&inner.signals);
    if let Some(fd) = &state.fd {
        // SAFETY: signalfd_siginfo is plain data.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        loop {
            let r = sys::retry_eintr(|| {
                // SAFETY: reads at most `size` bytes into a live siginfo.
                syscall!(read(
                    fd.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size
                ))
            });
            match r {
                Ok(n) if n as usize == size => state.deliver(info.ssi_signo as libc::c_int, wakers),
                _ => break, // EAGAIN: drained (or an error we cannot act on)
            }
        }
    }
    // Acquire: pairs with the Release in `fallback_handler`. Take only our
    // signals, leave others' bits for the reactor that listens to them.
    let pending = PENDING.fetch_and(!state.mask, Ordering::Acquire) & state.mask;
    for sig in 1..64 {
        if pending & (1 << sig) != 0 {
            state.deliver(sig, wakers);
        }
    }
}

/// Unix signal streams.
pub mod unix {
    use super::*;

    /// A signal to listen for.
    ///
    /// ```
    /// let k = handoff_reactor::signal::unix::SignalKind::interrupt();
    /// assert_eq!(k.as_raw_value(), libc::SIGINT);
    /// ```
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct SignalKind(libc::c_int);

    impl SignalKind {
        /// `SIGINT` (Ctrl-C).
        ///
        /// ```
        /// let _ = handoff_reactor::signal::unix::SignalKind::interrupt();
        /// ```
        pub const fn interrupt() -> SignalKind {
            SignalKind(libc::SIGINT)
        }
        /// `SIGTERM`.
        ///
        /// ```
        /// let _ = handoff_reactor::signal::unix::SignalKind::terminate();
        /// ```
        pub const fn terminate() -> SignalKind {
            SignalKind(libc::SIGTERM)
        }
        /// `SIGHUP`.
        ///
        /// ```
        /// let _ = handoff_reactor::signal::unix::SignalKind::hangup();
        /// ```
        pub const fn hangup() -> SignalKind {
            SignalKind(libc::SIGHUP)
        }
        /// `SIGUSR1`.
        ///
        /// ```
        /// let _ = handoff_reactor::signal::unix::SignalKind::user_defined1();
        /// ```
        pub const fn user_defined1() -> SignalKind {
            SignalKind(libc::SIGUSR1)
        }
        /// `SIGUSR2`.
        ///
        /// ```
        /// let _ = handoff_reactor::signal::unix::SignalKind::user_defined2();
        /// ```
        pub const fn user_defined2() -> SignalKind {
            SignalKind(libc::SIGUSR2)
        }
        /// Any signal number.
        ///
        /// ```
        /// let k = handoff_reactor::signal::unix::SignalKind::from_raw(libc::SIGWINCH);
        /// assert_eq!(k.as_raw_value(), libc::SIGWINCH);
        /// ```
        pub const fn from_raw(signum: libc::c_int) -> SignalKind {
            SignalKind(signum)
        }
        /// The signal number.
        ///
        /// ```
        /// assert_eq!(handoff_reactor::signal::unix::SignalKind::terminate().as_raw_value(), libc::SIGTERM);
        /// ```
        pub const fn as_raw_value(&self) -> libc::c_int {
            self.0
        }
    }

    /// A stream of occurrences of one signal. See the [module
    /// header](super) for how delivery works and its limits.
    ///
    /// ```no_run
    /// use handoff_reactor::signal::unix::{signal, SignalKind};
    /// handoff_reactor::block_on(async {
    ///     let mut term = signal(SignalKind::terminate())?;
    ///     term.recv().await;
    ///     Ok::<(), std::io::Error>(())
    /// }).unwrap();
    /// ```
    pub struct Signal {
        listener: Arc<Listener>,
        seen: u64,
        driver: Weak<Inner>,
    }

    impl std::fmt::Debug for Signal {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Signal").field("seen", &self.seen).finish()
        }
    }

    /// Starts listening for `kind` on the reactor current on this thread.
    /// Occurrences from now on are delivered.
    ///
    /// # Errors
    /// No reactor current on this thread; `SIGKILL`/`SIGSTOP`/out-of-range
    /// numbers (`EINVAL`); `signalfd`/`sigaction`/`epoll_ctl` errors.
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let _s = handoff_reactor::signal::unix::signal(
    ///         handoff_reactor::signal::unix::SignalKind::user_defined2(),
    ///     ).unwrap();
    /// });
    /// ```
    pub fn signal(kind: SignalKind) -> io::Result<Signal> {
        let sig = kind.0;
        if !(1..64).contains(&sig) || sig == libc::SIGKILL || sig == libc::SIGSTOP {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "signal cannot be listened to",
            ));
        }
        let handle = Handle::try_current().ok_or_else(|| {
            io::Error::other(
                "there is no handoff reactor on this thread: listen to signals inside \
                 Runtime::block_on, a task, or handoff_reactor::block_on",
            )
        })?;
        install(sig)?;
        let inner = &handle.inner;
        let mut st = lock(&inner.signals);
        let mask = st.mask | 1 << sig;
        if mask != st.mask || st.fd.is_none() {
            let set = sigset_of(mask);
            let old = st.fd.as_ref().map_or(-1, |f| f.as_raw_fd());
            // SAFETY: `set` is a valid sigset; `old` is -1 or our signalfd.
            let fd = syscall!(signalfd(old, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC))?;
            if st.fd.is_none() {
                // SAFETY: a fresh descriptor that we alone own.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                let ev = (libc::EPOLLIN | libc::EPOLLET) as u32;
                sys::epoll_ctl(
                    inner.epfd(),
                    libc::EPOLL_CTL_ADD,
                    owned.as_raw_fd(),
                    ev,
                    TOKEN_SIGNAL,
                )?;
                st.fd = Some(owned);
            }
            st.mask = mask;
        }
        if !st.fallback_registered {
            let ev = (libc::EPOLLIN | libc::EPOLLET) as u32;
            sys::epoll_ctl(
                inner.epfd(),
                libc::EPOLL_CTL_ADD,
                fallback_fd()?,
                ev,
                TOKEN_SIGNAL,
            )?;
            st.fallback_registered = true;
        }
        let listener = Arc::new(Listener {
            count: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        });
        st.listeners.push((sig, listener.clone()));
        Ok(Signal {
            listener,
            seen: 0,
            driver: handle.downgrade(),
        })
    }

    impl Signal {
        /// Waits for the next occurrence. `None` when the reactor has shut
        /// down.
        ///
        /// ```no_run
        /// use handoff_reactor::signal::unix::{signal, SignalKind};
        /// handoff_reactor::block_on(async {
        ///     let mut hup = signal(SignalKind::hangup()).unwrap();
        ///     while hup.recv().await.is_some() {
        ///         println!("reload");
        ///     }
        /// });
        /// ```
        pub async fn recv(&mut self) -> Option<()> {
            poll_fn(|cx| self.poll_recv(cx)).await
        }

        /// Poll form of [`Signal::recv`].
        ///
        /// ```
        /// use handoff_reactor::signal::unix::{signal, SignalKind};
        /// handoff_reactor::block_on(async {
        ///     let mut s = signal(SignalKind::user_defined2()).unwrap();
        ///     let w = futures::task::noop_waker();
        ///     assert!(s.poll_recv(&mut std::task::Context::from_waker(&w)).is_pending());
        /// });
        /// ```
        pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
            for registered in [false, true] {
                // Acquire: pairs with the Release in `SignalState::deliver`.
                let count = self.listener.count.load(Ordering::Acquire);
                if count != self.seen {
                    self.seen = count;
                    return Poll::Ready(Some(()));
                }
                // Acquire: pairs with the Release in `SignalState::shutdown`.
                if self.listener.closed.load(Ordering::Acquire) {
                    return Poll::Ready(None);
                }
                if !registered {
                    self.listener.waker.register(cx.waker());
                }
            }
            Poll::Pending
        }
    }

    impl Drop for Signal {
        fn drop(&mut self) {
            if let Some(inner) = self.driver.upgrade() {
                let mut st = lock(&inner.signals);
                st.listeners
                    .retain(|(_, l)| !Arc::ptr_eq(l, &self.listener));
            }
        }
    }

    impl futures::Stream for Signal {
        type Item = ();

        fn poll_next(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
            self.get_mut().poll_recv(cx)
        }
    }
}

/// Completes at the next `SIGINT` (Ctrl-C) sent to the process after the
/// first poll. See the [module header](self) for the mechanism and limits.
///
/// # Errors
/// As [`unix::signal`], or the reactor shut down while waiting.
///
/// ```no_run
/// handoff_reactor::block_on(async {
///     handoff_reactor::signal::ctrl_c().await.unwrap();
///     println!("bye");
/// });
/// ```
pub async fn ctrl_c() -> io::Result<()> {
    let mut s = unix::signal(unix::SignalKind::interrupt())?;
    s.recv()
        .await
        .ok_or_else(|| io::Error::other("the reactor shut down while waiting for ctrl-c"))
}
