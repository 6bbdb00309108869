//! Part 3: task generators: globs in a stable sorted order, `${VAR}` and `${OUT}` in sources,
//! extension mapping, `use`, manual `deps`, targets under out/.

use crate::support::{Space, Test, set};

/// A rule that records what each task saw: its inputs in order.
const SEE: &str = "[rule.see]\nrun = \"echo ${SRC} > ${TGT}\"\n";

#[test]
fn globs_expand_sorted_with_every_wildcard() {
    let (s, _) = Test::new()
        .file("src/b.c", "")
        .file("src/a.c", "")
        .file("src/sub/deep/c.c", "")
        .file("src/x1.h", "")
        .file("src/x2.h", "")
        .file("src/xa.h", "")
        .file("src/skip_test.c", "")
        // A file left in a build directory of kiln's (its state marks it).
        .file("build/.kiln/lock", "")
        .file("build/stale.c", "")
        .file(".hidden/h.c", "")
        .build_file(&format!(
            "{SEE}[[gen]]\nrule = \"see\"\nsource = [\"src/**/*.c\"]\nexclude = [\"src/*_test.c\"]\ntarget = \"all\"\n\
             [[gen]]\nrule = \"see\"\nsource = [\"src/x?.h\"]\ntarget = \"q\"\n\
             [[gen]]\nrule = \"see\"\nsource = [\"src/x[0-9].h\"]\ntarget = \"class\"\n\
             [[gen]]\nrule = \"see\"\nsource = [\"**/*.c\"]\ntarget = \"everything\"\n"
        ))
        .run();
    assert_eq!(s.read("build/all"), "src/a.c src/b.c src/sub/deep/c.c\n");
    assert_eq!(s.read("build/q"), "src/x1.h src/x2.h src/xa.h\n");
    assert_eq!(s.read("build/class"), "src/x1.h src/x2.h\n");
    // The build directory and dot-directories are skipped unless named.
    assert_eq!(
        s.read("build/everything"),
        "src/a.c src/b.c src/skip_test.c src/sub/deep/c.c\n"
    );
}

#[test]
fn a_glob_that_matches_nothing_warns() {
    Test::new()
        .build_file(&format!(
            "{SEE}[[gen]]\nrule = \"see\"\nsource = [\"src/*.c\"]\ntarget = \"t\"\n"
        ))
        .stderr_has("warning: `src/*.c` in `source` of generator `t` matched nothing")
        .run();
}

#[test]
fn sources_expand_env_values_and_out() {
    let (s, _) = Test::new()
        .file("lib/one.txt", "1")
        .file("lib/two.txt", "2")
        .build_file(
            "[env]\nDIR = \"lib\"\nFILES = [\"lib/one.txt\", \"lib/two.txt\"]\n\
             [[gen]]\nname = \"gen\"\nrun = \"cp ${SRC} ${TGT}\"\nsource = \"${DIR}/one.txt\"\ntarget = \"gen/x.txt\"\n\
             [[gen]]\nname = \"from-out\"\nrun = \"cat ${SRC} > ${TGT}\"\nsource = [\"${OUT}/gen/x.txt\"]\ntarget = \"y.txt\"\n\
             [[gen]]\nname = \"spliced\"\nrun = \"echo ${SRC} > ${TGT}\"\nsource = [\"${FILES}\"]\ntarget = \"z.txt\"\n",
        )
        .run();
    assert_eq!(s.read("build/gen/x.txt"), "1");
    assert_eq!(s.read("build/y.txt"), "1");
    assert_eq!(s.read("build/z.txt"), "lib/one.txt lib/two.txt\n");
}

#[test]
fn extension_mapping_puts_outputs_under_out_and_chains() {
    let (s, run) = Test::new()
        .file("src/a.c", "A\n")
        .file("src/parse.y", "Y\n")
        .build_file(
            "[rule.yacc]\nrun = \"(cat ${SRC}; echo c) > ${TGT[0]} && echo h > ${TGT[1]}\"\next_in = [\".y\"]\next_out = [\".c\", \".h\"]\n\
             [rule.cc]\nrun = \"(cat ${SRC}; echo o) > ${TGT}\"\next_in = [\".c\"]\next_out = [\".o\"]\n\
             [rule.link]\nrun = \"cat ${SRC} > ${TGT}\"\n\
             [[gen]]\nrule = \"link\"\nsource = [\"src/a.c\", \"src/parse.y\"]\ntarget = \"app\"\n",
        )
        .run();
    assert_eq!(s.read("build/src/a.o"), "A\no\n");
    assert_eq!(s.read("build/src/parse.c"), "Y\nc\n");
    assert_eq!(s.read("build/src/parse.h"), "h\n");
    assert_eq!(s.read("build/src/parse.o"), "Y\nc\no\n");
    assert_eq!(s.read("build/app"), "A\no\nY\nc\no\n");
    // yacc runs before cc (ext_out .c feeds ext_in .c), cc before link (files).
    let ran = run.ran();
    let pos = |needle: &str| ran.iter().position(|l| l.contains(needle)).unwrap();
    assert!(pos("yacc:") < pos("build/src/parse.o"));
    assert!(pos("-> build/src/a.o") < pos("link:"));
}

#[test]
fn a_source_already_under_out_keeps_its_place() {
    let (s, _) = Test::new()
        .build_file(
            "[rule.cc]\nrun = \"cp ${SRC} ${TGT}\"\next_in = [\".c\"]\next_out = [\".o\"]\n\
             [[gen]]\nname = \"gen\"\nrun = \"echo gen > ${TGT}\"\ntarget = \"gen/x.c\"\n\
             [[gen]]\nname = \"objs\"\nsource = [\"gen/x.c\"]\n",
        )
        .args(&["build"])
        .run();
    assert_eq!(s.read("build/gen/x.o"), "gen\n");
    assert_eq!(
        s.kiln(&["list"]).ok().stdout,
        "gen build/gen/x.c\nobjs build/gen/x.o\n"
    );
}

#[test]
fn the_generators_own_rule_takes_its_extension_unmapped() {
    let (s, _) = Test::new()
        .file("a.c", "a\n")
        .build_file(
            "[rule.cc]\nrun = \"(cat ${SRC}; echo mapped) > ${TGT}\"\next_in = [\".c\"]\next_out = [\".o\"]\n\
             [[gen]]\nrule = \"cc\"\nsource = \"a.c\"\ntarget = \"direct.o\"\n",
        )
        .run();
    assert_eq!(s.read("build/direct.o"), "a\nmapped\n");
    assert!(!s.exists("build/a.o"));
}

#[test]
fn use_appends_outputs_after_own_sources_in_use_order() {
    let (s, run) = Test::new()
        .file("lib/x.c", "x")
        .file("lib/y.c", "y")
        .file("src/main.c", "m")
        .build_file(
            "[rule.cc]\nrun = \"cp ${SRC} ${TGT}\"\next_in = [\".c\"]\next_out = [\".o\"]\n\
             [rule.ar]\nrun = \"cat ${SRC} > ${TGT}\"\n\
             [rule.link]\nrun = \"echo ${SRC} > ${TGT}\"\n\
             [[gen]]\nname = \"app\"\nrule = \"link\"\nsource = \"src/*.c\"\ntarget = \"app\"\nuse = [\"y\", \"x\"]\n\
             [[gen]]\nname = \"x\"\nrule = \"ar\"\nsource = \"lib/x.c\"\ntarget = \"libx.a\"\n\
             [[gen]]\nname = \"y\"\nrule = \"ar\"\nsource = \"lib/y.c\"\ntarget = \"liby.a\"\n",
        )
        .run();
    assert_eq!(
        s.read("build/app"),
        "build/src/main.o build/liby.a build/libx.a\n"
    );
    let ran = run.ran();
    assert_eq!(
        ran.last().unwrap(),
        "link: build/src/main.o build/liby.a build/libx.a -> build/app"
    );
}

#[test]
fn a_source_naming_another_generators_target_refers_to_that_output() {
    let s = Space::new();
    s.write("version.h", "the source-tree file loses");
    s.write(
        "build.toml",
        "[[group]]\nname = \"gen\"\n[[group]]\nname = \"use\"\n\
         [[gen]]\nname = \"v\"\ngroup = \"gen\"\nrun = \"echo generated > ${TGT}\"\ntarget = \"version.h\"\n\
         [[gen]]\ngroup = \"use\"\nrun = \"cat ${SRC} > ${TGT}\"\nsource = \"version.h\"\ntarget = \"copy\"\n",
    );
    s.kiln(&["build"]).ok();
    assert_eq!(s.read("build/copy"), "generated\n");
}

#[test]
fn deps_are_in_the_signature_not_in_src_and_order_tasks() {
    let s = Space::new();
    s.write("in.txt", "in");
    s.write("data/table.txt", "t1");
    s.write(
        "build.toml",
        "[[gen]]\nname = \"table\"\nrun = \"sleep 0.3; echo made > ${TGT}; echo table >> log\"\ntarget = \"made.txt\"\n\
         [[gen]]\nrun = \"echo ${SRC} > ${TGT}; test -f build/made.txt && echo main >> log\"\nsource = \"in.txt\"\ntarget = \"out.txt\"\ndeps = [\"data/table.txt\", \"made.txt\"]\n",
    );
    s.kiln(&["build", "-j2"]).ok();
    assert_eq!(s.read("build/out.txt"), "in.txt\n");
    assert_eq!(s.lines("log"), vec!["table", "main"]);
    s.kiln(&["build"]).ok();
    assert_eq!(s.lines("log").len(), 2);
    s.write("data/table.txt", "t2");
    let run = s.kiln(&["build"]).ok();
    assert_eq!(run.ran_outputs(), set(&["build/out.txt"]));
}

#[test]
fn a_mapping_only_generator_orders_after_what_it_uses() {
    let (s, _) = Test::new()
        .file("a.c", "a")
        .build_file(
            "[rule.cc]\nrun = \"cat ${SRC} build/gen.h > ${TGT}\"\next_in = [\".c\"]\next_out = [\".o\"]\n\
             [[gen]]\nname = \"header\"\nrun = \"sleep 0.2; echo header > ${TGT}\"\ntarget = \"gen.h\"\n\
             [[gen]]\nname = \"objs\"\nsource = \"a.c\"\nuse = [\"header\"]\n",
        )
        .args(&["build", "-j4"])
        .run();
    assert_eq!(s.read("build/a.o"), "aheader\n");
}

#[test]
fn generator_env_splices_project_values() {
    let (s, _) = Test::new()
        .file("a.txt", "")
        .build_file(
            "[env]\nCFLAGS = [\"-O2\", \"-Wall\"]\n[rule.show]\nrun = \"echo ${CFLAGS} > ${TGT}\"\n\
             [[gen]]\nrule = \"show\"\ntarget = \"plain\"\n\
             [[gen]]\nrule = \"show\"\ntarget = \"spliced\"\nenv = { CFLAGS = [\"${CFLAGS}\", \"-DHELLO\"] }\n",
        )
        .run();
    assert_eq!(s.read("build/plain"), "-O2 -Wall\n");
    assert_eq!(s.read("build/spliced"), "-O2 -Wall -DHELLO\n");
}

#[test]
fn a_source_no_rule_takes_in_a_mapping_only_generator_is_an_error() {
    Test::new()
        .file("a.txt", "")
        .build_file("[[gen]]\nname = \"objs\"\nsource = \"a.txt\"\n")
        .status(2)
        .stderr_is(concat!(
            "build.toml:1:1: error: generator `objs` has the source `a.txt`, which no rule takes\n",
            "  |\n",
            "1 | [[gen]]\n",
            "  | ^^^^^^^\n",
            "  = a generator with neither `rule` nor `run` only maps its sources through rules whose ext_in match\n",
        ))
        .run();
    Test::new()
        .file("a.c", "")
        .build_file("[rule.cc]\nrun = \"x\"\next_in = [\".c\"]\next_out = [\".o\"]\n[[gen]]\nname = \"objs\"\nsource = \"a.c\"\ntarget = \"x\"\n")
        .status(2)
        .stderr_is(concat!(
            "build.toml:8:10: error: a generator with neither `rule` nor `run` cannot have a `target`\n",
            "  |\n",
            "8 | target = \"x\"\n",
            "  |          ^^^\n",
            "  = its outputs are what its sources are mapped to; add `rule` or `run` to make the target\n",
        ))
        .run();
}

#[test]
fn a_generator_name_defaults_to_its_first_target() {
    let (_, run) = Test::new()
        .build_file("[[gen]]\nrun = \"touch ${TGT}\"\ntarget = [\"one\", \"two\"]\n")
        .args(&["list"])
        .run();
    assert_eq!(run.stdout, "one build/one build/two\n");
}

#[test]
fn a_source_may_name_a_mapped_output_of_a_generator_declared_later() {
    let (s, _) = Test::new()
        .file("src/a.c", "A\n")
        .build_file(
            "[rule.cc]\nrun = \"cp ${SRC} ${TGT}\"\next_in = [\".c\"]\next_out = [\".o\"]\n\
             [[gen]]\nname = \"link\"\nrun = \"cat ${SRC} > ${TGT}\"\nsource = [\"build/src/a.o\"]\ntarget = \"prog\"\n\
             [[gen]]\nname = \"objs\"\nsource = [\"src/*.c\"]\n",
        )
        .run();
    assert_eq!(s.read("build/prog"), "A\n");
    // Still a missing source when nothing makes it.
    s.kiln(&["clean"]).ok();
    s.write(
        "build.toml",
        s.read("build.toml").replace("src/*.c", "src/*.nope"),
    );
    s.kiln(&["build"]).status(2).stderr_is(concat!(
        "build.toml:8:11: error: missing source `build/src/a.o` in `source` of generator `link`\n",
        "  |\n",
        "8 | source = [\"build/src/a.o\"]\n",
        "  |           ^^^^^^^^^^^^^^^\n",
        "  = no such file, and no generator declares it as a target\n",
    ));
}

#[test]
fn a_committed_generated_source_matched_by_a_glob_builds_again() {
    let s = Space::new();
    s.write("src/p.y", "grammar\n");
    s.write("src/main.c", "main\n");
    s.write(
        "build.toml",
        "[rule.yacc]\nrun = \"cp ${SRC} ${TGT}\"\next_in = [\".y\"]\next_out = [\".c\"]\nupdate_outputs = true\n\
         [rule.cc]\nrun = \"cp ${SRC} ${TGT}\"\next_in = [\".c\"]\next_out = [\".o\"]\n\
         [[gen]]\nrun = \"cat ${SRC} > ${TGT}\"\nsource = [\"src/*.y\", \"src/*.c\"]\ntarget = \"prog\"\n",
    );
    s.kiln(&["build"]).ok();
    assert_eq!(s.read("src/p.c"), "grammar\n");
    // Now src/*.c also matches the committed src/p.c.
    assert!(s.kiln(&["build"]).ok().ran().is_empty());
    assert_eq!(s.read("build/prog"), "grammar\nmain\n");
}

#[test]
fn the_generators_own_rule_wins_over_a_longer_suffix_of_another() {
    let (s, _) = Test::new()
        .file("x.tab.c", "x\n")
        .build_file(
            "[rule.cc]\nrun = \"(echo cc; cat ${SRC}) > ${TGT}\"\next_in = [\".c\"]\next_out = [\".o\"]\n\
             [rule.tab]\nrun = \"echo tab > ${TGT}\"\next_in = [\".tab.c\"]\next_out = [\".c\"]\n\
             [[gen]]\nrule = \"cc\"\nsource = \"x.tab.c\"\ntarget = \"x.o\"\n",
        )
        .run();
    assert_eq!(s.read("build/x.o"), "cc\nx\n");
}

#[test]
fn a_file_name_with_glob_characters_is_that_file() {
    let (s, _) = Test::new()
        .file("data[1].txt", "one\n")
        .build_file(
            "[[gen]]\nrun = \"cat ${SRC} > ${TGT}\"\nsource = \"data[1].txt\"\ntarget = \"x\"\n",
        )
        .run();
    assert_eq!(s.read("build/x"), "one\n");
}

#[test]
fn a_generator_without_a_target_whose_rule_takes_its_sources_makes_a_task_per_source() {
    let (s, run) = Test::new()
        .file("src/a.txt", "alpha\n")
        .file("src/b.txt", "beta\n")
        .build_file(
            "[rule.upper]\nrun = \"tr a-z A-Z < ${SRC} > ${TGT}\"\next_in = [\".txt\"]\next_out = [\".up\"]\n\
             [[gen]]\nname = \"shout\"\nrule = \"upper\"\nsource = [\"src/*.txt\"]\n\
             [[gen]]\nname = \"all\"\nrun = \"cat ${SRC} > ${TGT}\"\nuse = [\"shout\"]\ntarget = \"all\"\n",
        )
        .args(&["build", "-j1"])
        .run();
    assert_eq!(
        run.ran(),
        vec![
            "upper: src/a.txt -> build/src/a.up",
            "upper: src/b.txt -> build/src/b.up",
            "all: build/src/a.up build/src/b.up -> build/all",
        ]
    );
    assert_eq!(s.read("build/all"), "ALPHA\nBETA\n");
    let list = s.kiln(&["list"]).ok();
    assert!(
        list.stdout
            .contains("shout build/src/a.up build/src/b.up\n"),
        "{}",
        list.stdout
    );
}

#[test]
fn a_command_never_runs_with_an_empty_tgt_or_src_it_uses() {
    // No target, and nothing to map its source to.
    Test::new()
        .file("a.txt", "a")
        .build_file("[[gen]]\nname = \"copy\"\nrun = \"cp ${SRC} ${TGT}\"\nsource = \"a.txt\"\n")
        .status(2)
        .stderr_is(concat!(
            "build.toml:3:7: error: generator `copy` has no target, but its command uses ${TGT}\n",
            "  |\n",
            "3 | run = \"cp ${SRC} ${TGT}\"\n",
            "  |       ^^^^^^^^^^^^^^^^^^\n",
            "  = give it `target = [...]`: a command never runs with an empty ${TGT}\n",
        ))
        .run();
    // No source at all.
    Test::new()
        .build_file("[[gen]]\nname = \"cat\"\nrun = \"cat ${SRC} > ${TGT}\"\ntarget = \"x\"\n")
        .status(2)
        .stderr_is(concat!(
            "build.toml:3:7: error: generator `cat` has no sources, but its command uses ${SRC}\n",
            "  |\n",
            "3 | run = \"cat ${SRC} > ${TGT}\"\n",
            "  |       ^^^^^^^^^^^^^^^^^^^^^\n",
            "  = name its inputs with `source = [...]` or `use = [...]`: a command never runs with an empty ${SRC}\n",
        ))
        .run();
}

#[test]
fn two_generators_mapping_one_source_is_an_error_naming_both() {
    let rules = "[rule.cp]\nrun = \"cp ${SRC} ${TGT}\"\next_in = [\".c\"]\next_out = [\".o\"]\n\
                 [rule.cat]\nrun = \"cat ${SRC} > ${TGT}\"\n";
    Test::new()
        .file("src/a.c", "a")
        .build_file(&format!(
            "{rules}[[gen]]\nname = \"one\"\nrule = \"cat\"\nsource = [\"src/*.c\"]\ntarget = \"one\"\n\
             [[gen]]\nname = \"two\"\nrule = \"cat\"\nsource = [\"src/a.c\"]\ntarget = \"two\"\n"
        ))
        .status(2)
        .stderr_is(concat!(
            "build.toml:12:1: error: generators `one` and `two` both map `src/a.c` to `build/src/a.o`\n",
            "   |\n",
            "12 | [[gen]]\n",
            "   | ^^^^^^^\n",
            "  = `one` is at build.toml:7; an output has one producer, so kiln will not merge the two\n",
            "  = give the shared sources a generator of their own with neither `rule` nor `run` (it maps them once) and `use` it from both\n",
        ))
        .run();
    // The way out: one generator maps them, both use it.
    let (s, run) = Test::new()
        .file("src/a.c", "a")
        .build_file(&format!(
            "{rules}[[gen]]\nname = \"objs\"\nsource = [\"src/*.c\"]\n\
             [[gen]]\nname = \"one\"\nrule = \"cat\"\nuse = [\"objs\"]\ntarget = \"one\"\n\
             [[gen]]\nname = \"two\"\nrule = \"cat\"\nuse = [\"objs\"]\ntarget = \"two\"\n"
        ))
        .args(&["build", "-j1"])
        .run();
    assert_eq!(
        run.ran(),
        vec![
            "cp: src/a.c -> build/src/a.o",
            "cat: build/src/a.o -> build/one",
            "cat: build/src/a.o -> build/two",
        ]
    );
    assert_eq!(s.read("build/two"), "a");
}

/// A generated header and a library whose sources include it.
fn colors_project(link: &str) -> Space {
    let s = Space::new();
    s.write("colors.txt", "3\n");
    s.write(
        "lib/a.c",
        "#include \"colors.h\"\nint a(void) { return COLORS; }\n",
    );
    s.write(
        "lib/b.c",
        "#include \"colors.h\"\nint b(void) { return COLORS + 1; }\n",
    );
    s.write(
        "build.toml",
        format!(
            "[rule.cc]\nrun = \"cc -Ibuild -c ${{SRC}} -o ${{TGT}}\"\next_in = [\".c\"]\next_out = [\".o\"]\n\
             [rule.ar]\nrun = \"rm -f ${{TGT}} && ar rcs ${{TGT}} ${{SRC}}\"\n\
             [[gen]]\nname = \"colors-header\"\nrun = \"echo \\\"#define COLORS $(cat ${{SRC}})\\\" > ${{TGT}}\"\nsource = \"colors.txt\"\ntarget = \"colors.h\"\n\
             [[gen]]\nname = \"lib\"\nrule = \"ar\"\nsource = [\"lib/*.c\"]\ntarget = \"libcolors.a\"\n{link}\n"
        ),
    );
    s
}

#[test]
fn deps_naming_a_generator_orders_and_signs_every_task_after_its_outputs() {
    let s = colors_project("deps = [\"colors-header\"]");
    // Nothing but `deps` orders the compiles after the header; at -j2 they would race it.
    let run = s.kiln(&["build", "-j2"]).ok();
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    let ran = run.ran();
    assert_eq!(
        ran[0], "colors-header: colors.txt -> build/colors.h",
        "{ran:?}"
    );
    assert_eq!(ran.len(), 4, "{ran:?}");
    // Not in ${SRC}: the archive holds the objects only.
    let members = std::process::Command::new("ar")
        .args(["t", "build/libcolors.a"])
        .current_dir(s.root())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&members.stdout), "a.o\nb.o\n");
    // In the signature: a new header rebuilds every object and the archive.
    s.write("colors.txt", "4\n");
    assert_eq!(
        s.kiln(&["build", "-j2"]).ok().ran_outputs(),
        set(&[
            "build/colors.h",
            "build/lib/a.o",
            "build/lib/b.o",
            "build/libcolors.a"
        ])
    );
}

#[test]
fn use_of_a_header_generator_by_an_archive_warns_and_names_deps() {
    let s = colors_project("use = [\"colors-header\"]");
    s.kiln(&["build", "-j1"]).ok().stderr_has(
        "warning: generator `lib` uses `colors-header`, so the header `build/colors.h` is an input of rule `ar` (in its ${SRC}); to run after it without passing it, write deps = [\"colors-header\"]",
    );
}

#[test]
fn map_false_passes_sources_to_the_generators_own_rule_as_they_are() {
    // A code generator reads C files: with rule `cc` taking `.c`, they would be compiled instead.
    let rules = "[rule.cc]\nrun = \"cp ${SRC} ${TGT}\"\next_in = [\".c\"]\next_out = [\".o\"]\n";
    let (s, run) = Test::new()
        .file("lib_base.c", "base")
        .file("lib_math.c", "math")
        .build_file(&format!(
            "{rules}[[gen]]\nname = \"libdef\"\nrun = \"cat ${{SRC}} > ${{TGT}}\"\nsource = [\"lib_*.c\"]\nmap = false\ntarget = \"libdef.h\"\n"
        ))
        .args(&["build", "-j1"])
        .run();
    assert_eq!(
        run.ran(),
        vec!["libdef: lib_base.c lib_math.c -> build/libdef.h"]
    );
    assert_eq!(s.read("build/libdef.h"), "basemath");
    // Without it, the sources are compiled first.
    let (_, run) = Test::new()
        .file("lib_base.c", "base")
        .build_file(&format!(
            "{rules}[[gen]]\nname = \"libdef\"\nrun = \"cat ${{SRC}} > ${{TGT}}\"\nsource = [\"lib_*.c\"]\ntarget = \"libdef.h\"\n"
        ))
        .args(&["build", "-j1"])
        .run();
    assert_eq!(
        run.ran(),
        vec![
            "cc: lib_base.c -> build/lib_base.o",
            "libdef: build/lib_base.o -> build/libdef.h"
        ]
    );
    // On a generator that only maps, it means nothing: an error.
    Test::new()
        .file("a.c", "a")
        .build_file(&format!("{rules}[[gen]]\nname = \"objs\"\nsource = [\"a.c\"]\nmap = false\n"))
        .status(2)
        .stderr_is(concat!(
            "build.toml:8:7: error: `map = false` on a generator with neither `rule` nor `run`\n",
            "  |\n",
            "8 | map = false\n",
            "  |       ^^^^^\n",
            "  = such a generator only maps its sources; give it `rule` or `run` to pass them on as they are\n",
        ))
        .run();
}

/// One source list, two object sets: the static library's objects through rule `cc`, the shared
/// one's through `cc_pic` (picked by `ext_rules`) into an object directory of its own.
const TWO_OBJECT_SETS: &str = "\
[rule.cc]\nrun = \"echo cc ${SRC} $(cat ${SRC}) > ${TGT}\"\next_in = [\".c\"]\next_out = [\".o\"]\n\
[rule.cc_pic]\nrun = \"echo cc -fPIC ${SRC} $(cat ${SRC}) > ${TGT}\"\next_out = [\".o\"]\n\
[rule.ar]\nrun = \"cat ${SRC} > ${TGT}\"\n\
[rule.solink]\nrun = \"cat ${SRC} > ${TGT}\"\n\
[[gen]]\nname = \"gen\"\nrun = \"echo generated > ${TGT}\"\ntarget = \"gen.c\"\n\
[[gen]]\nname = \"static\"\nrule = \"ar\"\nsource = [\"lib/*.c\", \"build/gen.c\"]\ntarget = \"libz.a\"\n\
[[gen]]\nname = \"shared\"\nrule = \"solink\"\nsource = [\"lib/*.c\", \"build/gen.c\"]\n\
ext_rules = { \".c\" = \"cc_pic\" }\nobjdir = \"pic\"\ntarget = \"libz.so\"\n";

#[test]
fn ext_rules_and_objdir_map_one_source_list_twice() {
    let (s, run) = Test::new()
        .file("lib/a.c", "a")
        .file("lib/b.c", "b")
        .build_file(TWO_OBJECT_SETS)
        .args(&["build", "-j1"])
        .run();
    assert_eq!(
        run.ran_outputs(),
        set(&[
            "build/gen.c",
            "build/lib/a.o",
            "build/lib/b.o",
            "build/gen.o",
            "build/libz.a",
            "build/pic/lib/a.o",
            "build/pic/lib/b.o",
            "build/pic/gen.o",
            "build/libz.so",
        ])
    );
    assert_eq!(
        s.read("build/libz.a"),
        "cc lib/a.c a\ncc lib/b.c b\ncc build/gen.c generated\n"
    );
    assert_eq!(
        s.read("build/libz.so"),
        "cc -fPIC lib/a.c a\ncc -fPIC lib/b.c b\ncc -fPIC build/gen.c generated\n"
    );
    assert!(s.kiln(&["build"]).ok().ran().is_empty());
    // A source edited rebuilds both of its objects and both libraries, nothing else.
    s.write("lib/b.c", "bb");
    assert_eq!(
        s.kiln(&["build"]).ok().ran_outputs(),
        set(&[
            "build/lib/b.o",
            "build/pic/lib/b.o",
            "build/libz.a",
            "build/libz.so"
        ])
    );
    // Without `objdir`, the two would map a source to one output: an error naming both.
    Test::new()
        .file("lib/a.c", "a")
        .build_file(&TWO_OBJECT_SETS.replace("objdir = \"pic\"\n", ""))
        .status(2)
        .stderr_is(concat!(
            "build.toml:21:1: error: generators `static` and `shared` both map `lib/a.c` to `build/lib/a.o`\n",
            "   |\n",
            "21 | [[gen]]\n",
            "   | ^^^^^^^\n",
            "  = `static` is at build.toml:16; an output has one producer, so kiln will not merge the two\n",
            "  = they map it through rules `cc` and `cc_pic`: give one of them `objdir = \"...\"` so that its mapped outputs are its own\n",
        ))
        .run();
}

#[test]
fn ext_rules_and_objdir_are_checked() {
    let rules = "[rule.cc]\nrun = \"cp ${SRC} ${TGT}\"\next_in = [\".c\"]\next_out = [\".o\"]\n\
                 [rule.nothing]\nrun = \"true\"\n";
    Test::new()
        .file("a.c", "a")
        .build_file(&format!(
            "{rules}[[gen]]\nname = \"x\"\nrun = \"cat ${{SRC}} > ${{TGT}}\"\nsource = \"a.c\"\ntarget = \"x\"\next_rules = {{ \".c\" = \"c_pic\" }}\n"
        ))
        .status(2)
        .stderr_is(concat!(
            "build.toml:12:22: error: unknown rule `c_pic` in `ext_rules`\n",
            "   |\n",
            "12 | ext_rules = { \".c\" = \"c_pic\" }\n",
            "   |                      ^^^^^^^\n",
            "  = expected one of `cc`, `nothing`\n",
        ))
        .run();
    Test::new()
        .file("a.c", "a")
        .build_file(&format!(
            "{rules}[[gen]]\nname = \"x\"\nrun = \"cat ${{SRC}} > ${{TGT}}\"\nsource = \"a.c\"\ntarget = \"x\"\next_rules = {{ \".c\" = \"nothing\" }}\n"
        ))
        .status(2)
        .stderr_is(concat!(
            "build.toml:12:22: error: rule `nothing` maps `.c` in `ext_rules` but has no `ext_out`\n",
            "   |\n",
            "12 | ext_rules = { \".c\" = \"nothing\" }\n",
            "   |                      ^^^^^^^^^\n",
            "  = generator `x` maps its `.c` sources through it: name the output with ext_out = [\".o\"]\n",
        ))
        .run();
    Test::new()
        .file("a.c", "a")
        .build_file(&format!(
            "{rules}[[gen]]\nname = \"x\"\nrun = \"cat ${{SRC}} > ${{TGT}}\"\nsource = \"a.c\"\ntarget = \"x\"\nobjdir = \"../pic\"\n"
        ))
        .status(2)
        .stderr_is(concat!(
            "build.toml:12:10: error: `objdir` must be a directory below the build directory, not `../pic`\n",
            "   |\n",
            "12 | objdir = \"../pic\"\n",
            "   |          ^^^^^^^^\n",
            "  = a relative path without `..`, such as \"pic\": mapped outputs go to <out>/pic/...\n",
        ))
        .run();
}
