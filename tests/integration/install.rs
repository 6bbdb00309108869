//! `kiln install` and `kiln uninstall`: a generator's `install` directory and `[[install]]`
//! entries copied under a temporary DESTDIR (PREFIX, BINDIR, LIBDIR, INCLUDEDIR and their
//! overrides), modes kept and set, links installed as links, files replaced atomically, and
//! uninstall removing exactly what install wrote, never through a symlink to elsewhere.

use crate::support::{Space, Test};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// A program made executable, a link to it made by `ln -sf`, and two headers of mode 600.
const PROJECT: &str = r#"
[[gen]]
name = "hello"
run = "printf '#!/bin/sh\necho hello\n' > ${TGT} && chmod 755 ${TGT}"
target = "hello"
install = "${BINDIR}"

[[gen]]
name = "hi"
run = "ln -sf hello ${TGT}"
source = ["hello"]
target = "hi"
install = "${BINDIR}"

[[install]]
source = ["include/*.h"]
dest = "${INCLUDEDIR}/hello"
mode = "644"
"#;

fn project() -> Space {
    let s = Space::new();
    s.write("build.toml", PROJECT)
        .write("include/hello.h", "int hello(void);\n")
        .write("include/world.h", "int world(void);\n");
    for h in ["include/hello.h", "include/world.h"] {
        chmod(&s.path(h), 0o600);
    }
    s
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(s: &Space, rel: &str) -> u32 {
    s.path(rel).metadata().unwrap().mode() & 0o7777
}

fn link(s: &Space, rel: &str) -> String {
    let p = s.path(rel);
    assert!(
        p.symlink_metadata().unwrap().file_type().is_symlink(),
        "{rel} is not a link"
    );
    std::fs::read_link(p)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn install_copies_targets_and_entries_under_destdir_with_the_default_directories() {
    let s = project();
    s.kiln(&["install", "--destdir", "stage"])
        .ok()
        .stderr_has("install build/hello -> ")
        .stderr_has("'install' finished: 4 files installed");
    assert_eq!(
        s.read("stage/usr/local/bin/hello"),
        "#!/bin/sh\necho hello\n"
    );
    assert_eq!(
        mode(&s, "stage/usr/local/bin/hello"),
        0o755,
        "a generator's output keeps its mode"
    );
    assert_eq!(
        link(&s, "stage/usr/local/bin/hi"),
        "hello",
        "a link is installed as a link"
    );
    assert_eq!(
        s.read("stage/usr/local/include/hello/world.h"),
        "int world(void);\n"
    );
    assert_eq!(
        mode(&s, "stage/usr/local/include/hello/hello.h"),
        0o644,
        "`mode` sets it"
    );
    assert!(!s.exists("stage/usr/local/include/hello/.hello.h.kiln-install"));
}

#[test]
fn prefix_and_the_directories_can_be_set() {
    let s = project();
    s.kiln(&["install", "--destdir", "stage", "--prefix", "/opt/hello"])
        .ok();
    assert!(s.exists("stage/opt/hello/bin/hello"));
    assert!(s.exists("stage/opt/hello/include/hello/hello.h"));

    let s = project();
    s.kiln(&[
        "-D",
        "PREFIX=/usr",
        "-D",
        "BINDIR=/sbin",
        "install",
        "--destdir",
        "stage",
    ])
    .ok();
    assert!(s.exists("stage/sbin/hello"));
    assert!(s.exists("stage/usr/include/hello/hello.h"));

    // [env] overrides a default; ${PREFIX} inside it still expands.
    let s = project();
    let text = format!("[env]\nINCLUDEDIR = \"${{PREFIX}}/inc\"\n{PROJECT}");
    s.write("build.toml", text);
    s.kiln(&["install", "--destdir", "stage", "--prefix", "/p"])
        .ok();
    assert!(s.exists("stage/p/inc/hello/hello.h"));
    assert!(s.exists("stage/p/bin/hi"));
}

#[test]
fn destdir_comes_from_the_environment_as_with_make() {
    let s = project();
    let stage = s.path("stage");
    s.kiln_with(
        ".",
        &["install"],
        &[("DESTDIR", Some(stage.to_str().unwrap()))],
    )
    .ok();
    assert!(s.exists("stage/usr/local/bin/hello"));
    s.kiln_with(
        ".",
        &["uninstall"],
        &[("DESTDIR", Some(stage.to_str().unwrap()))],
    )
    .ok()
    .stderr_has("'uninstall' finished: 4 files removed");
    assert!(!s.exists("stage/usr/local/bin/hello"));
}

#[test]
fn installing_does_not_make_the_next_build_run_anything() {
    let s = project();
    s.kiln(&["build"]).ok();
    let run = s.kiln(&["install", "--destdir", "stage"]).ok();
    assert_eq!(run.ran(), Vec::<String>::new(), "install's build ran tasks");
    s.kiln(&["install", "--destdir", "other", "--prefix", "/opt"])
        .ok();
    let run = s.kiln(&["build"]).ok();
    assert_eq!(
        run.ran(),
        Vec::<String>::new(),
        "the build after install ran tasks"
    );
}

#[test]
fn a_failed_build_installs_nothing() {
    let s = project();
    s.write(
        "build.toml",
        PROJECT.replace("chmod 755 ${TGT}", "chmod 755 ${TGT} && exit 3"),
    );
    s.kiln(&["install", "--destdir", "stage"]).status(1);
    assert!(!s.exists("stage"));
}

#[test]
fn a_reinstall_replaces_files_by_renaming_over_them() {
    let s = project();
    s.kiln(&["install", "--destdir", "stage"]).ok();
    // A hard link to the installed file keeps the old content if the new one is renamed over
    // it; writing in place would change both.
    std::fs::hard_link(
        s.path("stage/usr/local/include/hello/hello.h"),
        s.path("old.h"),
    )
    .unwrap();
    s.write("include/hello.h", "int hello(int);\n");
    s.kiln(&["install", "--destdir", "stage"]).ok();
    assert_eq!(
        s.read("stage/usr/local/include/hello/hello.h"),
        "int hello(int);\n"
    );
    assert_eq!(s.read("old.h"), "int hello(void);\n");
    assert_eq!(mode(&s, "stage/usr/local/include/hello/hello.h"), 0o644);
    let names: Vec<String> = std::fs::read_dir(s.path("stage/usr/local/include/hello"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "no temporary file is left: {names:?}");
}

#[test]
fn uninstall_removes_exactly_what_install_wrote() {
    let s = project();
    // A directory that was there before, with a file placed there by hand.
    s.write("stage/usr/local/bin/mine", "mine\n");
    s.kiln(&["install", "--destdir", "stage"]).ok();
    s.kiln(&["uninstall", "--destdir", "stage"])
        .ok()
        .stderr_has("'uninstall' finished: 4 files removed");
    assert!(!s.exists("stage/usr/local/bin/hello"));
    assert!(!s.exists("stage/usr/local/bin/hi"));
    assert_eq!(s.read("stage/usr/local/bin/mine"), "mine\n");
    // The directories install created are removed; the one that was there stays.
    assert!(!s.exists("stage/usr/local/include"));
    assert!(s.path("stage/usr/local/bin").is_dir());
    // Sources and outputs are untouched.
    assert!(s.exists("build/hello") && s.exists("include/hello.h"));

    s.kiln(&["uninstall", "--destdir", "stage"]).ok().stderr_is(
        "nothing to uninstall: kiln has installed nothing into --destdir [ROOT]/stage\n",
    );
}

#[test]
fn uninstall_removes_what_the_last_install_wrote() {
    // Two installs into one staging tree with different prefixes: uninstall removes the second's.
    let s = project();
    s.kiln(&["install", "--destdir", "stage", "--prefix", "/a"])
        .ok();
    s.kiln(&["install", "--destdir", "stage", "--prefix", "/b"])
        .ok();
    s.kiln(&["uninstall", "--destdir", "stage"]).ok();
    assert!(!s.exists("stage/b/bin/hello"));
    assert!(!s.exists("stage/b"));
    assert!(
        s.exists("stage/a/bin/hello"),
        "the earlier install is not the last one"
    );
}

#[test]
fn uninstall_leaves_a_file_that_changed_since_it_was_installed() {
    let s = project();
    s.kiln(&["install", "--destdir", "stage"]).ok();
    s.remove("stage/usr/local/bin/hello");
    s.write("stage/usr/local/bin/hello", "someone else's\n");
    s.kiln(&["uninstall", "--destdir", "stage"])
        .ok()
        .stderr_has("it changed since kiln installed it");
    assert_eq!(s.read("stage/usr/local/bin/hello"), "someone else's\n");
    assert!(!s.exists("stage/usr/local/bin/hi"));
}

#[test]
fn uninstall_does_not_follow_a_directory_replaced_by_a_symlink() {
    let s = project();
    s.kiln(&["install", "--destdir", "stage"]).ok();
    // The installed bin/ is replaced by a link to a directory holding files of the same names.
    std::fs::remove_dir_all(s.path("stage/usr/local/bin")).unwrap();
    s.write("elsewhere/hello", "keep\n");
    std::os::unix::fs::symlink("hello", s.path("elsewhere/hi")).unwrap();
    std::os::unix::fs::symlink(s.path("elsewhere"), s.path("stage/usr/local/bin")).unwrap();
    s.kiln(&["uninstall", "--destdir", "stage"])
        .ok()
        .stderr_has("its directory now resolves to");
    assert_eq!(s.read("elsewhere/hello"), "keep\n");
    assert_eq!(link(&s, "elsewhere/hi"), "hello");
    assert!(!s.exists("stage/usr/local/include/hello/hello.h"));
}

#[test]
fn uninstall_with_nothing_installed_says_so() {
    Test::new()
        .build_file(PROJECT)
        .args(&["uninstall"])
        .stderr_is("nothing to uninstall: kiln has installed nothing\n")
        .run();
}

#[test]
fn an_entry_that_matches_nothing_is_an_error_naming_it() {
    let s = project();
    s.write(
        "build.toml",
        PROJECT.replace("include/*.h", "include/*.hpp"),
    );
    s.kiln(&["install", "--destdir", "stage"])
        .status(2)
        .stderr_has("error: `include/*.hpp` in `source` of [[install]] matches nothing");
    assert!(!s.exists("stage"), "nothing is installed");
}

#[test]
fn a_failed_copy_exits_1_with_the_path() {
    let s = project();
    // A file where a directory must be: running as root, permissions would not stop it.
    s.write("stage/usr/local", "in the way\n");
    s.kiln(&["install", "--destdir", "stage"])
        .status(1)
        .stderr_has("error: cannot install build/hello: cannot create /")
        .stderr_has("/stage/usr/local/bin: Not a directory");
}

/// The build file with `edit` appended fails with `expected` and runs nothing.
fn bad(edit: &str, expected: &str) {
    let (s, _) = Test::new()
        .build_file(&format!("{PROJECT}{edit}"))
        .file("include/hello.h", "")
        .args(&["install", "--destdir", "stage"])
        .status(2)
        .stderr_is(expected)
        .run();
    assert!(!s.exists("build") && !s.exists("stage"));
}

#[test]
fn install_entries_that_are_wrong_are_located_errors() {
    bad(
        "[[install]]\nsource = \"a\"\ndest = \"/x\"\nmod = \"644\"\n",
        concat!(
            "build.toml:22:1: error: unknown key `mod`\n",
            "   |\n",
            "22 | mod = \"644\"\n",
            "   | ^^^\n",
            "  = expected one of `source`, `dest`, `mode`\n",
            "  = did you mean `mode`?\n",
        ),
    );
    bad(
        "[[install]]\nsource = \"a\"\ndest = \"/x\"\nmode = \"9x9\"\n",
        concat!(
            "build.toml:22:8: error: invalid mode `9x9`\n",
            "   |\n",
            "22 | mode = \"9x9\"\n",
            "   |        ^^^^^\n",
            "  = expected permissions in octal, such as \"644\" or \"755\"\n",
        ),
    );
    bad(
        "[[install]]\nsource = \"a\"\ndest = \"\"\n",
        concat!(
            "build.toml:21:8: error: `dest` is empty\n",
            "   |\n",
            "21 | dest = \"\"\n",
            "   |        ^^\n",
            "  = expected a directory such as \"${BINDIR}\" or \"${INCLUDEDIR}/hello\"\n",
        ),
    );
    bad(
        "[[gen]]\nname = \"x\"\nrun = \"true\"\ninstall = \"${BINDR}\"\n",
        concat!(
            "build.toml:22:12: error: in `install`: undefined variable `${BINDR}`\n",
            "   |\n",
            "22 | install = \"${BINDR}\"\n",
            "   |            ^^^^^^^^\n",
            "  = define it in [env], in the generator's env, or with -D NAME=VALUE\n",
        ),
    );
    bad(
        "[[gen]]\nname = \"x\"\nrun = \"true\"\ninstall = \"bin\"\n",
        concat!(
            "build.toml:22:11: error: the install directory `bin` in `install` is not absolute\n",
            "   |\n",
            "22 | install = \"bin\"\n",
            "   |           ^^^^^\n",
            "  = expected an absolute directory such as \"${PREFIX}/share\"; give PREFIX as an absolute path\n",
        ),
    );
}
