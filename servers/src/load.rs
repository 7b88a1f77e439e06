//! A closed-loop load generator (what `wrk` and `redis-benchmark` do), run
//! on plain threads so it is the same for every runtime under test.
//!
//! Each generator thread owns a share of the connections and one epoll
//! instance (level-triggered). Per connection:
//!
//! 1. send a request picked from the weighted mix (a per-connection
//!    xorshift, so runs are reproducible), remember when;
//! 2. when epoll says readable, `recv` what is there; for each complete
//!    response (HTTP: head + `Content-Length` body; RESP: one reply) record
//!    the latency under the request's class, then send the next request.
//!
//! One request in flight per connection, so `connections` is the offered
//! concurrency, as with `wrk -c` or `redis-benchmark -c` without `-P`.
//! Latencies of the first `warmup` are dropped. Rejected: a thread per
//! connection (50 threads fighting 2 cores for the scheduler would measure
//! the kernel's scheduler, not the server), and running the generator on
//! the runtime under test (it would compete with the server for the same
//! workers, and differently on each runtime).
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::sys::syscall;

/// The wire protocol, to know where a response ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// HTTP/1.1 responses with `Content-Length`.
    Http,
    /// RESP2 replies.
    Resp,
}

/// One kind of request in the mix.
#[derive(Clone, Debug)]
pub struct Class {
    /// A name for the report, e.g. `"hello"`.
    pub name: String,
    /// Relative weight in the mix.
    pub weight: u32,
    /// The request bytes, sent as they are.
    pub request: Vec<u8>,
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Server address.
    pub addr: SocketAddr,
    /// Open connections (one request in flight each).
    pub connections: usize,
    /// Generator threads (connections are split between them).
    pub threads: usize,
    /// Measured time, after the warmup.
    pub duration: Duration,
    /// Unmeasured time at the start.
    pub warmup: Duration,
    /// The protocol.
    pub proto: Proto,
    /// The request mix.
    pub mix: Vec<Class>,
}

/// Results of a run.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// let r = handoff_servers::load::Report {
///     elapsed: Duration::from_secs(1),
///     latencies: vec![vec![1_000, 2_000, 3_000, 4_000]],
///     ..Default::default()
/// };
/// assert_eq!((r.rps(), r.count(0)), (4.0, 4));
/// assert_eq!(r.percentile(0, 50.0), Duration::from_nanos(3_000));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Measured wall time.
    pub elapsed: Duration,
    /// Latencies in nanoseconds, per class (sorted).
    pub latencies: Vec<Vec<u64>>,
    /// Error responses (HTTP status other than 2xx, RESP errors) and
    /// connections lost.
    pub errors: u64,
    /// CPU time the rest of the process (the server under test) used
    /// during the measured window: the process's CPU time minus the load
    /// generator threads'. On a machine shared with other work this is a
    /// steadier basis for comparing runtimes than requests/s, which also
    /// depends on how much CPU the kernel's scheduler hands each process.
    pub server_cpu: Duration,
    /// CPU time of the load generator threads other than the first
    /// (internal bookkeeping for [`run`]).
    #[doc(hidden)]
    pub generator_cpu: Duration,
}

impl Report {
    /// Completed requests of all classes per second.
    pub fn rps(&self) -> f64 {
        let n: usize = self.latencies.iter().map(Vec::len).sum();
        n as f64 / self.elapsed.as_secs_f64()
    }

    /// Completed requests of all classes per millisecond of server CPU
    /// time (0 when nothing was measured).
    pub fn per_cpu_ms(&self) -> f64 {
        let n: usize = self.latencies.iter().map(Vec::len).sum();
        let ms = self.server_cpu.as_secs_f64() * 1e3;
        if ms > 0.0 {
            n as f64 / ms
        } else {
            0.0
        }
    }

    /// Completed requests of class `c`.
    pub fn count(&self, c: usize) -> usize {
        self.latencies[c].len()
    }

    /// The `p`-th percentile (0..=100) latency of class `c`.
    pub fn percentile(&self, c: usize, p: f64) -> Duration {
        let l = &self.latencies[c];
        if l.is_empty() {
            return Duration::ZERO;
        }
        let i = ((p / 100.0) * (l.len() - 1) as f64).round() as usize;
        Duration::from_nanos(l[i.min(l.len() - 1)])
    }
}

/// Where a response ends, if it is complete: `Some((len, ok))`.
fn response_len(proto: Proto, buf: &[u8]) -> Result<Option<(usize, bool)>, String> {
    match proto {
        Proto::Resp => Ok(crate::resp::parse_reply(buf)?
            .map(|(r, n)| (n, !matches!(r, crate::resp::Reply::Error(_))))),
        Proto::Http => {
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                return Ok(None);
            };
            let head = std::str::from_utf8(&buf[..end]).map_err(|_| "non-UTF-8 head")?;
            let ok = head.get(9..10) == Some("2");
            let mut len = 0usize;
            for line in head.split("\r\n").skip(1) {
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().map_err(|_| "bad Content-Length")?;
                    }
                }
            }
            let total = end + 4 + len;
            Ok((buf.len() >= total).then_some((total, ok)))
        }
    }
}

struct Client {
    sock: TcpStream,
    buf: Vec<u8>,
    sent: Instant,
    class: usize,
    rng: u64,
    alive: bool,
}

fn pick(rng: &mut u64, mix: &[Class], total: u32) -> usize {
    // xorshift64
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    let mut r = (*rng % total as u64) as u32;
    for (i, c) in mix.iter().enumerate() {
        if r < c.weight {
            return i;
        }
        r -= c.weight;
    }
    mix.len() - 1
}

fn run_thread(spec: &Spec, conns: usize, seed: u64, start: Instant) -> io::Result<Report> {
    let total: u32 = spec.mix.iter().map(|c| c.weight).sum();
    assert!(total > 0, "the request mix needs a positive total weight");
    // SAFETY: plain syscall, no pointers.
    let ep = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
    // SAFETY: `ep` is a descriptor we own from here on.
    let ep = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(ep) };
    let mut clients = Vec::with_capacity(conns);
    for i in 0..conns {
        let sock = TcpStream::connect(spec.addr)?;
        sock.set_nodelay(true)?;
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        // SAFETY: both descriptors are open; `ev` is a live epoll_event.
        syscall!(epoll_ctl(
            ep.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            sock.as_raw_fd(),
            &mut ev
        ))?;
        clients.push(Client {
            sock,
            buf: Vec::with_capacity(4096),
            sent: Instant::now(),
            class: 0,
            rng: seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(i as u64 * 2 + 1)
                | 1,
            alive: true,
        });
    }
    let send = |c: &mut Client| -> io::Result<()> {
        c.class = pick(&mut c.rng, &spec.mix, total);
        c.sent = Instant::now();
        c.sock.write_all(&spec.mix[c.class].request)
    };
    for c in &mut clients {
        send(c)?;
    }
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.duration;
    let mut report = Report {
        latencies: vec![Vec::new(); spec.mix.len()],
        ..Report::default()
    };
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; conns.max(1)];
    let mut chunk = vec![0u8; 64 * 1024];
    // CPU snapshots at the start of the measured window: (process, thread).
    let mut cpu_from: Option<(Duration, Duration)> = None;
    while Instant::now() < end {
        if cpu_from.is_none() && Instant::now() >= measure_from {
            cpu_from = Some((crate::sys::cpu_time(true), crate::sys::cpu_time(false)));
        }
        // SAFETY: `events` has room for `len` entries and outlives the call.
        let n = syscall!(epoll_wait(
            ep.as_raw_fd(),
            events.as_mut_ptr(),
            events.len() as i32,
            10
        ))?;
        for ev in &events[..n as usize] {
            let c = &mut clients[ev.u64 as usize];
            if !c.alive {
                continue;
            }
            // SAFETY: `chunk` is writable for its length; the socket is open.
            let r = syscall!(recv(
                c.sock.as_raw_fd(),
                chunk.as_mut_ptr().cast(),
                chunk.len(),
                libc::MSG_DONTWAIT
            ));
            let got = match r {
                Ok(0) => {
                    c.alive = false;
                    report.errors += 1;
                    continue;
                }
                Ok(n) => n as usize,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(_) => {
                    c.alive = false;
                    report.errors += 1;
                    continue;
                }
            };
            c.buf.extend_from_slice(&chunk[..got]);
            loop {
                match response_len(spec.proto, &c.buf) {
                    Ok(Some((len, ok))) => {
                        let now = Instant::now();
                        if c.sent >= measure_from && now <= end {
                            report.latencies[c.class].push((now - c.sent).as_nanos() as u64);
                            if !ok {
                                report.errors += 1;
                            }
                        }
                        c.buf.drain(..len);
                        if send(c).is_err() {
                            c.alive = false;
                            report.errors += 1;
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(_) => {
                        c.alive = false;
                        report.errors += 1;
                        break;
                    }
                }
            }
        }
    }
    report.elapsed = spec.duration;
    // This thread's share of the CPU accounting: the process's use minus
    // its own (`run` subtracts the other generator threads').
    if let Some((p0, t0)) = cpu_from {
        let dp = crate::sys::cpu_time(true).saturating_sub(p0);
        let dt = crate::sys::cpu_time(false).saturating_sub(t0);
        report.server_cpu = if seed == 1 {
            dp.saturating_sub(dt)
        } else {
            Duration::ZERO
        };
        report.generator_cpu = dt;
    }
    Ok(report)
}

/// Runs the load described by `spec` and returns the merged report.
///
/// # Errors
///
/// Connecting or an epoll call failed.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use handoff_servers::load::{run, Class, Proto, Spec};
/// let report = run(&Spec {
///     addr: "127.0.0.1:8080".parse().unwrap(),
///     connections: 50,
///     threads: 1,
///     duration: Duration::from_secs(2),
///     warmup: Duration::from_millis(200),
///     proto: Proto::Http,
///     mix: vec![Class { name: "hello".into(), weight: 1, request: b"GET / HTTP/1.1\r\n\r\n".to_vec() }],
/// })
/// .unwrap();
/// println!("{:.0} req/s, p99 {:?}", report.rps(), report.percentile(0, 99.0));
/// ```
pub fn run(spec: &Spec) -> io::Result<Report> {
    let threads = spec.threads.clamp(1, spec.connections.max(1));
    let start = Instant::now();
    let results: Vec<io::Result<Report>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let share =
                    spec.connections / threads + usize::from(t < spec.connections % threads);
                s.spawn(move || run_thread(spec, share, t as u64 + 1, start))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("load thread panicked"))
            .collect()
    });
    let mut merged = Report {
        latencies: vec![Vec::new(); spec.mix.len()],
        elapsed: spec.duration,
        ..Report::default()
    };
    let mut others_cpu = Duration::ZERO;
    for (t, r) in results.into_iter().enumerate() {
        let r = r?;
        merged.errors += r.errors;
        if t == 0 {
            merged.server_cpu = r.server_cpu;
        } else {
            others_cpu += r.generator_cpu;
        }
        for (m, l) in merged.latencies.iter_mut().zip(r.latencies) {
            m.extend(l);
        }
    }
    merged.server_cpu = merged.server_cpu.saturating_sub(others_cpu);
    merged.generator_cpu = Duration::ZERO;
    for l in &mut merged.latencies {
        l.sort_unstable();
    }
    Ok(merged)
}
