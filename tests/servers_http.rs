//! The HTTP and echo servers on handoff, over real sockets: every route,
//! pipelining, bad input, 500 connections at once, idle timeout, a client
//! that never reads. (The same scenarios run on tokio in
//! `servers/tests/tokio_servers.rs`.)
#[path = "../examples/support/handoff_glue.rs"]
mod glue;
#[path = "../servers/tests/support/scenarios.rs"]
mod sc;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use handoff_servers::echo::Echo;
use handoff_servers::http::{Http, HttpConfig};

const IDLE: Duration = Duration::from_secs(60);

fn http(
    name: &str,
    idle: Duration,
) -> (handoff::Runtime, std::net::SocketAddr, std::path::PathBuf) {
    let rt = glue::runtime(Some(2));
    let files = sc::temp_dir(name);
    let f = files.clone();
    let addr = glue::start(
        &rt,
        "127.0.0.1:0",
        move |r| Arc::new(Http::new(r, HttpConfig::demo(f))),
        idle,
    );
    (rt, addr, files)
}

#[test]
fn http_routes_and_pipelining() {
    let (_rt, addr, files) = http("routes", IDLE);
    sc::http_routes(addr, &files);
    sc::http_pipelining(addr);
}

#[test]
fn http_bad_input_and_500_connections() {
    let (_rt, addr, _) = http("bad", IDLE);
    sc::http_bad_input(addr);
    sc::concurrent_http(addr, 500);
}

#[test]
fn http_idle_and_trickling_connections_are_closed() {
    let (_rt, addr, _) = http("idle", Duration::from_millis(300));
    sc::idle_is_closed(addr);
    sc::slowloris_is_closed(addr);
}

#[test]
fn http_client_that_never_reads_is_bounded() {
    let (_rt, addr, _) = http("stalled", IDLE);
    sc::stalled_reader_is_bounded(addr, b"GET / HTTP/1.1\r\n\r\n");
}

#[test]
fn static_file_server_serves_a_tree_and_refuses_escapes() {
    let rt = glue::runtime(Some(2));
    let root = sc::temp_dir("static");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("index.html"), b"<h1>home</h1>").unwrap();
    std::fs::write(root.join("sub/data.json"), b"{}").unwrap();
    let r2 = root.clone();
    let addr = glue::start(
        &rt,
        "127.0.0.1:0",
        move |r| Arc::new(Http::new(r, HttpConfig::static_files(r2))),
        IDLE,
    );
    let mut c = sc::Client::connect(addr);
    let r = c.get("/");
    assert_eq!((r.status, &r.body[..]), (200, &b"<h1>home</h1>"[..]));
    assert!(r.head.contains("text/html"));
    let r = c.get("/sub/data.json");
    assert!(r.status == 200 && r.head.contains("application/json"));
    assert_eq!(
        c.get("/sub").status,
        404,
        "a directory without a slash is not a file"
    );
    assert_eq!(c.get("/sub/../../etc/passwd").status, 400);
    assert_eq!(c.get("/missing").status, 404);
}

#[test]
fn echo_echoes_and_serves_many() {
    let rt = glue::runtime(Some(2));
    let addr = glue::start(&rt, "127.0.0.1:0", |_| Arc::new(Echo), IDLE);
    let mut conns: Vec<std::net::TcpStream> = (0..100)
        .map(|_| {
            let s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(sc::WATCHDOG)).unwrap();
            s
        })
        .collect();
    for (i, s) in conns.iter_mut().enumerate() {
        s.write_all(format!("hello {i:04}").as_bytes()).unwrap();
    }
    for (i, s) in conns.iter_mut().enumerate() {
        let mut b = [0u8; 10];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, format!("hello {i:04}").as_bytes());
    }
}

/// Re-exec entry for the EMFILE test: with `EMFILE_CHILD` set, lowers the
/// descriptor limit so that only a handful of connections fit, serves
/// HTTP, and announces its address. Without it (a normal run) it checks
/// the helper that recognises the error.
#[test]
fn emfile_child() {
    if std::env::var_os("EMFILE_CHILD").is_none() {
        let e = std::io::Error::from_raw_os_error(libc::EMFILE);
        assert!(handoff_servers::rt::is_resource_exhaustion(&e));
        return;
    }
    let rt = glue::runtime(Some(2));
    let addr = glue::start(
        &rt,
        "127.0.0.1:0",
        |r| Arc::new(Http::new(r, HttpConfig::demo("."))),
        IDLE,
    );
    // Count what is open now and leave room for 8 more descriptors.
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    let lim = libc::rlimit {
        rlim_cur: open + 8,
        rlim_max: open + 8,
    };
    // SAFETY: a plain setrlimit with a live struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    sc::announce(addr, 0, 0);
    loop {
        std::thread::park();
    }
}

#[test]
fn emfile_on_accept_backs_off_and_recovers() {
    let child = sc::start_child("emfile_child", "EMFILE_CHILD", std::path::Path::new("."));
    let addr = child.addr;
    // Far more connections than descriptors: the kernel queues them in the
    // backlog while accept fails with EMFILE.
    let mut hogs: Vec<std::net::TcpStream> = (0..40)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    // Some are served (descriptors were free for them)...
    let mut first = sc::Client::connect(addr);
    drop(hogs.drain(..));
    // ...and once the hogs are gone, a new client is served: the server
    // did not die or spin itself out of the game.
    let mut c = sc::Client::connect(addr);
    assert_eq!(c.get("/").status, 200);
    // The client queued during the exhaustion is served too.
    assert_eq!(first.get("/").status, 200);
    drop(child);
}
