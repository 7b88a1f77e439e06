//! RESP2, the Redis wire protocol: command parsing, reply encoding, and a
//! reply parser for clients (the tests and the load generator).
//!
//! A command is an array of bulk strings, `*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`,
//! or an inline line, `GET k\r\n` (what a person typing into `nc` sends).
//!
//! # Limits, checked before anything is allocated
//!
//! - a bulk string longer than [`MAX_BULK`] (512 MiB, Redis's
//!   `proto-max-bulk-len`) and an array of more than [`MAX_ARRAY`] elements
//!   (1M; Redis allows more, but nothing a client here sends needs it) are
//!   protocol errors;
//! - an inline command or a `*`/`$` header line longer than [`MAX_INLINE`]
//!   (64 KiB, Redis's `PROTO_INLINE_MAX_SIZE`) is a protocol error.
//!
//! The parser borrows arguments from the input buffer; an announced length
//! only tells the connection how much to read ([`Cmd::Partial`]), and the
//! buffer grows as bytes arrive (see [`crate::buf::ConnBuf::fill`]), so a
//! client announcing `$536870912` and sending nothing costs nothing.
//!
//! After a protocol error the server replies `-ERR Protocol error: ...` and
//! closes the connection, as Redis does: framing is lost.

/// Largest bulk string accepted: 512 MiB.
pub const MAX_BULK: usize = 512 * 1024 * 1024;
/// Most elements in a command array: 1M.
pub const MAX_ARRAY: usize = 1024 * 1024;
/// Longest inline command or header line: 64 KiB.
pub const MAX_INLINE: usize = 64 * 1024;

/// The outcome of [`parse_command`].
#[derive(Debug, PartialEq, Eq)]
pub enum Cmd<'a> {
    /// A command's arguments and the bytes it spans.
    Complete(Vec<&'a [u8]>, usize),
    /// More input is needed: at least this many bytes in total.
    Partial(usize),
    /// A protocol error: reply with it and close.
    Error(&'static str),
}

/// Finds `\r\n` at or after `from`; returns the index of `\r` (never
/// before `from`).
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(p) = buf.get(i..)?.iter().position(|&b| b == b'\n') {
        let p = i + p;
        if p > from && buf[p - 1] == b'\r' {
            return Some(p - 1);
        }
        i = p + 1;
    }
    None
}

/// Parses a decimal integer (optional `-`), no overflow, no empty string.
///
/// # Example
///
/// ```
/// assert_eq!(handoff_servers::resp::parse_int(b"-42"), Some(-42));
/// assert_eq!(handoff_servers::resp::parse_int(b"4x"), None);
/// ```
pub fn parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        // Accumulate with the final sign so i64::MIN parses.
        let d = (d - b'0') as i64;
        n = n.checked_mul(10)?;
        n = if neg {
            n.checked_sub(d)?
        } else {
            n.checked_add(d)?
        };
    }
    Some(n)
}

/// Reads a `<prefix><int>\r\n` header line at `at`: `Ok(Some((n, next)))`,
/// `Ok(None)` when the line is not complete yet.
fn header(buf: &[u8], at: usize) -> Result<Option<(i64, usize)>, ()> {
    match find_crlf(buf, at) {
        Some(cr) => parse_int(&buf[at + 1..cr])
            .map(|n| Some((n, cr + 2)))
            .ok_or(()),
        None if buf.len() - at > MAX_INLINE => Err(()),
        None => Ok(None),
    }
}

/// Parses one command from the front of `buf`.
///
/// # Example
///
/// ```
/// use handoff_servers::resp::{parse_command, Cmd};
/// let buf = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
/// assert_eq!(parse_command(buf), Cmd::Complete(vec![&b"GET"[..], b"k"], buf.len()));
/// assert_eq!(parse_command(b"PING\r\n"), Cmd::Complete(vec![&b"PING"[..]], 6));
/// assert_eq!(parse_command(b"*2\r\n$3\r\nGE"), Cmd::Partial(13));
/// assert!(matches!(parse_command(b"*2000000\r\n"), Cmd::Error(_)));
/// ```
pub fn parse_command(buf: &[u8]) -> Cmd<'_> {
    if buf.is_empty() {
        return Cmd::Partial(1);
    }
    if buf[0] != b'*' {
        return parse_inline(buf);
    }
    let (n, mut at) = match header(buf, 0) {
        Ok(Some(h)) => h,
        Ok(None) => return Cmd::Partial(buf.len() + 1),
        Err(()) => return Cmd::Error("Protocol error: invalid multibulk length"),
    };
    if n > MAX_ARRAY as i64 {
        return Cmd::Error("Protocol error: invalid multibulk length");
    }
    if n <= 0 {
        // Redis treats `*0` and `*-1` as an empty command and skips it.
        return Cmd::Complete(Vec::new(), at);
    }
    // Never trust `n` for the allocation: cap what is reserved up front.
    let mut args = Vec::with_capacity((n as usize).min(16));
    for _ in 0..n {
        if at >= buf.len() {
            return Cmd::Partial(at + 1);
        }
        if buf[at] != b'$' {
            return Cmd::Error("Protocol error: expected '$'");
        }
        let (len, start) = match header(buf, at) {
            Ok(Some(h)) => h,
            Ok(None) => return Cmd::Partial(buf.len() + 1),
            Err(()) => return Cmd::Error("Protocol error: invalid bulk length"),
        };
        if len < 0 || len as u64 > MAX_BULK as u64 {
            return Cmd::Error("Protocol error: invalid bulk length");
        }
        let end = start + len as usize;
        if buf.len() < end + 2 {
            return Cmd::Partial(end + 2);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Cmd::Error("Protocol error: bulk string not followed by CRLF");
        }
        args.push(&buf[start..end]);
        at = end + 2;
    }
    Cmd::Complete(args, at)
}

fn parse_inline(buf: &[u8]) -> Cmd<'_> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > MAX_INLINE {
            return Cmd::Error("Protocol error: too big inline request");
        }
        return Cmd::Partial(buf.len() + 1);
    };
    if nl > MAX_INLINE {
        return Cmd::Error("Protocol error: too big inline request");
    }
    let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
    let args = line
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|a| !a.is_empty())
        .collect();
    Cmd::Complete(args, nl + 1)
}

/// Appends `+s\r\n`.
///
/// # Example
///
/// ```
/// let mut out = Vec::new();
/// handoff_servers::resp::simple(&mut out, "OK");
/// assert_eq!(out, b"+OK\r\n");
/// ```
pub fn simple(out: &mut Vec<u8>, s: &str) {
    out.push(b'+');
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `-msg\r\n` (`msg` should start with an error code like `ERR`).
///
/// # Example
///
/// ```
/// let mut out = Vec::new();
/// handoff_servers::resp::error(&mut out, "ERR nope");
/// assert_eq!(out, b"-ERR nope\r\n");
/// ```
pub fn error(out: &mut Vec<u8>, msg: &str) {
    out.push(b'-');
    out.extend(
        msg.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

fn decimal(out: &mut Vec<u8>, n: i64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends `:n\r\n`.
///
/// # Example
///
/// ```
/// let mut out = Vec::new();
/// handoff_servers::resp::int(&mut out, -3);
/// assert_eq!(out, b":-3\r\n");
/// ```
pub fn int(out: &mut Vec<u8>, n: i64) {
    out.push(b':');
    decimal(out, n);
    out.extend_from_slice(b"\r\n");
}

/// Appends a bulk string, or the null bulk `$-1\r\n` for `None`.
///
/// # Example
///
/// ```
/// let mut out = Vec::new();
/// handoff_servers::resp::bulk(&mut out, Some(b"hi"));
/// handoff_servers::resp::bulk(&mut out, None);
/// assert_eq!(out, b"$2\r\nhi\r\n$-1\r\n");
/// ```
pub fn bulk(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        Some(v) => {
            out.push(b'$');
            decimal(out, v.len() as i64);
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        None => out.extend_from_slice(b"$-1\r\n"),
    }
}

/// Appends an array header `*n\r\n`; the caller appends `n` elements.
///
/// # Example
///
/// ```
/// let mut out = Vec::new();
/// handoff_servers::resp::array(&mut out, 0);
/// assert_eq!(out, b"*0\r\n");
/// ```
pub fn array(out: &mut Vec<u8>, n: usize) {
    out.push(b'*');
    decimal(out, n as i64);
    out.extend_from_slice(b"\r\n");
}

/// Encodes a command as an array of bulk strings (what clients send, and
/// the record format of the append-only log).
///
/// # Example
///
/// ```
/// let mut out = Vec::new();
/// handoff_servers::resp::command(&mut out, &["GET", "k"]);
/// assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
/// ```
pub fn command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    array(out, args.len());
    for a in args {
        bulk(out, Some(a.as_ref()));
    }
}

/// A reply, as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`
    Error(String),
    /// `:1`
    Int(i64),
    /// `$3\r\nabc` or the null bulk.
    Bulk(Option<Vec<u8>>),
    /// `*2 ...` or the null array.
    Array(Option<Vec<Reply>>),
}

/// Parses one reply from the front of `buf`: `Ok(Some((reply, len)))`,
/// `Ok(None)` if incomplete, `Err` if malformed.
///
/// # Errors
///
/// A description of what is malformed.
///
/// # Example
///
/// ```
/// use handoff_servers::resp::{parse_reply, Reply};
/// assert_eq!(parse_reply(b"+OK\r\n"), Ok(Some((Reply::Simple("OK".into()), 5))));
/// assert_eq!(parse_reply(b"$3\r\nab"), Ok(None));
/// ```
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    // The line starts after the type byte.
    let Some(cr) = find_crlf(buf, 1) else {
        return Ok(None);
    };
    let line = &buf[1..cr];
    let next = cr + 2;
    let text = || String::from_utf8_lossy(line).into_owned();
    let num = || parse_int(line).ok_or_else(|| format!("bad number {:?}", text()));
    Ok(Some(match kind {
        b'+' => (Reply::Simple(text()), next),
        b'-' => (Reply::Error(text()), next),
        b':' => (Reply::Int(num()?), next),
        b'$' => {
            let n = num()?;
            if n < 0 {
                (Reply::Bulk(None), next)
            } else {
                let end = next + n as usize;
                if buf.len() < end + 2 {
                    return Ok(None);
                }
                (Reply::Bulk(Some(buf[next..end].to_vec())), end + 2)
            }
        }
        b'*' => {
            let n = num()?;
            if n < 0 {
                (Reply::Array(None), next)
            } else {
                let mut items = Vec::with_capacity((n as usize).min(1024));
                let mut at = next;
                for _ in 0..n {
                    match parse_reply(&buf[at..])? {
                        Some((r, len)) => {
                            items.push(r);
                            at += len;
                        }
                        None => return Ok(None),
                    }
                }
                (Reply::Array(Some(items)), at)
            }
        }
        other => return Err(format!("unexpected reply type byte {other:#x}")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_at_every_split_point_then_complete() {
        let mut buf = Vec::new();
        command(&mut buf, &["SET", "key", "a\r\nvalue with crlf"]);
        for i in 0..buf.len() {
            assert!(
                matches!(parse_command(&buf[..i]), Cmd::Partial(n) if n > i),
                "prefix {i}"
            );
        }
        let Cmd::Complete(args, n) = parse_command(&buf) else {
            panic!()
        };
        assert_eq!(n, buf.len());
        assert_eq!(args, [&b"SET"[..], b"key", b"a\r\nvalue with crlf"]);
    }

    #[test]
    fn partial_asks_for_the_whole_bulk() {
        assert_eq!(
            parse_command(b"*1\r\n$100\r\nab"),
            Cmd::Partial(4 + 6 + 102)
        );
    }

    #[test]
    fn limits_are_refused_from_the_header_alone() {
        // Nothing but the header has arrived: the error comes before any
        // allocation sized by the claim.
        assert!(matches!(
            parse_command(b"*1\r\n$536870913\r\n"),
            Cmd::Error(_)
        ));
        assert!(matches!(
            parse_command(b"*1\r\n$536870912\r\n"),
            Cmd::Partial(_)
        ));
        assert!(matches!(parse_command(b"*1048577\r\n"), Cmd::Error(_)));
        assert!(matches!(parse_command(b"*1048576\r\n"), Cmd::Partial(_)));
        assert!(matches!(parse_command(b"*1\r\n$-5\r\n"), Cmd::Error(_)));
        assert!(matches!(parse_command(b"*x\r\n"), Cmd::Error(_)));
        assert!(matches!(
            parse_command(b"*99999999999999999999\r\n"),
            Cmd::Error(_)
        ));
        assert!(matches!(parse_command(b"*1\r\n:1\r\n"), Cmd::Error(_)));
        assert!(matches!(parse_command(b"*1\r\n$1\r\nabc"), Cmd::Error(_)));
        // A header line with no end is cut off at 64 KiB.
        let long = [b'*']
            .into_iter()
            .chain(std::iter::repeat_n(b'1', MAX_INLINE + 2))
            .collect::<Vec<_>>();
        assert!(matches!(parse_command(&long), Cmd::Error(_)));
        let inline = vec![b'a'; MAX_INLINE + 2];
        assert!(matches!(parse_command(&inline), Cmd::Error(_)));
    }

    #[test]
    fn empty_and_inline_commands() {
        assert_eq!(parse_command(b"*0\r\n"), Cmd::Complete(vec![], 4));
        assert_eq!(parse_command(b"\r\n"), Cmd::Complete(vec![], 2));
        assert_eq!(
            parse_command(b"SET  a\tb\r\nGET"),
            Cmd::Complete(vec![&b"SET"[..], b"a", b"b"], 10)
        );
    }

    #[test]
    fn replies_round_trip() {
        let mut out = Vec::new();
        simple(&mut out, "OK");
        error(&mut out, "ERR x\r\ny");
        int(&mut out, i64::MIN);
        bulk(&mut out, Some(b""));
        bulk(&mut out, None);
        array(&mut out, 2);
        int(&mut out, 0);
        bulk(&mut out, Some(b"z"));
        let mut at = 0;
        let mut got = Vec::new();
        while let Some((r, n)) = parse_reply(&out[at..]).unwrap() {
            got.push(r);
            at += n;
        }
        assert_eq!(at, out.len());
        assert_eq!(
            got,
            [
                Reply::Simple("OK".into()),
                Reply::Error("ERR x  y".into()),
                Reply::Int(i64::MIN),
                Reply::Bulk(Some(vec![])),
                Reply::Bulk(None),
                Reply::Array(Some(vec![Reply::Int(0), Reply::Bulk(Some(b"z".to_vec()))])),
            ]
        );
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;

    /// Nothing a peer sends can panic the parsers: random bytes, and random
    /// mutations of valid commands, each parsed at every prefix length.
    #[test]
    fn random_input_never_panics() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let resp_alphabet: &[u8] = b"*$+-:\r\n0123456789-abcSETGET ";
        let http_alphabet: &[u8] = b"GETHP/1.0 \r\n:Content-Length:Connection%2e./?&=close";
        for round in 0..4000 {
            let alphabet = if round % 2 == 0 {
                resp_alphabet
            } else {
                http_alphabet
            };
            let len = (next() % 48) as usize;
            let mut buf: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            if next() % 2 == 0 {
                let mut valid = Vec::new();
                if round % 2 == 0 {
                    command(&mut valid, &["SET", "key", "value"]);
                } else {
                    valid.extend_from_slice(
                        b"GET /file/a?x=1 HTTP/1.1\r\nContent-Length: 2\r\n\r\nab",
                    );
                }
                let at = (next() % valid.len() as u64) as usize;
                valid[at] = alphabet[(next() % alphabet.len() as u64) as usize];
                buf = valid;
            }
            for i in 0..=buf.len() {
                let _ = parse_command(&buf[..i]);
                let _ = parse_reply(&buf[..i]);
                let _ = crate::http::parse(&buf[..i], &mut crate::http::Scan::default());
            }
        }
    }
}
