//! Part 10: the bundled example, a real C program with a static library, headers tracked through
//! gcc depfiles and a code-generation group, built with the machine's C compiler.

use crate::support::{Space, set};
use std::process::Command;

pub(crate) fn copy_example() -> Space {
    let s = Space::new();
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hello-c");
    for entry in walkdir::WalkDir::new(src) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(src).unwrap();
        if rel.starts_with("build") || !entry.file_type().is_file() {
            continue;
        }
        s.write(rel.to_str().unwrap(), std::fs::read(entry.path()).unwrap());
    }
    s
}

/// Every output of the example, as kiln prints them.
const EVERY_OUTPUT: [&str; 7] = [
    "build/version.h",
    "build/lib/greet.o",
    "build/lib/shout.o",
    "build/src/extra.o",
    "build/src/main.o",
    "build/libutil.a",
    "build/hello",
];

fn run_hello(s: &Space) -> String {
    let out = Command::new(s.path("build/hello"))
        .output()
        .expect("the program runs");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn hello_c_builds_runs_and_rebuilds_exactly_what_a_header_edit_touches() {
    let s = copy_example();
    let run = s.kiln(&["build", "-j2"]).ok();
    assert_eq!(run.ran_outputs(), set(&EVERY_OUTPUT));
    assert_eq!(
        run_hello(&s),
        "Hello, world!\nBUILT BY KILN\nversion 1.2.3, answer 42\n"
    );
    assert!(
        s.kiln(&["build"]).ok().ran().is_empty(),
        "a null build runs nothing"
    );

    // greet.h is included by lib/greet.c and src/main.c, found through their depfiles.
    s.write(
        "include/greet.h",
        s.read("include/greet.h").replace("\"Hello\"", "\"Howdy\""),
    );
    let run = s.kiln(&["build", "-j2"]).ok();
    assert_eq!(
        run.ran_outputs(),
        set(&[
            "build/lib/greet.o",
            "build/src/main.o",
            "build/libutil.a",
            "build/hello"
        ])
    );
    assert_eq!(
        run_hello(&s),
        "Howdy, world!\nBUILT BY KILN\nversion 1.2.3, answer 42\n"
    );

    // The generated header: editing VERSION reruns the generator and what includes its output.
    s.write("VERSION", "2.0.0\n");
    let run = s.kiln(&["build"]).ok();
    assert_eq!(
        run.ran_outputs(),
        set(&["build/version.h", "build/src/main.o", "build/hello"])
    );
    assert!(run_hello(&s).contains("version 2.0.0"));

    // A comment in a header changes no object: the archive and the link are cut off.
    s.write(
        "include/shout.h",
        s.read("include/shout.h") + "/* a comment */\n",
    );
    let run = s.kiln(&["build"]).ok();
    assert_eq!(
        run.ran_outputs(),
        set(&["build/lib/shout.o", "build/src/main.o"])
    );
}

#[test]
fn build_toml_example_builds_with_every_key() {
    let s = copy_example();
    s.write(
        "build.toml",
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/build.toml.example")).unwrap(),
    );
    s.write("data/table.txt", "1 2 3\n");
    s.write(
        "src/skipped_test.c",
        "this is excluded: it would not compile\n",
    );
    let run = s.kiln(&["build"]).ok();
    assert!(run.ran_outputs().contains("smoke"), "{:?}", run.ran());
    assert_eq!(
        s.read("build/smoke.txt"),
        "Hello, world!\nBUILT BY KILN\nversion 1.2.3, answer 42\n"
    );
    assert_eq!(s.read("dist/VERSION"), "1.2.3\n");
    // Only the always-run smoke test runs again.
    let again = s.kiln(&["build"]).ok();
    assert_eq!(again.ran_outputs(), set(&["smoke"]));
    // A manual dependency reruns every task of its generator, mapped ones too.
    s.write("data/table.txt", "4 5 6\n");
    let run = s.kiln(&["build"]).ok();
    assert_eq!(
        run.ran_outputs(),
        set(&[
            "build/src/extra.o",
            "build/src/main.o",
            "build/hello",
            "smoke"
        ])
    );
    assert_eq!(
        s.kiln(&["list"]).ok().stdout,
        "version-header build/version.h\nutil build/libutil.a\nhello build/hello\nutil-shared build/libutil.so\nsources build/sources.txt\nsmoke-test\nversion-copy dist/VERSION\nrun-with-args build/args.txt\n"
    );
    // The sources compiled twice: the static library's objects and the shared one's.
    for object in ["build/lib/greet.o", "build/pic/lib/greet.o"] {
        assert!(s.exists(object), "{object}");
    }
    assert_eq!(
        s.read("build/sources.txt"),
        "lib/greet.c\nlib/shout.c\nsrc/main.c\n"
    );
    // [configure] wrote its header; the variant builds on its own; install copies what it says.
    assert!(
        s.read("build/config.h")
            .contains("#define HAVE_STDINT_H 1\n")
    );
    s.kiln(&["build", "--variant", "debug"]).ok();
    assert!(s.exists("build-debug/hello"));
    s.kiln(&["install", "--destdir", "stage"]).ok();
    assert!(s.exists("stage/usr/local/bin/hello"));
    assert!(s.exists("stage/usr/local/include/hello/greet.h"));
    // `default = false`: built only when named.
    assert!(!s.exists("build/args.txt"));
    let run = s.kiln(&["build", "run-with-args"]).ok();
    assert_eq!(run.ran_outputs(), set(&["build/args.txt"]));
    assert_eq!(
        s.read("build/args.txt"),
        "Hello, world!\nBUILT BY KILN\nversion 1.2.3, answer 42\n"
    );
}

#[test]
fn targets_on_a_clean_tree_build_the_earlier_groups_first() {
    // `hello` reads version.h through a depfile only: no file constraint names it, but it comes
    // from the earlier group, which a target selection builds whole (waf's get_targets).
    for targets in [&["build", "--targets", "hello"][..], &["build", "hello"]] {
        let s = copy_example();
        let run = s.kiln(targets).ok();
        assert_eq!(run.ran_outputs(), set(&EVERY_OUTPUT));
        assert!(run_hello(&s).contains("version "));
    }
}
