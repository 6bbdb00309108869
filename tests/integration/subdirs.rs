//! Several build files (`[project] subdirs`): each part's paths relative to its own directory,
//! rules and env added or overridden per part, generator names project-wide, errors located in the
//! file they are in, and an edited part the only build file parsed again.

use crate::support::{Run, Space, Test, set};

const TOP: &str = "\
[project]
subdirs = [\"lib\", \"app\"]

[env]
FLAGS = [\"-O2\"]

[rule.cc]
run = \"echo cc ${FLAGS} ${SRC} > ${TGT}; cat ${SRC} >> ${TGT}\"
ext_in = [\".c\"]
ext_out = [\".o\"]

[rule.ar]
run = \"cat ${SRC} > ${TGT}\"
";

const LIB: &str = "\
[env]
FLAGS = [\"${FLAGS}\", \"-DLIB\"]

[[gen]]
name = \"version\"
run = \"echo v1 > ${TGT}\"
target = \"version.c\"

[[gen]]
name = \"libz\"
rule = \"ar\"
source = [\"*.c\", \"version.c\"]
target = \"libz.a\"
";

const APP: &str = "\
[rule.cc]
run = \"echo app-cc ${FLAGS} ${SRC} > ${TGT}; cat ${SRC} >> ${TGT}\"
ext_in = [\".c\"]
ext_out = [\".o\"]

[[gen]]
name = \"app\"
run = \"cat ${SRC} > ${TGT}\"
source = [\"main.c\"]
use = [\"libz\"]
target = \"app\"
";

/// Every output of [`project`].
const EVERY_OUTPUT: [&str; 7] = [
    "build/lib/version.c",
    "build/lib/a.o",
    "build/lib/b.o",
    "build/lib/version.o",
    "build/lib/libz.a",
    "build/app/main.o",
    "build/app/app",
];

fn project() -> Space {
    let s = Space::new();
    s.write("build.toml", TOP);
    s.write("lib/build.toml", LIB);
    s.write("lib/a.c", "A\n");
    s.write("lib/b.c", "B\n");
    s.write("app/build.toml", APP);
    s.write("app/main.c", "M\n");
    s
}

/// `-d stats`' count of build files parsed and decoded.
fn parsed_and_decoded(run: &Run) -> (u64, u64) {
    (
        run.stats_count("files parsed"),
        run.stats_count("files decoded"),
    )
}

#[test]
fn parts_have_paths_rules_and_env_of_their_own() {
    let s = project();
    let run = s.kiln(&["build", "-j1"]).ok();
    assert_eq!(run.ran_outputs(), set(&EVERY_OUTPUT));
    // lib's env extends the top file's; app's rule `cc` overrides the top file's.
    assert_eq!(s.read("build/lib/a.o"), "cc -O2 -DLIB lib/a.c\nA\n");
    assert_eq!(
        s.read("build/lib/version.o"),
        "cc -O2 -DLIB build/lib/version.c\nv1\n"
    );
    assert_eq!(s.read("build/app/main.o"), "app-cc -O2 app/main.c\nM\n");
    assert_eq!(
        s.read("build/app/app"),
        "app-cc -O2 app/main.c\nM\n\
         cc -O2 -DLIB lib/a.c\nA\ncc -O2 -DLIB lib/b.c\nB\ncc -O2 -DLIB build/lib/version.c\nv1\n"
    );
    assert_eq!(
        s.kiln(&["list"]).ok().stdout,
        "version build/lib/version.c\nlibz build/lib/libz.a\napp build/app/app\n"
    );
    assert!(s.kiln(&["build"]).ok().ran().is_empty());
    // A target by name from the top directory, as anywhere.
    s.write("lib/b.c", "BB\n");
    let run = s.kiln(&["build", "libz"]).ok();
    assert_eq!(
        run.ran_outputs(),
        set(&["build/lib/b.o", "build/lib/libz.a"])
    );
}

#[test]
fn an_edited_part_is_the_only_build_file_parsed_again() {
    let s = project();
    let run = s.kiln(&["build", "-d", "stats"]).ok();
    assert_eq!(parsed_and_decoded(&run), (3, 0), "{}", run.stderr);
    // The first build made kiln's state; the second keeps the parsed files and the graph there.
    let run = s.kiln(&["build", "-d", "stats"]).ok();
    assert_eq!(parsed_and_decoded(&run), (3, 0), "{}", run.stderr);
    // Unchanged: the graph cache answers, nothing is parsed or decoded.
    let run = s.kiln(&["build", "-d", "stats"]).ok();
    assert!(run.ran().is_empty());
    assert_eq!(parsed_and_decoded(&run), (0, 0), "{}", run.stderr);
    // One part edited: it alone is parsed; the others are decoded; its tasks run again.
    s.write(
        "lib/build.toml",
        LIB.replace("\"-DLIB\"", "\"-DLIB\", \"-DV2\""),
    );
    let run = s.kiln(&["build", "-d", "stats"]).ok();
    assert_eq!(parsed_and_decoded(&run), (1, 2), "{}", run.stderr);
    assert_eq!(
        run.ran_outputs(),
        set(&[
            "build/lib/a.o",
            "build/lib/b.o",
            "build/lib/version.o",
            "build/lib/libz.a",
            "build/app/app",
        ])
    );
    assert_eq!(s.read("build/lib/a.o"), "cc -O2 -DLIB -DV2 lib/a.c\nA\n");
    assert!(s.kiln(&["build"]).ok().ran().is_empty());
    // The top file edited: parsed again; the parts decoded.
    s.write("build.toml", TOP.replace("-O2", "-O3"));
    let run = s.kiln(&["build", "-d", "stats"]).ok();
    assert_eq!(parsed_and_decoded(&run), (1, 2), "{}", run.stderr);
    assert_eq!(s.read("build/app/main.o"), "app-cc -O3 app/main.c\nM\n");
}

#[test]
fn an_error_in_a_part_is_located_in_its_file() {
    let (s, _) = Test::new()
        .build_file(TOP)
        .file("lib/build.toml", LIB)
        .file("lib/a.c", "A\n")
        .file("app/build.toml", &APP.replace("use = ", "uses = "))
        .file("app/main.c", "M\n")
        .status(2)
        .stderr_has("app/build.toml:10:1: error: unknown key `uses`\n")
        .run();
    assert!(!s.exists("build"));
    // Found while expanding: a missing source, named by its path from the top directory.
    Test::new()
        .build_file(TOP)
        .file("lib/build.toml", LIB)
        .file("lib/a.c", "A\n")
        .file("app/build.toml", &APP.replace("\"main.c\"", "\"mian.c\""))
        .status(2)
        .stderr_is(concat!(
            "app/build.toml:9:11: error: missing source `app/mian.c` in `source` of generator `app`\n",
            "  |\n",
            "9 | source = [\"mian.c\"]\n",
            "  |           ^^^^^^^^\n",
            "  = no such file, and no generator declares it as a target\n",
        ))
        .run();
    // Generator names are project-wide.
    Test::new()
        .build_file(TOP)
        .file("lib/build.toml", LIB)
        .file("lib/a.c", "A\n")
        .file(
            "app/build.toml",
            &APP.replace("name = \"app\"", "name = \"libz\""),
        )
        .file("app/main.c", "M\n")
        .status(2)
        .stderr_is(concat!(
            "app/build.toml:7:8: error: duplicate generator name `libz`\n",
            "  |\n",
            "7 | name = \"libz\"\n",
            "  |        ^^^^^^\n",
            "  = first defined at lib/build.toml:10; generator names are project-wide\n",
        ))
        .run();
}

#[test]
fn what_a_part_may_not_say_is_an_error() {
    // A part the top file names must have a build file.
    Test::new()
        .build_file(TOP)
        .file("lib/build.toml", LIB)
        .file("lib/a.c", "A\n")
        .status(2)
        .stderr_has(
            "build.toml:2:19: error: no build file `app/build.toml` for the `subdirs` entry `app`\n",
        )
        .stderr_has("  = each directory in `subdirs` holds a build.toml of its own\n")
        .run();
    // Only the top file sets the build directory and declares groups.
    Test::new()
        .build_file(TOP)
        .file("lib/build.toml", &format!("[project]\nout = \"b2\"\n{LIB}"))
        .file("app/build.toml", APP)
        .status(2)
        .stderr_is(concat!(
            "lib/build.toml:2:7: error: `out` of [project] belongs to the top build file\n",
            "  |\n",
            "2 | out = \"b2\"\n",
            "  |       ^^^^\n",
            "  = a part shares the project's; it may only name more parts with `subdirs`\n",
        ))
        .run();
    Test::new()
        .build_file(TOP)
        .file("lib/build.toml", LIB)
        .file(
            "app/build.toml",
            &format!("[[group]]\nname = \"late\"\n{APP}"),
        )
        .status(2)
        .stderr_has("app/build.toml:2:8: error: groups are declared in the top build file\n")
        .run();
    // A part is a directory below the one that names it, read once.
    for (entry, message) in [
        (
            "\"../x\"",
            "`../x` in `subdirs` is not a directory below this one",
        ),
        (
            "\".\"",
            "`.` in `subdirs` is not a directory below this one",
        ),
        (
            "\"lib\", \"lib/\"",
            "`lib/` in `subdirs` names `lib`, already a part",
        ),
    ] {
        Test::new()
            .build_file(&TOP.replace("\"lib\", \"app\"", entry))
            .file("lib/build.toml", LIB)
            .file("lib/a.c", "A\n")
            .status(2)
            .stderr_has(message)
            .run();
    }
}

#[test]
fn parts_nest_and_inherit_from_the_part_that_names_them() {
    let s = Space::new();
    s.write(
        "build.toml",
        "[project]\nsubdirs = \"lib\"\n[env]\nWHO = \"top\"\n[rule.say]\nrun = \"echo ${WHO} > ${TGT}\"\n",
    );
    s.write(
        "lib/build.toml",
        "[project]\nsubdirs = [\"inner\"]\n[env]\nWHO = \"${WHO}-lib\"\n[[gen]]\nname = \"lib-say\"\nrule = \"say\"\ntarget = \"said\"\n",
    );
    s.write(
        "lib/inner/build.toml",
        "[[gen]]\nname = \"inner-say\"\nrule = \"say\"\ntarget = \"said\"\n[[gen]]\nname = \"committed\"\nrun = \"echo kept > ${TGT}\"\ntarget = \"KEPT\"\n",
    );
    s.kiln(&["build"]).ok();
    assert_eq!(s.read("build/lib/said"), "top-lib\n");
    assert_eq!(s.read("build/lib/inner/said"), "top-lib\n");
    assert_eq!(s.read("build/lib/inner/KEPT"), "kept\n");
    // -D wins over every part's value.
    s.kiln(&["build", "-D", "WHO=cli"]).ok();
    assert_eq!(s.read("build/lib/inner/said"), "cli\n");
}

#[test]
fn started_inside_a_part_kiln_builds_the_project_it_belongs_to() {
    let s = project();
    let run = s.kiln_in("app", &["build", "app"]).ok();
    assert_eq!(run.ran_outputs(), set(&EVERY_OUTPUT));
    assert!(!s.exists("app/build"));
    // Errors name the files as seen from there.
    s.write("app/build.toml", APP.replace("\"main.c\"", "\"mian.c\""));
    s.kiln_in("app", &["build"])
        .status(2)
        .stderr_has("../app/build.toml:9:11: error: missing source `app/mian.c`");
    // A build file above that does not name the directory is another project.
    s.write(
        "tools/build.toml",
        "[[gen]]\nname = \"t\"\nrun = \"echo t > ${TGT}\"\ntarget = \"t\"\n",
    );
    let run = s.kiln_in("tools", &["build"]).ok();
    assert_eq!(run.ran_outputs(), set(&["build/t"]));
    assert!(s.exists("tools/build/t"));
}
