//! Command lines like real servers have, parsed by hand.
//!
//! `--flag value` and `--flag=value`; `--help`/`-h` prints usage and exits
//! 0; an unknown flag, a missing or bad value is one line on stderr plus a
//! pointer to `--help`, and exit code 2 (the sysexits-style usage error
//! that GNU tools and clap use).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::log::Fsync;

/// Which server a command line is for.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Program name in the usage line.
    pub name: &'static str,
    /// One line saying what it is.
    pub about: &'static str,
    /// Default `--addr`.
    pub default_addr: &'static str,
    /// Accepts `--dir`, `--fsync` and `--aof-rewrite-min-size` (the kv
    /// store).
    pub kv: bool,
    /// Accepts `--root` (servers of files).
    pub root: bool,
}

/// Parsed options.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Worker slots (`None`: the runtime's default, one per core).
    pub threads: Option<usize>,
    /// Close connections idle this long.
    pub idle_timeout: Duration,
    /// Data directory (kv).
    pub dir: PathBuf,
    /// Fsync policy (kv).
    pub fsync: Fsync,
    /// Rewrite the log automatically from this size on (kv).
    pub aof_rewrite_min_size: u64,
    /// Growth in percent since the last compaction before an automatic
    /// one; 0: never automatically (kv).
    pub aof_rewrite_percentage: u32,
    /// Directory of served files.
    pub root: PathBuf,
}

impl Options {
    /// The kv log's options these flags ask for (`--fsync`,
    /// `--aof-rewrite-min-size`, `--aof-rewrite-percentage`).
    ///
    /// ```
    /// use handoff_servers::cli::{parse_or_exit_from, Spec};
    /// let spec = Spec { name: "kv", about: "a store", default_addr: "127.0.0.1:6380", kv: true, root: false };
    /// let o = parse_or_exit_from(&spec, ["--aof-rewrite-percentage".to_string(), "0".to_string()]);
    /// assert_eq!(o.log_options().rewrite_percentage, 0);
    /// ```
    pub fn log_options(&self) -> crate::log::Options {
        crate::log::Options {
            fsync: self.fsync,
            rewrite_min_size: self.aof_rewrite_min_size,
            rewrite_percentage: self.aof_rewrite_percentage,
        }
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// Run with these options.
    Run(Options),
    /// Print this usage text and exit 0.
    Help(String),
}

/// The usage text of `spec`.
///
/// # Example
///
/// ```
/// use handoff_servers::cli::{usage, Spec};
/// let spec = Spec { name: "kv", about: "a store", default_addr: "127.0.0.1:6380", kv: true, root: false };
/// assert!(usage(&spec).contains("--fsync POLICY"));
/// ```
pub fn usage(spec: &Spec) -> String {
    let mut u = format!(
        "{}: {}\n\nUsage: {} [OPTIONS]\n\nOptions:\n  --addr HOST:PORT      listen address [default: {}]\n  --threads N           worker slots [default: one per core]\n  --idle-timeout SECS   close connections idle this long [default: 60]\n",
        spec.name, spec.about, spec.name, spec.default_addr
    );
    if spec.kv {
        u.push_str("  --dir DIR             where the append-only log lives [default: .]\n");
        u.push_str("  --fsync POLICY        always | everysec | no [default: always]\n");
        u.push_str("  --aof-rewrite-min-size BYTES\n                        compact the log once it is this big and has grown\n                        by --aof-rewrite-percentage; 64mb, 1gb, ...\n                        [default: 64mb]\n");
        u.push_str("  --aof-rewrite-percentage N\n                        growth since the last compaction that triggers the\n                        next, in percent; 0: only BGREWRITEAOF [default: 100]\n");
    }
    if spec.root {
        u.push_str("  --root DIR            directory of the served files [default: .]\n");
    }
    u.push_str("  -h, --help            print this help\n");
    u
}

/// Parses `args` (without the program name).
///
/// # Errors
///
/// A one-line description of what is wrong.
///
/// # Example
///
/// ```
/// use handoff_servers::cli::{parse, Parsed, Spec};
/// let spec = Spec { name: "kv", about: "a store", default_addr: "127.0.0.1:6380", kv: true, root: false };
/// let Parsed::Run(o) = parse(&spec, ["--fsync=no", "--threads", "2"].map(String::from)).unwrap() else {
///     panic!()
/// };
/// assert_eq!((o.threads, o.addr.port()), (Some(2), 6380));
/// assert!(parse(&spec, ["--root".to_string(), "x".to_string()]).is_err());
/// assert!(parse(&spec, ["--addr=localhost:7000".to_string()]).is_ok());
/// ```
pub fn parse(spec: &Spec, args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut o = Options {
        addr: spec
            .default_addr
            .parse()
            .expect("the default address parses"),
        threads: None,
        idle_timeout: Duration::from_secs(60),
        dir: PathBuf::from("."),
        fsync: Fsync::Always,
        aof_rewrite_min_size: crate::log::REWRITE_MIN_SIZE,
        aof_rewrite_percentage: crate::log::REWRITE_PERCENTAGE,
        root: PathBuf::from("."),
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Parsed::Help(usage(spec)));
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let known = matches!(flag.as_str(), "--addr" | "--threads" | "--idle-timeout")
            || (spec.kv
                && matches!(
                    flag.as_str(),
                    "--dir" | "--fsync" | "--aof-rewrite-min-size" | "--aof-rewrite-percentage"
                ))
            || (spec.root && flag == "--root");
        if !known {
            return Err(format!("unknown argument {arg:?}"));
        }
        let value = match inline.or_else(|| args.next()) {
            Some(v) => v,
            None => return Err(format!("{flag} needs a value")),
        };
        match flag.as_str() {
            "--addr" => {
                // An IP literal, or a name such as localhost:8080 (resolved
                // once, here, to its first address).
                use std::net::ToSocketAddrs;
                o.addr = value
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| {
                        format!("--addr wants HOST:PORT like 127.0.0.1:8080, not {value:?}")
                    })?
            }
            "--threads" => {
                o.threads = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|&n: &usize| n > 0)
                        .ok_or_else(|| {
                            format!("--threads wants a positive number, not {value:?}")
                        })?,
                )
            }
            "--idle-timeout" => {
                o.idle_timeout = value
                    .parse::<f64>()
                    .ok()
                    .filter(|s| *s > 0.0 && s.is_finite())
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| format!("--idle-timeout wants seconds, not {value:?}"))?
            }
            "--dir" => o.dir = PathBuf::from(value),
            "--fsync" => o.fsync = value.parse()?,
            "--aof-rewrite-min-size" => {
                o.aof_rewrite_min_size = parse_size(&value).ok_or_else(|| {
                    format!(
                        "--aof-rewrite-min-size wants bytes like 67108864 or 64mb, not {value:?}"
                    )
                })?
            }
            "--aof-rewrite-percentage" => {
                o.aof_rewrite_percentage = value.parse().map_err(|_| {
                    format!("--aof-rewrite-percentage wants a whole number like 100 (0: off), not {value:?}")
                })?
            }
            "--root" => o.root = PathBuf::from(value),
            _ => unreachable!("flag {flag} was checked above"),
        }
    }
    Ok(Parsed::Run(o))
}

/// A size in bytes with Redis's optional units: `k`/`m`/`g` are powers of
/// 1000, `kb`/`mb`/`gb` powers of 1024, any case.
///
/// # Example
///
/// ```
/// use handoff_servers::cli::parse_size;
/// assert_eq!(parse_size("64mb"), Some(64 << 20));
/// assert_eq!(parse_size("2K"), Some(2000));
/// assert_eq!(parse_size("100"), Some(100));
/// assert_eq!(parse_size("lots"), None);
/// ```
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.to_ascii_lowercase();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(digits);
    let mul: u64 = match unit {
        "" => 1,
        "k" => 1000,
        "kb" => 1 << 10,
        "m" => 1000 * 1000,
        "mb" => 1 << 20,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1 << 30,
        _ => return None,
    };
    n.parse::<u64>().ok()?.checked_mul(mul)
}

/// Parses the process's arguments; prints usage and exits 0 on `--help`,
/// prints the error and exits 2 on a bad command line.
pub fn parse_or_exit(spec: &Spec) -> Options {
    parse_or_exit_from(spec, std::env::args().skip(1))
}

/// [`parse_or_exit`] on the given arguments (without the program name).
pub fn parse_or_exit_from(spec: &Spec, args: impl IntoIterator<Item = String>) -> Options {
    match parse(spec, args) {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::Help(text)) => {
            print!("{text}");
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!(
                "{}: {e}\nTry '{} --help' for more information.",
                spec.name, spec.name
            );
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kv: bool, root: bool) -> Spec {
        Spec {
            name: "t",
            about: "test",
            default_addr: "127.0.0.1:1",
            kv,
            root,
        }
    }

    fn run(s: &Spec, args: &[&str]) -> Result<Parsed, String> {
        parse(s, args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn flags_values_and_errors() {
        let kv = spec(true, false);
        let Ok(Parsed::Run(o)) = run(
            &kv,
            &[
                "--addr",
                "127.0.0.1:9",
                "--dir=/d",
                "--fsync",
                "everysec",
                "--idle-timeout",
                "0.5",
            ],
        ) else {
            panic!()
        };
        assert_eq!(
            (o.addr.port(), o.dir, o.fsync),
            (9, PathBuf::from("/d"), Fsync::EverySec)
        );
        assert_eq!(o.idle_timeout, Duration::from_millis(500));
        assert_eq!(o.aof_rewrite_min_size, 64 << 20, "Redis's default");
        let Ok(Parsed::Run(o)) = run(&kv, &["--aof-rewrite-min-size", "1kb"]) else {
            panic!()
        };
        assert_eq!(o.aof_rewrite_min_size, 1024);
        assert_eq!(o.aof_rewrite_percentage, 100, "Redis's default");
        let Ok(Parsed::Run(o)) = run(&kv, &["--aof-rewrite-percentage", "0"]) else {
            panic!()
        };
        assert_eq!(o.aof_rewrite_percentage, 0);
        assert!(
            matches!(run(&kv, &["--help"]), Ok(Parsed::Help(h)) if h.contains("--aof-rewrite-min-size BYTES"))
        );
        assert!(matches!(run(&kv, &["-h"]), Ok(Parsed::Help(h)) if h.contains("--fsync")));
        for bad in [
            &["--bogus"][..],
            &["--threads"],
            &["--threads", "0"],
            &["--threads", "x"],
            &["--fsync", "sometimes"],
            &["--aof-rewrite-min-size", "64xb"],
            &["--aof-rewrite-min-size", "-1"],
            &["--aof-rewrite-percentage", "-5"],
            &["--aof-rewrite-percentage", "lots"],
            &["--addr", "nope"],
            &["--root", "x"],
            &["--idle-timeout", "-1"],
            &["extra"],
        ] {
            assert!(run(&kv, bad).is_err(), "{bad:?} accepted");
        }
        let http = spec(false, true);
        assert!(run(&http, &["--fsync", "always"]).is_err());
        assert!(run(&http, &["--aof-rewrite-min-size", "1"]).is_err());
        assert!(
            matches!(run(&http, &["--help"]), Ok(Parsed::Help(h)) if !h.contains("--fsync") && h.contains("--root"))
        );
    }
}
