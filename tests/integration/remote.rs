//! Remote execution on a real Remote Execution API engine: BuildGrid from PyPI with the worker in
//! tests/remote/, started on loopback by each test (tests/remote/engine.py; scripts/test-setup
//! installs it through scripts/remote-setup). Each Action runs in an empty directory holding
//! only its input root.

mod misbehaving;

use crate::example::copy_example;
use crate::ports::copy_port;
use crate::support::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A BuildGrid server and its worker on a loopback port, killed on drop.
pub struct Engine {
    child: Child,
    pub url: String,
    /// With [`Engine::start_tls`], its `grpcs://` port.
    pub tls_url: String,
    dir: tempfile::TempDir,
}

impl Engine {
    pub fn start() -> Engine {
        Engine::launch(None)
    }

    /// With a second port serving TLS with `certs`/cert.pem and key.pem.
    pub fn start_tls(certs: &Path) -> Engine {
        Engine::launch(Some(certs))
    }

    fn launch(tls: Option<&Path>) -> Engine {
        let python = Path::new(ROOT).join("target/test-tools/buildgrid/bin/python");
        assert!(
            python.exists(),
            "BuildGrid is not installed at {}: run scripts/remote-setup (scripts/test-setup does)",
            python.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(&python);
        cmd.arg(Path::new(ROOT).join("tests/remote/engine.py"))
            .arg("--dir")
            .arg(dir.path());
        if let Some(certs) = tls {
            cmd.arg("--tls").arg(certs);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tls = String::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("tls ") {
                    tls = url.to_string();
                }
                if let Some(url) = line.strip_prefix("ready ") {
                    let _ = tx.send((url.to_string(), tls.clone()));
                }
            }
        });
        let mut engine = Engine {
            child,
            url: String::new(),
            tls_url: String::new(),
            dir,
        };
        match rx.recv_timeout(Duration::from_secs(90)) {
            Ok((url, tls_url)) => (engine.url, engine.tls_url) = (url, tls_url),
            Err(_) => panic!("the engine did not start:\n{}", engine.logs()),
        }
        engine
    }

    /// A successful build of `s` on this engine, with `-d stats` (the counts of what went
    /// there).
    pub fn build(&self, s: &Space) -> Run {
        s.kiln(&["--remote", &self.url, "build", "-d", "stats"])
            .ok()
    }

    /// Kills the server and its worker at once (SIGKILL to the launcher takes its children).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The server's and the worker's logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for name in ["server.log", "worker.log"] {
            let body = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let tail: Vec<&str> = body.lines().rev().take(40).collect();
            text += &format!("--- {name} (tail)\n");
            for l in tail.iter().rev() {
                text += l;
                text.push('\n');
            }
        }
        text
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every file under `dir` of the project, by path, with its bytes.
fn files_under(s: &Space, dir: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
    let base = s.path(dir);
    walkdir::WalkDir::new(&base)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e
                .path()
                .strip_prefix(&base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (rel, std::fs::read(e.path()).unwrap())
        })
        // kiln's own state is not an output.
        .filter(|(rel, _)| !rel.starts_with(".kiln"))
        .collect()
}

/// Outputs of `paths`, in the local build `l` and the remote one `r`, byte for byte.
fn assert_same_outputs(l: &Space, r: &Space, paths: &[String]) {
    assert!(!paths.is_empty());
    for p in paths {
        let (a, b) = (
            std::fs::read(l.path(p)).unwrap(),
            std::fs::read(r.path(p)).unwrap(),
        );
        assert!(a == b, "{p} differs between the local and the remote build");
    }
}

/// The summary line, which `-d stats` follows.
fn summary(run: &Run) -> String {
    let line = run.stderr.lines().find(|l| l.starts_with("'build' "));
    line.unwrap_or_else(|| panic!("no summary in\n{}", run.stderr))
        .to_string()
}

fn total_tasks(run: &Run) -> u64 {
    let summary = summary(run);
    let n = summary
        .split(": ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok());
    n.unwrap_or_else(|| panic!("no task count in `{summary}`"))
}

/// The engine itself, checked by a REAPI client of its own (tests/remote/check.py): the CAS, the
/// ActionCache, ByteStream, and the worker running each Action in an empty directory, where a
/// read outside the input root fails.
#[test]
fn the_test_engine_passes_its_own_check() {
    let python = Path::new(ROOT).join("target/test-tools/buildgrid/bin/python");
    let out = Command::new(python)
        .arg(Path::new(ROOT).join("tests/remote/check.py"))
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/remote-setup first");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn hello_c_built_on_the_engine_equals_a_local_build_and_a_clean_rebuild_is_all_hits() {
    let engine = Engine::start();
    let local = copy_example();
    local.kiln(&["build"]).ok();
    let remote = copy_example();
    let run = engine.build(&remote);
    // Every task ran on the engine: the compiles got their headers from the scanner.
    let tasks = total_tasks(&run);
    assert_eq!(
        run.stats_count("remote executed"),
        tasks,
        "{}",
        engine.logs()
    );
    assert_eq!(run.stats_count("remote hits"), 0);
    let outputs: Vec<String> = files_under(&local, "build")
        .keys()
        .filter(|p| !p.ends_with(".d"))
        .map(|p| format!("build/{p}"))
        .collect();
    assert_same_outputs(&local, &remote, &outputs);
    let hello = Command::new(remote.path("build/hello")).output().unwrap();
    assert!(hello.status.success());

    // A clean build again: every result comes back from the engine's cache, nothing runs.
    remote.kiln(&["clean"]).ok();
    let again = engine.build(&remote);
    assert!(
        summary(&again).contains(&format!("{tasks} tasks, {tasks} from the cache")),
        "{}",
        summary(&again)
    );
    assert_eq!(again.stats_count("remote executed"), 0);
    assert_same_outputs(&local, &remote, &outputs);
}

#[test]
fn lua_built_on_the_engine_equals_a_local_build_and_a_clean_rebuild_is_all_hits() {
    let engine = Engine::start();
    let local = copy_port("lua");
    local.kiln(&["build"]).ok();
    let remote = copy_port("lua");
    let run = engine.build(&remote);
    let tasks = total_tasks(&run);
    assert_eq!(
        run.stats_count("remote executed"),
        tasks,
        "{}",
        summary(&run)
    );
    let outputs: Vec<String> = ["build/lua", "build/luac", "build/liblua.a"]
        .iter()
        .map(|s| s.to_string())
        .chain(
            files_under(&local, "build")
                .keys()
                .filter(|p| p.ends_with(".o"))
                .map(|p| format!("build/{p}")),
        )
        .collect();
    assert_same_outputs(&local, &remote, &outputs);
    remote.kiln(&["clean"]).ok();
    let again = engine.build(&remote);
    assert_eq!(
        again.stats_count("remote executed"),
        0,
        "{}",
        summary(&again)
    );
    assert_eq!(
        again.stats_count("remote hits"),
        run.stats_count("remote executed")
    );
    assert_same_outputs(&local, &remote, &outputs);
}

const DECLARED: &str = r#"
[[gen]]
name = "copy"
run = "cat ${SRC} > ${TGT}"
source = ["a.txt"]
target = "a.out"

[[gen]]
name = "peek"
run = "cat ${SRC} secret.txt > ${TGT}"
source = ["b.txt"]
target = "b.out"
"#;

#[test]
fn a_task_reading_a_file_it_does_not_declare_fails_remotely_and_is_named_a_missing_dependency() {
    let engine = Engine::start();
    let s = Space::new();
    s.write("build.toml", DECLARED)
        .write("a.txt", "a\n")
        .write("b.txt", "b\n")
        .write("secret.txt", "s\n");
    // Locally it works: the file is there.
    s.kiln(&["build"]).ok();
    s.kiln(&["clean"]).ok();
    s.kiln(&["--remote", &engine.url, "build", "-k"])
        .status(1)
        .stderr_has("build/b.out")
        .stderr_has(
            "`secret.txt`, which the task does not declare: a missing dependency, not a flake",
        );
    assert_eq!(s.read("build/a.out"), "a\n");
    // Declared, it runs remotely too.
    s.write(
        "build.toml",
        DECLARED.replace(
            "target = \"b.out\"",
            "target = \"b.out\"\ndeps = [\"secret.txt\"]",
        ),
    );
    s.kiln(&["--remote", &engine.url, "build"]).ok();
    assert_eq!(s.read("build/b.out"), "b\ns\n");
}

const SLOW: &str = r#"
[rule.step]
run = "sleep 0.4 && cat ${SRC} > ${TGT} && echo done-${SRC}"
ext_in = [".txt"]
ext_out = [".out"]

[[gen]]
name = "step"
rule = "step"
source = ["in/*.txt"]
"#;

fn slow_project(n: usize) -> Space {
    let s = Space::new();
    s.write("build.toml", SLOW);
    for i in 0..n {
        s.write(&format!("in/{i:02}.txt"), format!("{i}\n"));
    }
    s
}

#[test]
fn editing_a_file_no_task_reads_changes_no_action_and_two_checkouts_share_them() {
    let engine = Engine::start();
    let a = slow_project(4);
    a.write("notes.md", "one\n");
    let first = engine.build(&a);
    assert_eq!(first.stats_count("remote executed"), 4);
    // The printed output of a remote task is shown as a local one's.
    assert!(first.stderr.contains("done-in/00.txt") || first.stdout.contains("done-in/00.txt"));
    a.write("notes.md", "two\n");
    a.kiln(&["clean"]).ok();
    let again = engine.build(&a);
    assert!(
        summary(&again).contains("4 tasks, 4 from the cache"),
        "{}",
        summary(&again)
    );
    assert_eq!(again.stats_count("remote executed"), 0);
    // Another checkout elsewhere: the same Actions.
    let b = slow_project(4);
    let other = engine.build(&b);
    assert!(
        summary(&other).contains("4 tasks, 4 from the cache"),
        "{}",
        summary(&other)
    );
    assert_eq!(b.read("build/in/03.out"), "3\n");
}

#[test]
fn the_engine_killed_mid_build_leaves_a_correct_local_finish() {
    let mut engine = Engine::start();
    let s = slow_project(24);
    let kiln = spawn_kiln(&s, &["--remote", &engine.url, "build", "-j4"]);
    // Once the engine has run something, it goes away.
    wait_for(&s, "build/in/00.out");
    engine.kill();
    let out = kiln.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches("warning: remote").count(), 1, "{text}");
    for i in 0..24 {
        assert_eq!(s.read(&format!("build/in/{i:02}.out")), format!("{i}\n"));
    }
    // Recorded as built: a local build afterwards has nothing to do.
    let after = s.kiln(&["build"]).ok();
    assert!(after.ran().is_empty(), "{:?}", after.ran());
}

#[test]
fn an_engine_that_is_down_or_never_answers_is_one_warning_and_a_local_build() {
    let s = slow_project(3);
    // Nothing listens on this port.
    let down = format!("grpc://127.0.0.1:{}", free_port());
    s.kiln(&["--remote", &down, "build"])
        .ok()
        .stderr_has("warning: remote engine");
    assert_eq!(s.read("build/in/02.out"), "2\n");
    // A server that takes the connection and says nothing: bounded by --remote-timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("grpc://{}", silent.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        let conns: Vec<_> = silent.incoming().take(4).collect();
        std::thread::sleep(Duration::from_secs(8));
        drop(conns);
    });
    s.kiln(&["clean"]).ok();
    let started = Instant::now();
    s.kiln(&["--remote", &url, "--remote-timeout", "1", "build"])
        .ok()
        .stderr_has("warning: remote engine");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(s.read("build/in/02.out"), "2\n");
    drop(held);
}

#[test]
fn remote_false_rules_run_locally_and_the_platform_is_asked_for() {
    let engine = Engine::start();
    let s = Space::new();
    s.write(
        "build.toml",
        r#"
[remote]
platform = { OSFamily = "linux" }

[rule.here]
run = "pwd > ${TGT}"
remote = false

[rule.there]
run = "pwd > ${TGT}"

[[gen]]
name = "here"
rule = "here"
target = "here.txt"

[[gen]]
name = "there"
rule = "there"
target = "there.txt"
"#,
    );
    s.kiln(&["--remote", &engine.url, "build"]).ok();
    let root = s.root().canonicalize().unwrap();
    assert_eq!(s.read("build/here.txt").trim(), root.to_str().unwrap());
    // The engine ran it elsewhere, in a directory of its own.
    let there = s.read("build/there.txt");
    assert_ne!(there.trim(), root.to_str().unwrap());
    assert!(!there.trim().is_empty());
}

#[test]
fn a_grpc_remote_cache_keeps_local_runs_for_another_checkout() {
    let engine = Engine::start();
    let a = slow_project(3);
    let first = a
        .kiln(&["--remote-cache", &engine.url, "build", "-d", "stats"])
        .ok();
    assert_eq!(first.stats_count("remote stored"), 3);
    assert_eq!(first.stats_count("remote executed"), 0);
    let b = slow_project(3);
    let second = b
        .kiln(&["--remote-cache", &engine.url, "build", "-d", "stats"])
        .ok();
    assert!(
        summary(&second).contains("3 tasks, 3 from the cache"),
        "{}",
        summary(&second)
    );
    assert_eq!(b.read("build/in/01.out"), "1\n");
    // Read-only: another checkout's runs are not stored.
    let c = slow_project(4);
    let third = c
        .kiln(&[
            "--remote-cache",
            &engine.url,
            "--cache-readonly",
            "build",
            "-d",
            "stats",
        ])
        .ok();
    assert_eq!(third.stats_count("remote hits"), 3);
    assert_eq!(third.stats_count("remote stored"), 0);
}

#[test]
fn grpcs_verifies_the_engine_against_the_systems_roots() {
    let certs = tempfile::tempdir().unwrap();
    crate::http_cache::make_certificates(certs.path());
    let engine = Engine::start_tls(certs.path());
    assert!(engine.tls_url.starts_with("grpcs://"), "{}", engine.tls_url);
    let s = slow_project(2);
    // No root of this system vouches for the test's own authority: one warning, a local build.
    s.kiln_with(
        ".",
        &["--remote", &engine.tls_url, "build"],
        &[("SSL_CERT_DIR", None)],
    )
    .ok()
    .stderr_has("warning: remote engine");
    assert_eq!(s.read("build/in/01.out"), "1\n");
    // With it among the roots (SSL_CERT_FILE, as OpenSSL reads it), the tasks run there.
    s.kiln(&["clean"]).ok();
    let ca = certs.path().join("ca.pem");
    let run = s
        .kiln_with(
            ".",
            &["--remote", &engine.tls_url, "build", "-d", "stats"],
            &[
                ("SSL_CERT_FILE", Some(ca.to_str().unwrap())),
                ("SSL_CERT_DIR", None),
            ],
        )
        .ok()
        .stderr_lacks("warning");
    assert_eq!(run.stats_count("remote executed"), 2, "{}", run.stderr);
    assert_eq!(s.read("build/in/01.out"), "1\n");
}

#[test]
fn local_commands_stay_within_the_cpus_while_j_counts_remote_slots() {
    let cpus = std::thread::available_parallelism().unwrap().get();
    let s = Space::new();
    s.write("build.toml", parallel_tasks(cpus + 3, 0.3));
    // Nothing listens: every task runs here, -j still 4x the CPUs.
    s.kiln(&[
        "--remote",
        &format!("grpc://127.0.0.1:{}", free_port()),
        "build",
    ])
    .ok()
    .stderr_has("warning: remote engine");
    assert_eq!(max_overlap(&s.lines("log")), cpus);
}

#[test]
fn a_compile_whose_old_depfile_lacks_a_new_header_runs_locally_after_failing_remotely() {
    let engine = Engine::start();
    let s = Space::new();
    s.write(
        "build.toml",
        r#"
[rule.cc]
run = "cc -MMD -MF ${TGT}.d -c ${SRC} -o ${TGT}"
ext_in = [".c"]
ext_out = [".o"]
depfile = "${TGT}.d"

[[gen]]
name = "a"
source = ["a.c"]
"#,
    )
    .write("a.h", "#define A 1\n")
    .write("a.c", "#include \"a.h\"\nint a = A;\n");
    // No scanner: the first build runs the compile here, and its depfile names a.h.
    let first = engine.build(&s);
    assert_eq!(first.stats_count("remote executed"), 0);
    s.write("a.c", "#include \"a.h\"\nint a = A + 0;\n");
    let second = engine.build(&s);
    assert_eq!(
        second.stats_count("remote executed"),
        1,
        "{}",
        engine.logs()
    );
    // A header added since: the Action lacks it, the engine's compile fails, kiln's succeeds.
    s.write("b.h", "#define B 2\n").write(
        "a.c",
        "#include \"a.h\"\n#include \"b.h\"\nint a = A + B;\n",
    );
    s.kiln(&["--remote", &engine.url, "build"])
        .ok()
        .stderr_lacks("missing dependency");
    assert!(s.exists("build/a.o"));
    assert!(s.read("build/a.o.d").contains("b.h"));
}

#[test]
fn large_blobs_go_through_bytestream_on_a_named_instance() {
    let engine = Engine::start();
    let s = Space::new();
    s.write(
        "build.toml",
        r#"
[[gen]]
name = "big"
run = "cat ${SRC} ${SRC} > ${TGT}"
source = ["big.bin"]
target = "big.out"
"#,
    );
    // 6 MiB in, 12 MiB out: past the engine's 4 MiB batches both ways.
    let big: Vec<u8> = (0..6u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    s.write("big.bin", &big);
    let args = [
        "--remote",
        &engine.url,
        "--remote-instance",
        "main",
        "build",
        "-d",
        "stats",
    ];
    let run = s.kiln(&args).ok();
    assert_eq!(run.stats_count("remote executed"), 1, "{}", engine.logs());
    assert!(run.stats_count("remote bytes uploaded") >= 6 << 20);
    let want = [big.as_slice(), big.as_slice()].concat();
    assert!(std::fs::read(s.path("build/big.out")).unwrap() == want);
    s.kiln(&["clean"]).ok();
    let again = s.kiln(&args).ok();
    assert_eq!(again.stats_count("remote hits"), 1);
    assert!(std::fs::read(s.path("build/big.out")).unwrap() == want);
}

#[test]
fn ctrl_c_gives_up_a_remote_execution_at_once() {
    let engine = Engine::start();
    let s = Space::new();
    s.write(
        "build.toml",
        "[[gen]]\nrun = \"sleep 30 && touch ${TGT}\"\ntarget = \"slow\"\n",
    );
    let kiln = spawn_kiln(&s, &["--remote", &engine.url, "build"]);
    // Long enough for the Action to be on the worker.
    std::thread::sleep(Duration::from_secs(3));
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(kiln.id() as i32).unwrap(),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let stopped = Instant::now();
    let out = kiln.wait_with_output().unwrap();
    let (status, text) = (out.status, String::from_utf8_lossy(&out.stderr));
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopped.elapsed()
    );
    assert_eq!(status.code(), Some(130), "{text}");
    assert!(!s.exists("build/slow"));
}

#[test]
fn remote_results_fill_the_local_cache() {
    let engine = Engine::start();
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_str().unwrap();
    let a = slow_project(2);
    let run = a
        .kiln(&[
            "--remote",
            &engine.url,
            "--cache",
            dir,
            "build",
            "-d",
            "stats",
        ])
        .ok();
    assert_eq!(run.stats_count("remote executed"), 2);
    // Another checkout, no engine: the local cache has what the engine made.
    let b = slow_project(2);
    let local = b.kiln(&["--cache", dir, "build"]).ok();
    assert!(
        summary(&local).contains("2 tasks, 2 from the cache"),
        "{}",
        summary(&local)
    );
    assert_eq!(b.read("build/in/01.out"), "1\n");
}
