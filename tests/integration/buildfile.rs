//! Part 2: build-file errors are located (file:line:column), say what was found and what was
//! expected (with "did you mean"), exit 2, and nothing runs or is deleted.

use crate::support::{Space, Test};

/// A project that has built once, so that "nothing deleted" can be checked after a bad edit.
fn built() -> Space {
    let s = Space::new();
    s.write("a.txt", "a");
    s.write("build.toml", "[[gen]]\nrun = \"cp ${SRC} ${TGT} && echo ran >> log\"\nsource = \"a.txt\"\ntarget = \"a.out\"\n");
    s.kiln(&["build"]).ok();
    assert_eq!(s.lines("log").len(), 1);
    s
}

/// Replaces the build file with `text`, runs `args`, and checks the whole of stderr (the
/// diagnostic exactly as a person sees it), that nothing ran and that the earlier output is still
/// there.
fn bad_edit(text: &str, args: &[&str], expected: &str) {
    let s = built();
    s.write("build.toml", text);
    s.kiln(args).status(2).stderr_is(expected);
    assert_eq!(s.lines("log").len(), 1, "nothing may run");
    assert!(s.exists("build/a.out"), "nothing may be deleted");
}

#[test]
fn syntax_error_is_located() {
    Test::new()
        .build_file("[[gen]]\nname = \"a\"\nsource = [\"x\"\n")
        .status(2)
        .stderr_is(concat!(
            "build.toml:3:14: error: invalid TOML: unclosed array, expected `]`\n",
            "  |\n",
            "3 | source = [\"x\"\n",
            "  |              ^\n",
        ))
        .run();
}

#[test]
fn unknown_key_names_what_was_found_and_expected_and_suggests() {
    bad_edit(
        "[[gen]]\nrun = \"cp ${SRC} ${TGT}\"\nsorce = \"a.txt\"\ntarget = \"a.out\"\n",
        &["build"],
        concat!(
            "build.toml:3:1: error: unknown key `sorce`\n",
            "  |\n",
            "3 | sorce = \"a.txt\"\n",
            "  | ^^^^^\n",
            "  = expected one of `name`, `group`, `rule`, `run`, `source`, `exclude`, `target`, `use`, `deps`, `env`, `map`, `default`, `order_only`, `ext_rules`, `objdir`, `install`\n",
            "  = did you mean `source`?\n",
        ),
    );
}

#[test]
fn wrong_type_says_found_and_expected() {
    bad_edit(
        "[[gen]]\nrun = \"cp ${SRC} ${TGT}\"\nsource = 42\ntarget = \"a.out\"\n",
        &["build"],
        concat!(
            "build.toml:3:10: error: wrong type: found integer `42`, expected a string or a list of strings\n",
            "  |\n",
            "3 | source = 42\n",
            "  |          ^^\n",
        ),
    );
    bad_edit(
        "[[group]]\nname = \"g\"\njobs = \"four\"\n",
        &["build"],
        concat!(
            "build.toml:3:8: error: wrong type: found string \"four\", expected a whole number of at least 1\n",
            "  |\n",
            "3 | jobs = \"four\"\n",
            "  |        ^^^^^^\n",
        ),
    );
    bad_edit(
        "[rule.r]\nrun = \"x\"\nalways = \"yes\"\n",
        &["build"],
        concat!(
            "build.toml:3:10: error: wrong type: found string \"yes\", expected a boolean\n",
            "  |\n",
            "3 | always = \"yes\"\n",
            "  |          ^^^^^\n",
        ),
    );
}

#[test]
fn a_misspelt_rule_is_an_error_never_a_command() {
    bad_edit(
        "[rule.copy]\nrun = \"cp ${SRC} ${TGT}\"\n[[gen]]\nrule = \"cpy\"\nsource = \"a.txt\"\ntarget = \"a.out\"\n",
        &["build"],
        concat!(
            "build.toml:4:8: error: unknown rule `cpy` in `rule`\n",
            "  |\n",
            "4 | rule = \"cpy\"\n",
            "  |        ^^^^^\n",
            "  = expected one of `copy`\n",
            "  = did you mean `copy`?\n",
        ),
    );
}

#[test]
fn undefined_variables_name_the_rule_and_the_variable() {
    bad_edit(
        "[env]\nCFLAGS = \"-O2\"\n[rule.cc]\nrun = \"cc ${CFALGS} ${SRC} -o ${TGT}\"\n[[gen]]\nrule = \"cc\"\nsource = \"a.txt\"\ntarget = \"a.out\"\n",
        &["build"],
        concat!(
            "build.toml:4:11: error: rule `cc`: undefined variable `${CFALGS}`\n",
            "  |\n",
            "4 | run = \"cc ${CFALGS} ${SRC} -o ${TGT}\"\n",
            "  |           ^^^^^^^^^\n",
            "  = define it in [env], in the generator's env, or with -D NAME=VALUE\n",
            "  = did you mean `CFLAGS`?\n",
        ),
    );
    // In a source entry.
    bad_edit(
        "[[gen]]\nrun = \"cp ${SRC} ${TGT}\"\nsource = \"${DIR}/a.txt\"\ntarget = \"a.out\"\n",
        &["build"],
        concat!(
            "build.toml:3:11: error: in `source` of generator `a.out`: undefined variable `${DIR}`\n",
            "  |\n",
            "3 | source = \"${DIR}/a.txt\"\n",
            "  |           ^^^^^^\n",
            "  = define it in [env], in the generator's env, or with -D NAME=VALUE\n",
        ),
    );
}

#[test]
fn an_out_of_range_index_names_the_rule_and_index() {
    bad_edit(
        "[rule.two]\nrun = \"cat ${SRC[1]} > ${TGT}\"\n[[gen]]\nrule = \"two\"\nsource = \"a.txt\"\ntarget = \"a.out\"\n",
        &["build"],
        concat!(
            "build.toml:2:12: error: rule `two`: `${SRC[1]}` is out of range: the task has 1 input\n",
            "  |\n",
            "2 | run = \"cat ${SRC[1]} > ${TGT}\"\n",
            "  |            ^^^^^^^^^\n",
            "  = while expanding a task of generator `a.out`\n",
        ),
    );
}

#[test]
fn duplicate_output_names_both_generators() {
    bad_edit(
        "[[gen]]\nname = \"one\"\nrun = \"cp ${SRC} ${TGT}\"\nsource = \"a.txt\"\ntarget = \"a.out\"\n[[gen]]\nname = \"two\"\nrun = \"cp ${SRC} ${TGT}\"\nsource = \"a.txt\"\ntarget = \"a.out\"\n",
        &["build"],
        concat!(
            "build.toml:10:10: error: generators `one` and `two` both declare the output `build/a.out`\n",
            "   |\n",
            "10 | target = \"a.out\"\n",
            "   |          ^^^^^^^\n",
            "  = `one` is at build.toml:1; every output must have one producer\n",
        ),
    );
}

#[test]
fn duplicate_mapped_output_names_both_generators() {
    // Two generators map a.c differently (their env differs): one output, two producers.
    let (s, _) = Test::new()
        .file("a.c", "x")
        .build_file(
            "[rule.cc]\nrun = \"cp ${SRC} ${TGT} # ${FLAGS}\"\next_in = [\".c\"]\next_out = [\".o\"]\n[env]\nFLAGS = \"\"\n\
             [[gen]]\nname = \"x\"\nsource = \"a.c\"\n[[gen]]\nname = \"y\"\nsource = \"a.c\"\nenv = { FLAGS = \"-g\" }\n",
        )
        .status(2)
        .stderr_is(concat!(
            "build.toml:10:1: error: generators `x` and `y` both map `a.c` to `build/a.o`\n",
            "   |\n",
            "10 | [[gen]]\n",
            "   | ^^^^^^^\n",
            "  = `x` is at build.toml:7; an output has one producer, so kiln will not merge the two\n",
            "  = their commands differ (other env values?), so the two cannot share it: give one of them `objdir = \"...\"` so that its mapped outputs are its own, or map the source in one of them only\n",
        ))
        .run();
    assert!(!s.exists("build"));
}

#[test]
fn the_same_mapping_declared_twice_is_an_error_not_a_merge() {
    // Even identical, the two tasks would be one, run in the earlier generator's group.
    Test::new()
        .file("a.c", "x")
        .build_file(
            "[rule.cc]\nrun = \"cp ${SRC} ${TGT}\"\next_in = [\".c\"]\next_out = [\".o\"]\n\
             [[gen]]\nname = \"x\"\nsource = \"a.c\"\n[[gen]]\nname = \"y\"\nsource = \"a.c\"\n",
        )
        .status(2)
        .stderr_is(concat!(
            "build.toml:8:1: error: generators `x` and `y` both map `a.c` to `build/a.o`\n",
            "  |\n",
            "8 | [[gen]]\n",
            "  | ^^^^^^^\n",
            "  = `x` is at build.toml:5; an output has one producer, so kiln will not merge the two\n",
            "  = give the shared sources a generator of their own with neither `rule` nor `run` (it maps them once) and `use` it from both\n",
        ))
        .run();
}

#[test]
fn a_depfile_must_lie_in_the_build_directory() {
    let (s, _) = Test::new()
        .file("a.c", "x")
        .build_file(
            "[rule.cc]\nrun = \"cp ${SRC} ${TGT}\"\next_in = [\".c\"]\next_out = [\".o\"]\ndepfile = \"${SRC[0]}.d\"\n[[gen]]\nname = \"x\"\nsource = \"a.c\"\n",
        )
        .status(2)
        .stderr_is(concat!(
            "build.toml:5:11: error: depfile `a.c.d` lies outside the build directory\n",
            "  |\n",
            "5 | depfile = \"${SRC[0]}.d\"\n",
            "  |           ^^^^^^^^^^^^^\n",
            "  = kiln writes only inside the build directory: name it after an output, such as \"${TGT[0]}.d\"\n",
        ))
        .run();
    assert!(!s.exists("build"));
}

#[test]
fn two_tasks_sharing_a_depfile_is_a_duplicate_output() {
    Test::new()
        .file("a.c", "x")
        .file("b.c", "x")
        .build_file(
            "[rule.cc]\nrun = \"cp ${SRC} ${TGT}\"\next_in = [\".c\"]\next_out = [\".o\"]\ndepfile = \"${OUT}/deps.d\"\n[[gen]]\nname = \"x\"\nsource = \"*.c\"\n",
        )
        .status(2)
        .stderr_is(concat!(
            "build.toml:6:1: error: generator `x` declares the output `build/deps.d` twice\n",
            "  |\n",
            "6 | [[gen]]\n",
            "  | ^^^^^^^\n",
            "  = `x` is at build.toml:6; every output must have one producer\n",
        ))
        .run();
}

#[test]
fn cycles_print_the_cycle() {
    bad_edit(
        "[[gen]]\nname = \"a\"\nrun = \"cp ${SRC} ${TGT}\"\nsource = \"b.out\"\ntarget = \"a.out\"\n[[gen]]\nname = \"b\"\nrun = \"cp ${SRC} ${TGT}\"\nsource = \"a.out\"\ntarget = \"b.out\"\n",
        &["build"],
        concat!(
            "build.toml:1:1: error: dependency cycle: a (build/a.out) -> b (build/b.out) -> a (build/a.out)\n",
            "  |\n",
            "1 | [[gen]]\n",
            "  | ^^^^^^^\n",
            "  = each task must be able to run after the ones it depends on; break the cycle in sources, use, deps or before/after\n",
        ),
    );
    // Through precedence.
    bad_edit(
        "[rule.x]\nrun = \"touch ${TGT}\"\nbefore = [\"y\"]\n[rule.y]\nrun = \"touch ${TGT}\"\nbefore = [\"x\"]\n[[gen]]\nrule = \"x\"\ntarget = \"x\"\n[[gen]]\nrule = \"y\"\ntarget = \"y\"\n",
        &["build"],
        concat!(
            "build.toml:7:1: error: dependency cycle: x (build/x) -> (precedence) -> y (build/y) -> (precedence) -> x (build/x)\n",
            "  |\n",
            "7 | [[gen]]\n",
            "  | ^^^^^^^\n",
            "  = each task must be able to run after the ones it depends on; break the cycle in sources, use, deps or before/after\n",
        ),
    );
}

#[test]
fn missing_source_is_located() {
    bad_edit(
        "[[gen]]\nrun = \"cp ${SRC} ${TGT}\"\nsource = [\"a.txt\", \"nope.txt\"]\ntarget = \"a.out\"\n",
        &["build"],
        concat!(
            "build.toml:3:20: error: missing source `nope.txt` in `source` of generator `a.out`\n",
            "  |\n",
            "3 | source = [\"a.txt\", \"nope.txt\"]\n",
            "  |                    ^^^^^^^^^^\n",
            "  = no such file, and no generator declares it as a target\n",
        ),
    );
}

#[test]
fn outputs_and_sources_outside_the_project_are_errors() {
    bad_edit(
        "[[gen]]\nrun = \"touch ${TGT}\"\ntarget = \"../../escape\"\n",
        &["build"],
        concat!(
            "build.toml:3:10: error: output `../escape` lies outside the build directory `build`\n",
            "  |\n",
            "3 | target = \"../../escape\"\n",
            "  |          ^^^^^^^^^^^^^^\n",
            "  = targets are relative to the build directory; `..` may not leave it\n",
        ),
    );
    bad_edit(
        "[[gen]]\nrun = \"touch ${TGT}\"\ntarget = \"/etc/x\"\n",
        &["build"],
        concat!(
            "build.toml:3:10: error: target `/etc/x` is absolute\n",
            "  |\n",
            "3 | target = \"/etc/x\"\n",
            "  |          ^^^^^^^^\n",
            "  = expected a path relative to the build directory `build`\n",
        ),
    );
    bad_edit(
        "[[gen]]\nrun = \"cp ${SRC} ${TGT}\"\nsource = \"../outside.txt\"\ntarget = \"x\"\n",
        &["build"],
        concat!(
            "build.toml:3:10: error: `../outside.txt` in `source` of generator `x` lies outside the project\n",
            "  |\n",
            "3 | source = \"../outside.txt\"\n",
            "  |          ^^^^^^^^^^^^^^^^\n",
            "  = sources must lie under the build file's directory (or in the build directory)\n",
        ),
    );
}

#[test]
fn two_rules_claiming_one_extension() {
    bad_edit(
        "[rule.a]\nrun = \"x\"\next_in = [\".c\"]\next_out = [\".o\"]\n[rule.b]\nrun = \"y\"\next_in = [\".c\"]\next_out = [\".obj\"]\n",
        &["build"],
        concat!(
            "build.toml:7:11: error: rules `a` and `b` both claim the extension `.c`\n",
            "  |\n",
            "7 | ext_in = [\".c\"]\n",
            "  |           ^^^^\n",
            "  = a source maps through one rule: remove the extension from one of them (a generator picks another rule for its sources with `ext_rules`)\n",
        ),
    );
}

#[test]
fn unknown_names_in_before_after_and_vars() {
    bad_edit(
        "[rule.a]\nrun = \"x\"\nbefore = [\"lnk\"]\n[rule.link]\nrun = \"y\"\n",
        &["build"],
        concat!(
            "build.toml:3:11: error: unknown rule `lnk` in `before`\n",
            "  |\n",
            "3 | before = [\"lnk\"]\n",
            "  |           ^^^^^\n",
            "  = expected one of `a`, `link`\n",
            "  = did you mean `link`?\n",
        ),
    );
    bad_edit(
        "[rule.a]\nrun = \"x\"\nafter = [\"zzz\"]\n",
        &["build"],
        concat!(
            "build.toml:3:10: error: unknown rule `zzz` in `after`\n",
            "  |\n",
            "3 | after = [\"zzz\"]\n",
            "  |          ^^^^^\n",
            "  = expected one of `a`\n",
        ),
    );
    bad_edit(
        "[env]\nCFLAGS = \"x\"\n[rule.a]\nrun = \"x\"\nvars = [\"CFLAG\"]\n",
        &["build"],
        concat!(
            "build.toml:5:9: error: unknown env name `CFLAG` in `vars` of rule `a`\n",
            "  |\n",
            "5 | vars = [\"CFLAG\"]\n",
            "  |         ^^^^^^^\n",
            "  = did you mean `CFLAGS`?\n",
        ),
    );
}

#[test]
fn unknown_group_and_use_suggest() {
    bad_edit(
        "[[group]]\nname = \"main\"\n[[gen]]\nname = \"g\"\ngroup = \"mian\"\n",
        &["build"],
        concat!(
            "build.toml:5:9: error: unknown group `mian`\n",
            "  |\n",
            "5 | group = \"mian\"\n",
            "  |         ^^^^^^\n",
            "  = expected one of `main`\n",
            "  = did you mean `main`?\n",
        ),
    );
    bad_edit(
        "[[gen]]\nname = \"util\"\nrun = \"touch ${TGT}\"\ntarget = \"u\"\n[[gen]]\nname = \"app\"\nrun = \"touch ${TGT}\"\ntarget = \"app\"\nuse = [\"utl\"]\n",
        &["build"],
        concat!(
            "build.toml:9:8: error: unknown generator `utl` in `use`\n",
            "  |\n",
            "9 | use = [\"utl\"]\n",
            "  |        ^^^^^\n",
            "  = did you mean `util`?\n",
        ),
    );
}

#[test]
fn bad_build_files_stop_clean_and_list_too() {
    for command in ["clean", "distclean", "list"] {
        bad_edit(
            "[[gen]]\nsorce = 1\n",
            &[command],
            concat!(
                "build.toml:2:1: error: unknown key `sorce`\n",
                "  |\n",
                "2 | sorce = 1\n",
                "  | ^^^^^\n",
                "  = expected one of `name`, `group`, `rule`, `run`, `source`, `exclude`, `target`, `use`, `deps`, `env`, `map`, `default`, `order_only`, `ext_rules`, `objdir`, `install`\n",
                "  = did you mean `source`?\n",
            ),
        );
    }
}

#[test]
fn an_empty_build_file_is_nothing_to_do() {
    let (s, _) = Test::new()
        .build_file("")
        .stderr_has("nothing to do")
        .stderr_has("'build' finished successfully")
        .run();
    assert!(!s.exists("build"));
}

#[test]
fn generators_need_a_name_or_target_and_not_both_rule_and_run() {
    Test::new()
        .build_file("[[gen]]\nrun = \"true\"\n")
        .status(2)
        .stderr_is(concat!(
            "build.toml:1:1: error: a generator without a target needs a `name`\n",
            "  |\n",
            "1 | [[gen]]\n",
            "  | ^^^^^^^\n",
        ))
        .run();
    Test::new()
        .build_file("[rule.r]\nrun = \"x\"\n[[gen]]\nname = \"g\"\nrule = \"r\"\nrun = \"y\"\n")
        .status(2)
        .stderr_is(concat!(
            "build.toml:5:8: error: a generator has `rule` or `run`, not both\n",
            "  |\n",
            "5 | rule = \"r\"\n",
            "  |        ^^^\n",
            "  = `rule` names a [rule.X]; `run` is a command of the generator's own\n",
        ))
        .run();
}

#[test]
fn a_build_directory_that_resolves_to_the_project_is_refused() {
    let parent = Space::new();
    parent.write("proj/a.c", "x");
    parent.write(
        "proj/build.toml",
        "[project]\nout = \"../proj\"\n[[gen]]\nrun = \"touch ${TGT}\"\ntarget = \"x\"\n",
    );
    parent
        .kiln_in("proj", &["build"])
        .status(2)
        .stderr_is(concat!(
            "build.toml:2:7: error: the build directory `../proj` would contain the project: kiln writes and cleans there\n",
            "  |\n",
            "2 | out = \"../proj\"\n",
            "  |       ^^^^^^^^^\n",
            "  = expected a directory of its own, such as \"build\" or \"../build-debug\"\n",
        ));
    parent.kiln_in("proj", &["clean"]).status(2);
    assert!(!parent.exists("proj/x") && parent.exists("proj/a.c"));
}

// The caret sits under the offending text in a terminal, whatever precedes it on the line; the
// column in `build.toml:LINE:COL` counts characters.

#[test]
fn the_caret_follows_a_tab_shown_as_four_spaces() {
    bad_edit(
        "[[gen]]\n\trun = \"cp ${SRC} ${TGT}\"\n\tsorce = \"a.txt\"\n\ttarget = \"a.out\"\n",
        &["build"],
        concat!(
            "build.toml:3:2: error: unknown key `sorce`\n",
            "  |\n",
            "3 |     sorce = \"a.txt\"\n",
            "  |     ^^^^^\n",
            "  = expected one of `name`, `group`, `rule`, `run`, `source`, `exclude`, `target`, `use`, `deps`, `env`, `map`, `default`, `order_only`, `ext_rules`, `objdir`, `install`\n",
            "  = did you mean `source`?\n",
        ),
    );
}

#[test]
fn the_caret_follows_cjk_characters_two_columns_each() {
    bad_edit(
        "[[gen]]\nrun = \"cp ${SRC} ${TGT}\"\nsource = \"a.txt\"\ntarget = \"a.out\"\nenv = { NAME = \"日本語\", BAD = 3 }\n",
        &["build"],
        concat!(
            "build.toml:5:29: error: wrong type: found integer `3`, expected a string or a list of strings\n",
            "  |\n",
            "5 | env = { NAME = \"日本語\", BAD = 3 }\n",
            "  |                                ^\n",
        ),
    );
}

#[test]
fn the_caret_follows_an_emoji_two_columns_wide() {
    bad_edit(
        "[rule.two]\nrun = \"echo 🦀 ${SRC[1]} > ${TGT}\"\n[[gen]]\nrule = \"two\"\nsource = \"a.txt\"\ntarget = \"a.out\"\n",
        &["build"],
        concat!(
            "build.toml:2:15: error: rule `two`: `${SRC[1]}` is out of range: the task has 1 input\n",
            "  |\n",
            "2 | run = \"echo 🦀 ${SRC[1]} > ${TGT}\"\n",
            "  |                ^^^^^^^^^\n",
            "  = while expanding a task of generator `a.out`\n",
        ),
    );
}
