//! Incremental builds are right and minimal, on random task graphs and random edit sequences.
//!
//! Each case generates a project (sources, headers reached through depfiles, a glob, several groups,
//! chains, diamonds and shared inputs, tasks with several outputs or none, `always` tasks, an env
//! value) and a sequence of edits (change a source's bytes, touch it without change, restore an
//! older copy with its older mtime, rewrite it with the same size and mtime, delete or alter an
//! output, change a command, change an env value, add or remove a file under a glob, delete a
//! header). After the first build and after every edit, the real kiln binary builds the project
//! incrementally, and a clean build runs in a fresh directory. The oracle is [`Model`]: a naive
//! model, written here, that knows what each command computes and recomputes every task whose
//! inputs' content, command or implicit dependencies differ from its last run. Both builds'
//! outputs must equal the model's byte for byte, and the incremental build must run exactly the
//! tasks the model reruns, each once.

use crate::support::{KILN, Space};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

/// Cases CI runs; `PROPTEST_CASES` may raise it, never lower it.
const CASES: u32 = 320;
const SOURCES: usize = 4;
const HEADERS: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Concat,
    Upper,
    Size,
    NoDigits,
    Split,
    Include,
    Env,
    Const,
    Glob,
    Always,
}

impl Kind {
    fn rule(self) -> &'static str {
        match self {
            Kind::Concat => "concat",
            Kind::Upper => "upper",
            Kind::Size => "size",
            Kind::NoDigits => "nodigits",
            Kind::Split => "split",
            Kind::Include => "include",
            Kind::Env => "env",
            Kind::Const => "const",
            Kind::Glob => "glob",
            Kind::Always => "always",
        }
    }

    fn outputs(self) -> usize {
        if self == Kind::Split { 2 } else { 1 }
    }

    fn takes_inputs(self) -> bool {
        !matches!(self, Kind::Const | Kind::Glob)
    }
}

/// The rules every generated project has. `V` only changes the command; `W` changes the output.
const RULES: &str = r#"
[env]
MODE = "m"
V = "0"
W = "0"

[[group]]
name = "g0"
[[group]]
name = "g1"
[[group]]
name = "g2"

[rule.concat]
run = "cat ${SRC} > ${TGT}; echo w${W} >> ${TGT}; : v${V}"
[rule.upper]
run = "cat ${SRC} | tr a-z A-Z > ${TGT}; echo w${W} >> ${TGT}; : v${V}"
[rule.size]
run = "cat ${SRC} | wc -c > ${TGT}; : v${V}"
[rule.nodigits]
run = "cat ${SRC} | tr -d 0-9 > ${TGT}; : v${V}"
[rule.split]
run = "cat ${SRC} | head -c 3 > ${TGT[0]}; cat ${SRC} | tail -c +4 > ${TGT[1]}; : v${V}"
[rule.include]
run = "cat ${SRC} > ${TGT}.in; : > ${TGT}; printf '%s:' ${TGT} > ${TGT}.d; for h in $(sed -n 's/^inc://p' ${TGT}.in); do if [ -f $h ]; then cat $h >> ${TGT}; fi; printf ' %s' $h >> ${TGT}.d; done; echo >> ${TGT}.d; echo w${W} >> ${TGT}; : v${V}"
depfile = "${TGT}.d"
[rule.env]
run = "printf '%s\\n' '${MODE}' | cat - ${SRC} > ${TGT}; : v${V}"
[rule.const]
run = "echo const${W} > ${TGT}; : v${V}"
[rule.glob]
run = "cat ${SRC} > ${TGT}; : v${V}"
[rule.always]
run = "cat ${SRC} > ${TGT}"
always = true
"#;

#[derive(Clone, Debug)]
enum Input {
    Source(usize),
    Output(usize, usize),
}

#[derive(Clone, Debug)]
struct TaskSpec {
    kind: Kind,
    inputs: Vec<Input>,
    group: usize,
}

#[derive(Clone, Debug)]
enum Edit {
    Change(Index, String),
    Touch(Index),
    Restore(Index, Index),
    SameSizeSameMtime(Index),
    DeleteOutput(Index, Index),
    AlterOutput(Index, Index),
    Command(Index),
    Env(String),
    AddGlob(usize, String),
    RemoveGlob(Index),
    DeleteHeader(usize),
}

#[derive(Clone, Debug)]
struct Scenario {
    tasks: Vec<TaskSpec>,
    contents: Vec<String>,
    glob: Vec<String>,
    mode: String,
    edits: Vec<Edit>,
}

fn source_path(i: usize) -> String {
    if i < SOURCES {
        format!("src/s{i}.txt")
    } else {
        format!("inc/h{}.h", i - SOURCES)
    }
}

fn content() -> impl Strategy<Value = String> {
    let line = prop_oneof![3 => "[a-z0-9]{0,5}", 1 => (0..HEADERS).prop_map(|h| format!("inc:inc/h{h}.h"))];
    prop::collection::vec(line, 0..4)
        .prop_map(|lines| lines.iter().map(|l| format!("{l}\n")).collect())
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        3 => Just(Kind::Concat),
        2 => Just(Kind::Upper),
        2 => Just(Kind::Size),
        2 => Just(Kind::NoDigits),
        1 => Just(Kind::Split),
        3 => Just(Kind::Include),
        1 => Just(Kind::Env),
        1 => Just(Kind::Const),
        1 => Just(Kind::Glob),
        1 => Just(Kind::Always),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<Index>(), content()).prop_map(|(i, c)| Edit::Change(i, c)),
        2 => any::<Index>().prop_map(Edit::Touch),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(i, b)| Edit::Restore(i, b)),
        2 => any::<Index>().prop_map(Edit::SameSizeSameMtime),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(t, o)| Edit::DeleteOutput(t, o)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(t, o)| Edit::AlterOutput(t, o)),
        2 => any::<Index>().prop_map(Edit::Command),
        1 => "[a-z]{1,3}".prop_map(Edit::Env),
        1 => (0..4usize, content()).prop_map(|(n, c)| Edit::AddGlob(n, c)),
        1 => any::<Index>().prop_map(Edit::RemoveGlob),
        1 => (0..HEADERS).prop_map(Edit::DeleteHeader),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let task = (
        kind(),
        0..3usize,
        prop::collection::vec((any::<bool>(), any::<Index>(), any::<Index>()), 1..4),
    );
    (
        prop::collection::vec(task, 2..9),
        prop::collection::vec(content(), SOURCES + HEADERS),
        prop::collection::vec(content(), 0..3),
        "[a-z]{1,3}",
        prop::collection::vec(edit(), 1..6),
    )
        .prop_map(|(raw, contents, glob, mode, edits)| {
            let mut tasks: Vec<TaskSpec> = Vec::new();
            for (kind, group, picks) in raw {
                let mut inputs = Vec::new();
                let mut group = group;
                if kind.takes_inputs() {
                    for (from_task, a, b) in picks {
                        if from_task && !tasks.is_empty() {
                            let t = a.index(tasks.len());
                            group = group.max(tasks[t].group);
                            inputs.push(Input::Output(t, b.index(tasks[t].kind.outputs())));
                        } else {
                            inputs.push(Input::Source(a.index(SOURCES)));
                        }
                    }
                }
                tasks.push(TaskSpec {
                    kind,
                    inputs,
                    group,
                });
            }
            Scenario {
                tasks,
                contents,
                glob,
                mode,
                edits,
            }
        })
}

/// A task's output paths (kiln paths) and the targets as written in the build file.
fn targets(i: usize, kind: Kind) -> Vec<String> {
    if kind.outputs() == 2 {
        vec![format!("t{i}.a"), format!("t{i}.b")]
    } else {
        vec![format!("t{i}")]
    }
}

fn output_paths(i: usize, kind: Kind) -> Vec<String> {
    targets(i, kind)
        .iter()
        .map(|t| format!("build/{t}"))
        .collect()
}

/// What the last run of a task saw and made.
#[derive(Clone, Debug, PartialEq)]
struct Last {
    command: (u32, Option<String>),
    inputs: Vec<(String, Vec<u8>)>,
    implicit: Vec<(String, Option<Vec<u8>>)>,
    outputs: Vec<Vec<u8>>,
}

/// The oracle: what each command computes, and which tasks must run, recomputed naively.
struct Model {
    tasks: Vec<TaskSpec>,
    variants: Vec<u32>,
    mode: String,
    /// Source files (sources, headers, glob files) by path.
    files: BTreeMap<String, Vec<u8>>,
    /// Outputs as they are on disk.
    disk: BTreeMap<String, Vec<u8>>,
    last: Vec<Option<Last>>,
}

impl Model {
    fn input_paths(&self, i: usize) -> Vec<String> {
        let t = &self.tasks[i];
        let mut paths: Vec<String> = match t.kind {
            Kind::Glob => self
                .files
                .keys()
                .filter(|p| p.starts_with("src/g/") && p.ends_with(".txt"))
                .cloned()
                .collect(),
            _ => t
                .inputs
                .iter()
                .map(|inp| match inp {
                    Input::Source(s) => source_path(*s),
                    Input::Output(t, o) => output_paths(*t, self.tasks[*t].kind)[*o].clone(),
                })
                .collect(),
        };
        // A file listed twice counts once.
        let mut seen = BTreeSet::new();
        paths.retain(|p| seen.insert(p.clone()));
        paths
    }

    fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.files
            .get(path)
            .or_else(|| self.disk.get(path))
            .cloned()
    }

    /// Builds like a from-scratch recomputation of whatever changed; returns the tasks that ran.
    fn build(&mut self) -> BTreeSet<usize> {
        let mut ran = BTreeSet::new();
        for i in 0..self.tasks.len() {
            let kind = self.tasks[i].kind;
            let inputs: Vec<(String, Vec<u8>)> = self
                .input_paths(i)
                .into_iter()
                .map(|p| (p.clone(), self.read(&p).expect("inputs exist")))
                .collect();
            let command = (
                self.variants[i],
                (kind == Kind::Env).then(|| self.mode.clone()),
            );
            let outs = output_paths(i, kind);
            let needed = match &self.last[i] {
                None => true,
                Some(last) => {
                    kind == Kind::Always
                        || last.command != command
                        || last.inputs != inputs
                        || last
                            .implicit
                            .iter()
                            .any(|(p, c)| self.files.get(p) != c.as_ref())
                        || outs
                            .iter()
                            .zip(&last.outputs)
                            .any(|(p, c)| self.disk.get(p) != Some(c))
                }
            };
            if !needed {
                continue;
            }
            ran.insert(i);
            let all: Vec<u8> = inputs.iter().flat_map(|(_, c)| c.clone()).collect();
            let w = format!("w{}\n", self.variants[i] / 2);
            let mut implicit = Vec::new();
            let outputs: Vec<Vec<u8>> = match kind {
                Kind::Concat => vec![[all.clone(), w.into_bytes()].concat()],
                Kind::Upper => vec![[all.to_ascii_uppercase(), w.into_bytes()].concat()],
                Kind::Size => vec![format!("{}\n", all.len()).into_bytes()],
                Kind::NoDigits => vec![
                    all.iter()
                        .copied()
                        .filter(|b| !b.is_ascii_digit())
                        .collect(),
                ],
                Kind::Split => vec![
                    all[..all.len().min(3)].to_vec(),
                    all[all.len().min(3)..].to_vec(),
                ],
                Kind::Include => {
                    let text = String::from_utf8_lossy(&all).into_owned();
                    let mut out = Vec::new();
                    for line in text.lines() {
                        if let Some(h) = line.strip_prefix("inc:") {
                            let c = self.files.get(h).cloned();
                            if let Some(c) = &c {
                                out.extend_from_slice(c);
                            }
                            implicit.push((h.to_string(), c));
                        }
                    }
                    out.extend_from_slice(w.as_bytes());
                    vec![out]
                }
                Kind::Env => vec![[format!("{}\n", self.mode).into_bytes(), all.clone()].concat()],
                Kind::Const => vec![format!("const{}\n", self.variants[i] / 2).into_bytes()],
                Kind::Glob | Kind::Always => vec![all.clone()],
            };
            for (p, c) in outs.iter().zip(&outputs) {
                self.disk.insert(p.clone(), c.clone());
            }
            self.last[i] = Some(Last {
                command,
                inputs,
                implicit,
                outputs,
            });
        }
        ran
    }

    fn build_file(&self) -> String {
        let mut text = RULES.replace("MODE = \"m\"", &format!("MODE = \"{}\"", self.mode));
        for (i, t) in self.tasks.iter().enumerate() {
            let v = self.variants[i];
            text.push_str(&format!(
                "\n[[gen]]\nname = \"t{i}\"\ngroup = \"g{}\"\nrule = \"{}\"\n",
                t.group,
                t.kind.rule()
            ));
            let sources: Vec<String> = match t.kind {
                Kind::Glob => vec!["src/g/*.txt".to_string()],
                _ => t
                    .inputs
                    .iter()
                    .map(|inp| match inp {
                        Input::Source(s) => source_path(*s),
                        // Another generator's target, as written.
                        Input::Output(t, o) => targets(*t, self.tasks[*t].kind)[*o].clone(),
                    })
                    .collect(),
            };
            let quoted: Vec<String> = sources.iter().map(|s| format!("\"{s}\"")).collect();
            let tg: Vec<String> = targets(i, t.kind)
                .iter()
                .map(|s| format!("\"{s}\""))
                .collect();
            text.push_str(&format!(
                "source = [{}]\ntarget = [{}]\n",
                quoted.join(", "),
                tg.join(", ")
            ));
            if t.kind != Kind::Always {
                text.push_str(&format!("env = {{ V = \"{v}\", W = \"{}\" }}\n", v / 2));
            }
        }
        text
    }
}

/// Parses which tasks a run ran from its `[n/N]` lines, by their first output.
fn ran_tasks(stderr: &str) -> Result<Vec<usize>, String> {
    let mut ran = Vec::new();
    for line in stderr.lines() {
        let Some(rest) = line
            .strip_prefix('[')
            .and_then(|l| l.split_once("] "))
            .map(|(_, r)| r)
        else {
            continue;
        };
        let outs = rest
            .split_once(" -> ")
            .ok_or_else(|| format!("no outputs in {line:?}"))?
            .1;
        let first = outs.split(' ').next().unwrap_or("");
        let id = first
            .trim_start_matches("build/t")
            .split('.')
            .next()
            .unwrap_or("");
        ran.push(id.parse().map_err(|_| format!("cannot parse {line:?}"))?);
    }
    Ok(ran)
}

fn kiln(dir: &std::path::Path) -> Result<String, TestCaseError> {
    let out = Command::new(KILN)
        .args(["build", "-j2", "--explain"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("kiln runs");
    // Progress and summary on stderr, with the reasons (stdout) after them for failure messages.
    let stderr =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    prop_assert_eq!(out.status.code(), Some(0), "kiln failed:\n{}", stderr);
    Ok(stderr)
}

fn check_outputs(model: &Model, dir: &std::path::Path, what: &str) -> Result<(), TestCaseError> {
    for (path, expected) in &model.disk {
        let actual = std::fs::read(dir.join(path)).unwrap_or_default();
        prop_assert_eq!(
            String::from_utf8_lossy(&actual),
            String::from_utf8_lossy(expected),
            "{}: {} differs from the model",
            what,
            path
        );
    }
    Ok(())
}

fn mtime(path: &std::path::Path) -> SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime")
}

fn set_mtime(path: &std::path::Path, when: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(when))
        .expect("set mtime");
}

/// Older versions of each source with their mtimes.
type History = BTreeMap<String, Vec<(Vec<u8>, SystemTime)>>;

struct Counts {
    cases: AtomicUsize,
    edits: AtomicUsize,
    builds: AtomicUsize,
}

fn run_scenario(sc: &Scenario, counts: &Counts) -> Result<(), TestCaseError> {
    let space = Space::new();
    let mut model = Model {
        tasks: sc.tasks.clone(),
        variants: vec![0; sc.tasks.len()],
        mode: sc.mode.clone(),
        files: BTreeMap::new(),
        disk: BTreeMap::new(),
        last: vec![None; sc.tasks.len()],
    };
    // Older versions of each source, with their mtimes, for `cp -p` restores.
    let mut history: History = BTreeMap::new();
    let write = |model: &mut Model, history: &mut History, path: &str, content: &[u8]| {
        let p = space.path(path);
        if p.exists() {
            let old = std::fs::read(&p).expect("read");
            history
                .entry(path.to_string())
                .or_default()
                .push((old, mtime(&p)));
        }
        space.write(path, content);
        model.files.insert(path.to_string(), content.to_vec());
    };
    for (i, c) in sc.contents.iter().enumerate() {
        write(&mut model, &mut history, &source_path(i), c.as_bytes());
    }
    for (i, c) in sc.glob.iter().enumerate() {
        write(
            &mut model,
            &mut history,
            &format!("src/g/f{i}.txt"),
            c.as_bytes(),
        );
    }
    counts.cases.fetch_add(1, Ordering::Relaxed);

    for step in 0..=sc.edits.len() {
        if step > 0 {
            counts.edits.fetch_add(1, Ordering::Relaxed);
            let sources: Vec<String> = model
                .files
                .keys()
                .filter(|p| !p.starts_with("src/g/"))
                .cloned()
                .collect();
            match &sc.edits[step - 1] {
                Edit::Change(i, c) => {
                    let path = source_path(i.index(SOURCES + HEADERS));
                    write(&mut model, &mut history, &path, c.as_bytes());
                }
                Edit::Touch(i) => {
                    let p = space.path(&sources[i.index(sources.len())]);
                    set_mtime(&p, mtime(&p) + Duration::from_secs(7));
                }
                Edit::Restore(i, back) => {
                    let path = sources[i.index(sources.len())].clone();
                    let versions = history.get(&path).cloned().unwrap_or_default();
                    if !versions.is_empty() {
                        let (content, when) = versions[back.index(versions.len())].clone();
                        write(&mut model, &mut history, &path, &content);
                        set_mtime(&space.path(&path), when);
                    }
                }
                Edit::SameSizeSameMtime(i) => {
                    let path = sources[i.index(sources.len())].clone();
                    let mut content = model.files[&path].clone();
                    if let Some(b) = content.first_mut() {
                        *b = if *b == b'q' { b'z' } else { b'q' };
                        let when = mtime(&space.path(&path));
                        write(&mut model, &mut history, &path, &content);
                        set_mtime(&space.path(&path), when);
                    }
                }
                Edit::DeleteOutput(t, o) => {
                    let t = t.index(model.tasks.len());
                    let outs = output_paths(t, model.tasks[t].kind);
                    let path = &outs[o.index(outs.len())];
                    let _ = std::fs::remove_file(space.path(path));
                    model.disk.remove(path);
                }
                Edit::AlterOutput(t, o) => {
                    let t = t.index(model.tasks.len());
                    let outs = output_paths(t, model.tasks[t].kind);
                    let path = outs[o.index(outs.len())].clone();
                    let mut content = model.disk.get(&path).cloned().unwrap_or_default();
                    content.extend_from_slice(b"tampered\n");
                    space.write(&path, &content);
                    model.disk.insert(path, content);
                }
                Edit::Command(t) => {
                    let t = t.index(model.tasks.len());
                    if model.tasks[t].kind != Kind::Always {
                        model.variants[t] += 1;
                    }
                }
                Edit::Env(v) => model.mode = v.clone(),
                Edit::AddGlob(n, c) => write(
                    &mut model,
                    &mut history,
                    &format!("src/g/f{n}.txt"),
                    c.as_bytes(),
                ),
                Edit::RemoveGlob(i) => {
                    let globbed: Vec<String> = model
                        .files
                        .keys()
                        .filter(|p| p.starts_with("src/g/"))
                        .cloned()
                        .collect();
                    if !globbed.is_empty() {
                        let path = globbed[i.index(globbed.len())].clone();
                        std::fs::remove_file(space.path(&path)).expect("remove");
                        model.files.remove(&path);
                    }
                }
                Edit::DeleteHeader(h) => {
                    let path = format!("inc/h{h}.h");
                    if model.files.remove(&path).is_some() {
                        std::fs::remove_file(space.path(&path)).expect("remove");
                    }
                }
            }
        }
        space.write("build.toml", model.build_file());

        // The incremental build.
        let expected = model.build();
        let stderr = kiln(space.root())?;
        counts.builds.fetch_add(1, Ordering::Relaxed);
        let ran = ran_tasks(&stderr).map_err(TestCaseError::fail)?;
        let ran_set: BTreeSet<usize> = ran.iter().copied().collect();
        prop_assert_eq!(ran.len(), ran_set.len(), "a task ran twice:\n{}", stderr);
        prop_assert_eq!(
            &ran_set,
            &expected,
            "step {}: kiln ran other tasks than the model\n{}",
            step,
            stderr
        );
        check_outputs(
            &model,
            space.root(),
            &format!("incremental build, step {step}"),
        )?;

        // A clean build of the same sources in a fresh directory.
        let fresh = Space::new();
        for (path, content) in &model.files {
            fresh.write(path, content);
        }
        fresh.write("build.toml", model.build_file());
        let stderr = kiln(fresh.root())?;
        counts.builds.fetch_add(1, Ordering::Relaxed);
        prop_assert_eq!(
            ran_tasks(&stderr).map_err(TestCaseError::fail)?.len(),
            model.tasks.len()
        );
        check_outputs(&model, fresh.root(), &format!("clean build, step {step}"))?;
    }
    Ok(())
}

#[test]
fn incremental_builds_equal_clean_builds_and_run_exactly_what_changed() {
    let requested = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok());
    let cases = requested.map_or(CASES, |r| r.max(CASES));
    let config = Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        source_file: Some(file!()),
        ..Config::default()
    };
    let counts = Counts {
        cases: AtomicUsize::new(0),
        edits: AtomicUsize::new(0),
        builds: AtomicUsize::new(0),
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&scenario(), |sc| run_scenario(&sc, &counts));
    // Written past the test harness's capture, so that CI logs show what ran.
    let _ = writeln!(
        std::io::stderr(),
        "property test: {} cases, {} edits, {} kiln builds{}",
        counts.cases.load(Ordering::Relaxed),
        counts.edits.load(Ordering::Relaxed),
        counts.builds.load(Ordering::Relaxed),
        match requested {
            Some(r) if r < CASES =>
                format!(" (PROPTEST_CASES={r} is below the floor of {CASES}; ran {CASES})"),
            _ => String::new(),
        }
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
