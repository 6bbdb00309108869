//! Fitting the C toolchain around kiln: `kiln compdb` (checked by rerunning its entries and by
//! Debian's clangd), the GNU make jobserver both ways, and shell completions and a man page.

use crate::support::Space;
use std::path::Path;
use std::process::Command;

/// The entries of `kiln compdb` in `s`, parsed.
fn compdb(s: &Space) -> Vec<serde_json::Value> {
    let out = s.kiln(&["compdb"]).ok().stdout;
    match serde_json::from_str(&out) {
        Ok(serde_json::Value::Array(entries)) => entries,
        other => panic!("kiln compdb printed no JSON array ({other:?}):\n{out}"),
    }
}

fn field<'a>(entry: &'a serde_json::Value, name: &str) -> &'a str {
    entry[name]
        .as_str()
        .unwrap_or_else(|| panic!("no string `{name}` in {entry}"))
}

fn arguments(entry: &serde_json::Value) -> Vec<String> {
    entry["arguments"]
        .as_array()
        .unwrap_or_else(|| panic!("no `arguments` in {entry}"))
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// Checks the compile database of a project kiln has built, entry by entry: running an entry's
/// `arguments` in its `directory` makes an object byte-equal to the one the build made, and
/// clangd, reading the database from the project's root, parses the entry's file with the
/// entry's command and finds no error. Returns how many entries there were.
pub(crate) fn check_compile_database(s: &Space) -> usize {
    let entries = compdb(s);
    let root = s.root().canonicalize().unwrap();
    for e in &entries {
        assert_eq!(Path::new(field(e, "directory")), root, "{e}");
        let file = field(e, "file");
        assert!(
            Path::new(file).is_absolute() && Path::new(file).is_file(),
            "{e}"
        );
        let output = root.join(field(e, "output"));
        let built = std::fs::read(&output).unwrap_or_else(|err| panic!("{e}: {err}"));
        std::fs::remove_file(&output).unwrap();
        let args = arguments(e);
        let run = Command::new(&args[0])
            .args(&args[1..])
            .current_dir(field(e, "directory"))
            .output()
            .unwrap_or_else(|err| panic!("{args:?}: {err}"));
        assert!(
            run.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let again = std::fs::read(&output).unwrap_or_else(|err| panic!("{e}: {err}"));
        assert!(again == built, "{args:?} made another {}", output.display());
    }
    // clangd finds compile_commands.json in the file's directory or a parent.
    std::fs::write(
        root.join("compile_commands.json"),
        s.kiln(&["compdb"]).ok().stdout,
    )
    .unwrap();
    for e in &entries {
        let file = field(e, "file");
        let out = Command::new("clangd")
            .arg(format!("--check={file}"))
            // Features are tried at the tokens of line 1 only: the parse is what is checked.
            .arg("--check-lines=1")
            .current_dir(&root)
            .output()
            .expect("Debian's clangd (scripts/test-setup installs it)");
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "clangd --check={file}:\n{log}");
        assert!(
            log.contains("Compile command from CDB is:") && log.contains("0 errors"),
            "clangd did not take {file}'s command from the database:\n{log}"
        );
    }
    entries.len()
}

#[test]
fn compdb_of_the_example_rebuilds_its_objects_and_clangd_accepts_it() {
    let s = crate::example::copy_example();
    s.kiln(&["build"]).ok();
    assert_eq!(check_compile_database(&s), 4);
}

#[test]
fn compdb_of_the_lua_port_rebuilds_its_objects_and_clangd_accepts_it() {
    let s = crate::ports::copy_port("lua");
    crate::ports::build(&s);
    // Lua's 34 sources: the core and libraries, lua.c and luac.c.
    assert_eq!(check_compile_database(&s), 34);
}

#[test]
fn compdb_takes_the_compile_out_of_a_chain_and_follows_the_rules_compdb_key() {
    let s = Space::new();
    s.write("a.c", "int a;\n")
        .write("b.cpp", "int b;\n")
        .write("c.cc", "int c;\n")
        .write("gen.txt", "x\n")
        .write(
            "build.toml",
            r#"
[env]
CC = "cc"
DEFS = ["-DNAME=\"two words\"", "-DX=1"]

[rule.cc]
run = "mkdir -p ${OUT}/o && LANG=C ${CC} ${DEFS} -c ${SRC} -o ${TGT} 2>&1 && echo done >/dev/null"
ext_in = [".c", ".cpp"]
ext_out = [".o"]

[rule.gen]
run = "cc -E -x c ${SRC} > ${TGT}"
ext_in = [".txt"]
ext_out = [".i"]
compdb = true

[rule.quiet]
run = "cc -c ${SRC} -o ${TGT}"
ext_in = [".cc"]
ext_out = [".copy"]
compdb = false

[[gen]]
name = "objs"
rule = "cc"
source = ["a.c", "b.cpp"]

[[gen]]
name = "pre"
rule = "gen"
source = ["gen.txt"]

[[gen]]
name = "copies"
rule = "quiet"
source = ["c.cc"]
"#,
        );
    let entries = compdb(&s);
    let root = s.root().canonicalize().unwrap();
    let files: Vec<&str> = entries.iter().map(|e| field(e, "file")).collect();
    let abs = |p: &str| root.join(p).to_string_lossy().into_owned();
    assert_eq!(files, [abs("a.c"), abs("b.cpp"), abs("gen.txt")]);
    // Only the compile, split as the shell splits it: no assignment, no redirection, no chain.
    assert_eq!(
        arguments(&entries[0]),
        [
            "cc",
            // The shell removes the quotes the build file wrote.
            "-DNAME=two words",
            "-DX=1",
            "-c",
            "a.c",
            "-o",
            "build/a.o"
        ]
    );
    assert_eq!(field(&entries[0], "output"), "build/a.o");
    assert_eq!(field(&entries[1], "output"), "build/b.o");
    // A rule without `-c` or `-o`: the command that names the source, the task's first output.
    assert_eq!(arguments(&entries[2]), ["cc", "-E", "-x", "c", "gen.txt"]);
    assert_eq!(field(&entries[2], "output"), "build/gen.i");
    // Nothing was built.
    assert!(!s.exists("build/a.o"));
    // compdb is a query: build options do not apply.
    s.kiln(&["compdb", "-j2"]).status(2);
}
