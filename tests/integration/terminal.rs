//! The terminal as a person sees it: the real kiln binary in a tmux pane of 80 or 200 columns, the
//! pane's text captured while the build runs and after it; and `--color` on a pipe and on a
//! terminal. Each pane has a tmux server of its own (its socket in a temporary directory of its
//! own), killed when the pane is dropped, so that the tests run in parallel.

use crate::support::{KILN, Space};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// How long a test waits for what it expects to see.
const PATIENCE: Duration = Duration::from_secs(10);

/// A tmux pane running one shell command in a project.
struct Pane {
    /// Holds the server's socket and configuration.
    dir: tempfile::TempDir,
}

impl Pane {
    /// Starts `kiln ARGS` in the project's root in a pane of `cols` by `rows`, with `env` set
    /// (NO_COLOR, CLICOLOR_FORCE and MAKEFLAGS removed first). The shell writes kiln's exit
    /// status to `status` in the project and stays (a while) so that the pane can be read. It
    /// catches SIGINT itself, so that Ctrl-C reaches kiln and leaves the shell to write the status.
    fn start(s: &Space, cols: usize, rows: usize, args: &str, env: &str) -> Pane {
        let dir = tempfile::Builder::new()
            .prefix("kiln-tmux-")
            .tempdir()
            .expect("a temporary directory");
        let conf = dir.path().join("tmux.conf");
        std::fs::write(
            &conf,
            "set -g status off\nset -g default-shell /bin/sh\nset -g history-limit 10000\n",
        )
        .expect("write tmux.conf");
        let root = s.root().display().to_string();
        let command = format!(
            "trap : INT; cd '{root}' && env -u NO_COLOR -u CLICOLOR_FORCE -u MAKEFLAGS {env} \
             '{KILN}' {args}; echo $? > status.tmp; mv status.tmp status; exec sleep 60"
        );
        let pane = Pane { dir };
        let out = pane
            .tmux()
            .args(["-f", &conf.display().to_string(), "new-session", "-d"])
            .args(["-x", &cols.to_string(), "-y", &rows.to_string()])
            .args(["-s", "kiln", &command])
            .output()
            .unwrap_or_else(|e| panic!("tmux does not run ({e}); scripts/test-setup installs it"));
        assert!(out.status.success(), "tmux new-session: {out:?}");
        pane
    }

    fn tmux(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(self.socket());
        cmd
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// The pane's text, wrapped lines joined (a line wider than the pane shows as one line).
    fn text(&self) -> String {
        self.capture(&["-J"])
    }

    /// The pane's text with its colours and attributes as escape sequences.
    fn escapes(&self) -> String {
        self.capture(&["-e"])
    }

    fn capture(&self, how: &[&str]) -> String {
        let out: Output = self
            .tmux()
            .args(["capture-pane", "-p", "-t", "kiln"])
            .args(how)
            .output()
            .expect("tmux capture-pane");
        assert!(out.status.success(), "tmux capture-pane: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits for the pane to show what `seen` accepts; the text it accepted.
    fn wait_for(&self, what: &str, seen: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let text = self.text();
            if seen(&text) {
                return text;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "the pane never showed {what}; it shows:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn keys(&self, keys: &str) {
        let out = self
            .tmux()
            .args(["send-keys", "-t", "kiln", keys])
            .output()
            .expect("tmux send-keys");
        assert!(out.status.success(), "tmux send-keys: {out:?}");
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = self.tmux().arg("kill-server").output();
    }
}

/// Waits for kiln's exit status, which the pane's shell writes when kiln ends.
fn exit_status(s: &Space) -> i32 {
    let start = Instant::now();
    while !s.exists("status") {
        assert!(start.elapsed() < PATIENCE, "kiln never ended");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = s.read("status");
    s.remove("status");
    status.trim().parse().expect("a status")
}

/// The live display in the pane's text: the status line (`[n/N] R running, ...`) and the lines
/// under it; None when there is none.
fn display(text: &str) -> Option<Vec<&str>> {
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    let at = lines.iter().rposition(|l| status(l).is_some())?;
    let end = lines.iter().rposition(|l| !l.is_empty()).unwrap_or(at);
    Some(lines[at..=end].to_vec())
}

/// A status line's finished count, total and running count.
fn status(line: &str) -> Option<(usize, usize, usize)> {
    let (counter, rest) = line.strip_prefix('[')?.split_once("] ")?;
    let (n, total) = counter.split_once('/')?;
    let (running, rest) = rest.split_once(" running, ")?;
    rest.contains(" elapsed").then_some(())?;
    Some((n.parse().ok()?, total.parse().ok()?, running.parse().ok()?))
}

/// A running task's line, `  rule: inputs -> outputs   1.2s`: the task and its time in seconds.
fn running_task(line: &str) -> Option<(&str, f64)> {
    let line = line.strip_prefix("  ")?;
    let (task, time) = line.rsplit_once("   ")?;
    Some((task, time.strip_suffix('s')?.parse().ok()?))
}

/// Four slow tasks with long names, each printing a line, in a rule with a colour.
fn slow_project() -> Space {
    let s = Space::new();
    for i in 1..=4 {
        s.write(
            &format!("src/a_source_file_with_a_rather_long_name_number_{i}.txt"),
            "1\n",
        );
    }
    s.write(
        "build.toml",
        "[rule.slow]\nrun = \"sleep 1.5; echo made ${TGT}; cp ${SRC} ${TGT}\"\n\
         ext_in = [\".txt\"]\next_out = [\".out\"]\ncolor = \"green\"\n\
         [[gen]]\nname = \"outs\"\nsource = [\"src/*.txt\"]\n",
    );
    s
}

/// A build at -j2 in a pane `cols` wide: while it runs, the status line counts, the two running
/// tasks show with their times, and no line is wider than the pane (at 80 columns the tasks are
/// cut, at 200 they are whole); after, each task's output is under its line, the summary is last
/// and nothing of the display is left. The next build, with the durations recorded, shows an ETA.
fn a_build_shows_its_running_tasks(cols: usize) {
    let s = slow_project();
    let pane = Pane::start(&s, cols, 24, "-j2", "");
    let text = pane.wait_for("two running tasks with their times", |t| {
        display(t).is_some_and(|d| {
            d.iter().filter_map(|l| running_task(l)).count() == 2 && d[1..].len() == 2
        })
    });
    let shown = display(&text).unwrap();
    let (n, total, running) = status(shown[0]).unwrap();
    assert!(n <= 2 && total == 4 && running == 2, "{text}");
    assert!(shown[0].contains(" elapsed"), "{text}");
    assert!(
        !shown[0].contains("ETA"),
        "no duration is known yet, so no ETA: {text}"
    );
    for line in &shown {
        assert!(
            line.chars().count() < cols,
            "a line wider than the pane:\n{text}"
        );
    }
    for line in &shown[1..] {
        let (task, secs) = running_task(line).unwrap();
        assert!(task.starts_with("slow: "), "{text}");
        assert!((0.0..10.0).contains(&secs), "{text}");
        let whole = task.contains(".txt -> build/src/") && task.ends_with(".out");
        assert_eq!(whole, cols == 200, "cut at 80 columns only: {text}");
        if cols == 80 {
            assert!(task.contains("..."), "{text}");
        }
    }
    assert_eq!(exit_status(&s), 0);
    let text = pane.text();
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    let last = lines.iter().rposition(|l| !l.is_empty()).unwrap();
    assert!(
        lines[last].starts_with("'build' finished successfully ("),
        "{text}"
    );
    assert!(display(&text).is_none(), "the display is left:\n{text}");
    for i in 1..=4 {
        let out = format!("build/src/a_source_file_with_a_rather_long_name_number_{i}.out");
        let heading =
            format!("slow: src/a_source_file_with_a_rather_long_name_number_{i}.txt -> {out}");
        let at = lines.iter().position(|l| *l == heading);
        let at = at.unwrap_or_else(|| panic!("no heading {heading}:\n{text}"));
        assert_eq!(lines[at + 1], format!("made {out}"), "{text}");
    }
    drop(pane);

    // Again, with each task's duration recorded.
    for i in 1..=4 {
        s.write(
            &format!("src/a_source_file_with_a_rather_long_name_number_{i}.txt"),
            "2\n",
        );
    }
    let pane = Pane::start(&s, cols, 24, "-j2", "");
    let text = pane.wait_for("an ETA", |t| {
        display(t).is_some_and(|d| d[0].contains(", ETA "))
    });
    let line = display(&text).unwrap()[0];
    let eta = line.rsplit_once(", ETA ").unwrap().1;
    let secs: u64 = eta.strip_suffix('s').unwrap().parse().unwrap();
    // Four tasks of about 1.5s on two slots: about 3s at first, less later; never nothing, and
    // nowhere near the 30s a wrong sum would give.
    assert!((1..=8).contains(&secs), "{text}");
    assert_eq!(exit_status(&s), 0);
}

#[test]
fn a_build_on_80_columns_shows_its_running_tasks_cut_to_fit_and_then_an_eta() {
    a_build_shows_its_running_tasks(80);
}

#[test]
fn a_build_on_200_columns_shows_its_running_tasks_whole_and_then_an_eta() {
    a_build_shows_its_running_tasks(200);
}

#[test]
fn running_tasks_beyond_a_third_of_the_height_are_counted_not_listed() {
    let s = Space::new();
    let mut text = String::new();
    for i in ["a", "b", "c", "d", "e", "f", "g", "h"] {
        text.push_str(&format!(
            "[[gen]]\nname = \"{i}\"\nrule = \"wait\"\ntarget = \"{i}\"\n"
        ));
    }
    s.write(
        "build.toml",
        format!("[rule.wait]\nrun = \"sleep 2; touch ${{TGT}}\"\n{text}"),
    );
    // 12 rows: four lines for tasks, the last of them saying how many more run.
    let pane = Pane::start(&s, 80, 12, "-j8", "");
    let text = pane.wait_for("eight running tasks", |t| {
        display(t).is_some_and(|d| status(d[0]).is_some_and(|(_, _, r)| r == 8))
    });
    let shown = display(&text).unwrap();
    assert_eq!(shown.len(), 5, "{text}");
    assert!(
        shown[1..4].iter().all(|l| running_task(l).is_some()),
        "{text}"
    );
    assert_eq!(shown[4], "  ... and 5 more", "{text}");
    assert_eq!(exit_status(&s), 0);
}

#[test]
fn a_failing_task_is_reported_above_and_the_display_ends_with_the_summary() {
    for cols in [80, 200] {
        let s = Space::new();
        s.write(
            "build.toml",
            "[rule.slow]\nrun = \"sleep 2; echo slow done; touch ${TGT}\"\n\
             [rule.bad]\nrun = \"sleep 0.5; echo 'oops: it broke' >&2; exit 3\"\n\
             [[gen]]\nname = \"one\"\nrule = \"slow\"\ntarget = \"one\"\n\
             [[gen]]\nname = \"broken\"\nrule = \"bad\"\ntarget = \"never-made\"\n",
        );
        let pane = Pane::start(&s, cols, 24, "-j2", "");
        pane.wait_for("two running tasks", |t| {
            display(t).is_some_and(|d| status(d[0]).is_some_and(|(_, _, r)| r == 2))
        });
        assert_eq!(exit_status(&s), 1);
        let text = pane.text();
        let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
        let report = lines
            .iter()
            .position(|l| *l == "error: task failed (exit status 3): bad: -> build/never-made")
            .unwrap_or_else(|| panic!("no failure report:\n{text}"));
        assert_eq!(
            lines[report + 1..report + 3],
            [
                "command: sleep 0.5; echo 'oops: it broke' >&2; exit 3",
                "oops: it broke"
            ],
            "{text}"
        );
        // The report names the task: its output has no second heading.
        assert_eq!(
            text.matches("bad: -> build/never-made").count(),
            1,
            "{text}"
        );
        // The task that was running finished and printed under its line.
        let one = lines.iter().position(|l| *l == "slow: -> build/one");
        assert_eq!(lines[one.unwrap() + 1], "slow done", "{text}");
        let last = lines.iter().rposition(|l| !l.is_empty()).unwrap();
        assert_eq!(
            lines[last], "'build' failed: 1 task failed, 0 not run",
            "{text}"
        );
        assert!(display(&text).is_none(), "the display is left:\n{text}");
        assert!(!text.contains("  slow:"), "a running task is left:\n{text}");
    }
}

#[test]
fn ctrl_c_clears_the_display_and_says_the_build_was_interrupted() {
    let s = Space::new();
    s.write(
        "build.toml",
        "[rule.long]\nrun = \"sleep 30; touch ${TGT}\"\n\
         [[gen]]\nname = \"one\"\nrule = \"long\"\ntarget = \"one\"\n\
         [[gen]]\nname = \"two\"\nrule = \"long\"\ntarget = \"two\"\n\
         [[gen]]\nname = \"three\"\nrule = \"long\"\ntarget = \"three\"\n",
    );
    for cols in [80, 200] {
        let pane = Pane::start(&s, cols, 24, "-j2", "");
        pane.wait_for("two running tasks", |t| {
            display(t).is_some_and(|d| d.iter().filter(|l| running_task(l).is_some()).count() == 2)
        });
        pane.keys("C-c");
        // Within the patience, well before the commands' 30s.
        assert_eq!(exit_status(&s), 130);
        let text = pane.text();
        assert!(
            text.contains("interrupted by SIGINT: stopping the running commands"),
            "{text}"
        );
        let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
        let last = lines.iter().rposition(|l| !l.is_empty()).unwrap();
        assert_eq!(
            lines[last], "'build' interrupted by SIGINT: 3 not run",
            "{text}"
        );
        assert!(display(&text).is_none(), "the display is left:\n{text}");
        assert!(!text.contains("  long:"), "a running task is left:\n{text}");
    }
}

/// A rule in green whose task prints a line after a moment (so that the display is drawn).
fn green_project() -> Space {
    let s = Space::new();
    s.write(
        "build.toml",
        "[rule.r]\nrun = \"sleep 0.5; echo hello; touch ${TGT}\"\ncolor = \"green\"\n\
         [[gen]]\nrule = \"r\"\nname = \"x\"\ntarget = \"x\"\n",
    );
    s
}

#[test]
fn color_always_colours_a_pipe_and_never_and_no_color_keep_a_terminal_plain() {
    // On a pipe: plain lines whatever the colour.
    let s = green_project();
    let plain = s.kiln(&[]).ok();
    assert!(
        plain
            .stderr
            .starts_with("[1/1] r: -> build/x\nhello\n'build' finished successfully ("),
        "{:?}",
        plain.stderr
    );
    assert!(!plain.stderr.contains('\x1b'), "{:?}", plain.stderr);
    s.kiln(&["clean"]).ok();
    let always = s.kiln_with(".", &["--color", "always"], &[("NO_COLOR", Some("1"))]);
    let always = always.ok();
    assert!(
        always
            .stderr
            .starts_with("[1/1] \x1b[32mr\x1b[0m: -> build/x\nhello\n"),
        "{:?}",
        always.stderr
    );
    s.kiln(&["clean"]).ok();
    let never = s.kiln_with(
        ".",
        &["build", "--color", "never"],
        &[("CLICOLOR_FORCE", Some("1"))],
    );
    assert!(
        never.ok().stderr.starts_with("[1/1] r: -> build/x\n"),
        "--color never wins over CLICOLOR_FORCE"
    );

    // On a terminal: colour by default, none with --color never or NO_COLOR.
    for (args, env, coloured) in [
        ("", "", true),
        ("--color never", "", false),
        ("", "NO_COLOR=1", false),
        ("--color always", "NO_COLOR=1", true),
    ] {
        s.kiln(&["clean"]).ok();
        let pane = Pane::start(&s, 80, 24, args, env);
        // The display, drawn while the task runs, is coloured too: its counter in bold.
        let drawn = Instant::now();
        let mut display_escapes = String::new();
        while drawn.elapsed() < PATIENCE && display_escapes.is_empty() {
            let escapes = pane.escapes();
            if escapes.contains(" running, ") {
                display_escapes = escapes;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !display_escapes.is_empty(),
            "no display drawn: {args} {env}"
        );
        assert_eq!(
            display_escapes.contains("\x1b[1m[0/1]"),
            coloured,
            "{args} {env}: {display_escapes:?}"
        );
        assert_eq!(exit_status(&s), 0);
        let escapes = pane.escapes();
        let text: Vec<String> = pane
            .text()
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect();
        assert!(
            text.windows(2).any(|w| w == ["r: -> build/x", "hello"]),
            "{text:?}"
        );
        assert_eq!(
            escapes.contains("\x1b[32mr"),
            coloured,
            "{args} {env}: {escapes:?}"
        );
        if !coloured {
            assert!(!escapes.contains('\x1b'), "{args} {env}: {escapes:?}");
        }
    }
}
