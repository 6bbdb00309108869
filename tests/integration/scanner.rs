//! The include scanner (`scan = "c"`): clean `-j2` builds with a compile rule that scans and has
//! no depfile, generated headers in the same group as the objects that include them; and missing
//! dependencies (a depfile naming another task's output with nothing ordering the two) reported.
//! The compiles are the machine's C compiler.

use crate::support::{Space, set};

/// Rules shared by the tests: `cc` scans and logs when each compile starts; `link` links.
const RULES: &str = "\
[env]
INCLUDES = [\"build\", \"build/gen\", \"include\"]
INC_ST = \"-I%s\"

[rule.cc]
run = \"echo start ${TGT} >> build/log; cc ${INC_ST:INCLUDES} -c ${SRC} -o ${TGT}\"
ext_in = [\".c\"]
ext_out = [\".o\"]
scan = \"c\"

[rule.link]
run = \"cc ${SRC} -o ${TGT}\"
";

fn project(extra: &str) -> Space {
    let s = Space::new();
    s.write("build.toml", format!("{RULES}{extra}"));
    s
}

fn log(s: &Space) -> Vec<String> {
    s.lines("build/log")
}

fn position(log: &[String], line: &str) -> usize {
    log.iter()
        .position(|l| l == line)
        .unwrap_or_else(|| panic!("{line:?} not in {log:?}"))
}

/// A generator of a header that takes its time and logs its start and end.
fn slow_header(name: &str, target: &str, text: &str) -> String {
    format!(
        "[[gen]]\nname = \"{name}\"\nrun = \"echo start {name} >> build/log; sleep 0.5; printf '{text}' > ${{TGT}}; echo end {name} >> build/log\"\ntarget = \"{target}\"\n"
    )
}

#[test]
fn a_generated_header_in_the_same_group_is_made_before_its_includers_and_only_them() {
    let s = project(&format!(
        "{}[[gen]]\nname = \"app\"\nrule = \"link\"\nsource = [\"a.c\", \"b.c\"]\ntarget = \"app\"\n",
        slow_header("gen", "gen.h", "#define ANSWER 42\\n")
    ));
    s.write(
        "a.c",
        "#include \"gen.h\"\nint a(void) { return ANSWER; }\n",
    );
    s.write(
        "b.c",
        "int a(void);\nint main(void) { return a() == 42 ? 0 : 1; }\n",
    );
    s.kiln(&["build", "-j2"]).ok();
    let log = log(&s);
    // b.o includes no generated header: it starts while gen.h is being made.
    assert!(
        position(&log, "start build/b.o") < position(&log, "end gen"),
        "{log:?}"
    );
    assert!(
        position(&log, "end gen") < position(&log, "start build/a.o"),
        "{log:?}"
    );
    let status = std::process::Command::new(s.path("build/app"))
        .status()
        .unwrap();
    assert!(status.success());
    // Up to date; an edit of the header's generator reruns exactly what includes it.
    assert!(s.kiln(&["build"]).ok().ran().is_empty());
    let text = s.read("build.toml").replace("ANSWER 42", "ANSWER 43");
    s.write("build.toml", text);
    let run = s.kiln(&["build", "-j2"]).ok();
    assert_eq!(
        run.ran_outputs(),
        set(&["build/gen.h", "build/a.o", "build/app"])
    );
    let status = std::process::Command::new(s.path("build/app"))
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1), "the program sees the new header");
}

#[test]
fn a_generated_header_that_includes_another_is_followed_once_made() {
    // one.h is made at once and includes two.h, which takes its time: the plan knows only
    // one.h; the scan when a.o is about to start finds two.h and waits for it.
    let s = project(&format!(
        "[[gen]]\nname = \"one\"\nrun = \"printf '#include \\\"two.h\\\"\\\\n#define ONE TWO\\\\n' > ${{TGT}}\"\ntarget = \"one.h\"\n{}\
         [[gen]]\nname = \"app\"\nrule = \"link\"\nsource = [\"a.c\"]\ntarget = \"app\"\n",
        slow_header("two", "two.h", "#define TWO 2\\n")
    ));
    s.write(
        "a.c",
        "#include \"one.h\"\nint main(void) { return ONE == 2 ? 0 : 1; }\n",
    );
    s.kiln(&["build", "-j2"]).ok();
    let log = log(&s);
    assert!(
        position(&log, "end two") < position(&log, "start build/a.o"),
        "{log:?}"
    );
    assert!(
        std::process::Command::new(s.path("build/app"))
            .status()
            .unwrap()
            .success()
    );
    // two.h is an implicit dependency of a.o now.
    let text = s.read("build.toml").replace("TWO 2", "TWO 3");
    s.write("build.toml", text);
    let run = s.kiln(&["build", "-j2"]).ok();
    assert_eq!(
        run.ran_outputs(),
        set(&["build/two.h", "build/a.o", "build/app"])
    );
}

#[test]
fn an_include_cycle_ends_and_every_header_in_it_counts() {
    let s =
        project("[[gen]]\nname = \"app\"\nrule = \"link\"\nsource = [\"a.c\"]\ntarget = \"app\"\n");
    s.write(
        "include/x.h",
        "#ifndef X_H\n#define X_H\n#include \"y.h\"\n#define X 1\n#endif\n",
    );
    s.write(
        "include/y.h",
        "#ifndef Y_H\n#define Y_H\n#include \"x.h\"\n#define Y 2\n#endif\n",
    );
    s.write(
        "a.c",
        "#include <x.h>\nint main(void) { return X + Y == 3 ? 0 : 1; }\n",
    );
    s.kiln(&["build", "-j2"]).ok();
    assert!(s.kiln(&["build"]).ok().ran().is_empty());
    s.write(
        "include/y.h",
        "#ifndef Y_H\n#define Y_H\n#include \"x.h\"\n#define Y 3\n#endif\n",
    );
    let run = s.kiln(&["build", "-j2"]).ok();
    assert_eq!(run.ran_outputs(), set(&["build/a.o", "build/app"]));
}

#[test]
fn a_header_in_a_generated_directory_is_found_through_its_include_path() {
    let s = project(&format!(
        "{}[[gen]]\nname = \"app\"\nrule = \"link\"\nsource = [\"a.c\", \"b.c\"]\ntarget = \"app\"\n",
        slow_header("config", "gen/config.h", "#define CONFIGURED 1\\n")
    ));
    s.write(
        "a.c",
        "#include <config.h>\nint main(void) { return CONFIGURED ? 0 : 1; }\n",
    );
    s.write("b.c", "int b(void) { return 0; }\n");
    s.kiln(&["build", "-j2"]).ok();
    let log = log(&s);
    assert!(
        position(&log, "end config") < position(&log, "start build/a.o"),
        "{log:?}"
    );
    assert!(
        position(&log, "start build/b.o") < position(&log, "end config"),
        "{log:?}"
    );
}

#[test]
fn a_macro_include_is_reported_and_a_system_header_ignored() {
    let s =
        project("[[gen]]\nname = \"app\"\nrule = \"link\"\nsource = [\"a.c\"]\ntarget = \"app\"\n");
    s.write(
        "a.c",
        "#include <stdio.h>\n#define HDR \"stdlib.h\"\n#include HDR\nint main(void) { return 0; }\n",
    );
    let run = s.kiln(&["build", "-j2"]).ok();
    assert!(
        run.stderr
            .contains("warning: `a.c` includes `HDR`, a macro the include scanner cannot follow"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_depfile_naming_another_tasks_output_with_nothing_ordering_them_is_reported() {
    // No scan: only the depfile says that a.o reads gen.h. At -j1 the generator, declared
    // first, happens to run first; nothing in the build file says it must.
    let s = Space::new();
    s.write(
        "build.toml",
        "[rule.cc]\nrun = \"cc -Ibuild -MMD -MF ${TGT}.d -c ${SRC} -o ${TGT}\"\next_in = [\".c\"]\next_out = [\".o\"]\ndepfile = \"${TGT}.d\"\n\
         [[gen]]\nname = \"gen\"\nrun = \"printf '#define V 1\\\\n' > ${TGT}\"\ntarget = \"gen.h\"\n\
         [[gen]]\nname = \"objs\"\nsource = [\"a.c\"]\n",
    );
    s.write("a.c", "#include \"gen.h\"\nint v(void) { return V; }\n");
    let run = s.kiln(&["build", "-j1"]).ok();
    assert!(
        run.stderr.contains(
            "warning: missing dependency: `cc (build/a.o)` read `build/gen.h`, which `gen (build/gen.h)` makes, and nothing orders the two; declare it (deps = [\"gen\"]) or give rule `cc` scan = \"c\"\n"
        ),
        "{}",
        run.stderr
    );
    // The dependency is recorded: the next build decides with it.
    assert!(s.kiln(&["build"]).ok().ran().is_empty());
    let text = s.read("build.toml").replace("V 1", "V 2");
    s.write("build.toml", text);
    let run = s.kiln(&["build", "-j2"]).ok();
    assert_eq!(
        run.ran(),
        vec!["gen: -> build/gen.h", "cc: a.c -> build/a.o"]
    );
    // Declared, it is no longer reported.
    let text = s
        .read("build.toml")
        .replace("name = \"objs\"\n", "name = \"objs\"\ndeps = [\"gen\"]\n");
    s.write("build.toml", text);
    s.write("a.c", "#include \"gen.h\"\nint v(void) { return V + 1; }\n");
    let run = s.kiln(&["build", "-j1"]).ok();
    assert!(!run.stderr.contains("missing dependency"), "{}", run.stderr);
}

#[test]
fn what_a_header_includes_is_parsed_once_across_builds() {
    let s = project(
        "[[gen]]\nname = \"app\"\nrule = \"link\"\nsource = [\"a.c\", \"b.c\"]\ntarget = \"app\"\n",
    );
    s.write("include/x.h", "#include \"y.h\"\n#define X 1\n");
    s.write("include/y.h", "#define Y 2\n");
    s.write(
        "a.c",
        "#include <x.h>\nint main(void) { return X + Y == 3 ? 0 : 1; }\n",
    );
    s.write("b.c", "#include <y.h>\nint b(void) { return Y; }\n");
    let run = s.kiln(&["build", "-j2", "-d", "stats"]).ok();
    assert_eq!(run.stats_count("includes parsed"), 4, "{}", run.stderr);
    // A null build scans nothing.
    let run = s.kiln(&["build", "-d", "stats"]).ok();
    assert_eq!(run.stats_count("tasks scanned"), 0, "{}", run.stderr);
    // An edited source is scanned again: it alone is parsed, its headers' includes are known.
    s.write(
        "a.c",
        "#include <x.h>\nint f(int v) { return v + X; }\nint main(void) { return X + Y == 3 ? 0 : 2; }\n",
    );
    let run = s.kiln(&["build", "-d", "stats"]).ok();
    assert_eq!(run.stats_count("tasks scanned"), 1, "{}", run.stderr);
    assert_eq!(run.stats_count("includes parsed"), 1, "{}", run.stderr);
    assert_eq!(run.ran_outputs(), set(&["build/a.o", "build/app"]));
}
