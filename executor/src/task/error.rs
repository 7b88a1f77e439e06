//! `JoinError`: why a task produced no output (it was cancelled, or it
//! panicked, in which case the panic payload travels to the joiner).
use super::Id;
use std::any::Any;
use std::fmt;
use std::io;

/// A task did not run to completion: it was cancelled (aborted, or the
/// runtime shut down) or its future panicked.
///
/// A panic in a task never takes down the thread that polled it: the payload
/// is caught and stored here, and [`into_panic`](JoinError::into_panic) hands
/// it back so the joiner can resume it with [`std::panic::resume_unwind`].
///
/// ```
/// let rt = handoff_executor::Runtime::new().unwrap();
/// rt.block_on(async {
///     let err = handoff_executor::spawn(async { panic!("boom") }).await.unwrap_err();
///     assert!(err.is_panic());
///     assert_eq!(*err.into_panic().downcast::<&str>().unwrap(), "boom");
///
///     let h = handoff_executor::spawn(std::future::pending::<()>());
///     h.abort();
///     assert!(h.await.unwrap_err().is_cancelled());
/// });
/// ```
pub struct JoinError {
    repr: Repr,
    id: Id,
}

enum Repr {
    Cancelled,
    Panic(SyncPayload),
}

/// The panic payload, made `Sync` so `JoinError` can become an `io::Error`.
///
/// A `Box<dyn Any + Send>` is not `Sync`. This wrapper never gives out `&` to
/// the payload: only ownership (`into_inner`) and a shared look at the
/// payload *as* a `Sync` type (`downcast_ref_sync`), which reads only the
/// vtable's type id and then a `&str`/`String` (both `Sync`).
struct SyncPayload(Box<dyn Any + Send + 'static>);

// SAFETY: see the type's doc: shared access never reaches the payload except
// through `downcast_ref_sync`, which only yields references to `Sync` types.
unsafe impl Sync for SyncPayload {}

impl SyncPayload {
    fn into_inner(self) -> Box<dyn Any + Send + 'static> {
        self.0
    }

    fn downcast_ref_sync<T: Any + Sync>(&self) -> Option<&T> {
        self.0.downcast_ref::<T>()
    }

    fn message(&self) -> Option<&str> {
        self.downcast_ref_sync::<&'static str>()
            .copied()
            .or_else(|| self.downcast_ref_sync::<String>().map(String::as_str))
    }
}

impl JoinError {
    pub(crate) fn cancelled(id: Id) -> JoinError {
        JoinError {
            repr: Repr::Cancelled,
            id,
        }
    }

    pub(crate) fn panic(id: Id, payload: Box<dyn Any + Send + 'static>) -> JoinError {
        JoinError {
            repr: Repr::Panic(SyncPayload(payload)),
            id,
        }
    }

    /// True if the task was cancelled: aborted with [`JoinHandle::abort`] /
    /// [`AbortHandle::abort`], or the runtime shut down before it finished.
    ///
    /// [`JoinHandle::abort`]: crate::JoinHandle::abort
    /// [`AbortHandle::abort`]: crate::AbortHandle::abort
    ///
    /// ```
    /// handoff_executor::Runtime::new().unwrap().block_on(async {
    ///     let h = handoff_executor::spawn(std::future::pending::<()>());
    ///     h.abort();
    ///     assert!(h.await.unwrap_err().is_cancelled());
    /// });
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// True if the task's future panicked (while polled, or while its
    /// `Drop` ran during cancellation).
    ///
    /// ```
    /// handoff_executor::Runtime::new().unwrap().block_on(async {
    ///     let err = handoff_executor::spawn(async { panic!("boom") }).await.unwrap_err();
    ///     assert!(err.is_panic());
    /// });
    /// ```
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }

    /// The panic payload, to inspect or to resume with
    /// [`std::panic::resume_unwind`].
    ///
    /// # Panics
    ///
    /// Panics if the task was cancelled rather than panicked; check
    /// [`is_panic`](JoinError::is_panic) first or use
    /// [`try_into_panic`](JoinError::try_into_panic).
    ///
    /// ```
    /// handoff_executor::Runtime::new().unwrap().block_on(async {
    ///     let err = handoff_executor::spawn(async { panic!("boom") }).await.unwrap_err();
    ///     let payload = err.into_panic();
    ///     assert_eq!(*payload.downcast::<&str>().unwrap(), "boom");
    /// });
    /// ```
    #[track_caller]
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        match self.try_into_panic() {
            Ok(payload) => payload,
            Err(err) => panic!(
                "JoinError::into_panic called on {err}; check JoinError::is_panic first \
                 or use JoinError::try_into_panic"
            ),
        }
    }

    /// The panic payload, or the error itself if the task was cancelled.
    ///
    /// # Errors
    ///
    /// Returns `Err(self)` if the task was cancelled.
    ///
    /// ```
    /// handoff_executor::Runtime::new().unwrap().block_on(async {
    ///     let h = handoff_executor::spawn(std::future::pending::<()>());
    ///     h.abort();
    ///     let err = h.await.unwrap_err();
    ///     assert!(err.try_into_panic().unwrap_err().is_cancelled());
    /// });
    /// ```
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panic(payload) => Ok(payload.into_inner()),
            Repr::Cancelled => Err(self),
        }
    }

    /// The id of the task that failed.
    ///
    /// ```
    /// handoff_executor::Runtime::new().unwrap().block_on(async {
    ///     let h = handoff_executor::spawn(std::future::pending::<()>());
    ///     let id = h.id();
    ///     h.abort();
    ///     assert_eq!(h.await.unwrap_err().id(), id);
    /// });
    /// ```
    pub fn id(&self) -> Id {
        self.id
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => write!(f, "task {} was cancelled", self.id),
            Repr::Panic(payload) => match payload.message() {
                Some(msg) => write!(f, "task {} panicked with message {msg:?}", self.id),
                None => write!(f, "task {} panicked", self.id),
            },
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => write!(f, "JoinError::Cancelled({:?})", self.id),
            Repr::Panic(payload) => match payload.message() {
                Some(msg) => write!(f, "JoinError::Panic({:?}, {msg:?}, ...)", self.id),
                None => write!(f, "JoinError::Panic({:?}, ...)", self.id),
            },
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for io::Error {
    /// A cancelled or panicked task as an `io::Error` of kind `Other` whose
    /// message is the `JoinError`'s (handy in `?` chains of `io::Result`).
    fn from(err: JoinError) -> io::Error {
        io::Error::other(err)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn cancelled_and_panic_report_themselves() {
        let id = Id::next();
        let c = JoinError::cancelled(id);
        assert!(c.is_cancelled() && !c.is_panic());
        assert_eq!(c.id(), id);
        assert_eq!(c.to_string(), format!("task {id} was cancelled"));
        let c = c.try_into_panic().unwrap_err();
        assert!(c.is_cancelled());

        let p = JoinError::panic(id, Box::new("boom"));
        assert!(p.is_panic() && !p.is_cancelled());
        assert_eq!(
            p.to_string(),
            format!("task {id} panicked with message \"boom\"")
        );
        assert!(format!("{p:?}").contains("boom"));
        assert_eq!(*p.into_panic().downcast::<&str>().unwrap(), "boom");

        let p = JoinError::panic(id, Box::new(String::from("owned")));
        assert!(p.to_string().contains("owned"));
        let p = JoinError::panic(id, Box::new(17u32));
        assert_eq!(p.to_string(), format!("task {id} panicked"));
    }

    #[test]
    #[should_panic(expected = "check JoinError::is_panic first")]
    fn into_panic_on_cancelled_says_what_to_do() {
        let _ = JoinError::cancelled(Id::next()).into_panic();
    }

    #[test]
    fn converts_to_io_error() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<JoinError>();
        let e: io::Error = JoinError::cancelled(Id::next()).into();
        assert_eq!(e.kind(), io::ErrorKind::Other);
        assert!(e.to_string().contains("was cancelled"));
        let inner = e.into_inner().unwrap();
        assert!(inner.downcast::<JoinError>().unwrap().is_cancelled());
    }
}
