//! The runner with real processes: chains, output, long commands, direct starts, time limits,
//! signals.

use super::*;

use std::path::Path;

/// What every job of a test runner in `dir` shares, with 1 MiB of output kept in memory.
fn config(dir: &Path) -> Config {
    Config {
        cwd: dir.to_path_buf(),
        scratch: dir.join("tmp"),
        clock: None,
        memory_limit: 1 << 20,
        logs: dir.join("logs"),
        timeout: None,
        env: Vec::new(),
        remote: None,
        local_slots: 0,
    }
}

fn runner(dir: &Path, limit: usize) -> Runner {
    Runner::new(
        2,
        Config {
            memory_limit: limit,
            ..config(dir)
        },
    )
}

fn job(id: usize, commands: &[&str], dir: &Path) -> Job {
    Job {
        id,
        commands: commands.iter().map(|s| s.to_string()).collect(),
        outputs: vec![dir.join("out")],
        watch: vec![],
        depfile: None,
        timed: false,
        remote: None,
    }
}

#[test]
fn runs_a_chain_and_captures_both_streams_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), 1 << 20);
    r.start(job(
        1,
        &["echo one; echo two >&2", "printf x > out"],
        dir.path(),
    ));
    let f = r.results.recv().unwrap();
    assert_eq!(f.exit, Exit::Success);
    assert_eq!(String::from_utf8_lossy(&f.output.text), "one\ntwo\n");
    let (stat, hash) = f.outputs[0].unwrap();
    assert_eq!(stat.size, 1);
    assert!(hash.is_some());
}

#[test]
fn a_failing_command_stops_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), 1 << 20);
    r.start(job(1, &["echo bad; exit 3", "touch out"], dir.path()));
    let f = r.results.recv().unwrap();
    assert_eq!(
        f.exit,
        Exit::Failed {
            command: 0,
            code: 3
        }
    );
    assert!(f.outputs[0].is_none());
}

#[test]
fn long_commands_run_from_a_script() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), 1 << 20);
    let long = format!("printf %s {} > out", "y".repeat(300_000));
    r.start(job(1, &[&long], dir.path()));
    let f = r.results.recv().unwrap();
    assert_eq!(
        f.exit,
        Exit::Success,
        "{}",
        String::from_utf8_lossy(&f.output.text)
    );
    assert_eq!(f.outputs[0].unwrap().0.size, 300_000);
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
}

#[test]
fn large_output_spills_to_a_log_and_keeps_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), 64 * 1024);
    r.start(job(1, &["seq 1 200000"], dir.path()));
    let f = r.results.recv().unwrap();
    let log = f.output.log.clone().expect("a log file");
    assert_eq!(std::fs::metadata(&log).unwrap().len(), f.output.total);
    assert!(f.output.text.len() <= 16 * 1024 + 64 * 1024);
    assert!(String::from_utf8_lossy(&f.output.text).ends_with("199999\n200000\n"));
}

#[test]
fn plain_commands_behave_as_under_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("a"), "A\n").unwrap();
    std::fs::write(d.join("b"), "B\n").unwrap();
    let r = runner(d, 1 << 20);
    let run = |commands: &[&str]| {
        r.start(job(1, commands, d));
        r.results.recv().unwrap()
    };
    // A redirection truncates, `>>` appends, stderr still reaches kiln.
    let f = run(&["cat a b > out", "cat a >> out", "cat missing-file"]);
    assert_eq!(std::fs::read_to_string(d.join("out")).unwrap(), "A\nB\nA\n");
    assert_eq!(
        f.exit,
        Exit::Failed {
            command: 2,
            code: 1
        }
    );
    assert!(String::from_utf8_lossy(&f.output.text).contains("missing-file"));
    // A program that is not there: the shell's message and status.
    let f = run(&["no-such-program-kiln x"]);
    assert_eq!(
        f.exit,
        Exit::Failed {
            command: 0,
            code: 127
        }
    );
    assert!(String::from_utf8_lossy(&f.output.text).contains("not found"));
    // A script without `#!` runs as a shell script, as the shell would run it.
    std::fs::write(d.join("script"), "echo from-script > out\n").unwrap();
    std::fs::set_permissions(
        d.join("script"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    assert_eq!(run(&["./script"]).exit, Exit::Success);
    assert_eq!(
        std::fs::read_to_string(d.join("out")).unwrap(),
        "from-script\n"
    );
    // A redirection into a directory that does not exist: the shell reports it.
    let f = run(&["cat a > no/such/dir/out"]);
    assert!(
        matches!(f.exit, Exit::Failed { command: 0, .. }),
        "{:?}",
        f.exit
    );
    assert!(!String::from_utf8_lossy(&f.output.text).is_empty());
}

/// Whether process `pid` is still running (a zombie waiting to be reaped is not).
fn running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).is_ok_and(|s| {
        s.rsplit(") ")
            .next()
            .is_some_and(|rest| !rest.starts_with('Z'))
    })
}

fn timeout_runner(dir: &Path, limit: Duration) -> Runner {
    Runner::new(
        1,
        Config {
            timeout: Some(limit),
            ..config(dir)
        },
    )
}

#[test]
fn a_command_past_the_time_limit_is_killed_with_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let r = timeout_runner(dir.path(), Duration::from_millis(300));
    let t = Instant::now();
    r.start(job(
        1,
        &["echo before", "sleep 30 & echo $! > bg.pid; sleep 30; wait"],
        dir.path(),
    ));
    let f = r.results.recv().unwrap();
    assert_eq!(f.exit, Exit::TimedOut { command: 1 });
    // Killed at the deadline, not after the second kiln gives a process that left the group.
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(String::from_utf8_lossy(&f.output.text), "before\n");
    let bg = std::fs::read_to_string(dir.path().join("bg.pid")).unwrap();
    let gone = Instant::now() + Duration::from_secs(2);
    while running(&bg) && Instant::now() < gone {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !running(&bg),
        "the background child {bg} outlived the timeout"
    );
    // A quick command is not affected.
    r.start(job(2, &["echo quick"], dir.path()));
    assert_eq!(r.results.recv().unwrap().exit, Exit::Success);
}

#[test]
fn the_time_limit_holds_after_a_command_closes_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let r = timeout_runner(dir.path(), Duration::from_millis(300));
    let t = Instant::now();
    r.start(job(1, &["exec >/dev/null 2>&1; sleep 30"], dir.path()));
    assert_eq!(
        r.results.recv().unwrap().exit,
        Exit::TimedOut { command: 0 }
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // One that closes its output and ends in time keeps its own exit status.
    r.start(job(
        2,
        &["exec >/dev/null 2>&1; sleep 0.05; exit 3"],
        dir.path(),
    ));
    assert_eq!(
        r.results.recv().unwrap().exit,
        Exit::Failed {
            command: 0,
            code: 3
        }
    );
}

#[test]
fn signal_reaches_the_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), 1 << 20);
    r.start(job(1, &["sleep 30 & sleep 30; wait"], dir.path()));
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    r.signal(rustix::process::Signal::TERM);
    let f = r.results.recv().unwrap();
    assert!(
        matches!(f.exit, Exit::Signaled { signal: 15, .. }),
        "{:?}",
        f.exit
    );
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn local_slots_bound_the_jobs_running_locally_below_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    let r = Runner::new(
        3,
        Config {
            local_slots: 1,
            ..config(dir.path())
        },
    );
    // Each job holds a directory while it runs: two at once would fail the second mkdir.
    for id in 0..3 {
        r.start(job(id, &["mkdir held && sleep 0.2 && rmdir held"], dir.path()));
    }
    let mut ok = 0;
    for _ in 0..3 {
        let f = r.results.recv().unwrap();
        assert_eq!(f.exit, Exit::Success, "{}", String::from_utf8_lossy(&f.output.text));
        ok += 1;
    }
    assert_eq!(ok, 3);
}
