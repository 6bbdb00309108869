//! The HTTP cache backend against real servers: Debian's nginx with its WebDAV module, as a team
//! would run one (scripts/test-setup installs it), over HTTP and HTTPS; and (`misbehaving.rs`)
//! small loopback servers of the test's own that are down, slow, failing or lying. Each nginx
//! runs in the foreground with its own configuration, logs and temporary paths in a temporary
//! directory, and is killed when its guard is dropped, so that none outlives its test and the
//! tests run in parallel.

mod builds;
mod misbehaving;

use crate::support::free_port;
use kiln::cache::http::HttpCache;
use kiln::cache::{Backend, Digest, Entry, Fetched, Key, OutputFile};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long nginx may take to listen.
const PATIENCE: Duration = Duration::from_secs(10);

/// An nginx serving a WebDAV root (`root/`) on two loopback ports: over HTTP, and over HTTPS
/// with a certificate from an authority of the test's own; killed on drop.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    tls_port: u16,
    /// How many `/settled/N` requests `requests` has made.
    markers: AtomicUsize,
}

impl Nginx {
    fn start() -> Nginx {
        let dir = tempfile::Builder::new()
            .prefix("kiln-nginx-")
            .tempdir()
            .expect("a temporary directory");
        let d = dir.path();
        for sub in ["root", "tmp"] {
            std::fs::create_dir(d.join(sub)).expect("mkdir");
        }
        make_certificates(d);
        // Another process may take a free port before nginx binds it: try again then.
        for _ in 0..5 {
            let (port, tls_port) = (free_port(), free_port());
            std::fs::write(d.join("nginx.conf"), config(d, port, tls_port)).expect("write");
            let _ = std::fs::remove_file(d.join("error.log"));
            let mut command = Command::new(nginx_binary());
            // SAFETY: prctl is async-signal-safe, as what runs between fork and exec must be.
            // Should the test process be killed outright, before the guard's drop, the kernel
            // kills nginx too.
            unsafe {
                command.pre_exec(|| {
                    rustix::process::set_parent_process_death_signal(Some(
                        rustix::process::Signal::KILL,
                    ))
                    .map_err(std::io::Error::from)
                });
            }
            let mut child = command
                .arg("-p")
                .arg(d)
                .arg("-c")
                .arg(d.join("nginx.conf"))
                .arg("-e")
                .arg(d.join("error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("nginx does not run ({e}); scripts/test-setup installs it")
                });
            let started = Instant::now();
            while started.elapsed() < PATIENCE {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                let up = |p| TcpStream::connect(("127.0.0.1", p)).is_ok();
                if up(port) && up(tls_port) {
                    return Nginx {
                        child,
                        dir,
                        port,
                        tls_port,
                        markers: AtomicUsize::new(0),
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(d.join("error.log")).unwrap_or_default();
            assert!(
                log.contains("Address already in use"),
                "nginx did not start:\n{log}"
            );
        }
        panic!("nginx found no free port");
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A file under the WebDAV root.
    fn file(&self, rel: &str) -> PathBuf {
        self.dir.path().join("root").join(rel)
    }

    /// One line per request made so far: `METHOD URI STATUS CONNECTION auth="..." team="..."`.
    /// nginx writes a request's line after it has sent the response, so a client can be ahead
    /// of the log; a request of the test's own (`/settled/N`), answered and then seen in the log,
    /// marks the point by which every earlier request's line is there (one worker, in order).
    fn requests(&self) -> Vec<String> {
        use std::io::{Read, Write};
        let marker = format!("/settled/{}", self.markers.fetch_add(1, Ordering::Relaxed));
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to nginx");
        write!(
            stream,
            "GET {marker} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let _ = stream.read_to_end(&mut Vec::new());
        let started = Instant::now();
        loop {
            let log =
                std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
            if log.lines().any(|l| l.split(' ').nth(1) == Some(&marker)) {
                return log
                    .lines()
                    .filter(|l| !l.split(' ').nth(1).unwrap_or("").starts_with("/settled/"))
                    .map(str::to_string)
                    .collect();
            }
            assert!(
                started.elapsed() < PATIENCE,
                "nginx never logged {marker}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A certificate authority of the test's own (`ca.pem`), the server's certificate for 127.0.0.1
/// (`cert.pem`, `key.pem`) that it signed, and a password file where `ci` has `secret`.
pub(crate) fn make_certificates(d: &Path) {
    let script = "set -e
        ec='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'
        openssl req -x509 $ec -days 1 -subj /CN=kiln-test-ca -keyout ca.key -out ca.pem
        openssl req $ec -subj /CN=127.0.0.1 -keyout key.pem -out server.csr
        printf 'subjectAltName=IP:127.0.0.1\\n' > server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \\
            -extfile server.ext -out cert.pem
        printf 'ci:%s\\n' \"$(openssl passwd -apr1 secret)\" > htpasswd";
    let made = Command::new("sh")
        .args(["-c", script])
        .current_dir(d)
        .stdin(Stdio::null())
        .output()
        .expect("sh runs");
    assert!(
        made.status.success(),
        "openssl (installed by scripts/test-setup) made no certificate:\n{}",
        String::from_utf8_lossy(&made.stderr)
    );
}

/// nginx in the foreground, one process, everything it writes under `d`.
fn config(d: &Path, port: u16, tls_port: u16) -> String {
    let d = d.display();
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log info;\nevents {{ worker_connections 64; }}\n\
         http {{\n\
           log_format kiln '$request_method $uri $status $connection auth=\"$http_authorization\" team=\"$http_x_kiln_team\"';\n\
           access_log {d}/access.log kiln;\n\
           client_body_temp_path {d}/tmp/body;\n proxy_temp_path {d}/tmp/proxy;\n\
           fastcgi_temp_path {d}/tmp/fastcgi;\n uwsgi_temp_path {d}/tmp/uwsgi;\n\
           scgi_temp_path {d}/tmp/scgi;\n\
           server {{\n\
             listen 127.0.0.1:{port};\n\
             listen 127.0.0.1:{tls_port} ssl;\n\
             ssl_certificate {d}/cert.pem;\n ssl_certificate_key {d}/key.pem;\n\
             root {d}/root;\n\
             client_max_body_size 0;\n\
             dav_methods PUT;\n\
             create_full_put_path on;\n\
             dav_access user:rw group:r all:r;\n\
             location /team/ {{\n\
               limit_except GET HEAD {{ auth_basic team; auth_basic_user_file {d}/htpasswd; }}\n\
             }}\n\
           }}\n\
         }}\n"
    )
}

fn nginx_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|p| p.is_file())
        .expect("nginx is missing: scripts/test-setup installs it")
}

/// The reason of a `Fetched::Trouble`; anything else fails the test.
fn trouble<T: std::fmt::Debug>(got: Fetched<T>) -> String {
    match got {
        Fetched::Trouble(why) => why,
        other => panic!("not trouble: {other:?}"),
    }
}

fn key(n: u8) -> Key {
    Key([n; 32])
}

fn output(path: &str, content: &[u8], executable: bool) -> OutputFile {
    OutputFile {
        path: path.to_string(),
        digest: Digest::of(content),
        executable,
    }
}

/// One output written to a file (`${OUT}/out` holding `content`), and the entry naming it; the
/// directory lives as long as the first element.
fn one_output(content: &[u8], executable: bool) -> (tempfile::TempDir, PathBuf, Entry) {
    let files = tempfile::tempdir().expect("a temporary directory");
    let file = files.path().join("out");
    std::fs::write(&file, content).expect("write");
    let entry = Entry {
        outputs: vec![output("${OUT}/out", content, executable)],
        implicit: vec![],
    };
    (files, file, entry)
}

#[test]
fn nginx_webdav_keeps_entries_and_blobs() {
    let nginx = Nginx::start();
    let headers = vec![
        (
            "Authorization".to_string(),
            "Bearer team-secret".to_string(),
        ),
        ("X-Kiln-Team".to_string(), "compilers".to_string()),
    ];
    let cache = HttpCache::new(&nginx.url(), headers, Duration::from_secs(10)).expect("a cache");
    assert_eq!(cache.name(), nginx.url());

    let files = tempfile::tempdir().expect("a temporary directory");
    let (object, program) = (b"\x7fELF object".to_vec(), b"#!/bin/sh\necho hi\n".to_vec());
    std::fs::write(files.path().join("a.o"), &object).expect("write");
    std::fs::write(files.path().join("hi"), &program).expect("write");
    let entry = Entry {
        outputs: vec![
            output("${OUT}/src/a.o", &object, false),
            output("${OUT}/hi", &program, true),
        ],
        implicit: vec![
            ("src/a.h".to_string(), *blake3::hash(b"header").as_bytes()),
            ("/usr/include/stdio.h".to_string(), [9; 32]),
        ],
    };
    let (object_file, program_file) = (files.path().join("a.o"), files.path().join("hi"));
    let blobs = [
        (Digest::of(&object), object_file.as_path()),
        (Digest::of(&program), program_file.as_path()),
    ];
    cache.put(&key(1), &entry, &blobs).expect("put");

    assert_eq!(cache.get_entry(&key(1)), Fetched::Hit(entry.clone()));
    assert_eq!(
        cache.get_blob(&Digest::of(&object)),
        Fetched::Hit(object.clone())
    );
    assert_eq!(
        cache.get_blob(&Digest::of(&program)),
        Fetched::Hit(program.clone())
    );
    // On the server: an ActionResult naming the outputs and the implicit listing, and blobs.
    let stored = std::fs::read(nginx.file(&format!("ac/{}", key(1).hex()))).expect("the entry");
    let stored = kiln::cache::reapi::ActionResult::decode(&stored).expect("an ActionResult");
    let paths: Vec<&str> = stored
        .output_files
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(paths, ["${OUT}/src/a.o", "${OUT}/hi", ".kiln/implicit"]);
    let listing =
        std::fs::read(nginx.file(&format!("cas/{}", stored.output_files[2].digest.hex())));
    let header = format!("{} src/a.h\n", blake3::hash(b"header").to_hex());
    assert!(
        String::from_utf8(listing.unwrap())
            .unwrap()
            .starts_with(&header)
    );
    assert_eq!(
        std::fs::read(nginx.file(&format!("cas/{}", Digest::of(&object).hex()))).unwrap(),
        object
    );

    assert_eq!(cache.get_entry(&key(2)), Fetched::Miss);
    assert_eq!(cache.get_blob(&Digest::of(b"never stored")), Fetched::Miss);

    // Storing it again uploads no blob the server has (a HEAD says so), only the entry.
    let before = nginx.requests().len();
    cache.put(&key(1), &entry, &blobs).expect("put again");
    let again = nginx.requests()[before..].to_vec();
    assert!(
        again.iter().filter(|r| r.starts_with("HEAD /cas/")).count() == 3
            && again.iter().filter(|r| r.starts_with("PUT ")).count() == 1,
        "{again:#?}"
    );

    // Every request carried the headers, and connections served several requests.
    let requests = nginx.requests();
    assert!(requests.len() > 10, "{requests:#?}");
    let connections: std::collections::BTreeSet<&str> = requests
        .iter()
        .filter_map(|r| r.split(' ').nth(3))
        .collect();
    assert!(connections.len() * 2 <= requests.len(), "{requests:#?}");
    for r in &requests {
        assert!(
            r.ends_with("auth=\"Bearer team-secret\" team=\"compilers\""),
            "{r}"
        );
    }

    // Bytes on the server that are not what their name says are trouble, never a hit.
    let blob = nginx.file(&format!("cas/{}", Digest::of(&object).hex()));
    std::fs::write(&blob, b"\x7fELF OBJECT").expect("overwrite");
    let why = trouble(cache.get_blob(&Digest::of(&object)));
    assert!(why.contains("does not match its digest"), "{why}");
    std::fs::write(&blob, b"short").expect("overwrite");
    let why = trouble(cache.get_blob(&Digest::of(&object)));
    assert!(why.contains("does not match its digest"), "{why}");
    // So is an entry that is not an ActionResult, or whose implicit listing was changed; a
    // put heals what the HEADs find damaged.
    std::fs::write(nginx.file(&format!("ac/{}", key(1).hex())), b"<html>").expect("overwrite");
    let why = trouble(cache.get_entry(&key(1)));
    assert!(why.contains("not an ActionResult"), "{why}");
    cache.put(&key(1), &entry, &blobs).expect("put once more");
    assert_eq!(cache.get_entry(&key(1)), Fetched::Hit(entry.clone()));
    assert_eq!(cache.get_blob(&Digest::of(&object)), Fetched::Hit(object));
    let listing = kiln::cache::http::encode_implicit(&entry.implicit).unwrap();
    let listing = nginx.file(&format!("cas/{}", Digest::of(&listing).hex()));
    std::fs::write(listing, b"x\n").expect("overwrite");
    let why = trouble(cache.get_entry(&key(1)));
    assert!(why.contains("does not match its digest"), "{why}");
}

#[test]
fn nginx_keeps_an_entry_without_implicit_dependencies_or_outputs() {
    let nginx = Nginx::start();
    let cache = HttpCache::new(&nginx.url(), vec![], Duration::from_secs(10)).expect("a cache");
    let files = tempfile::tempdir().expect("a temporary directory");
    let empty = files.path().join("empty");
    std::fs::write(&empty, b"").expect("write");
    // Two outputs with one content, and an empty one: the empty blob is never sent.
    let same = files.path().join("same");
    std::fs::write(&same, b"same").expect("write");
    let entry = Entry {
        outputs: vec![
            output("${OUT}/one", b"same", false),
            output("${OUT}/two", b"same", false),
            output("${OUT}/empty", b"", false),
        ],
        implicit: vec![],
    };
    let blobs = [
        (Digest::of(b"same"), same.as_path()),
        (Digest::of(b""), empty.as_path()),
    ];
    cache.put(&key(3), &entry, &blobs).expect("put");
    assert_eq!(cache.get_entry(&key(3)), Fetched::Hit(entry));
    assert_eq!(cache.get_blob(&Digest::of(b"")), Fetched::Hit(vec![]));
    let puts: Vec<String> = nginx
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("PUT "))
        .collect();
    assert_eq!(puts.len(), 2, "{puts:#?}");

    let nothing = Entry::default();
    cache.put(&key(4), &nothing, &[]).expect("put");
    assert_eq!(cache.get_entry(&key(4)), Fetched::Hit(nothing));

    // A file that changed since it was hashed is not uploaded under the old name.
    std::fs::write(&same, b"changed").expect("write");
    let other = Entry {
        outputs: vec![output("${OUT}/x", b"same", false)],
        implicit: vec![],
    };
    assert!(cache.put(&key(5), &other, &blobs).is_err());
    assert_eq!(cache.get_entry(&key(5)), Fetched::Miss);
}

#[test]
fn nginx_lets_anyone_read_and_only_who_has_the_password_write() {
    // As docs/cache.md sets a team cache up: limit_except GET HEAD asks for a password.
    let nginx = Nginx::start();
    let t = Duration::from_secs(10);
    let anyone = HttpCache::new(&format!("{}/team", nginx.url()), vec![], t).expect("a cache");
    let url = format!("http://ci:secret@127.0.0.1:{}/team/", nginx.port);
    let ci = HttpCache::new(&url, vec![], t).expect("a cache");
    assert_eq!(ci.name(), format!("{}/team", nginx.url()));
    let (_files, file, entry) = one_output(b"built by ci", true);
    let blobs = [(Digest::of(b"built by ci"), file.as_path())];
    let refused = anyone.put(&key(1), &entry, &blobs).unwrap_err();
    assert!(refused.ends_with("answered 401 Unauthorized"), "{refused}");
    assert_eq!(anyone.get_entry(&key(1)), Fetched::Miss);
    ci.put(&key(1), &entry, &blobs)
        .expect("put with the password");
    assert_eq!(anyone.get_entry(&key(1)), Fetched::Hit(entry));
    assert!(nginx.file("team/ac").is_dir());
}

#[test]
fn https_verifies_the_server_against_the_systems_roots() {
    let nginx = Nginx::start();
    let url = format!("https://127.0.0.1:{}", nginx.tls_port);
    // No root of this system vouches for the test's own authority.
    let cache = HttpCache::new(&url, vec![], Duration::from_secs(10)).expect("a cache");
    let why = trouble(cache.get_entry(&key(1)));
    assert!(why.contains("UnknownIssuer"), "{why}");
    assert!(nginx.requests().is_empty(), "{:?}", nginx.requests());

    // With the authority among the system's roots (SSL_CERT_FILE, as OpenSSL reads it), the
    // same server is trusted. A process of its own, since the roots are read per process.
    let child = "http_cache::https_with_the_test_authority_among_the_roots";
    let out = Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", child, "--test-threads", "1"])
        .env("KILN_TEST_HTTPS_URL", &url)
        .env("SSL_CERT_FILE", nginx.dir.path().join("ca.pem"))
        .env_remove("SSL_CERT_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        nginx.requests().iter().any(|r| r.starts_with("PUT /ac/")),
        "{:?}",
        nginx.requests()
    );

    // Plain HTTP to a TLS port, or TLS to a plain port, is trouble too.
    let plain = format!("http://127.0.0.1:{}", nginx.tls_port);
    let cache = HttpCache::new(&plain, vec![], Duration::from_secs(10)).expect("a cache");
    trouble(cache.get_entry(&key(1)));
    let tls = format!("https://127.0.0.1:{}", nginx.port);
    let cache = HttpCache::new(&tls, vec![], Duration::from_secs(10)).expect("a cache");
    trouble(cache.get_entry(&key(1)));
}

/// Run by the test above in a process of its own, whose system roots include the test's
/// authority: an entry goes to the server over HTTPS and comes back. Run alone, it does nothing.
#[test]
fn https_with_the_test_authority_among_the_roots() {
    let Ok(url) = std::env::var("KILN_TEST_HTTPS_URL") else {
        return;
    };
    let cache = HttpCache::new(&url, vec![], Duration::from_secs(10)).expect("a cache");
    let (_files, file, mut entry) = one_output(b"over tls", false);
    entry.implicit = vec![("a.h".to_string(), [1; 32])];
    cache
        .put(&key(7), &entry, &[(Digest::of(b"over tls"), &file)])
        .expect("put over https");
    assert_eq!(cache.get_entry(&key(7)), Fetched::Hit(entry));
    assert_eq!(
        cache.get_blob(&Digest::of(b"over tls")),
        Fetched::Hit(b"over tls".to_vec())
    );
}
