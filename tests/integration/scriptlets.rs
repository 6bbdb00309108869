//! Part 4: scriptlets: `${SRC}`, `${TGT}`, `${SRC[i]}`, `${NAME}`, `${A:B}`, `${OUT}`, `$${`,
//! shell-quoted paths, command chains.

use crate::support::Test;

#[test]
fn every_substitution_reaches_the_command() {
    let (s, _) = Test::new()
        .file("a b.txt", "A")
        .file("it's.txt", "I")
        .file("plain.txt", "P")
        .build_file(
            "[env]\nCC = \"cc\"\nFLAGS = [\"-O2\", \"-g\"]\nINC_ST = \"-I%s\"\nINCLUDES = [\"include\", \"gen dir\"]\n\
             [[gen]]\nrun = \"printf '%s\\\\n' ${SRC} > ${TGT[0]}; echo ${SRC[1]} > ${TGT[1]}; echo ${CC} ${FLAGS} ${INC_ST:INCLUDES} > ${TGT[2]}; echo ${OUT} $${HOME} > ${TGT[3]}\"\n\
             source = [\"a b.txt\", \"it's.txt\", \"plain.txt\"]\ntarget = [\"srcs\", \"second\", \"env\", \"misc\"]\n",
        )
        .run();
    // Paths arrive whole, however they are spelt.
    assert_eq!(s.read("build/srcs"), "a b.txt\nit's.txt\nplain.txt\n");
    assert_eq!(s.read("build/second"), "it's.txt\n");
    // Env values are inserted as they are: the shell splits them.
    assert_eq!(s.read("build/env"), "cc -O2 -g -Iinclude -Igen dir\n");
    // `$${` is a literal `${`, left for the shell.
    assert_eq!(
        s.read("build/misc"),
        format!("build {}\n", std::env::var("HOME").unwrap_or_default())
    );
}

#[test]
fn a_command_chain_runs_in_order_and_stops_at_the_first_failure() {
    let (s, _) = Test::new()
        .build_file("[[gen]]\nrun = [\"echo one >> log\", \"echo two >> log\", \"touch ${TGT}\"]\ntarget = \"ok\"\n")
        .run();
    assert_eq!(s.lines("log"), vec!["one", "two"]);
    let (s, _) = Test::new()
        .build_file("[[gen]]\nrun = [\"echo one >> log\", \"false\", \"echo three >> log\"]\ntarget = \"bad\"\n")
        .status(1)
        .stderr_has("error: task failed (exit status 1): ")
        .stderr_has("command 2 of 3 (failed): false\n")
        .run();
    assert_eq!(s.lines("log"), vec!["one"]);
}

#[test]
fn commands_run_in_the_build_files_directory() {
    let (s, _) = Test::new()
        .file("sub/deeper/.keep", "")
        .build_file("[[gen]]\nrun = \"pwd > ${TGT}\"\ntarget = \"where\"\n")
        .current_dir("sub/deeper")
        .run();
    let root = s.root().canonicalize().unwrap();
    assert_eq!(s.read("build/where").trim(), root.to_str().unwrap());
}

#[test]
fn the_format_of_a_mapping_needs_percent_s() {
    Test::new()
        .build_file("[env]\nF = \"-I\"\nL = [\"a\"]\n[[gen]]\nrun = \"echo ${F:L} > ${TGT}\"\ntarget = \"x\"\n")
        .status(2)
        .stderr_is(concat!(
            "build.toml:5:13: error: generator `x`: the format `F` in `${F:...}` must contain `%s`\n",
            "  |\n",
            "5 | run = \"echo ${F:L} > ${TGT}\"\n",
            "  |             ^^^^^^\n",
            "  = while expanding a task of generator `x`\n",
        ))
        .run();
}

#[test]
fn slices_pass_a_tool_its_inputs_after_the_program() {
    // The first input is the program the command runs (LuaJIT's buildvm), the rest its arguments.
    let (s, _) = Test::new()
        .file("tool.sh", "echo \"tool got: $*\"\n")
        .file("a.c", "a")
        .file("b.c", "b")
        .build_file(
            "[[gen]]\nname = \"gen\"\nrun = \"sh ${SRC[0]} ${SRC[1:]} > ${TGT[0]}; echo ${SRC[:-1]} > ${TGT[1:]}\"\n\
             source = [\"tool.sh\", \"a.c\", \"b.c\"]\ntarget = [\"out.txt\", \"head.txt\"]\n",
        )
        .run();
    assert_eq!(s.read("build/out.txt"), "tool got: a.c b.c\n");
    assert_eq!(s.read("build/head.txt"), "tool.sh a.c\n");
}

#[test]
fn env_values_expand_the_names_inside_them_recursively() {
    let text = "[env]\nCC = \"cc\"\nOPT = \"${LEVEL}\"\nLEVEL = \"-O2\"\nTARGET_CFLAGS = [\"${OPT}\", \"-g\"]\n\
                CFLAGS = [\"${TARGET_CFLAGS}\", \"-Wall\"]\nNAME = \"x-${CC}\"\n\
                [[gen]]\nname = \"flags\"\nrun = \"echo ${CFLAGS} ${NAME} > ${TGT}\"\ntarget = \"flags\"\n";
    let (s, _) = Test::new().build_file(text).run();
    assert_eq!(s.read("build/flags"), "-O2 -g -Wall x-cc\n");
    // -D comes before the expansion: what is built on a value sees it.
    s.kiln(&["build", "-D", "LEVEL=-O0"]).ok();
    assert_eq!(s.read("build/flags"), "-O0 -g -Wall x-cc\n");
    // And the value a command sees is in its signature: back to -O2, it runs again.
    let run = s.kiln(&["build"]).ok();
    assert_eq!(run.ran_outputs(), crate::support::set(&["build/flags"]));
    assert_eq!(s.read("build/flags"), "-O2 -g -Wall x-cc\n");
}

#[test]
fn env_values_that_refer_to_each_other_in_a_loop_are_an_error() {
    Test::new()
        .build_file("[env]\nA = \"${B}\"\nB = [\"-x\", \"${C}\"]\nC = \"${A}\"\n")
        .status(2)
        .stderr_is(concat!(
            "build.toml:4:5: error: env values refer to each other in a cycle: A -> B -> C -> A\n",
            "  |\n",
            "4 | C = \"${A}\"\n",
            "  |     ^^^^^^\n",
            "  = a value may use another's `${NAME}`, but not, through others, its own\n",
        ))
        .run();
    Test::new()
        .build_file("[env]\nA = \"-I${NOPE}\"\n")
        .status(2)
        .stderr_has("undefined variable `${NOPE}`")
        .run();
}
