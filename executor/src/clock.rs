//! The entry stamp clock: what `bridge::enter` writes into its slot so the
//! monitor knows when a call began.
//!
//! `enter` is on the path of every `blocking(f)`, whose whole budget is a
//! few nanoseconds (the target is ≤ 1.2× a raw `getpid`, ~30 ns of
//! overhead). `Instant::now()` costs ~27 ns on the reference VM (vDSO
//! `clock_gettime`); the CPU's time-stamp counter costs ~10 ns and is what the
//! kernel itself uses as clocksource there. So on x86-64 a stamp is the raw
//! TSC value and only the monitor, off the hot path, converts stamps to
//! nanoseconds with a ratio measured once per process. Elsewhere a stamp is
//! nanoseconds since a process-wide origin taken from `Instant`.
//!
//! Rejected: stamping with a counter the monitor bumps on each wake (1 ns to
//! read). A call is then only known to have started somewhere in the last
//! monitor period, so the retake lands up to a whole period late (40 µs
//! instead of 20 µs), which breaks the 50 µs handoff target.
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A point in time in stamp units (see the module header).
pub(crate) type Stamp = u64;

struct Calibration {
    /// The zero of stamps where there is no TSC.
    #[cfg(not(target_arch = "x86_64"))]
    origin: Instant,
    /// Stamp units per nanosecond.
    per_ns: f64,
}

static CALIBRATION: OnceLock<Calibration> = OnceLock::new();

/// How long calibration watches the TSC against `Instant`: long enough that
/// the ~30 ns error of reading both clocks is < 0.01%, short enough for a
/// one-time cost at the first `build()`.
#[cfg(target_arch = "x86_64")]
const CALIBRATION_SPAN: Duration = Duration::from_millis(2);

#[inline(always)]
fn raw() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC exists on every x86-64 CPU and has no preconditions.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        calibration().origin.elapsed().as_nanos() as u64
    }
}

fn calibration() -> &'static Calibration {
    CALIBRATION.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            let origin = Instant::now();
            let origin_stamp = raw();
            std::thread::sleep(CALIBRATION_SPAN);
            let t = origin.elapsed();
            let s = raw().wrapping_sub(origin_stamp);
            let per_ns = (s as f64 / t.as_nanos().max(1) as f64).max(1e-3);
            Calibration { per_ns }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Calibration {
                origin: Instant::now(),
                per_ns: 1.0,
            }
        }
    })
}

/// Measures the stamp rate (once per process); call before the hot path needs it.
pub(crate) fn init() {
    let _ = calibration();
}

/// Now, in stamp units. A few nanoseconds.
#[inline(always)]
pub(crate) fn now() -> Stamp {
    raw()
}

/// A duration in stamp units.
pub(crate) fn to_stamps(d: Duration) -> u64 {
    (d.as_nanos() as f64 * calibration().per_ns) as u64
}

/// The `Instant` a stamp corresponds to (a past stamp: now).
///
/// Measured from now, not from the calibration origin: the rate is known
/// to about 1e-5 (30 ns of clock-reading error over a 2 ms calibration), so
/// a conversion from the origin drifts by ~10 µs per second of process
/// life. Measured: 12 s into a benchmark the monitor's deadlines landed
/// hundreds of µs early and it woke dozens of times per deadline.
pub(crate) fn to_instant(s: Stamp) -> Instant {
    let c = calibration();
    let (now, now_stamp) = (Instant::now(), raw());
    let ahead = s.saturating_sub(now_stamp);
    now + Duration::from_nanos((ahead as f64 / c.per_ns) as u64)
}
