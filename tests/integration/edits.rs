//! The first build after a build-file edit: the last build's snapshot is carried to the new
//! graph, so that only the tasks the edit changed (and those whose files changed) are decided
//! from the store, with the same results as deciding everything: what changed runs, what is
//! gone is deleted, and a store that is not as the snapshot saw it is read as always.

use crate::support::{Run, Space, set};

/// A compile that lists its source's "headers" in a depfile and copies them into its object.
const TOP: &str = r#"
[env]
FLAGS = ["-O2"]

[rule.cc]
run = "echo ${FLAGS} > ${TGT}; for h in $(cat ${SRC}); do cat $h >> ${TGT}; done; echo ${TGT}: ${SRC} $(cat ${SRC}) > ${TGT}.d"
depfile = "${TGT}.d"
ext_in = [".c"]
ext_out = [".o"]

[[gen]]
name = "one"
run = "cat ${SRC} > ${TGT}"
source = ["one/a.c", "one/b.c"]
target = "one.a"

[[gen]]
name = "two"
run = "cat ${SRC} > ${TGT}"
source = ["two/c.c"]
target = "two.a"
env = { FLAGS = ["-O2", "-DTWO"] }

[[gen]]
name = "app"
run = "cat ${SRC} > ${TGT}"
source = ["main.c"]
use = ["one", "two"]
target = "app"
"#;

const ALL: [&str; 7] = [
    "build/one/a.o",
    "build/one/b.o",
    "build/one.a",
    "build/two/c.o",
    "build/two.a",
    "build/main.o",
    "build/app",
];

fn project() -> Space {
    let s = Space::new();
    s.write("build.toml", TOP);
    s.write("inc/x.h", "x1\n");
    s.write("inc/y.h", "y1\n");
    s.write("one/a.c", "inc/x.h\n");
    s.write("one/b.c", "inc/y.h\n");
    s.write("two/c.c", "inc/x.h\ninc/y.h\n");
    s.write("main.c", "\n");
    let run = s.kiln(&["build", "-j1"]).ok();
    assert_eq!(run.ran_outputs(), set(&ALL));
    assert!(s.kiln(&["build"]).ok().ran().is_empty());
    s
}

fn build(s: &Space) -> Run {
    s.kiln(&["build", "-j1", "-d", "stats"]).ok()
}

#[test]
fn after_an_edit_only_what_it_changed_is_decided() {
    let s = project();
    // A comment: every task is vouched for, none decided, none runs.
    s.write("build.toml", format!("{TOP}# a comment\n"));
    let run = build(&s);
    assert!(run.ran().is_empty(), "{}", run.stderr);
    assert_eq!(run.stats_count("tasks vouched for"), 7, "{}", run.stderr);
    assert_eq!(run.stats_count("tasks decided"), 0, "{}", run.stderr);
    // One generator's flags: its compile changed; it and what is downstream of it are decided
    // (the rest is vouched for), and run.
    let flags = TOP.replace("\"-DTWO\"", "\"-DTWO\", \"-DMORE\"");
    s.write("build.toml", &flags);
    let run = build(&s);
    assert_eq!(
        run.ran_outputs(),
        set(&["build/two/c.o", "build/two.a", "build/app"])
    );
    assert_eq!(run.stats_count("tasks vouched for"), 6, "{}", run.stderr);
    assert_eq!(run.stats_count("tasks decided"), 3, "{}", run.stderr);
    assert_eq!(s.read("build/two/c.o"), "-O2 -DTWO -DMORE\nx1\ny1\n");
    // (A null build takes again the hashes of what was written in the same clock tick as they
    // were taken: then the snapshot vouches for those files too.)
    assert!(build(&s).ran().is_empty());
    // A source added: its compile runs, and its library and the program are remade.
    s.write("one/d.c", "inc/y.h\n");
    s.write(
        "build.toml",
        flags.replace("\"one/b.c\"]", "\"one/b.c\", \"one/d.c\"]"),
    );
    let run = build(&s);
    assert_eq!(
        run.ran_outputs(),
        set(&["build/one/d.o", "build/one.a", "build/app"])
    );
    // The new compile and the library it joins are changed tasks; six of eight are as they were.
    assert_eq!(run.stats_count("tasks vouched for"), 6, "{}", run.stderr);
    assert_eq!(run.stats_count("tasks decided"), 3, "{}", run.stderr);
    // The graph and snapshot of the edited file were saved: the next build is a null build.
    let run = build(&s);
    assert!(run.ran().is_empty(), "{}", run.stderr);
    assert_eq!(run.stats_count("files parsed"), 0, "{}", run.stderr);
}

#[test]
fn files_changed_along_with_an_edit_are_still_seen() {
    let s = project();
    // A header (known only from depfiles) and a source change as the build file does.
    s.write("build.toml", format!("{TOP}# a comment\n"));
    s.write("inc/x.h", "x2\n");
    s.write("main.c", "\n\n");
    let run = build(&s);
    assert_eq!(
        run.ran_outputs(),
        set(&[
            "build/one/a.o",
            "build/one.a",
            "build/two/c.o",
            "build/two.a",
            "build/main.o",
            "build/app",
        ])
    );
    // Of the compiles, only b.o's files are as they were; the archives and the link are vouched
    // for, then decided again downstream of what runs.
    assert_eq!(run.stats_count("tasks vouched for"), 4, "{}", run.stderr);
    assert_eq!(run.stats_count("tasks decided"), 6, "{}", run.stderr);
    assert_eq!(s.read("build/two/c.o"), "-O2 -DTWO\nx2\ny1\n");
    assert!(build(&s).ran().is_empty());
}

#[test]
fn what_an_edit_removes_or_renames_is_deleted_as_stale() {
    let s = project();
    // `two` goes (and the program no longer uses it); `one`'s library is renamed.
    let text = TOP
        .replace("use = [\"one\", \"two\"]", "use = [\"one\"]")
        .replace("target = \"one.a\"", "target = \"libone.a\"");
    let start = text.find("[[gen]]\nname = \"two\"").unwrap();
    let end = start + text[start..].find("[[gen]]\nname = \"app\"").unwrap();
    let text = format!("{}{}", &text[..start], &text[end..]);
    s.write("build.toml", &text);
    let run = build(&s);
    for gone in ["build/two/c.o", "build/two.a", "build/one.a"] {
        assert!(!s.exists(gone), "{gone} is still there\n{}", run.stderr);
        assert!(
            run.stderr.contains(&format!("deleted stale output {gone}")),
            "{}",
            run.stderr
        );
    }
    assert_eq!(run.ran_outputs(), set(&["build/libone.a", "build/app"]));
    assert!(build(&s).ran().is_empty());
    // Back as it was: what was deleted (and forgotten) is made again.
    s.write("build.toml", TOP);
    let run = build(&s);
    assert_eq!(
        run.ran_outputs(),
        set(&["build/two/c.o", "build/two.a", "build/one.a", "build/app"])
    );
    assert!(!s.exists("build/libone.a"));
}

#[test]
fn a_store_changed_since_the_snapshot_is_read_as_always() {
    let s = project();
    s.write("build.toml", format!("{TOP}# a comment\n"));
    // Another writer's mark on the store: the snapshot no longer vouches for anything.
    let store = s.path("build/.kiln/store");
    let bytes = std::fs::read(&store).unwrap();
    std::fs::write(&store, &bytes).unwrap();
    let run = build(&s);
    assert!(run.ran().is_empty(), "{}", run.stderr);
    assert_eq!(run.stats_count("tasks vouched for"), 0, "{}", run.stderr);
    assert_eq!(run.stats_count("tasks decided"), 7, "{}", run.stderr);
}
