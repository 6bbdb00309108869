//! Issue 13, part 3: variants. `[variant.NAME]` builds the project into its own build directory
//! (`out`, default `<out>/<NAME>`) with its own env values over `[env]` (`-D` still wins); each
//! variant has its own state, outputs and lock, and `clean`/`distclean --variant NAME` touch only
//! that one.

use crate::support::{Space, spawn_kiln, wait_for};
use std::collections::BTreeMap;
use std::path::Path;

/// A project with a nested variant (`debug`, in `build/debug`) and one beside the project
/// (`fast`, in `build-fast`). Its one task concatenates every `.txt` file of the tree (a glob
/// that must not see the variants' outputs) and appends the env values it was built with.
const PROJECT: &str = r#"
[env]
MODE = "default"
FLAGS = ["-a"]

[[gen]]
name = "all"
run = "cat ${SRC} > ${TGT} && echo ${MODE} ${FLAGS} >> ${TGT}"
source = ["**/*.txt"]
target = "all.txt"
map = false

[variant.debug]
env = { MODE = "debug", FLAGS = ["${FLAGS}", "-g"] }

[variant.fast]
out = "build-fast"
env = { MODE = "${MODE}-fast" }
"#;

fn project() -> Space {
    let s = Space::new();
    s.write("build.toml", PROJECT);
    s.write("src/a.txt", "a\n");
    s
}

/// Every file under `dir` (relative to the project), with its bytes and modification time,
/// leaving out the directories in `except`.
fn files(
    s: &Space,
    dir: &str,
    except: &[&str],
) -> BTreeMap<String, (Vec<u8>, std::time::SystemTime)> {
    let root = s.path(dir);
    let mut found = BTreeMap::new();
    let walk = walkdir::WalkDir::new(&root)
        .into_iter()
        .filter_entry(|e| !except.iter().any(|x| e.path() == s.path(x)));
    for entry in walk {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let rel = entry.path().strip_prefix(s.root()).unwrap();
            let meta = entry.metadata().unwrap();
            let bytes = std::fs::read(entry.path()).unwrap();
            found.insert(
                rel.to_string_lossy().into_owned(),
                (bytes, meta.modified().unwrap()),
            );
        }
    }
    found
}

#[test]
fn two_variants_and_the_default_build_side_by_side_with_their_own_values() {
    let s = project();
    s.kiln(&["build"]).ok();
    s.kiln(&["build", "--variant", "debug"]).ok();
    s.kiln(&["--variant", "fast", "build"]).ok();
    assert_eq!(s.read("build/all.txt"), "a\ndefault -a\n");
    assert_eq!(s.read("build/debug/all.txt"), "a\ndebug -a -g\n");
    assert_eq!(s.read("build-fast/all.txt"), "a\ndefault-fast -a\n");
    for dir in ["build", "build/debug", "build-fast"] {
        assert!(
            Path::new(&s.path(dir)).join(".kiln").is_dir(),
            "{dir} has its own state"
        );
    }
    // `kiln list` shows the variant's outputs.
    let listed = s.kiln(&["list", "--variant", "fast"]).ok();
    assert_eq!(listed.stdout, "all build-fast/all.txt\n");
}

#[test]
fn building_one_leaves_the_others_outputs_and_state_untouched() {
    let s = project();
    s.kiln(&["build"]).ok();
    let default = files(&s, "build", &["build/debug"]);
    s.kiln(&["build", "--variant", "debug"]).ok();
    s.kiln(&["build", "--variant", "fast"]).ok();
    assert_eq!(
        files(&s, "build", &["build/debug"]),
        default,
        "building the variants changed the default's build directory"
    );

    // A null build of each, after the others built, runs nothing.
    for args in [
        &["build"][..],
        &["build", "--variant", "debug"],
        &["build", "--variant", "fast"],
        &["build"],
    ] {
        let run = s.kiln(args).ok();
        assert_eq!(run.ran(), Vec::<String>::new(), "{args:?} ran tasks");
    }

    // A change rebuilds the default alone; the variants' directories, state and all, stay as
    // they were. Then each variant rebuilds its own output once.
    let debug = files(&s, "build/debug", &[]);
    let fast = files(&s, "build-fast", &[]);
    s.write("src/a.txt", "b\n");
    let run = s.kiln(&["build"]).ok();
    assert_eq!(run.ran_outputs(), crate::support::set(&["build/all.txt"]));
    assert_eq!(files(&s, "build/debug", &[]), debug);
    assert_eq!(files(&s, "build-fast", &[]), fast);
    for (args, out) in [
        (&["build", "--variant", "debug"][..], "build/debug/all.txt"),
        (&["build", "--variant", "fast"], "build-fast/all.txt"),
    ] {
        let run = s.kiln(args).ok();
        assert_eq!(run.ran_outputs(), crate::support::set(&[out]), "{args:?}");
    }
    let run = s.kiln(&["build"]).ok();
    assert_eq!(run.ran(), Vec::<String>::new());
}

#[test]
fn each_variant_has_its_own_lock() {
    let s = Space::new();
    s.write(
        "build.toml",
        r#"
[env]
WAIT = ""
[[gen]]
run = "touch ${OUT}/../started; while [ -n '${WAIT}' ] && [ ! -e go ]; do sleep 0.02; done; echo x > ${TGT}"
target = "x"
[variant.other]
out = "build-other"
env = { WAIT = "" }
"#,
    );
    // The default build waits for `go`; the variant builds meanwhile, without waiting for its lock.
    let mut default = spawn_kiln(&s, &["build", "-D", "WAIT=1"]);
    wait_for(&s, "started");
    s.kiln(&["build", "--variant", "other", "--no-wait"]).ok();
    assert!(s.exists("build-other/x"));
    s.write("go", "");
    assert!(default.wait().unwrap().success());
    assert!(s.exists("build/x"));
}

#[test]
fn globs_of_the_default_skip_a_variants_build_directory_beside_the_project() {
    let s = project();
    // The variant first: its `build-fast/all.txt` is a `.txt` file in the tree.
    s.kiln(&["build", "--variant", "fast"]).ok();
    assert!(s.exists("build-fast/CACHEDIR.TAG"));
    s.kiln(&["build"]).ok();
    assert_eq!(s.read("build/all.txt"), "a\ndefault -a\n");
    // And the variant's own globs skip the default's.
    s.write("src/a.txt", "c\n");
    s.kiln(&["build", "--variant", "fast"]).ok();
    assert_eq!(s.read("build-fast/all.txt"), "c\ndefault-fast -a\n");
}

#[test]
fn clean_and_distclean_touch_only_the_variant_named() {
    let s = project();
    s.kiln(&["build"]).ok();
    s.kiln(&["build", "--variant", "debug"]).ok();
    s.kiln(&["build", "--variant", "fast"]).ok();

    s.kiln(&["clean", "--variant", "debug"]).ok();
    assert!(!s.exists("build/debug/all.txt"));
    assert!(s.exists("build/all.txt"));
    assert!(s.exists("build-fast/all.txt"));

    s.kiln(&["build", "--variant", "debug"]).ok();
    s.kiln(&["clean"]).ok();
    assert!(!s.exists("build/all.txt"));
    assert!(
        s.exists("build/debug/all.txt"),
        "plain clean touches only the default"
    );
    assert!(s.exists("build-fast/all.txt"));

    // distclean of the default keeps a variant's build directory nested in it.
    s.kiln(&["distclean"]).ok();
    assert!(!s.exists("build/.kiln"));
    assert!(s.exists("build/debug/all.txt"));
    assert!(s.exists("build/debug/.kiln"));
    let run = s.kiln(&["build", "--variant", "debug"]).ok();
    assert_eq!(run.ran(), Vec::<String>::new(), "its state survived");

    s.kiln(&["distclean", "--variant", "fast"]).ok();
    assert!(!s.exists("build-fast"));
    assert!(s.exists("build/debug/all.txt"));
}

#[test]
fn an_unknown_variant_is_an_error_listing_the_known_ones() {
    let s = project();
    s.kiln(&["build", "--variant", "relase"])
        .status(2)
        .stderr_is(
            "error: --variant relase: no such variant; build.toml declares `debug`, `fast`\n",
        );
    s.kiln(&["clean", "--variant", "relase"]).status(2);
    assert!(!s.exists("build"), "nothing was made");
    s.write(
        "build.toml",
        "[[gen]]\nrun = 'echo > ${TGT}'\ntarget = 'x'\n",
    );
    s.kiln(&["build", "--variant", "debug"]).status(2).stderr_is(
        "error: --variant debug: build.toml declares no variants (add a [variant.debug] table)\n",
    );
}

#[test]
fn a_bad_key_in_a_variant_is_located() {
    let s = project();
    s.write(
        "build.toml",
        "[[gen]]\nrun = 'echo > ${TGT}'\ntarget = 'x'\n\n[variant.debug]\nout = 'build-debug'\nenvs = { A = '1' }\n",
    );
    s.kiln(&["build"]).status(2).stderr_is(concat!(
        "build.toml:7:1: error: unknown key `envs`\n",
        "  |\n",
        "7 | envs = { A = '1' }\n",
        "  | ^^^^\n",
        "  = expected one of `out`, `env`\n",
        "  = did you mean `env`?\n",
    ));
    s.write(
        "build.toml",
        "[[gen]]\nrun = 'echo > ${TGT}'\ntarget = 'x'\n\n[variant.\"../up\"]\nout = 'build-debug'\n",
    );
    s.kiln(&["build"]).status(2).stderr_is(concat!(
        "build.toml:5:10: error: invalid variant name `../up`\n",
        "  |\n",
        "5 | [variant.\"../up\"]\n",
        "  |          ^^^^^^^\n",
        "  = expected letters, digits, `_`, `-` and `.`, not starting with `.`: it names a directory\n",
    ));
}

#[test]
fn a_name_inside_a_variants_value_means_the_value_below_it() {
    let s = Space::new();
    s.write(
        "build.toml",
        r#"
[env]
OPT = "-O2"
CFLAGS = ["${OPT}", "-Wall"]
[[gen]]
run = "echo ${CFLAGS} / ${OPT} > ${TGT}"
target = "flags"
[variant.debug]
env = { CFLAGS = ["${CFLAGS}", "-g"], OPT = "${OPT}-and-more" }
"#,
    );
    s.kiln(&["build", "--variant", "debug"]).ok();
    // `${CFLAGS}` and `${OPT}` in the variant's values are [env]'s; the variant's OPT reaches
    // every value built on it, [env]'s CFLAGS too (as -D would).
    assert_eq!(
        s.read("build/debug/flags"),
        "-O2-and-more -Wall -g / -O2-and-more\n"
    );
    s.kiln(&["build"]).ok();
    assert_eq!(s.read("build/flags"), "-O2 -Wall / -O2\n");
    // A variant's `${NAME}` with nothing below it is undefined; a loop through [env] is an error.
    s.write(
        "build.toml",
        "[env]\nA = '${B}'\n[[gen]]\nrun = 'echo ${A} > ${TGT}'\ntarget = 'x'\n[variant.v]\nenv = { B = '${A}', C = '${C}' }\n",
    );
    s.kiln(&["build", "--variant", "v"])
        .status(2)
        .stderr_has("env values refer to each other in a cycle");
    s.write(
        "build.toml",
        "[[gen]]\nrun = 'echo ${C} > ${TGT}'\ntarget = 'x'\n[variant.v]\nenv = { C = '${C}-x' }\n",
    );
    s.kiln(&["build", "--variant", "v"])
        .status(2)
        .stderr_has("undefined variable `${C}`");
}

#[test]
fn a_define_wins_over_the_variants_env() {
    let s = project();
    s.kiln(&[
        "build",
        "--variant",
        "debug",
        "-D",
        "MODE=cli",
        "-D",
        "FLAGS=-x",
    ])
    .ok();
    assert_eq!(s.read("build/debug/all.txt"), "a\ncli -x\n");
    // A different -D is a different graph, but the same directory and state.
    let run = s.kiln(&["build", "--variant", "debug"]).ok();
    assert_eq!(
        run.ran_outputs(),
        crate::support::set(&["build/debug/all.txt"])
    );
    assert_eq!(s.read("build/debug/all.txt"), "a\ndebug -a -g\n");
}

#[test]
fn a_variant_built_first_inside_the_default_build_directory_leaves_it_to_the_default() {
    let s = project();
    s.kiln(&["build", "--variant", "debug"]).ok();
    assert!(!s.exists("build/CACHEDIR.TAG"));
    // `build/` holds only the variant's build directory: the default build adopts it.
    s.kiln(&["build"]).ok();
    assert_eq!(s.read("build/all.txt"), "a\ndefault -a\n");
    let run = s.kiln(&["build", "--variant", "debug"]).ok();
    assert_eq!(run.ran(), Vec::<String>::new());
    // Anything else in it is someone else's.
    s.kiln(&["distclean"]).ok();
    s.write("build/CMakeLists.txt", "");
    s.kiln(&["build"])
        .status(2)
        .stderr_has("kiln did not make it");
}
