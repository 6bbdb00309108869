//! The HTTP cache against loopback servers of the test's own that misbehave: down, silent,
//! trickling, failing, hanging up, sending the wrong bytes. Each failure is `Fetched::Trouble`
//! (an error for `put`), returned within the timeout and a margin, never a panic or a hang.

use super::{key, one_output, trouble};
use crate::support::free_port;
use kiln::cache::http::HttpCache;
use kiln::cache::{Backend, Digest, Fetched};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// The timeout the misbehaving servers are tested with, and how late past it an answer may be.
const TIMEOUT: Duration = Duration::from_secs(1);
const MARGIN: Duration = Duration::from_secs(3);

/// A loopback server that answers each connection with `answer` (given the request's first line)
/// for twenty seconds, then stops by itself.
pub(super) fn misbehaving(answer: impl Fn(&mut TcpStream, &str) + Send + Sync + 'static) -> String {
    let answer = std::sync::Arc::new(answer);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    let answer = answer.clone();
                    std::thread::spawn(move || {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                        let request = read_request(&mut stream);
                        answer(&mut stream, &request);
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// Reads a request's head and its body (by Content-Length); returns its first line.
fn read_request(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return String::new(),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let length = head
        .lines()
        .find_map(|l| {
            l.to_lowercase()
                .strip_prefix("content-length:")
                .map(str::to_string)
        })
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let _ = std::io::copy(&mut Read::take(&mut *stream, length), &mut std::io::sink());
    head.lines().next().unwrap_or("").to_string()
}

/// Runs `f`, checks it took less than the timeout and the margin, and returns what it gave.
fn bounded<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let got = f();
    let took = started.elapsed();
    assert!(took < TIMEOUT + MARGIN, "took {took:?}");
    (got, took)
}

/// Each way of failing: `get_entry`, `get_blob` and `put` are trouble, within the bound.
fn all_in_trouble(url: &str, reason: &str) -> Duration {
    let cache = HttpCache::new(url, vec![], TIMEOUT).expect("a cache");
    let (_files, file, entry) = one_output(b"output", false);
    let mut slowest = Duration::ZERO;
    let (got, took) = bounded(|| cache.get_entry(&key(1)));
    slowest = slowest.max(took);
    let why = trouble(got);
    assert!(why.contains(reason), "{why}");
    let (got, took) = bounded(|| cache.get_blob(&Digest::of(b"output")));
    slowest = slowest.max(took);
    let why = trouble(got);
    assert!(why.contains(reason), "{why}");
    let (got, took) = bounded(|| cache.put(&key(1), &entry, &[(Digest::of(b"output"), &file)]));
    slowest = slowest.max(took);
    assert!(got.is_err());
    slowest
}

#[test]
fn a_server_that_is_down_is_trouble() {
    let url = format!("http://127.0.0.1:{}", free_port());
    all_in_trouble(&url, "connection refused");
}

#[test]
fn a_server_that_never_answers_is_trouble_after_the_timeout() {
    let url = misbehaving(|_, _| std::thread::sleep(Duration::from_secs(6)));
    let slowest = all_in_trouble(&url, "no answer within 1s");
    assert!(slowest >= TIMEOUT, "{slowest:?}");
}

#[test]
fn a_response_that_trickles_is_trouble_after_the_timeout() {
    // Each byte comes in time for a per-read timeout; the whole response never does.
    let url = misbehaving(|s, _| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
        for _ in 0..40 {
            std::thread::sleep(Duration::from_millis(100));
            if s.write_all(b"x").is_err() {
                return;
            }
        }
    });
    let cache = HttpCache::new(&url, vec![], TIMEOUT).expect("a cache");
    let (got, took) = bounded(|| cache.get_blob(&Digest::of(&[b'x'; 100])));
    assert!(took >= TIMEOUT, "{took:?}");
    assert_eq!(
        got,
        Fetched::Trouble(
            "GET /cas/".to_string() + &Digest::of(&[b'x'; 100]).hex() + ": no answer within 1s"
        )
    );
}

#[test]
fn a_server_error_is_trouble() {
    let url = misbehaving(|s, _| {
        let _ = s.write_all(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\nConnection: close\r\n\r\noops!",
        );
    });
    all_in_trouble(&url, "answered 500 Internal Server Error");
    let url = misbehaving(|s, _| {
        let _ = s.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    });
    all_in_trouble(&url, "answered 403 Forbidden");
}

#[test]
fn a_server_that_hangs_up_is_trouble() {
    let url = misbehaving(|_, _| {});
    all_in_trouble(&url, "the server closed the connection");
}

#[test]
fn bytes_that_do_not_match_their_digest_are_trouble() {
    // Six bytes, as "output" has, but not those.
    let url = misbehaving(|s, _| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nOUTPUT");
    });
    let cache = HttpCache::new(&url, vec![], TIMEOUT).expect("a cache");
    let (got, _) = bounded(|| cache.get_blob(&Digest::of(b"output")));
    let why = trouble(got);
    assert!(why.ends_with("does not match its digest"), "{why}");
    // "OUTPUT" is no ActionResult either.
    let (got, _) = bounded(|| cache.get_entry(&key(1)));
    let why = trouble(got);
    assert!(why.contains("not an ActionResult"), "{why}");
    // Longer or shorter than the digest says, announced or not.
    for response in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\noutput!"[..],
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\noutput and more",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nout",
    ] {
        let url = misbehaving(move |s, _| {
            let _ = s.write_all(response);
        });
        let cache = HttpCache::new(&url, vec![], TIMEOUT).expect("a cache");
        let (got, _) = bounded(|| cache.get_blob(&Digest::of(b"output")));
        let why = trouble(got);
        assert!(why.ends_with("does not match its digest"), "{why}");
    }
}

#[test]
fn a_head_without_a_length_means_the_blob_is_there() {
    // bazel-remote checks every blob it is sent, and answers a HEAD with 200 and no length.
    let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = requests.clone();
    let url = misbehaving(move |s, request| {
        seen.lock().unwrap().push(request.to_string());
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    });
    let cache = HttpCache::new(&url, vec![], TIMEOUT).expect("a cache");
    let (_files, file, entry) = one_output(b"output", false);
    let (got, _) = bounded(|| cache.put(&key(1), &entry, &[(Digest::of(b"output"), &file)]));
    got.expect("put");
    let hex = Digest::of(b"output").hex();
    let lines = [
        format!("HEAD /cas/{hex} HTTP/1.1"),
        format!("PUT /ac/{} HTTP/1.1", key(1).hex()),
    ];
    assert_eq!(*requests.lock().unwrap(), lines);
}
