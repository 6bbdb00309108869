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

/// The highest number of jobs running at once, from a log of `start NAME` / `end NAME` lines,
/// counting only the names `keep` accepts.
fn overlap(log: &[String], keep: impl Fn(&str) -> bool) -> usize {
    let lines: Vec<String> = log
        .iter()
        .filter(|l| l.split_once(' ').is_some_and(|(_, name)| keep(name)))
        .cloned()
        .collect();
    crate::support::max_overlap(&lines)
}

/// A project whose tasks each log `start NAME` and `end NAME` to `log` around a sleep: one per
/// `NAME.txt`.
fn slow_project(s: &Space, dir: &str, names: &[&str], log: &Path) {
    s.write(
        &format!("{dir}/build.toml"),
        format!(
            "[rule.slow]\nrun = \"echo start ${{SRC}} >> {log}; sleep 0.3; echo end ${{SRC}} >> {log}; touch ${{TGT}}\"\n\
             ext_in = [\".txt\"]\next_out = [\".out\"]\n\
             [[gen]]\nname = \"slow\"\nrule = \"slow\"\nsource = [\"*.txt\"]\n",
            log = log.display()
        ),
    );
    for n in names {
        s.write(&format!("{dir}/{n}.txt"), n);
    }
}

#[test]
fn two_kilns_under_make_j2_share_its_two_slots() {
    let s = Space::new();
    let log = s.path("log");
    slow_project(&s, "one", &["a1", "a2", "a3", "a4"], &log);
    slow_project(&s, "two", &["b1", "b2", "b3", "b4"], &log);
    // `+` marks the lines as running a make: make 4.3 passes its jobserver only to those.
    s.write(
        "Makefile",
        format!(
            ".PHONY: all one two\nall: one two\none:\n\t+{kiln} -C one build\ntwo:\n\t+{kiln} -C two build\n",
            kiln = crate::support::KILN
        ),
    );
    let out = Command::new("make")
        .args(["-j2", "-s"])
        .current_dir(s.root())
        .output()
        .expect("make (scripts/test-setup installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let lines = s.lines("log");
    assert_eq!(lines.len(), 16);
    // Each kiln alone would run 2 (its -j is make's); together they never pass make's 2.
    assert_eq!(overlap(&lines, |_| true), 2, "{lines:?}");

    // A line make does not know to run a make gets no jobserver: kiln says so, as make would,
    // and runs one task at a time.
    s.write(
        "Makefile",
        format!("all:\n\t{} -C one build\n", crate::support::KILN),
    );
    std::fs::remove_file(&log).unwrap();
    std::fs::remove_dir_all(s.path("one/build")).unwrap();
    let out = Command::new("make")
        .args(["-j2", "-s"])
        .current_dir(s.root())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("mark the line with `+`, or use $(MAKE)); running one task at a time"),
        "{stderr}"
    );
    assert_eq!(overlap(&s.lines("log"), |_| true), 1);
}

#[test]
fn a_make_inside_a_task_shares_kilns_j() {
    let s = Space::new();
    let log = s.path("log");
    // Four make jobs, and no -j: only a jobserver in MAKEFLAGS lets make run two at once.
    s.write(
        "sub/Makefile",
        format!(
            "all: m1 m2 m3 m4\nm1 m2 m3 m4:\n\t@echo start $@ >> {log}; sleep 0.3; echo end $@ >> {log}\n",
            log = log.display()
        ),
    );
    s.write(
        "build.toml",
        "[[gen]]\nname = \"sub\"\nrun = \"make -s -C sub\"\n",
    );
    s.kiln(&["build", "-j2"]).ok();
    let lines = s.lines("log");
    assert_eq!(lines.len(), 8);
    assert_eq!(overlap(&lines, |_| true), 2, "{lines:?}");

    // With kiln's other tasks beside it: never more than 2 jobs at once in all.
    std::fs::remove_file(&log).unwrap();
    s.kiln(&["distclean"]).ok();
    slow_project(&s, ".", &["k1", "k2", "k3"], &log);
    s.write(
        "build.toml",
        format!(
            "{}[[gen]]\nname = \"sub\"\nrun = \"make -s -C sub\"\n",
            s.read("build.toml")
        ),
    );
    s.kiln(&["build", "-j2"]).ok();
    let lines = s.lines("log");
    assert_eq!(lines.len(), 14);
    assert_eq!(overlap(&lines, |_| true), 2, "{lines:?}");
}

/// A fifo holding `tokens` slots, as make 4.4 makes its jobserver, and the test's own end of it.
fn fifo_jobserver(s: &Space, tokens: usize) -> (std::path::PathBuf, std::fs::File) {
    use std::io::Write;
    let path = s.path("jobserver.fifo");
    let made = Command::new("mkfifo").arg(&path).status().unwrap();
    assert!(made.success());
    // Opened for reading and writing, as make 4.4 opens it: never blocks, never at its end.
    let mut end = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    end.write_all(&vec![b'+'; tokens]).unwrap();
    (path, end)
}

/// How many bytes the fifo holds now.
fn fifo_len(end: &std::fs::File) -> usize {
    use std::io::{Read, Write};
    // Read in non-blocking mode until empty, then put the bytes back.
    let mut reader = end.try_clone().unwrap();
    let flags = rustix::fs::fcntl_getfl(&reader).unwrap();
    rustix::fs::fcntl_setfl(&reader, flags | rustix::fs::OFlags::NONBLOCK).unwrap();
    let mut taken = Vec::new();
    let mut buf = [0u8; 64];
    while let Ok(k @ 1..) = reader.read(&mut buf) {
        taken.extend_from_slice(&buf[..k]);
    }
    rustix::fs::fcntl_setfl(&reader, flags).unwrap();
    reader.write_all(&taken).unwrap();
    taken.len()
}

#[test]
fn kiln_takes_its_slots_from_a_make_4_4_fifo_jobserver() {
    let s = Space::new();
    let log = s.path("log");
    slow_project(&s, ".", &["a1", "a2", "a3", "a4", "a5", "a6"], &log);
    let (path, end) = fifo_jobserver(&s, 1);
    let flags = format!(" -j2 --jobserver-auth=fifo:{}", path.display());
    let run = s.kiln_with(".", &["build"], &[("MAKEFLAGS", Some(&flags))]);
    run.ok();
    let lines = s.lines("log");
    assert_eq!(overlap(&lines, |_| true), 2, "{lines:?}");
    // Every slot taken was given back.
    assert_eq!(fifo_len(&end), 1);

    // With the fifo's one slot held by another client (the test), kiln runs one task at a
    // time until it is given back, then two.
    std::fs::remove_file(&log).unwrap();
    std::fs::remove_dir_all(s.path("build")).unwrap();
    {
        use std::io::Read;
        let mut byte = [0u8; 1];
        (&end).read_exact(&mut byte).unwrap();
    }
    assert_eq!(fifo_len(&end), 0, "the test holds the slot now");
    let child = crate::support::spawn_kiln_with(&s, &["build"], &[("MAKEFLAGS", &flags)]);
    crate::support::wait_for(&s, "build/a2.out");
    assert_eq!(overlap(&s.lines("log"), |_| true), 1);
    {
        use std::io::Write;
        (&end).write_all(b"+").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines = s.lines("log");
    assert_eq!(lines.len(), 12);
    assert_eq!(overlap(&lines, |_| true), 2, "{lines:?}");
    assert_eq!(fifo_len(&end), 1);
}

/// What bash's completion offers for the words typed so far (the last one being completed), with
/// `kiln completions bash` sourced, run in `dir`.
fn bash_completes(dir: &Path, words: &[&str]) -> Vec<String> {
    let kiln = crate::support::KILN;
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "source <('{kiln}' completions bash) || exit 3\n\
         complete -p kiln | grep -q _kiln_targets || exit 4\n\
         COMP_WORDS=('{kiln}' {words})\n\
         COMP_CWORD={cword}\n\
         COMP_LINE=\"${{COMP_WORDS[*]}}\"\n\
         _kiln_targets '{kiln}' '{cur}' '{prev}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        words = quoted.join(" "),
        cword = words.len(),
        cur = words.last().unwrap(),
        prev = if words.len() >= 2 {
            words[words.len() - 2]
        } else {
            kiln
        },
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir)
        .env_remove("MAKEFLAGS")
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_bash_completion_completes_subcommands_and_generator_names() {
    let s = crate::example::copy_example();
    assert_eq!(
        bash_completes(s.root(), &["comp"]),
        ["compdb", "completions"]
    );
    assert_eq!(bash_completes(s.root(), &["build", "he"]), ["hello"]);
    assert_eq!(bash_completes(s.root(), &["graph", "ut"]), ["util"]);
    assert_eq!(
        bash_completes(s.root(), &["build", "--targets", "ver"]),
        ["version-header"]
    );
    // From elsewhere, the project `-C` names.
    let elsewhere = Space::new();
    let dir = s.root().to_str().unwrap();
    assert_eq!(
        bash_completes(elsewhere.root(), &["-C", dir, "build", "u"]),
        ["util"]
    );
    // Options are still options, and `clean` takes no targets.
    assert!(bash_completes(s.root(), &["build", "--keep"]).contains(&"--keep-going".to_string()));
    assert!(!bash_completes(s.root(), &["clean", ""]).contains(&"hello".to_string()));
    // The other shells' scripts and the man page are there.
    for shell in ["zsh", "fish"] {
        let script = s.kiln(&["completions", shell]).ok().stdout;
        assert!(
            script.contains("compdb") && script.contains("kiln list"),
            "{script}"
        );
    }
    s.kiln(&["completions", "tcsh"]).status(2);
    // Neither needs a project.
    let page = elsewhere.kiln(&["man"]).ok().stdout;
    assert!(
        page.contains(".TH kiln") && page.contains(".SH SUBCOMMANDS"),
        "{page}"
    );
    elsewhere.kiln(&["completions", "bash"]).ok();
}
