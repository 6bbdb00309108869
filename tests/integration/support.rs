//! The test harness: a [`Space`] is a temporary project directory; [`Test`] is a builder in the
//! style of just's tests that writes files, runs the real `kiln` binary and checks what it did.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const KILN: &str = env!("CARGO_BIN_EXE_kiln");

/// A temporary project directory.
pub struct Space {
    dir: tempfile::TempDir,
}

impl Default for Space {
    fn default() -> Self {
        Space::new()
    }
}

impl Space {
    pub fn new() -> Space {
        Space {
            dir: tempfile::Builder::new()
                .prefix("kiln-test-")
                .tempdir()
                .expect("a temporary directory"),
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file, creating its directories.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> &Space {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&p, contents).expect("write");
        self
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).symlink_metadata().is_ok()
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.path(rel)).expect("remove");
    }

    /// Runs kiln in the project root.
    pub fn kiln(&self, args: &[&str]) -> Run {
        self.kiln_in(".", args)
    }

    /// Runs kiln in a subdirectory of the project.
    pub fn kiln_in(&self, dir: &str, args: &[&str]) -> Run {
        self.kiln_with(dir, args, &[])
    }

    /// Runs kiln in a subdirectory with environment variables set (`Some`) or removed (`None`).
    pub fn kiln_with(&self, dir: &str, args: &[&str], env: &[(&str, Option<&str>)]) -> Run {
        let mut cmd = Command::new(KILN);
        cmd.args(args)
            .current_dir(self.path(dir))
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .env_remove("DESTDIR")
            // A make running the tests does not lend its jobserver to them.
            .env_remove("MAKEFLAGS")
            .stdin(Stdio::null());
        for (k, v) in env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let out = cmd.output().expect("kiln runs");
        Run {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            root: self.root().to_path_buf(),
        }
    }

    /// Lines of a file, for logs commands append to.
    pub fn lines(&self, rel: &str) -> Vec<String> {
        if !self.exists(rel) {
            return Vec::new();
        }
        self.read(rel).lines().map(str::to_string).collect()
    }
}

/// What one kiln run did.
#[derive(Debug)]
pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    /// The project root, shown as `[ROOT]` by [`Run::stderr_is`].
    root: PathBuf,
}

impl Run {
    /// Asserts the exit status, showing the output when it differs.
    pub fn status(self, expected: i32) -> Run {
        assert_eq!(
            self.status, expected,
            "exit status\n--- stderr\n{}--- stdout\n{}",
            self.stderr, self.stdout
        );
        self
    }

    pub fn ok(self) -> Run {
        self.status(0)
    }

    pub fn stderr_has(self, text: &str) -> Run {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}\n--- stderr\n{}",
            self.stderr
        );
        self
    }

    /// Asserts the whole of stderr, with the project root written `[ROOT]`, showing the two line
    /// by line where they differ.
    pub fn stderr_is(self, expected: &str) -> Run {
        let actual = self.stderr_with_root_hidden();
        assert!(
            actual == expected,
            "stderr differs (- expected, + actual; `\\t` and `$` show tabs and line ends)\n{}",
            line_diff(expected, &actual)
        );
        self
    }

    /// Stderr with the project root, as given or with symlinks resolved, replaced by `[ROOT]`.
    fn stderr_with_root_hidden(&self) -> String {
        let mut text = self.stderr.clone();
        // The resolved path first: the given one may be part of it (`/tmp` in `/private/tmp`).
        let roots = [self.root.canonicalize().ok(), Some(self.root.clone())];
        for root in roots.iter().flatten() {
            if let Some(root) = root.to_str() {
                text = text.replace(root, "[ROOT]");
            }
        }
        text
    }

    pub fn stderr_lacks(self, text: &str) -> Run {
        assert!(
            !self.stderr.contains(text),
            "stderr has {text:?}\n--- stderr\n{}",
            self.stderr
        );
        self
    }

    /// A count that `-d stats` prints (`files parsed`, `tasks decided`...); 0 when it is not
    /// shown.
    pub fn stats_count(&self, name: &str) -> u64 {
        self.stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map_or(0, |n| n.trim().parse().unwrap())
    }

    /// The `[n/N] rule: inputs -> outputs` lines, without their counters, in order.
    pub fn ran(&self) -> Vec<String> {
        self.stderr
            .lines()
            .filter_map(|l| {
                l.strip_prefix('[')
                    .and_then(|r| r.split_once("] "))
                    .map(|(_, rest)| rest.to_string())
            })
            .collect()
    }

    /// The outputs of the tasks that ran (or, for tasks without outputs, their rule).
    pub fn ran_outputs(&self) -> BTreeSet<String> {
        self.ran()
            .iter()
            .flat_map(|l| match l.split_once(" -> ") {
                Some((_, outs)) => outs.split(' ').map(str::to_string).collect::<Vec<_>>(),
                None => vec![l.split(':').next().unwrap_or("").to_string()],
            })
            .collect()
    }

    /// The `[n/N]` counters, in order.
    pub fn counters(&self) -> Vec<(usize, usize)> {
        self.stderr
            .lines()
            .filter_map(|l| {
                let (nums, _) = l.strip_prefix('[')?.split_once("] ")?;
                let (n, total) = nums.split_once('/')?;
                Some((n.parse().ok()?, total.parse().ok()?))
            })
            .collect()
    }

    /// The last line of stderr: the summary.
    pub fn summary(&self) -> &str {
        self.stderr.lines().last().unwrap_or("")
    }
}

/// `expected` and `actual` side by side, one line each where they agree, a `-`/`+` pair where they
/// do not.
fn line_diff(expected: &str, actual: &str) -> String {
    let shown = |line: Option<&str>| match line {
        Some(l) => format!("{}$", l.replace('\t', "\\t")),
        None => "(no line)".to_string(),
    };
    let (mut e, mut a) = (expected.split('\n'), actual.split('\n'));
    let mut out = String::new();
    loop {
        match (e.next(), a.next()) {
            (None, None) => return out,
            (x, y) if x == y => out += &format!("  {}\n", shown(x)),
            (x, y) => out += &format!("- {}\n+ {}\n", shown(x), shown(y)),
        }
    }
}

/// Starts kiln in the background in the project root, its stderr piped.
pub fn spawn_kiln(s: &Space, args: &[&str]) -> std::process::Child {
    Command::new(KILN)
        .args(args)
        .current_dir(s.root())
        .env_remove("MAKEFLAGS")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kiln starts")
}

/// Starts kiln in the background in the project root with environment values set, its stdout
/// and stderr piped.
pub fn spawn_kiln_with(s: &Space, args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    Command::new(KILN)
        .args(args)
        .current_dir(s.root())
        .env_remove("MAKEFLAGS")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kiln starts")
}

/// Waits (up to ten seconds) for a file a command makes.
pub fn wait_for(s: &Space, rel: &str) {
    let start = std::time::Instant::now();
    while !s.exists(rel) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "{rel} never appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Whether the process whose pid a command wrote to `rel` is gone (or only a zombie) within
/// `within`.
pub fn gone_within(s: &Space, rel: &str, within: std::time::Duration) -> bool {
    let pid = s.read(rel).trim().to_string();
    let running = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|st| st.rsplit(") ").next().is_some_and(|r| !r.starts_with('Z')))
    };
    let until = std::time::Instant::now() + within;
    while running() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    !running()
}

/// Sets of output names, for comparing what ran.
pub fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A single-shot test: files, arguments, and what must come out.
pub struct Test {
    space: Space,
    args: Vec<String>,
    dir: String,
    status: i32,
    stderr: Vec<String>,
    stderr_is: Option<String>,
    stdout: Vec<String>,
}

impl Default for Test {
    fn default() -> Self {
        Test::new()
    }
}

impl Test {
    pub fn new() -> Test {
        Test {
            space: Space::new(),
            args: Vec::new(),
            dir: ".".into(),
            status: 0,
            stderr: Vec::new(),
            stderr_is: None,
            stdout: Vec::new(),
        }
    }

    pub fn file(self, path: &str, contents: &str) -> Test {
        self.space.write(path, contents);
        self
    }

    pub fn build_file(self, contents: &str) -> Test {
        self.file("build.toml", contents)
    }

    pub fn args(mut self, args: &[&str]) -> Test {
        self.args = args.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn current_dir(mut self, dir: &str) -> Test {
        std::fs::create_dir_all(self.space.path(dir)).expect("mkdir");
        self.dir = dir.into();
        self
    }

    pub fn status(mut self, status: i32) -> Test {
        self.status = status;
        self
    }

    pub fn stderr_has(mut self, text: &str) -> Test {
        self.stderr.push(text.into());
        self
    }

    /// Expects the whole of stderr to be `text`.
    pub fn stderr_is(mut self, text: &str) -> Test {
        self.stderr_is = Some(text.into());
        self
    }

    pub fn stdout_has(mut self, text: &str) -> Test {
        self.stdout.push(text.into());
        self
    }

    /// Runs kiln and checks the expectations; returns the space and the run for more checks.
    pub fn run(self) -> (Space, Run) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let mut run = self.space.kiln_in(&self.dir, &args).status(self.status);
        if let Some(expected) = &self.stderr_is {
            run = run.stderr_is(expected);
        }
        for s in &self.stderr {
            assert!(
                run.stderr.contains(s.as_str()),
                "stderr lacks {s:?}\n--- stderr\n{}",
                run.stderr
            );
        }
        for s in &self.stdout {
            assert!(
                run.stdout.contains(s.as_str()),
                "stdout lacks {s:?}\n--- stdout\n{}",
                run.stdout
            );
        }
        (self.space, run)
    }
}

/// The highest number of tasks running at once, from a log where each task writes `start NAME`
/// and `end NAME` lines.
pub fn max_overlap(log: &[String]) -> usize {
    let mut running = 0usize;
    let mut highest = 0;
    for line in log {
        if line.starts_with("start") {
            running += 1;
            highest = highest.max(running);
        } else if line.starts_with("end") {
            running -= 1;
        }
    }
    highest
}

/// A command that logs its start and end around a sleep, then makes its target.
pub fn timed(name: &str, secs: f64) -> String {
    format!("echo start {name} >> log; sleep {secs}; echo end {name} >> log; touch ${{TGT}}")
}

/// Independent generators each running [`timed`] for `secs`, targets `t0`, `t1`, ...
pub fn parallel_tasks(n: usize, secs: f64) -> String {
    (0..n)
        .map(|i| {
            format!(
                "[[gen]]\nrun = \"{}\"\ntarget = \"t{i}\"\n",
                timed(&format!("t{i}"), secs)
            )
        })
        .collect()
}

/// A loopback port nothing listens on (bound, then let go).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}
