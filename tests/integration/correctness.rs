//! Incremental correctness beyond the property test: depfile syntax end to end, generated headers
//! found through depfiles, inputs that change while their task runs, early cutoff through chains,
//! `always` tasks, tasks without inputs or with several outputs, and `--explain`.

use crate::support::{Space, Test, set, timed};

/// A rule whose command writes, in gcc's style, a depfile naming the "headers" its source lists.
const DEPFILE_RULE: &str = r#"
[rule.cc]
run = "cat ${SRC} > ${TGT}; for h in $(cat ${SRC}); do [ -f \"$h\" ] && cat \"$h\" >> ${TGT}; done; sh write-depfile.sh ${TGT} ${SRC}"
depfile = "${TGT}.d"
"#;

/// Writes `TARGET.d` with two targets, a continuation per header, `\ ` for spaces, `$$` for `$`.
const WRITE_DEPFILE: &str = r#"tgt=$1; src=$2
{
  printf '%s %s.d: %s' "$tgt" "$tgt" "$src"
  for h in $(cat "$src"); do
    printf ' \\\n  %s' "$(printf '%s' "$h" | sed -e 's/ /\\ /g' -e 's/\$/$$/g')"
  done
  printf '\n'
} > "$tgt.d"
"#;

#[test]
fn depfiles_in_gcc_syntax_track_headers_with_odd_names() {
    let s = Space::new();
    s.write("write-depfile.sh", WRITE_DEPFILE);
    // The source names its headers, one per line; the command reads them by name.
    s.write("main.src", "plain.h\nmy_header.h\ndollar$sign.h\n");
    s.write("plain.h", "p\n");
    s.write("my_header.h", "m\n");
    s.write("dollar$sign.h", "d\n");
    s.write(
        "build.toml",
        format!(
            "{DEPFILE_RULE}[[gen]]\nrule = \"cc\"\nsource = \"main.src\"\ntarget = \"main.o\"\n"
        ),
    );
    s.kiln(&["build"]).ok();
    let depfile = s.read("build/main.o.d");
    assert!(
        depfile.contains("dollar$$sign.h") && depfile.contains(" \\\n "),
        "{depfile}"
    );
    assert!(s.kiln(&["build"]).ok().ran().is_empty());
    for header in ["plain.h", "my_header.h", "dollar$sign.h"] {
        s.write(header, format!("{header} changed\n"));
        let run = s.kiln(&["build"]).ok();
        assert_eq!(
            run.ran_outputs(),
            set(&["build/main.o"]),
            "after editing {header}"
        );
        assert!(
            s.read("build/main.o")
                .contains(&format!("{header} changed"))
        );
    }
    // A deleted header reruns the task; it is no error (the command decides what that means).
    s.remove("my_header.h");
    assert_eq!(
        s.kiln(&["build"]).ok().ran_outputs(),
        set(&["build/main.o"])
    );
    assert!(s.kiln(&["build"]).ok().ran().is_empty());
}

#[test]
fn escaped_spaces_in_depfiles_name_one_file() {
    let s = Space::new();
    s.write("write-depfile.sh", WRITE_DEPFILE);
    s.write("main.src", "");
    s.write("with space.h", "1\n");
    // The command's own source lists nothing: the depfile is written by hand, with an escaped
    // space, so only the depfile says that `with space.h` matters.
    s.write(
        "build.toml",
        "[rule.cc]\nrun = \"cat ${SRC} 'with space.h' > ${TGT}; printf '%s: %s with\\\\ space.h\\n' ${TGT} ${SRC} > ${TGT}.d\"\ndepfile = \"${TGT}.d\"\n\
         [[gen]]\nrule = \"cc\"\nsource = \"main.src\"\ntarget = \"main.o\"\n",
    );
    s.kiln(&["build"]).ok();
    assert_eq!(
        s.read("build/main.o.d"),
        "build/main.o: main.src with\\ space.h\n"
    );
    s.write("with space.h", "2\n");
    assert_eq!(
        s.kiln(&["build"]).ok().ran_outputs(),
        set(&["build/main.o"])
    );
    assert_eq!(s.read("build/main.o"), "2\n");
}

#[test]
fn a_generated_header_found_through_a_depfile_orders_its_producer_on_the_next_build() {
    let s = Space::new();
    s.write("gen.in", "one\n");
    s.write("a.src", "build/gen.h\n");
    s.write("write-depfile.sh", WRITE_DEPFILE);
    let text = |deps: &str| {
        format!(
            "{DEPFILE_RULE}[rule.gen]\nrun = \"{}; cp ${{SRC}} ${{TGT}}\"\n\
             [[gen]]\nname = \"header\"\nrule = \"gen\"\nsource = \"gen.in\"\ntarget = \"gen.h\"\n\
             [[gen]]\nname = \"object\"\nrule = \"cc\"\nsource = \"a.src\"\ntarget = \"a.o\"\n{deps}",
            timed("header", 0.4).replace("; touch ${TGT}", "")
        )
    };
    // First build: only the declared input (deps) orders the header first.
    s.write("build.toml", text("deps = [\"gen.h\"]\n"));
    s.kiln(&["build", "-j2"]).ok();
    assert_eq!(s.read("build/a.o"), "build/gen.h\none\n");
    // The declaration goes; the depfile of the last run still knows the header.
    s.write("build.toml", text(""));
    assert!(
        s.kiln(&["build", "-j2"])
            .ok()
            .ran()
            .iter()
            .all(|l| !l.starts_with("gen"))
    );
    s.write("gen.in", "two\n");
    std::fs::remove_file(s.path("log")).unwrap();
    let run = s.kiln(&["build", "-j2"]).ok();
    assert_eq!(run.ran_outputs(), set(&["build/gen.h", "build/a.o"]));
    assert_eq!(
        s.read("build/a.o"),
        "build/gen.h\ntwo\n",
        "the object saw the new header"
    );
    let ran = run.ran();
    assert!(ran[0].starts_with("gen:"), "{ran:?}");
}

#[test]
fn an_input_changed_while_its_task_runs_is_not_trusted() {
    let s = Space::new();
    s.write("in.txt", "first\n");
    // The command reads its input, then (once) changes it.
    s.write(
        "build.toml",
        "[[gen]]\nrun = \"cp ${SRC} ${TGT}; if [ ! -e once ]; then touch once; sleep 0.05; echo later >> ${SRC}; fi\"\nsource = \"in.txt\"\ntarget = \"out\"\n",
    );
    s.kiln(&["build"])
        .ok()
        .stderr_has("warning: `in.txt` changed while");
    assert_eq!(s.read("build/out"), "first\n");
    let run = s.kiln(&["build", "--explain"]).ok();
    assert_eq!(run.ran_outputs(), set(&["build/out"]));
    assert!(
        run.stdout
            .contains("explain: build/out: its last run is not trusted"),
        "{}",
        run.stdout
    );
    assert_eq!(s.read("build/out"), "first\nlater\n");
    assert!(s.kiln(&["build"]).ok().ran().is_empty());
}

#[test]
fn early_cutoff_stops_a_whole_chain() {
    let s = Space::new();
    s.write("src.txt", "abc\n");
    s.write(
        "build.toml",
        "[[gen]]\nname = \"size\"\nrun = \"wc -c < ${SRC} > ${TGT}\"\nsource = \"src.txt\"\ntarget = \"a\"\n\
         [[gen]]\nname = \"b\"\nrun = \"cat ${SRC} > ${TGT}\"\nsource = \"a\"\ntarget = \"b\"\n\
         [[gen]]\nname = \"c\"\nrun = \"cat ${SRC} > ${TGT}\"\nsource = \"b\"\ntarget = \"c\"\n\
         [[gen]]\nname = \"d\"\nrun = \"cat ${SRC} > ${TGT}\"\nsource = \"c\"\ntarget = \"d\"\n",
    );
    s.kiln(&["build"]).ok();
    s.write("src.txt", "xyz\n");
    let run = s.kiln(&["build"]).ok();
    assert_eq!(run.ran_outputs(), set(&["build/a"]));
    assert_eq!(
        run.counters(),
        vec![(1, 4)],
        "four expected, one ran: the rest were cut off"
    );
    s.write("src.txt", "wxyz\n");
    assert_eq!(
        s.kiln(&["build"]).ok().ran_outputs(),
        set(&["build/a", "build/b", "build/c", "build/d"])
    );
}

#[test]
fn always_tasks_run_every_time_and_their_unchanged_outputs_cut_off() {
    let s = Space::new();
    s.write(
        "build.toml",
        "[rule.stamp]\nrun = \"echo fixed > ${TGT}\"\nalways = true\n\
         [[gen]]\nrule = \"stamp\"\ntarget = \"stamp\"\n\
         [[gen]]\nrun = \"cat ${SRC} > ${TGT}\"\nsource = \"stamp\"\ntarget = \"user\"\n",
    );
    s.kiln(&["build"]).ok();
    let run = s.kiln(&["build", "--explain"]).ok();
    assert_eq!(run.ran_outputs(), set(&["build/stamp"]));
    assert!(
        run.stdout
            .contains("explain: build/stamp: forced: its rule has always = true")
    );
}

#[test]
fn tasks_without_inputs_run_once_and_again_when_their_command_changes() {
    let s = Space::new();
    s.write(
        "build.toml",
        "[[gen]]\nrun = \"echo one > ${TGT}\"\ntarget = \"x\"\n",
    );
    assert_eq!(s.kiln(&["build"]).ok().ran_outputs(), set(&["build/x"]));
    assert!(s.kiln(&["build"]).ok().ran().is_empty());
    s.write(
        "build.toml",
        "[[gen]]\nrun = \"echo two > ${TGT}\"\ntarget = \"x\"\n",
    );
    assert_eq!(s.kiln(&["build"]).ok().ran_outputs(), set(&["build/x"]));
    assert_eq!(s.read("build/x"), "two\n");
}

#[test]
fn tasks_with_several_outputs() {
    let s = Space::new();
    s.write("in.txt", "head-tail\n");
    s.write(
        "build.toml",
        "[[gen]]\nname = \"split\"\nrun = \"cut -d- -f1 ${SRC} > ${TGT[0]}; cut -d- -f2 ${SRC} > ${TGT[1]}\"\nsource = \"in.txt\"\ntarget = [\"head\", \"tail\"]\n\
         [[gen]]\nname = \"h\"\nrun = \"cat ${SRC} > ${TGT}\"\nsource = \"head\"\ntarget = \"h\"\n\
         [[gen]]\nname = \"t\"\nrun = \"cat ${SRC} > ${TGT}\"\nsource = \"tail\"\ntarget = \"t\"\n",
    );
    s.kiln(&["build"]).ok();
    // Deleting one output reruns the task; both outputs come back the same, so nothing else runs.
    s.remove("build/tail");
    assert_eq!(
        s.kiln(&["build"]).ok().ran_outputs(),
        set(&["build/head", "build/tail"])
    );
    // A change that reaches only one output reruns only that output's consumer.
    s.write("in.txt", "head-TAIL\n");
    assert_eq!(
        s.kiln(&["build"]).ok().ran_outputs(),
        set(&["build/head", "build/tail", "build/t"])
    );
    assert_eq!(s.read("build/t"), "TAIL\n");
}

#[test]
fn explain_gives_the_first_reason_for_every_task_that_runs() {
    let s = Space::new();
    s.write("a.txt", "a\n");
    s.write("write-depfile.sh", WRITE_DEPFILE);
    s.write("inc.src", "h.h\n");
    s.write("h.h", "h\n");
    let text = |flags: &str| {
        format!(
            "[env]\nFLAGS = \"{flags}\"\n{DEPFILE_RULE}\
             [[gen]]\nname = \"copy\"\nrun = \"cp ${{SRC}} ${{TGT}}\"\nsource = \"a.txt\"\ntarget = \"copy\"\n\
             [[gen]]\nname = \"flagged\"\nrun = \"echo ${{FLAGS}} > ${{TGT}}\"\ntarget = \"flagged\"\n\
             [[gen]]\nname = \"inc\"\nrule = \"cc\"\nsource = \"inc.src\"\ntarget = \"inc.o\"\n"
        )
    };
    s.write("build.toml", text("-O2"));
    let run = s.kiln(&["build", "--explain"]).ok();
    assert!(
        run.stdout
            .contains("explain: build/copy: new task: no record of an earlier run"),
        "{}",
        run.stdout
    );
    let explain = |args: &[&str]| s.kiln(args).ok().stdout;

    s.write("a.txt", "b\n");
    assert_eq!(
        explain(&["build", "--explain"]),
        "explain: build/copy: input `a.txt` changed\n"
    );
    s.write("build.toml", text("-O0"));
    assert_eq!(
        explain(&["build", "-d", "explain"]),
        "explain: build/flagged: env value changed: FLAGS: \"-O2\" -> \"-O0\"\n"
    );
    s.write("h.h", "h2\n");
    assert_eq!(
        explain(&["build", "--explain"]),
        "explain: build/inc.o: implicit dependency `h.h` (from its depfile) changed\n"
    );
    s.remove("build/copy");
    assert_eq!(
        explain(&["build", "--explain"]),
        "explain: build/copy: output `build/copy` is missing\n"
    );
    s.write("build/copy", "tampered");
    assert_eq!(
        explain(&["build", "--explain"]),
        "explain: build/copy: output `build/copy` was altered since kiln made it\n"
    );
    // An env value the command does not show (through `vars`).
    s.write(
        "build.toml",
        text("-O0").replace("[rule.cc]", "[rule.cc]\nvars = [\"FLAGS\"]"),
    );
    s.kiln(&["build"]).ok();
    let out = explain(&["build", "--explain", "-D", "FLAGS=-g"]);
    assert!(
        out.contains("explain: build/inc.o: env value changed: FLAGS: \"-O0\" -> \"-g\"\n"),
        "{out}"
    );
}

#[test]
fn kiln_explain_says_why_a_target_is_or_is_not_up_to_date_and_builds_nothing() {
    let s = Space::new();
    s.write("a.txt", "a\n");
    s.write(
        "build.toml",
        "[[gen]]\nname = \"copy\"\nrun = \"cp ${SRC} ${TGT}\"\nsource = \"a.txt\"\ntarget = \"copy\"\n\
         [[gen]]\nname = \"final\"\nrun = \"cat ${SRC} > ${TGT}\"\nsource = \"copy\"\ntarget = \"final\"\n",
    );
    let run = s.kiln(&["explain", "final"]).ok();
    assert_eq!(
        run.stdout,
        "explain: build/copy: new task: no record of an earlier run\nexplain: build/final: input `build/copy` is rebuilt first\nfinal: not up to date: 2 tasks would run\n"
    );
    assert!(!s.exists("build"), "nothing is built");
    s.kiln(&["build"]).ok();
    let run = s.kiln(&["explain", "final"]).ok();
    assert_eq!(
        run.stdout,
        "explain: build/copy: up to date\nexplain: build/final: up to date\nfinal: up to date\n"
    );
    s.write("a.txt", "b\n");
    let run = s.kiln(&["explain", "build/final"]).ok();
    assert!(
        run.stdout
            .ends_with("build/final: not up to date: 2 tasks would run\n"),
        "{}",
        run.stdout
    );
    assert_eq!(s.read("build/copy"), "a\n");
    Test::new()
        .build_file("")
        .args(&["explain"])
        .status(2)
        .run();
}

#[test]
fn explain_names_a_failed_last_run_and_the_words_a_command_changed_in() {
    let s = Space::new();
    let long = "padding ".repeat(200);
    let text = |flag: &str, status: u8| {
        format!(
            "[[gen]]\nname = \"t\"\nrun = \"echo {flag} {long} > ${{TGT}}; exit {status}\"\ntarget = \"t\"\n"
        )
    };
    s.write("build.toml", text("-O2", 1));
    s.kiln(&["build"]).status(1);
    // Not a new task: one whose last run failed.
    let run = s.kiln(&["build", "--explain"]).status(1);
    assert_eq!(run.stdout, "explain: build/t: its last run failed\n");
    s.write("build.toml", text("-O2", 0));
    s.kiln(&["build"]).ok();
    // A changed command: the differing words, not two long commands.
    s.write("build.toml", text("-O0", 0));
    let run = s.kiln(&["build", "--explain"]).ok();
    assert_eq!(
        run.stdout,
        "explain: build/t: command changed: `-O2` -> `-O0`\n"
    );
}
