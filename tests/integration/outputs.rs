//! Where outputs go and when kiln removes them: `[project] out`, `update_outputs`, stale outputs,
//! colours, unreadable state, a closed output stream.

use crate::support::{KILN, Space, Test, set};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn project_out_names_the_build_directory_inside_or_beside_the_project() {
    let (s, _) = Test::new().build_file("[project]\nname = \"demo\"\nout = \"out-dir\"\n[[gen]]\nrun = \"echo x > ${TGT}\"\ntarget = \"x\"\n").run();
    assert_eq!(s.read("out-dir/x"), "x\n");
    assert!(s.exists("out-dir/.kiln/store"));
    assert!(!s.exists("build"));

    let parent = Space::new();
    parent.write("proj/build.toml", "[project]\nout = \"../build-debug\"\n[[gen]]\nrun = \"echo ${OUT} > ${TGT}\"\ntarget = \"x\"\n");
    let run = parent.kiln_in("proj", &["build"]).ok();
    assert_eq!(run.ran(), vec!["x: -> ../build-debug/x"]);
    assert_eq!(parent.read("build-debug/x"), "../build-debug\n");
    assert!(parent.kiln_in("proj", &["build"]).ok().ran().is_empty());
}

#[test]
fn update_outputs_live_in_the_source_tree_and_clean_leaves_them() {
    let s = Space::new();
    s.write("grammar.def", "g1\n");
    s.write("build.toml", "[rule.regen]\nrun = \"cp ${SRC} ${TGT}\"\nupdate_outputs = true\n[[gen]]\nname = \"parser\"\nrule = \"regen\"\nsource = \"grammar.def\"\ntarget = \"gen/parser.c\"\n");
    s.kiln(&["build"]).ok();
    assert_eq!(s.read("gen/parser.c"), "g1\n");
    assert!(!s.exists("build/gen/parser.c"));
    assert!(s.kiln(&["build"]).ok().ran().is_empty());
    s.write("grammar.def", "g2\n");
    assert_eq!(
        s.kiln(&["build"]).ok().ran_outputs(),
        set(&["gen/parser.c"])
    );
    s.kiln(&["clean"]).ok();
    assert_eq!(s.read("gen/parser.c"), "g2\n");
    // Dropped from the build file, it is not a stale output to delete: it is a source now.
    s.write("build.toml", "");
    s.write(
        "build.toml",
        "[[gen]]\nrun = \"touch ${TGT}\"\ntarget = \"other\"\n",
    );
    s.kiln(&["build"]).ok();
    s.kiln(&["distclean"]).ok();
    assert_eq!(s.read("gen/parser.c"), "g2\n");
}

#[test]
fn a_build_deletes_stale_outputs_and_says_so() {
    let s = Space::new();
    s.write("a.c", "a");
    s.write("b.c", "b");
    s.write("build.toml", "[rule.cc]\nrun = \"cp ${SRC} ${TGT}\"\next_in = [\".c\"]\next_out = [\".o\"]\n[[gen]]\nname = \"objs\"\nsource = \"*.c\"\n[[gen]]\nrun = \"touch ${TGT}\"\ntarget = \"sub/old\"\n");
    s.kiln(&["build"]).ok();
    assert!(s.exists("build/b.o") && s.exists("build/sub/old"));
    s.remove("b.c");
    s.write("build.toml", "[rule.cc]\nrun = \"cp ${SRC} ${TGT}\"\next_in = [\".c\"]\next_out = [\".o\"]\n[[gen]]\nname = \"objs\"\nsource = \"*.c\"\n");
    let run = s.kiln(&["build"]).ok();
    let mut lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("deleted stale output"))
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            "deleted stale output build/b.o",
            "deleted stale output build/sub/old"
        ]
    );
    assert!(!s.exists("build/b.o") && !s.exists("build/sub"));
    assert!(s.exists("build/a.o"));
    assert!(run.ran().is_empty());
}

#[test]
fn rule_colors_show_when_colour_is_wanted() {
    let s = Space::new();
    s.write("build.toml", "[rule.r]\nrun = \"touch ${TGT}\"\ncolor = \"green\"\n[[gen]]\nrule = \"r\"\ntarget = \"x\"\n");
    let out = Command::new(KILN)
        .arg("build")
        .current_dir(s.root())
        .env("CLICOLOR_FORCE", "1")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[1/1] \x1b[32mr\x1b[0m: -> build/x"),
        "{err:?}"
    );
    s.kiln(&["clean"]).ok();
    let plain = s.kiln(&["build"]).ok();
    assert!(plain.stderr.contains("[1/1] r: -> build/x"));
    Test::new()
        .build_file("[rule.r]\nrun = \"x\"\ncolor = \"grene\"\n")
        .status(2)
        .stderr_is(concat!(
            "build.toml:3:9: error: unknown color `grene`\n",
            "  |\n",
            "3 | color = \"grene\"\n",
            "  |         ^^^^^^^\n",
            "  = expected one of `black`, `red`, `green`, `yellow`, `blue`, `magenta`, `pink`, `cyan`, `white`, `normal`\n",
            "  = did you mean `green`?\n",
        ))
        .run();
}

#[test]
fn unreadable_state_is_discarded_with_a_warning() {
    let s = Space::new();
    s.write(
        "build.toml",
        "[[gen]]\nrun = \"echo x > ${TGT}; echo ran >> log\"\ntarget = \"x\"\n",
    );
    s.kiln(&["build"]).ok();
    s.write("build/.kiln/store", "this is not a store");
    s.kiln(&["build"])
        .ok()
        .stderr_has("warning: kiln's state is unreadable");
    assert_eq!(s.lines("log").len(), 2, "the task ran again");
    assert!(
        s.kiln(&["build"])
            .ok()
            .stderr
            .lines()
            .all(|l| !l.starts_with("warning"))
    );
}

#[test]
fn a_closed_output_stream_stops_the_build_without_killing_kiln() {
    let s = Space::new();
    let gens: String = (0..40).map(|i| format!("[[gen]]\nrun = \"sleep 0.05; echo output {i}; touch ${{TGT}}\"\ntarget = \"t{i}\"\n")).collect();
    s.write("build.toml", &gens);
    let mut child = Command::new(KILN)
        .args(["build", "-j2"])
        .current_dir(s.root())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert!(first.starts_with("[1/40] "), "{first}");
    // Some tasks finish while nobody reads; then the reader goes, as with `| head -1`.
    std::thread::sleep(Duration::from_millis(400));
    drop(reader);
    let t = Instant::now();
    let status = child.wait().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(
        status.code(),
        Some(141),
        "kiln exits as on SIGPIPE, not killed by it: {status:?}"
    );
    // What finished was recorded: the next build completes the rest.
    let run = s.kiln(&["build", "-j2"]).ok();
    assert!(run.ran().len() < 40, "{}", run.ran().len());
}

#[test]
fn state_that_cannot_be_opened_is_replaced_with_a_warning() {
    let s = Space::new();
    s.write(
        "build.toml",
        "[[gen]]\nrun = \"echo x > ${TGT}; echo ran >> log\"\ntarget = \"x\"\n",
    );
    s.kiln(&["build"]).ok();
    std::fs::remove_file(s.path("build/.kiln/store")).unwrap();
    std::fs::create_dir_all(s.path("build/.kiln/store/oops")).unwrap();
    s.kiln(&["build"])
        .ok()
        .stderr_has("warning: kiln's state at");
    assert_eq!(s.lines("log").len(), 2);
    assert!(s.kiln(&["build"]).ok().ran().is_empty());
}

#[test]
fn a_progress_line_lists_at_most_eight_inputs_unless_verbose() {
    let s = Space::new();
    for i in 0..10 {
        s.write(&format!("in{i}"), "x");
    }
    s.write(
        "build.toml",
        "[[gen]]\nname = \"eight\"\nrun = \"cat ${SRC} > ${TGT}\"\nsource = [\"in[0-7]\"]\ntarget = \"eight\"\n\
         [[gen]]\nname = \"ten\"\nrun = \"cat ${SRC} > ${TGT}\"\nsource = [\"in*\"]\ntarget = \"ten\"\n",
    );
    let run = s.kiln(&["build", "-j1"]).ok();
    assert_eq!(
        run.ran(),
        vec![
            "eight: in0 in1 in2 in3 in4 in5 in6 in7 -> build/eight",
            "ten: in0 in1 in2 (+7 more) -> build/ten",
        ]
    );
    s.kiln(&["clean"]).ok();
    let run = s.kiln(&["build", "-j1", "-v", "--targets", "ten"]).ok();
    assert_eq!(
        run.ran(),
        vec!["ten: in0 in1 in2 in3 in4 in5 in6 in7 in8 in9 -> build/ten"]
    );
}

#[test]
fn a_task_spared_by_early_cutoff_counts_as_done() {
    // `a` reruns but makes the same bytes, so `b` is spared; `d` reruns for its other input.
    let s = Space::new();
    s.write("in1", "1");
    s.write("in2", "1");
    s.write(
        "build.toml",
        "[[gen]]\nname = \"a\"\nrun = \"echo same > ${TGT}\"\nsource = \"in1\"\ntarget = \"a\"\n\
         [[gen]]\nname = \"b\"\nrun = \"cp ${SRC} ${TGT}\"\nsource = \"a\"\ntarget = \"b\"\n\
         [[gen]]\nname = \"d\"\nrun = \"cat ${SRC} > ${TGT}\"\nsource = [\"b\", \"in2\"]\ntarget = \"d\"\n",
    );
    s.kiln(&["build", "-j1"]).ok();
    s.write("in1", "2");
    s.write("in2", "2");
    let run = s.kiln(&["build", "-j1"]).ok();
    let counters: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with('[')).collect();
    // Three expected to run; `b` is spared: n jumps past it and N does not shrink.
    assert_eq!(
        counters,
        vec!["[1/3] a: in1 -> build/a", "[3/3] d: build/b in2 -> build/d"]
    );
}

#[test]
fn a_task_without_outputs_is_named_by_its_rule_alone() {
    let s = Space::new();
    s.write("build.toml", "[[gen]]\nname = \"hang\"\nrun = \"exit 1\"\n");
    let run = s.kiln(&["build", "-k"]).status(1);
    assert!(
        run.stderr.contains("failed (exit status 1): hang\n"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("hang ()"), "{}", run.stderr);
}
