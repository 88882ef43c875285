#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use omnimeter_metrics::MetricsSettings;

use super::*;

struct Flag(AtomicBool);

impl Probe for Flag {
    fn readiness(&self) -> Result<String, String> {
        if self.0.load(Ordering::Relaxed) { Ok("input open".into()) } else { Err("input finished".into()) }
    }
}

/// A plain HTTP/1.0 GET over a socket: status code and body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (code, body)
}

#[test]
fn endpoints_answer_and_readiness_follows_the_probe() {
    let metrics = Arc::new(Metrics::new(MetricsSettings {
        label_limit: 8,
        window_ms: 60_000,
        gap_ms: 1_800_000,
        thread_gap_ms: 86_400_000,
    }));
    let probe = Arc::new(Flag(AtomicBool::new(true)));
    let server = BackgroundServer::start("127.0.0.1:0".parse().unwrap(), metrics, probe.clone()).unwrap();
    let addr = server.addr();
    assert_eq!(get(addr, "/healthz"), (200, "ok\n".into()));
    assert_eq!(get(addr, "/readyz"), (200, "ready: input open\n".into()));
    let (code, body) = get(addr, "/metrics");
    assert_eq!(code, 200);
    assert!(body.contains("# TYPE omnimeter_journeys_closed_total counter"), "{body}");
    assert!(body.contains("omnimeter_window_length_seconds 60"), "{body}");
    probe.0.store(false, Ordering::Relaxed);
    assert_eq!(get(addr, "/readyz"), (503, "not ready: input finished\n".into()));
    assert_eq!(get(addr, "/nope").0, 404);
    drop(server);
    assert!(std::net::TcpStream::connect(addr).is_err(), "stopped with the server");
}

#[test]
fn a_taken_address_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = bind(taken.local_addr().unwrap()).unwrap_err();
    assert!(err.to_string().starts_with("cannot serve metrics on 127.0.0.1:"), "{err}");
}
