//! `[configure]` and `kiln configure` with real tools: programs found on PATH (and named by the
//! process environment or `-D`), pkg-config with a `.pc` file a test writes and with zlib1g-dev's,
//! compile and link checks that pass and fail, `config.h`; and a stale `config.h` never surviving a
//! change that should run a check again, one test per trigger.

use crate::support::{Run, Space, set};

/// A program that includes `config.h` and prints what it says, with zlib's version.
const MAIN: &str = "#include \"config.h\"\n#include <stdio.h>\n#include <zlib.h>\n\
int main(void) {\n#ifdef HAVE_WRAP2\n  puts(\"wrap2\");\n#else\n  puts(\"plain\");\n#endif\n  puts(zlibVersion());\n  return 0;\n}\n";

/// The build file: CC found on PATH (a wrapper of the test's own first), zlib from pkg-config
/// (its LIBS reaching the link through an `[env]` value), a check that passes only when the
/// wrapper defines WRAPPED=2, one that needs libm.
const BUILD: &str = "[env]
CFLAGS = [\"-O1\"]
# A value naming a result gets it.
LINKLIBS = [\"${ZLIB_LIBS}\"]

[configure]
programs = { CC = [\"mycc\", \"cc\"] }
packages = { ZLIB = \"zlib >= 1.2\" }
header = \"config.h\"

[[configure.check]]
define = \"HAVE_WRAP2\"
compile = \"#if !defined(WRAPPED) || WRAPPED != 2\\n#error not wrapped twice\\n#endif\\nint x;\"
optional = true

[[configure.check]]
define = \"HAVE_LIBM\"
link = \"#include <math.h>\\nint main(int c, char **v) { (void)v; return (int)sqrt((double)c); }\"
libs = [\"-lm\"]

[rule.cc]
run = \"${CC} ${CFLAGS} ${ZLIB_CFLAGS} -I${OUT} -MMD -MF ${TGT}.d -c ${SRC} -o ${TGT}\"
ext_in = [\".c\"]
ext_out = [\".o\"]
depfile = \"${TGT}.d\"

[[gen]]
name = \"app\"
run = \"${CC} ${SRC} -o ${TGT} ${LINKLIBS}\"
source = [\"main.c\"]
target = \"app\"
";

/// A wrapper of the machine's compiler that defines WRAPPED=`n`.
fn wrapper(n: u32) -> String {
    format!("#!/bin/sh\nexec cc -DWRAPPED={n} \"$@\"\n")
}

fn write_exe(s: &Space, path: &str, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    s.write(path, text);
    std::fs::set_permissions(s.path(path), std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn project() -> Space {
    let s = Space::new();
    s.write("build.toml", BUILD);
    s.write("main.c", MAIN);
    write_exe(&s, "bin/mycc", &wrapper(1));
    s
}

/// PATH with the project's `bin` (and `first`, before it) ahead of the machine's.
fn path_with(s: &Space, first: Option<&str>) -> String {
    let mut dirs = Vec::new();
    if let Some(f) = first {
        dirs.push(s.path(f).to_string_lossy().into_owned());
    }
    dirs.push(s.path("bin").to_string_lossy().into_owned());
    dirs.push(std::env::var("PATH").unwrap_or_default());
    dirs.join(":")
}

fn build(s: &Space, args: &[&str], path: &str, extra: &[(&str, Option<&str>)]) -> Run {
    let mut env: Vec<(&str, Option<&str>)> = vec![
        ("PATH", Some(path)),
        ("CC", None),
        ("PKG_CONFIG_PATH", None),
    ];
    env.extend_from_slice(extra);
    s.kiln_with(".", args, &env)
}

/// The build file with `from` replaced by `to`, built: it must stop with exit 2 and a message
/// that starts with `starts` (a located one) or holds `holds`.
fn stops(from: &str, to: &str, path: Option<&str>) -> (Space, Run) {
    let s = project();
    s.write("build.toml", BUILD.replace(from, to));
    let path = path.map_or_else(|| path_with(&s, None), str::to_string);
    let run = build(&s, &["build"], &path, &[]).status(2);
    assert!(!s.exists("build/app"));
    (s, run)
}

fn app_says(s: &Space) -> String {
    let out = std::process::Command::new(s.path("build/app"))
        .output()
        .expect("the program runs");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn configure_finds_programs_and_packages_runs_checks_and_writes_config_h() {
    let s = project();
    let path = path_with(&s, None);
    let run = build(&s, &["build"], &path, &[]).ok();
    let mycc = s.path("bin/mycc").to_string_lossy().into_owned();
    for line in [
        format!("configure: CC = {mycc}\n"),
        "configure: ZLIB = zlib >= 1.2: found 1.2.13\n".to_string(),
        "configure: HAVE_WRAP2: no\n".to_string(),
        "configure: HAVE_LIBM: yes\n".to_string(),
        "configure: wrote build/config.h\n".to_string(),
    ] {
        assert!(run.stderr.contains(&line), "{line:?} in\n{}", run.stderr);
    }
    assert_eq!(
        s.read("build/config.h"),
        "/* Written by kiln configure. */\n/* #undef HAVE_WRAP2 */\n#define HAVE_LIBM 1\n"
    );
    assert_eq!(app_says(&s), "plain\n1.2.13\n");
    // Nothing changed: no check runs again, nothing builds.
    let run = build(&s, &["build"], &path, &[]).ok();
    assert!(run.ran().is_empty());
    assert!(!run.stderr.contains("configure:"), "{}", run.stderr);
    // `kiln configure` runs them now.
    let run = build(&s, &["configure"], &path, &[]).ok();
    assert!(
        run.stderr.contains("configure: HAVE_LIBM: yes\n"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("'configure' finished successfully"));
}

#[test]
fn what_configure_cannot_find_stops_with_what_it_looked_for() {
    // A check that is not optional and fails: the compiler's words, nothing built.
    let (_, run) = stops(
        "#include <math.h>",
        "#include <no_such_header_here.h>\\n#include <math.h>",
        None,
    );
    for text in [
        "error: configure: check HAVE_LIBM failed: the snippet does not link\n",
        "no_such_header_here.h",
    ] {
        assert!(run.stderr.contains(text), "{text:?} in\n{}", run.stderr);
    }
    // A program found nowhere.
    let (_, run) = stops(
        "[\"mycc\", \"cc\"]",
        "[\"no-such-cc\"]",
        Some("/nonexistent"),
    );
    let text =
        "error: configure: no program for CC: looked for `no-such-cc` in PATH (/nonexistent)\n";
    assert!(run.stderr.contains(text), "{}", run.stderr);
    // A package pkg-config does not have, or not in that version.
    let (_, run) = stops("zlib >= 1.2", "zlib >= 99", None);
    let text = "error: configure: no package for ZLIB: pkg-config found no `zlib >= 99`\n";
    assert!(run.stderr.contains(text), "{}", run.stderr);
}

#[test]
fn cc_from_the_environment_or_d_wins_over_what_configure_finds() {
    let s = project();
    write_exe(&s, "other/cc2", &wrapper(2));
    let path = path_with(&s, None);
    let cc2 = s.path("other/cc2").to_string_lossy().into_owned();
    let run = build(&s, &["build"], &path, &[("CC", Some(&cc2))]).ok();
    assert!(
        run.stderr.contains(&format!("configure: CC = {cc2}\n")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("configure: HAVE_WRAP2: yes\n"));
    assert_eq!(app_says(&s), "wrap2\n1.2.13\n");
    // Without it, the program found on PATH again: configure runs again.
    let run = build(&s, &["build"], &path, &[]).ok();
    assert!(
        run.stderr.contains("configure: HAVE_WRAP2: no\n"),
        "{}",
        run.stderr
    );
    assert_eq!(app_says(&s), "plain\n1.2.13\n");
    // -D wins over both.
    let d = format!("CC={cc2}");
    let run = build(&s, &["build", "-D", &d], &path, &[("CC", Some("cc"))]).ok();
    assert!(
        run.stderr.contains("configure: HAVE_WRAP2: yes\n"),
        "{}",
        run.stderr
    );
    assert_eq!(app_says(&s), "wrap2\n1.2.13\n");
}

/// After a change that should run the checks again: config.h says the new answer and what
/// includes it was compiled again.
fn assert_rerun(run: &Run, s: &Space, wrap2: bool) {
    let answer = if wrap2 { "yes" } else { "no" };
    assert!(
        run.stderr
            .contains(&format!("configure: HAVE_WRAP2: {answer}\n")),
        "{}",
        run.stderr
    );
    let define = if wrap2 {
        "#define HAVE_WRAP2 1\n"
    } else {
        "/* #undef HAVE_WRAP2 */\n"
    };
    assert!(s.read("build/config.h").contains(define));
    assert!(
        run.ran_outputs().contains("build/main.o"),
        "{:?}",
        run.ran()
    );
    assert_eq!(
        app_says(s),
        format!("{}\n1.2.13\n", if wrap2 { "wrap2" } else { "plain" })
    );
}

#[test]
fn a_change_to_the_configure_table_runs_the_checks_again() {
    let s = project();
    let path = path_with(&s, None);
    build(&s, &["build"], &path, &[]).ok();
    // The check now asks for WRAPPED == 1, which the wrapper gives.
    s.write("build.toml", BUILD.replace("WRAPPED != 2", "WRAPPED != 1"));
    let run = build(&s, &["build"], &path, &[]).ok();
    assert_rerun(&run, &s, true);
}

#[test]
fn a_found_program_that_changes_runs_the_checks_again() {
    let s = project();
    let path = path_with(&s, None);
    build(&s, &["build"], &path, &[]).ok();
    // Its content.
    write_exe(&s, "bin/mycc", &wrapper(2));
    let run = build(&s, &["build"], &path, &[]).ok();
    assert_rerun(&run, &s, true);
    // Its path: another mycc comes first on PATH.
    write_exe(&s, "first/mycc", &wrapper(1));
    let first = path_with(&s, Some("first"));
    let run = build(&s, &["build"], &first, &[]).ok();
    assert_rerun(&run, &s, false);
    assert!(build(&s, &["build"], &first, &[]).ok().ran().is_empty());
}

#[test]
fn an_env_value_the_checks_use_that_changes_runs_them_again() {
    let s = project();
    let path = path_with(&s, None);
    build(&s, &["build"], &path, &[]).ok();
    // CFLAGS in the build file.
    s.write(
        "build.toml",
        BUILD.replace(
            "CFLAGS = [\"-O1\"]",
            "CFLAGS = [\"-O1\", \"-UWRAPPED\", \"-DWRAPPED=2\"]",
        ),
    );
    let run = build(&s, &["build"], &path, &[]).ok();
    assert_rerun(&run, &s, true);
    // CFLAGS from -D.
    let run = build(&s, &["build", "-D", "CFLAGS=-O1"], &path, &[]).ok();
    assert_rerun(&run, &s, false);
}

#[test]
fn a_pc_file_that_changes_runs_configure_again() {
    let s = project();
    s.write(
        "build.toml",
        BUILD
            .replace(
                "packages = { ZLIB = \"zlib >= 1.2\" }",
                "packages = { ZLIB = \"zlib >= 1.2\", FOO = \"foo >= 1.0\" }",
            )
            .replace("${ZLIB_CFLAGS}", "${ZLIB_CFLAGS} ${FOO_CFLAGS}"),
    );
    s.write(
        "main.c",
        "#include <stdio.h>\nint main(void) { puts(FOO_GREETING); return 0; }\n",
    );
    let pc = |greeting: &str| {
        format!(
            "Name: foo\nDescription: a test package\nVersion: 1.2\nCflags: -DFOO_GREETING=\\\"{greeting}\\\"\nLibs:\n"
        )
    };
    s.write("pc/foo.pc", pc("hello"));
    let path = path_with(&s, None);
    let pcdir = s.path("pc").to_string_lossy().into_owned();
    let env = [("PKG_CONFIG_PATH", Some(pcdir.as_str()))];
    let run = build(&s, &["build"], &path, &env).ok();
    assert!(
        run.stderr
            .contains("configure: FOO = foo >= 1.0: found 1.2\n"),
        "{}",
        run.stderr
    );
    assert_eq!(app_says(&s), "hello\n");
    assert!(build(&s, &["build"], &path, &env).ok().ran().is_empty());
    s.write("pc/foo.pc", pc("bonjour"));
    let run = build(&s, &["build"], &path, &env).ok();
    assert!(
        run.stderr
            .contains("configure: FOO = foo >= 1.0: found 1.2\n"),
        "{}",
        run.stderr
    );
    assert_eq!(run.ran_outputs(), set(&["build/main.o", "build/app"]));
    assert_eq!(app_says(&s), "bonjour\n");
}

#[test]
fn configure_in_a_part_or_a_bad_check_is_a_located_error() {
    let (s, run) = stops(
        "optional = true\n",
        "optional = true\nlink = \"int main(void) { return 0; }\"\n",
        None,
    );
    let text = "build.toml:15:8: error: check `HAVE_WRAP2` has both `compile` and `link`\n";
    assert!(run.stderr.starts_with(text), "{}", run.stderr);
    assert!(!s.exists("build"));
    // Only the top build file configures.
    let s = Space::new();
    s.write("build.toml", "[project]\nsubdirs = [\"lib\"]\n");
    s.write("lib/build.toml", "[configure]\nheader = \"config.h\"\n");
    s.kiln(&["build"]).status(2).stderr_is(concat!(
        "lib/build.toml:1:1: error: [configure] belongs to the top build file\n",
        "  |\n",
        "1 | [configure]\n",
        "  | ^^^^^^^^^^^\n",
        "  = its results are env values every part sees\n",
    ));
}

#[test]
fn a_variant_configures_on_its_own_with_its_values() {
    // The variant's CFLAGS reach its checks; its results and config.h are its own.
    let s = project();
    s.write(
        "build.toml",
        format!(
            "{BUILD}\n[variant.two]\nenv = {{ CFLAGS = [\"${{CFLAGS}}\", \"-UWRAPPED\", \"-DWRAPPED=2\"] }}\n\
             [variant.other]\nenv = {{ CC = \"cc\" }}\n"
        ),
    );
    let path = path_with(&s, None);
    let run = build(&s, &["build", "--variant", "two"], &path, &[]).ok();
    assert!(
        run.stderr.contains("configure: HAVE_WRAP2: yes\n"),
        "{}",
        run.stderr
    );
    assert!(
        s.read("build/two/config.h")
            .contains("#define HAVE_WRAP2 1\n")
    );
    let run = build(&s, &["build"], &path, &[]).ok();
    assert!(
        run.stderr.contains("configure: HAVE_WRAP2: no\n"),
        "{}",
        run.stderr
    );
    assert!(
        build(&s, &["build", "--variant", "two"], &path, &[])
            .ok()
            .ran()
            .is_empty()
    );
    // A variant's CC is over what configure found; the process environment's CC is over both.
    let run = build(&s, &["build", "--variant", "other", "-v"], &path, &[]).ok();
    assert!(run.stderr.contains("\ncc -O1"), "{}", run.stderr);
    write_exe(&s, "other/cc2", &wrapper(2));
    let cc2 = s.path("other/cc2").to_string_lossy().into_owned();
    let run = build(
        &s,
        &["build", "--variant", "other", "-v"],
        &path,
        &[("CC", Some(&cc2))],
    )
    .ok();
    assert!(
        run.stderr.contains(&format!("\n{cc2} -O1")),
        "{}",
        run.stderr
    );
}
