//! Reliability: kill -9 at random moments, interrupts, a damaged store, hostile paths and
//! commands, and build files that try to break the front end. Real processes, real signals, real
//! files.

use crate::support::{KILN, Space, gone_within, spawn_kiln, wait_for};
use kiln::store::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A small deterministic generator of random numbers (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Says something on the test's real stderr, which the harness does not capture.
fn report(line: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open("/dev/stderr") {
        let _ = writeln!(f, "{line}");
    }
}

const OBJS: usize = 12;
const LIBS: usize = 3;

/// A project of 12 compiles, 3 archives of 4 objects and a final link. Every command notes when
/// it starts and ends in `marks/<attempt>/` (the attempt is read from the file `attempt`, which
/// is no input of anything), sleeps a little, then concatenates its inputs.
fn kill_project(s: &Space) {
    let step = |src: &str| {
        format!(
            "run = \"n=$(basename ${{TGT}}); d=marks/$(cat attempt); mkdir -p $d; touch $d/$n.started; sleep 0.04; cat {src} > ${{TGT}}; touch $d/$n.done\"\n"
        )
    };
    let mut toml = String::new();
    for i in 0..OBJS {
        toml.push_str(&format!(
            "[[gen]]\n{}source = \"src/i{i}.c\"\ntarget = \"obj/i{i}.o\"\n",
            step("${SRC}")
        ));
    }
    for l in 0..LIBS {
        let objs: Vec<String> = (0..4)
            .map(|k| format!("\"obj/i{}.o\"", l * 4 + k))
            .collect();
        toml.push_str(&format!(
            "[[gen]]\nname = \"lib{l}\"\n{}source = [{}]\ntarget = \"lib/l{l}.a\"\n",
            step("${SRC}"),
            objs.join(", ")
        ));
    }
    toml.push_str(&format!(
        "[[gen]]\nname = \"final\"\n{}source = [\"lib/l0.a\", \"lib/l1.a\", \"lib/l2.a\"]\ntarget = \"final\"\n",
        step("${SRC}")
    ));
    s.write("build.toml", toml);
    s.write("attempt", "none");
}

/// Every task's record in the store: key to signature.
fn records(s: &Space) -> BTreeMap<String, [u8; 32]> {
    let path = s.path("build/.kiln/store");
    if !path.exists() {
        return BTreeMap::new();
    }
    let (store, _) = Store::open(&path, false).expect("the store always loads");
    store
        .tasks()
        .map(|v| (v.key.to_string(), v.signature))
        .collect()
}

/// Task names (output basenames) with a marker of this kind in `marks/<attempt>/`.
fn marked(s: &Space, attempt: &str, kind: &str) -> BTreeSet<String> {
    let dir = s.path(&format!("marks/{attempt}"));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(&format!(".{kind}")).map(str::to_string)
        })
        .collect()
}

fn mtime(path: &std::path::Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

/// The declared outputs and their contents.
fn outputs(s: &Space) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for i in 0..OBJS {
        let p = format!("build/obj/i{i}.o");
        out.insert(p.clone(), std::fs::read(s.path(&p)).unwrap_or_default());
    }
    for l in 0..LIBS {
        let p = format!("build/lib/l{l}.a");
        out.insert(p.clone(), std::fs::read(s.path(&p)).unwrap_or_default());
    }
    out.insert(
        "build/final".into(),
        std::fs::read(s.path("build/final")).unwrap_or_default(),
    );
    out
}

#[test]
fn kill_9_at_random_moments_loses_no_recorded_work() {
    let s = Space::new();
    kill_project(&s);
    let mut rng = Rng(0x5eed_cafe_f00d_1234);
    for i in 0..OBJS {
        s.write(&format!("src/i{i}.c"), format!("source {i} v0\n"));
    }
    let (mut landed, mut kills, mut waited_for_orphans) = (0, 0, 0);
    let mut cycle = 0;
    while landed < 32 {
        assert!(cycle < 150, "only {landed} kills landed in {cycle} cycles");
        let jobs = 1 + cycle % 4;
        // Something to do: edit a few sources, or start from nothing now and then.
        if cycle % 7 == 3 {
            let _ = std::fs::remove_dir_all(s.path("build"));
        } else {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(OBJS as u64);
                s.write(&format!("src/i{i}.c"), format!("source {i} v{cycle}\n"));
            }
        }
        let before = records(&s);
        let killed = format!("c{cycle}k");
        s.write("attempt", &killed);
        let mut child = Command::new(KILN)
            .args(["build", &format!("-j{jobs}")])
            .current_dir(s.root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // A whole build takes about 16 * 45 ms / jobs.
        let span = 16 * 45 / jobs as u64 + 60;
        std::thread::sleep(Duration::from_millis(5 + rng.below(span)));
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        let started = marked(&s, &killed, "started");
        let done = marked(&s, &killed, "done");
        let in_flight: BTreeSet<String> = started.difference(&done).cloned().collect();
        if !in_flight.is_empty() {
            landed += 1;
        }

        // The store loads, and what it recorded in the killed build is kept.
        let after = records(&s);
        let recorded: BTreeSet<String> = after
            .iter()
            .filter(|(k, sig)| before.get(*k) != Some(*sig) && **sig != [0; 32])
            .map(|(k, _)| k.clone())
            .collect();

        // The next build waits for commands the killed kiln left running, then reruns nothing
        // the killed one recorded.
        let next = format!("c{cycle}n");
        s.write("attempt", &next);
        let run = s.kiln(&["build", &format!("-j{jobs}")]);
        assert_eq!(run.status, 0, "cycle {cycle}: {}", run.stderr);
        let reran: BTreeSet<String> = run.ran_outputs().into_iter().collect();
        let again: Vec<&String> = reran.intersection(&recorded).collect();
        assert!(
            again.is_empty(),
            "cycle {cycle} (-j{jobs}): recorded before the kill, yet run again: {again:?}\n{}",
            run.stderr
        );
        let orphans: Vec<String> = in_flight.iter().cloned().collect();
        let next_started = marked(&s, &next, "started");
        if !orphans.is_empty() && !next_started.is_empty() {
            waited_for_orphans += 1;
            let first_next = next_started
                .iter()
                .map(|n| mtime(&s.path(&format!("marks/{next}/{n}.started"))))
                .min()
                .unwrap();
            for o in &orphans {
                let end = s.path(&format!("marks/{killed}/{o}.done"));
                assert!(
                    end.exists() && mtime(&end) <= first_next,
                    "cycle {cycle}: `{o}`, left running by the killed kiln, ended after the next build started a task"
                );
            }
        }

        // The result is what a clean build makes.
        let clean = Space::new();
        kill_project(&clean);
        for i in 0..OBJS {
            clean.write(&format!("src/i{i}.c"), s.read(&format!("src/i{i}.c")));
        }
        clean.kiln(&["build", "-j4"]).ok();
        assert_eq!(outputs(&s), outputs(&clean), "cycle {cycle}");
        cycle += 1;
    }
    assert!(
        waited_for_orphans > 0,
        "no kill left a command running that the next build had to wait for"
    );
    report(&format!(
        "kill -9 test: {landed} kills landed with tasks in flight, {kills} kills in all, across -j1..-j4; {waited_for_orphans} next builds had commands of the killed kiln to wait for"
    ));
}

fn signal(child: &std::process::Child, sig: rustix::process::Signal) {
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        sig,
    )
    .unwrap();
}

#[test]
fn a_second_interrupt_kills_the_commands_at_once() {
    let s = Space::new();
    // A command that ignores SIGINT: after the first Ctrl-C kiln would give it a second.
    s.write(
        "build.toml",
        "[[gen]]\nrun = \"trap '' INT; sleep 30 & echo $! > bg.pid; touch started; wait\"\ntarget = \"never\"\n",
    );
    let child = spawn_kiln(&s, &["build"]);
    wait_for(&s, "started");
    signal(&child, rustix::process::Signal::INT);
    std::thread::sleep(Duration::from_millis(100));
    let second = Instant::now();
    signal(&child, rustix::process::Signal::INT);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    // Without the second signal kiln would kill 900 ms from now.
    assert!(
        second.elapsed() < Duration::from_millis(500),
        "{:?}",
        second.elapsed()
    );
    assert!(
        gone_within(&s, "bg.pid", Duration::from_millis(200)),
        "the command's child outlived kiln"
    );
}

fn assert_one_state_warning(run: &crate::support::Run) {
    assert_eq!(
        run.stderr.matches("warning: kiln's state").count(),
        1,
        "{}",
        run.stderr
    );
}

#[test]
fn a_damaged_store_warns_once_and_rebuilds_only_what_it_lost() {
    let s = Space::new();
    let mut toml = String::new();
    for i in 0..6 {
        toml.push_str(&format!(
            "[[gen]]\nrun = \"cat ${{SRC}} > ${{TGT}}\"\nsource = \"s{i}\"\ntarget = \"t{i}\"\n"
        ));
        s.write(&format!("s{i}"), format!("{i}\n"));
    }
    s.write("build.toml", toml);
    s.kiln(&["build", "-j1"]).ok();
    let store = s.path("build/.kiln/store");
    let intact = std::fs::read(&store).unwrap();

    // Cut in the middle of the last record: that task runs again, the others do not.
    std::fs::write(&store, &intact[..intact.len() - 5]).unwrap();
    let run = s.kiln(&["build"]).ok();
    assert_one_state_warning(&run);
    assert_eq!(run.ran_outputs().len(), 1, "{}", run.stderr);
    s.kiln(&["build"]).ok().stderr_lacks("warning");

    // Garbage, and a store from a future kiln: one warning, everything rebuilt, no panic.
    for bytes in [
        b"\x00\xff garbage \xa5\xa5\xa5".to_vec(),
        [&b"KILNSTOR"[..], &999u32.to_le_bytes()].concat(),
    ] {
        std::fs::write(&store, &bytes).unwrap();
        let run = s.kiln(&["build"]).ok();
        assert_one_state_warning(&run);
        assert_eq!(run.ran_outputs().len(), 6, "{}", run.stderr);
        for i in 0..6 {
            assert_eq!(s.read(&format!("build/t{i}")), format!("{i}\n"));
        }
    }
}

#[test]
fn clean_and_distclean_refuse_the_root_the_home_directory_and_a_symlink_out() {
    let s = Space::new();
    s.write(
        "build.toml",
        "[[gen]]\nrun = \"touch ${TGT}\"\ntarget = \"x\"\n",
    );
    let home = Space::new();
    let home_dir = home.root().to_str().unwrap().to_string();
    for out in ["/", home_dir.as_str()] {
        for cmd in ["clean", "distclean"] {
            let run = Command::new(KILN)
                .args([cmd, "--out", out])
                .current_dir(s.root())
                .env("HOME", &home_dir)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&run.stderr);
            assert_eq!(run.status.code(), Some(2), "{cmd} --out {out}: {err}");
            // `/` holds the project: the build file's check refuses it first.
            assert!(
                err.contains("will not delete") || err.contains("would contain the project"),
                "{cmd} --out {out}: {err}"
            );
        }
    }
    // The project itself as the build directory is refused before anything else.
    s.kiln(&["distclean", "--out", "."]).status(2);
    // A build directory that is a symlink out of the project.
    let elsewhere = Space::new();
    elsewhere.write("keep", "precious");
    std::os::unix::fs::symlink(elsewhere.root(), s.path("build")).unwrap();
    for cmd in ["clean", "distclean"] {
        s.kiln(&[cmd]).status(2).stderr_has("symlink");
    }
    assert_eq!(elsewhere.read("keep"), "precious");
}

#[test]
fn an_output_through_a_symlink_out_of_the_build_directory_is_refused() {
    let s = Space::new();
    let elsewhere = Space::new();
    s.write(
        "build.toml",
        "[[gen]]\nrun = \"echo x > ${TGT}\"\ntarget = \"sub/x\"\n",
    );
    // A build directory of kiln's (its state marks it) holding a symlink out.
    std::fs::create_dir_all(s.path("build/.kiln")).unwrap();
    std::os::unix::fs::symlink(elsewhere.root(), s.path("build/sub")).unwrap();
    s.kiln(&["build"])
        .status(1)
        .stderr_has("outside the build directory");
    assert!(!elsewhere.exists("x"), "nothing written outside");
}

#[test]
fn an_output_that_is_also_a_source_is_an_error() {
    let s = Space::new();
    s.write("a.txt", "a\n");
    s.write(
        "build.toml",
        "[rule.inplace]\nrun = \"sort ${SRC} > ${TGT}\"\nupdate_outputs = true\n[[gen]]\nrule = \"inplace\"\nsource = \"a.txt\"\ntarget = \"a.txt\"\n",
    );
    s.kiln(&["build"]).status(2).stderr_is(concat!(
        "build.toml:6:10: error: `a.txt` is both an output and an input of generator `a.txt`\n",
        "  |\n",
        "6 | source = \"a.txt\"\n",
        "  |          ^^^^^^^\n",
    ));
    assert_eq!(s.read("a.txt"), "a\n");
}

#[test]
fn odd_file_names_are_quoted_and_non_utf8_names_skipped_with_a_warning() {
    let s = Space::new();
    let odd = [
        "sp ace.txt",
        "quo'te.txt",
        "dq\"uote.txt",
        "dol$lar.txt",
        "semi;colon.txt",
    ];
    for (i, name) in odd.iter().enumerate() {
        s.write(&format!("in/{name}"), format!("{i}\n"));
    }
    std::fs::write(
        s.path("in")
            .join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"bad\xff.txt")),
        "x",
    )
    .unwrap();
    s.write(
        "build.toml",
        "[rule.copy]\nrun = \"cp ${SRC} ${TGT}\"\next_in = [\".txt\"]\next_out = [\".out\"]\n[[gen]]\nname = \"copies\"\nsource = \"in/*.txt\"\n",
    );
    let run = s.kiln(&["build"]).ok();
    assert!(
        run.stderr.contains("kiln needs UTF-8 file names"),
        "{}",
        run.stderr
    );
    for (i, name) in odd.iter().enumerate() {
        let out = format!("build/in/{}", name.replace(".txt", ".out"));
        assert_eq!(s.read(&out), format!("{i}\n"), "{name}");
    }
    s.kiln(&["build"]).ok();
}

#[test]
fn a_command_that_deletes_or_rewrites_its_own_input_is_not_trusted() {
    for (edit, what) in [
        ("rm in.txt", "deletes"),
        ("echo changed > in.txt", "rewrites"),
    ] {
        let s = Space::new();
        s.write("in.txt", "original\n");
        s.write(
            "build.toml",
            format!(
                "[[gen]]\nrun = \"cat ${{SRC}} > ${{TGT}}; {edit}\"\nsource = \"in.txt\"\ntarget = \"out.txt\"\n"
            ),
        );
        s.kiln(&["build"])
            .ok()
            .stderr_has("warning: `in.txt` changed while");
        if what == "deletes" {
            // The source is gone: the build file now names a missing source.
            s.kiln(&["build"]).status(2).stderr_is(concat!(
                "build.toml:3:10: error: missing source `in.txt` in `source` of generator `out.txt`\n",
                "  |\n",
                "3 | source = \"in.txt\"\n",
                "  |          ^^^^^^^^\n",
                "  = no such file, and no generator declares it as a target\n",
            ));
        } else {
            // Not recorded: it runs again (and changes its input again).
            let run = s.kiln(&["build"]).ok();
            assert_eq!(run.ran_outputs().len(), 1, "{what}: {}", run.stderr);
        }
    }
}

#[test]
fn an_output_written_by_a_failing_command_is_not_trusted() {
    let s = Space::new();
    s.write("in.txt", "x\n");
    s.write(
        "build.toml",
        "[[gen]]\nrun = \"cp ${SRC} ${TGT}; test -e ok\"\nsource = \"in.txt\"\ntarget = \"out.txt\"\n",
    );
    s.kiln(&["build"]).status(1);
    assert!(
        s.exists("build/out.txt"),
        "the command wrote it before failing"
    );
    s.write("ok", "");
    let run = s.kiln(&["build"]).ok();
    assert_eq!(run.ran_outputs().len(), 1, "runs again: {}", run.stderr);
    s.kiln(&["build"]).ok();
    assert!(s.kiln(&["build"]).ok().ran().is_empty());
}

#[test]
fn a_command_that_never_ends_is_killed_after_the_timeout() {
    let s = Space::new();
    s.write(
        "build.toml",
        "[[gen]]\nrun = \"sleep 60 & echo $! > bg.pid; sleep 60; wait\"\ntarget = \"never\"\n[[gen]]\nrun = \"touch ${TGT}\"\ntarget = \"quick\"\n",
    );
    let t = Instant::now();
    let run = s.kiln(&["build", "-k", "--timeout", "0.5"]).status(1);
    // Killed at the deadline, group and all: not after the second's grace for stray processes.
    assert!(
        t.elapsed() < Duration::from_millis(1400),
        "{:?}",
        t.elapsed()
    );
    assert!(
        run.stderr
            .contains("error: task failed (timed out after 0.5s): "),
        "{}",
        run.stderr
    );
    assert!(
        gone_within(&s, "bg.pid", Duration::from_millis(200)),
        "the command's background child outlived the timeout"
    );
    assert!(s.exists("build/quick"));
    for bad in ["0", "1e-12", "-1", "soon"] {
        s.kiln(&["build", &format!("--timeout={bad}")])
            .status(2)
            .stderr_has("expected a number of seconds from 0.001 up");
    }
}

#[test]
fn hundreds_of_megabytes_of_output_keep_memory_bounded() {
    let s = Space::new();
    s.write(
        "build.toml",
        "[[gen]]\nrun = \"head -c 300000000 /dev/zero | tr '\\\\0' x; echo; echo the-end; exit 3\"\ntarget = \"never\"\n",
    );
    let run = s.kiln(&["build", "-d", "stats"]).status(1);
    let stderr = run.stderr.clone();
    // The failure shows the tail, and names the log that keeps the whole output.
    assert!(stderr.contains("the-end"), "tail shown");
    assert!(stderr.len() < 4 << 20, "only a tail is printed");
    let log = std::fs::read_dir(s.path("build/.kiln/logs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| stderr.contains(p.file_name().unwrap().to_str().unwrap()))
        .expect("the log file is named");
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(size > 300_000_000, "the whole output is kept: {size}");
    // kiln's resident memory stayed far below the output's size (its own peak, as the kernel
    // counts it, from -d stats).
    let peak_kib: u64 = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("peak memory"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("-d stats gives the peak");
    assert!(peak_kib < 100 * 1024, "peak {peak_kib} KiB");
}

#[test]
fn hostile_build_files_get_clear_errors() {
    // Empty: nothing to do.
    let s = Space::new();
    s.write("build.toml", "");
    s.kiln(&["build"]).ok().stderr_has("declares no generators");

    // Duplicate keys: the second is pointed at.
    s.write(
        "build.toml",
        "[[gen]]\nrun = \"x\"\nrun = \"y\"\ntarget = \"t\"\n",
    );
    s.kiln(&["build"]).status(2).stderr_is(concat!(
        "build.toml:3:1: error: duplicate key `run`\n",
        "  |\n",
        "3 | run = \"y\"\n",
        "  | ^^^\n",
        "  = each key may appear once in a table\n",
    ));

    // Deeply nested values: an error, not a crash.
    let deep = format!(
        "[env]\nX = {}1{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    s.write("build.toml", &deep);
    // The 200,000-character line is shown as a window of 100 characters around the place.
    s.kiln(&["build"]).status(2).stderr_is(&format!(
        concat!(
            "build.toml:2:85: error: invalid TOML: cannot recurse further; max recursion depth met\n",
            "  |\n",
            "2 | ...{}...\n",
            "  | {}^\n",
        ),
        "[".repeat(100),
        " ".repeat(3 + 50),
    ));
    let inline = format!(
        "[env]\nX = {}1{}\n",
        "{a=".repeat(50_000),
        "}".repeat(50_000)
    );
    s.write("build.toml", &inline);
    s.kiln(&["build"]).status(2).stderr_is(&format!(
        concat!(
            "build.toml:2:245: error: invalid TOML: cannot recurse further; max recursion depth met\n",
            "  |\n",
            "2 | ...{}...\n",
            "  | {}^\n",
        ),
        &"a={".repeat(34)[..100],
        " ".repeat(3 + 50),
    ));

    // 50 MB: of comments, it parses; of bytes that are not UTF-8, an error with a place.
    let mut big = String::with_capacity(50 << 20);
    while big.len() < 50 << 20 {
        big.push_str("# a comment line that pads the build file to fifty megabytes\n");
    }
    big.push_str("[[gen]]\nrun = \"touch ${TGT}\"\ntarget = \"t\"\n");
    s.write("build.toml", &big);
    s.kiln(&["build"]).ok();
    let mut bad = big.into_bytes();
    bad.extend_from_slice(b"# \xff\n");
    s.write("build.toml", &bad);
    s.kiln(&["build"]).status(2).stderr_is(concat!(
        "build.toml:859493:3: error: the build file is not valid UTF-8\n",
        "       |\n",
        "859493 | # \u{fffd}\n",
        "       |   ^\n",
    ));
}

#[test]
fn a_daemon_left_by_a_successful_build_does_not_hold_the_lock() {
    // A task that leaves a process behind (a compiler server, `setsid cmd &`).
    let s = Space::new();
    s.write(
        "build.toml",
        "[[gen]]\nrun = \"setsid sleep 4 </dev/null >/dev/null 2>&1 & echo $! > daemon.pid; touch ${TGT}\"\ntarget = \"x\"\n\
         [[gen]]\nname = \"y\"\nrun = \"touch ${TGT}\"\nsource = [\"input\"]\ntarget = \"y\"\n",
    );
    s.write("input", "1");
    s.kiln(&["build"]).ok();
    s.write("input", "2");
    let started = Instant::now();
    let run = s.kiln(&["build", "--no-wait"]).ok();
    assert!(!run.stderr.contains("waiting"), "{}", run.stderr);
    assert_eq!(run.ran_outputs(), crate::support::set(&["build/y"]));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the build waited for the daemon"
    );
    // The daemon is still there: it was not waited for, nor killed.
    assert!(!gone_within(&s, "daemon.pid", Duration::ZERO));
    let _ = Command::new("kill")
        .arg(s.read("daemon.pid").trim())
        .status();
}

#[test]
fn commands_of_a_killed_kiln_are_waited_for_before_the_next_build_starts() {
    let s = Space::new();
    s.write(
        "build.toml",
        "[[gen]]\nrun = \"echo $$ > slow.pid; sleep 1.5; echo slow-end >> log; touch ${TGT}\"\ntarget = \"slow\"\n\
         [[gen]]\nname = \"y\"\nrun = \"echo y-start >> log; touch ${TGT}\"\nsource = [\"input\"]\ntarget = \"y\"\n",
    );
    s.write("input", "1");
    s.kiln(&["build", "--targets", "y"]).ok();
    std::fs::remove_file(s.path("log")).unwrap();
    s.write("input", "2");
    let mut first = spawn_kiln(&s, &["build", "-j1", "--targets", "slow"]);
    wait_for(&s, "slow.pid");
    first.kill().unwrap();
    first.wait().unwrap();
    let refused = s.kiln(&["build", "--no-wait", "--targets", "y"]).status(2);
    assert!(
        refused
            .stderr
            .contains("commands that a killed kiln left running in build/ have not ended"),
        "{}",
        refused.stderr
    );
    let run = s.kiln(&["build", "--targets", "y"]).ok();
    assert!(
        run.stderr
            .contains("waiting for commands that a killed kiln left running in build/ to end"),
        "{}",
        run.stderr
    );
    // The orphan ended before the next build started its task.
    assert_eq!(s.lines("log"), vec!["slow-end", "y-start"]);
}
