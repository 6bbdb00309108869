//! Whole builds through a remote cache: kiln with `--remote-cache` against a real nginx, and
//! against servers that are down, slow, failing or lying: each a miss with one warning, and the
//! build succeeds without hanging.

use super::Nginx;
use super::misbehaving::misbehaving;
use crate::support::{Space, free_port};
use std::io::Write;
use std::time::{Duration, Instant};

/// Six tasks: five copies and a join.
fn project(s: &Space) {
    s.write(
        "build.toml",
        "[rule.copy]\nrun = \"cat ${SRC} > ${TGT}\"\next_in = [\".txt\"]\next_out = [\".out\"]\n\
         [[gen]]\nname = \"copies\"\nrule = \"copy\"\nsource = [\"*.txt\"]\n\
         [[gen]]\nname = \"all\"\nrun = \"cat ${SRC} > ${TGT}; chmod +x ${TGT}\"\nuse = [\"copies\"]\ntarget = \"all\"\n",
    );
    for i in 0..5 {
        s.write(&format!("t{i}.txt"), format!("input {i}\n"));
    }
}

fn summary(stderr: &str) -> &str {
    stderr.lines().last().unwrap_or_default()
}

fn warnings(stderr: &str) -> usize {
    stderr.lines().filter(|l| l.starts_with("warning:")).count()
}

#[test]
fn checkouts_share_outputs_through_nginx_and_a_remote_hit_fills_the_local_cache() {
    let nginx = Nginx::start();
    let url = nginx.url();
    let a = Space::new();
    project(&a);
    let run = a
        .kiln(&[
            "build",
            "--remote-cache",
            &url,
            "--remote-header",
            "Authorization: Bearer t0k3n",
        ])
        .ok();
    assert!(
        summary(&run.stderr).ends_with(": 6 tasks, 0 from the cache"),
        "{}",
        run.stderr
    );
    // The header went with every request.
    let requests = nginx.requests();
    assert!(!requests.is_empty());
    assert!(
        requests.iter().all(|r| r.contains("Bearer t0k3n")),
        "{requests:?}"
    );
    // Another checkout, with a local cache too: everything from the remote, and into the local.
    let local = Space::new();
    let local_dir = local.root().to_string_lossy().into_owned();
    let b = Space::new();
    project(&b);
    let run = b
        .kiln(&["build", "--remote-cache", &url, "--cache", &local_dir])
        .ok();
    assert!(
        summary(&run.stderr).ends_with(": 6 tasks, 6 from the cache"),
        "{}",
        run.stderr
    );
    assert_eq!(b.read("build/all"), a.read("build/all"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(b.path("build/all"))
        .unwrap()
        .permissions()
        .mode();
    assert_ne!(mode & 0o111, 0, "the executable bit came back");
    // A third checkout with the local cache alone.
    let c = Space::new();
    project(&c);
    let run = c.kiln(&["build", "--cache", &local_dir]).ok();
    assert!(
        summary(&run.stderr).ends_with(": 6 tasks, 6 from the cache"),
        "{}",
        run.stderr
    );
    // KILN_REMOTE_CACHE is --remote-cache.
    let d = Space::new();
    project(&d);
    let run = d
        .kiln_with(".", &["build"], &[("KILN_REMOTE_CACHE", Some(&url))])
        .ok();
    assert!(
        summary(&run.stderr).ends_with(": 6 tasks, 6 from the cache"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_remote_with_lying_blobs_is_one_warning_and_nothing_unverified_is_restored() {
    let nginx = Nginx::start();
    let url = nginx.url();
    let a = Space::new();
    project(&a);
    a.kiln(&["build", "--remote-cache", &url]).ok();
    // Every blob on the server rewritten with other bytes of the same length.
    for e in walkdir::WalkDir::new(nginx.file("cas"))
        .into_iter()
        .flatten()
    {
        if e.file_type().is_file() {
            let len = std::fs::metadata(e.path()).unwrap().len() as usize;
            std::fs::write(e.path(), vec![b'#'; len]).unwrap();
        }
    }
    let b = Space::new();
    project(&b);
    let run = b.kiln(&["build", "--remote-cache", &url]).ok();
    assert_eq!(warnings(&run.stderr), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("does not match its digest"),
        "{}",
        run.stderr
    );
    assert!(
        summary(&run.stderr).ends_with(", 0 from the cache"),
        "{}",
        run.stderr
    );
    assert_eq!(b.read("build/all"), a.read("build/all"));
}

#[test]
fn a_remote_that_is_down_slow_or_failing_is_one_warning_and_the_build_succeeds() {
    // Down: a port nobody listens on.
    let down = format!("http://127.0.0.1:{}", free_port());
    let slow = misbehaving(|_, _| std::thread::sleep(Duration::from_secs(8)));
    let failing = misbehaving(|s, _| {
        let _ = s.write_all(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\nConnection: close\r\n\r\noops!",
        );
    });
    for (what, url) in [("down", down), ("slow", slow), ("failing", failing)] {
        let s = Space::new();
        project(&s);
        let started = Instant::now();
        let run = s
            .kiln(&["build", "--remote-cache", &url, "--remote-timeout", "1"])
            .ok();
        let took = started.elapsed();
        assert_eq!(warnings(&run.stderr), 1, "{what}: {}", run.stderr);
        assert!(
            summary(&run.stderr).ends_with(": 6 tasks, 0 from the cache"),
            "{what}: {}",
            run.stderr
        );
        // One timeout at most, never one per task.
        assert!(took < Duration::from_secs(5), "{what}: took {took:?}");
        assert_eq!(s.read("build/all").lines().count(), 5);
    }
}
