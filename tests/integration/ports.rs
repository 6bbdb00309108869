//! Four real projects ported to kiln: examples/lua (Lua 5.4), examples/zlib, examples/luajit
//! (LuaJIT 2.1) and examples/zstd (Zstandard 1.5, with two variants), built from Debian's source
//! packages by the real kiln binary on a temporary copy.
//!
//! The sources are not in the repository: `scripts/fetch-examples` fetches them (once, into a
//! cache) and copies them to `examples/*/upstream`. This module runs it once per test process and
//! fails, never skips, when it cannot.
//!
//! For each project: a smoke test runs the programs kiln built and checks that a second build runs
//! nothing; a header test appends a comment to one header with a few includers and checks that the
//! compiles kiln reruns are exactly the objects whose depfiles list that header, and never more
//! than the project's own Makefile would recompile. Make's set comes cheaply from a pristine copy
//! of the sources: `make -t` (touch mode: marks every target up to date, compiles nothing), the
//! same edit, then `make -n`, whose compile lines are read off. `make -t` works for all three:
//! for LuaJIT it also touches the files buildvm would generate (empty), which is all `make -n`
//! needs, since the edited header reaches no host tool.

use crate::support::{Run, Space};
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Runs `scripts/fetch-examples` once per process; every test of this module calls it first.
fn fetched() {
    static FETCH: OnceLock<Result<(), String>> = OnceLock::new();
    let result = FETCH.get_or_init(|| {
        let out = Command::new("sh")
            .arg(Path::new(ROOT).join("scripts/fetch-examples"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot start scripts/fetch-examples: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "scripts/fetch-examples failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = result {
        panic!(
            "{e}\nthe ported examples need their sources: run scripts/fetch-examples (it uses \
             apt-get source, so it needs apt and root, or a cache it filled before)"
        );
    }
}

/// The example's directory in the repository.
fn example_dir(name: &str) -> PathBuf {
    Path::new(ROOT).join("examples").join(name)
}

/// A temporary copy of examples/NAME: its build.toml and its upstream/ sources, not its build/.
pub(crate) fn copy_port(name: &str) -> Space {
    fetched();
    let s = Space::new();
    let src = example_dir(name);
    for entry in walkdir::WalkDir::new(&src) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(&src).unwrap();
        // build/, and a variant's build-*/ beside it.
        let top = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy());
        let is_build_dir = top.is_some_and(|t| t == "build" || t.starts_with("build-"));
        if is_build_dir || !entry.file_type().is_file() {
            continue;
        }
        let to = s.path(rel.to_str().unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(entry.path(), &to).unwrap();
    }
    assert!(
        s.exists("upstream"),
        "examples/{name}/upstream is missing: run scripts/fetch-examples"
    );
    s
}

/// Builds with kiln at its default -j, checking success.
pub(crate) fn build(s: &Space) -> Run {
    s.kiln(&["build"]).ok()
}

/// Runs a program with arguments and stdin, in the project's root.
fn run_with(
    s: &Space,
    program: &str,
    args: &[&str],
    env: &[(&str, &Path)],
    stdin: &[u8],
) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(s.path(program));
    cmd.args(args)
        .current_dir(s.root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{program}: {e}"));
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// Runs a program and returns its stdout, asserting that it succeeded.
fn stdout_of(s: &Space, program: &str, args: &[&str], env: &[(&str, &Path)]) -> String {
    let out = run_with(s, program, args, env, b"");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Asserts that a build runs no task at all.
fn assert_null_build(s: &Space) {
    let run = build(s);
    assert!(
        run.ran().is_empty(),
        "a second build runs nothing, but ran {:?}",
        run.ran()
    );
}

/// The objects the tasks of a run compiled (outputs ending in `.o`).
fn compiled(run: &Run) -> BTreeSet<String> {
    run.ran_outputs()
        .into_iter()
        .filter(|o| o.ends_with(".o"))
        .collect()
}

/// The prerequisites of each target of a Makefile-syntax depfile (gcc -MMD), by target.
fn depfile_entries(text: &str) -> Vec<(String, Vec<String>)> {
    let joined = text.replace("\\\n", " ");
    let mut entries = Vec::new();
    for line in joined.lines() {
        if let Some((target, deps)) = line.split_once(": ").or_else(|| line.split_once(':')) {
            let deps = deps.split_whitespace().map(str::to_string).collect();
            entries.push((target.trim().to_string(), deps));
        }
    }
    entries
}

/// Every object under build/ whose depfile (`OBJECT.d`) lists `header`, as kiln prints paths.
fn includers(s: &Space, header: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for entry in walkdir::WalkDir::new(s.path("build")) {
        let entry = entry.unwrap();
        let path = entry.path();
        if !path.to_string_lossy().ends_with(".o.d") {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        for (target, deps) in depfile_entries(&text) {
            if deps.iter().any(|d| d == header) {
                found.insert(target);
            }
        }
    }
    found
}

/// Appends a comment line to a file: its content changes, its meaning does not.
fn append_comment(path: &Path) {
    let mut text = std::fs::read_to_string(path).unwrap();
    text.push_str("/* edited by a test */\n");
    std::fs::write(path, text).unwrap();
}

/// A compile as make and kiln can both name it: the source's path relative to the Makefile's
/// directory without its extension, and whether it is the position-independent (shared library)
/// variant.
type Compile = (String, bool);

/// How to get make's answer for one project.
struct MakeSetup<'a> {
    /// Commands run in the copy's root before `make -t` (configure, restoring a Makefile).
    prepare: &'a [&'a [&'a str]],
    /// Where make runs, relative to the copy's root; also what kiln's object paths are relative
    /// to, under `build/upstream/` (or `build/pic/upstream/`).
    dir: &'a str,
    /// make's arguments: the target that builds what the port builds.
    args: &'a [&'a str],
}

/// The compiles `make -n` would run after `header` (relative to the copy's root) changes, on a
/// tree where `make -t` marked everything up to date.
fn make_would_compile(name: &str, setup: &MakeSetup, header: &str) -> BTreeSet<Compile> {
    let tmp = tempfile::Builder::new()
        .prefix("kiln-make-")
        .tempdir()
        .unwrap();
    let tree = tmp.path().join("upstream");
    let status = Command::new("cp")
        .arg("-a")
        .arg(example_dir(name).join("upstream"))
        .arg(&tree)
        .status()
        .unwrap();
    assert!(status.success(), "cp -a of {name}'s upstream");
    let make = |args: &[&str]| {
        let out = Command::new("make")
            .args(args)
            .current_dir(tree.join(setup.dir))
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS")
            .env_remove("MAKELEVEL")
            .stdin(Stdio::null())
            .output()
            .expect("make runs (scripts/test installs it)");
        assert!(
            out.status.success(),
            "make {args:?} in {name}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    for command in setup.prepare {
        let out = Command::new(command[0])
            .args(&command[1..])
            .current_dir(&tree)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{command:?}: {e}"));
        assert!(
            out.status.success(),
            "{command:?} in {name}'s copy: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut touch = vec!["-t"];
    touch.extend(setup.args);
    make(&touch);
    append_comment(&tmp.path().join(header));
    let mut dry = vec!["-n"];
    dry.extend(setup.args);
    let plan = make(&dry);
    let compiles = make_compiles(&plan);
    assert!(
        !compiles.is_empty(),
        "make -n compiles nothing after {header} changed:\n{plan}"
    );
    compiles
}

/// The compiles in `make -n` output: command lines with `-c` and a C or assembler source.
fn make_compiles(plan: &str) -> BTreeSet<Compile> {
    let mut compiles = BTreeSet::new();
    for line in plan.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if !words.contains(&"-c") {
            continue;
        }
        let pic = words.contains(&"-fPIC");
        for w in &words {
            if let Some(stem) = w.strip_suffix(".c").or_else(|| w.strip_suffix(".S")) {
                compiles.insert((stem.to_string(), pic));
            }
        }
    }
    compiles
}

/// kiln's objects (`build/upstream/DIR/x.o`, `build/pic/upstream/DIR/x.o`) as compiles named the
/// way make names them.
fn as_compiles(objects: &BTreeSet<String>, dir: &str) -> BTreeSet<Compile> {
    let prefix = if dir == "." {
        "upstream/".to_string()
    } else {
        format!("upstream/{dir}/")
    };
    objects
        .iter()
        .map(|o| {
            let rest = o.strip_prefix("build/").unwrap_or(o);
            let (pic, rest) = match rest.strip_prefix("pic/") {
                Some(r) => (true, r),
                None => (false, rest),
            };
            let stem = rest
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix(".o"))
                .unwrap_or_else(|| panic!("{o} is not an object under build/{prefix}"));
            (stem.to_string(), pic)
        })
        .collect()
}

/// The header test: build, edit `header`, rebuild; kiln's compiles must be exactly the objects
/// whose depfiles list the header, a few but not all of them, and within make's set.
fn header_edit_rebuilds_exactly_its_includers(name: &str, header: &str, setup: &MakeSetup) {
    let s = copy_port(name);
    let first = build(&s);
    let every_object = compiled(&first);
    let expected = includers(&s, header);
    assert!(
        !expected.is_empty() && expected.len() < every_object.len(),
        "{header} should have a few includers, not none or all: {expected:?}"
    );

    append_comment(&s.path(header));
    let run = build(&s);
    let recompiled = compiled(&run);
    assert_eq!(
        recompiled, expected,
        "kiln recompiles exactly the objects whose depfiles list {header}"
    );

    let make = make_would_compile(name, setup, header);
    let ours = as_compiles(&recompiled, setup.dir);
    let beyond: BTreeSet<_> = ours.difference(&make).collect();
    assert!(
        beyond.is_empty(),
        "kiln recompiled {beyond:?}, which make would not\nkiln: {ours:?}\nmake: {make:?}"
    );
    assert_null_build(&s);
}

// ------------------------------------------------------------------------------------------------
// Lua 5.4

const LUA_SCRIPT: &str = r##"
local t = {5, 3, 8, 1, 9, 2}
table.sort(t)
print(table.concat(t, " "))
table.sort(t, function(a, b) return a > b end)
print(table.concat(t, ","))
print(string.format("%5.2f|%-4s|%d|%x", math.pi, "ab", 42, 255))
local words = {}
for w in ("the quick brown fox"):gmatch("%a+") do words[#words + 1] = w:upper() end
print(#words, words[4])
print(math.type(1), math.type(1.0), 7 // 2, 2^10, 1 << 40)
local co = coroutine.wrap(function(a) local b = coroutine.yield(a + 1) return b * 2 end)
print(co(1), co(10))
print(utf8.char(72, 228, 8364), #utf8.char(8364))
print(select("#", pcall(error, "x")), (pcall(error, {})))
print(_VERSION)
"##;

const LUA_OUTPUT: &str = "1 2 3 5 8 9\n\
                          9,8,5,3,2,1\n \
                          3.14|ab  |42|ff\n\
                          4\tFOX\n\
                          integer\tfloat\t3\t1024.0\t1099511627776\n\
                          2\t20\n\
                          H\u{e4}\u{20ac}\t3\n\
                          2\tfalse\n\
                          Lua 5.4\n";

#[test]
fn lua_interpreter_runs_a_script_and_luac_bytecode() {
    let s = copy_port("lua");
    build(&s);
    s.write("script.lua", LUA_SCRIPT);
    assert_eq!(stdout_of(&s, "build/lua", &["script.lua"], &[]), LUA_OUTPUT);

    // luac compiles; lua runs the bytecode, which is Lua's binary chunk format.
    stdout_of(&s, "build/luac", &["-o", "script.luac", "script.lua"], &[]);
    let chunk = std::fs::read(s.path("script.luac")).unwrap();
    assert!(chunk.starts_with(b"\x1bLua\x54"), "a Lua 5.4 binary chunk");
    assert_eq!(
        stdout_of(&s, "build/lua", &["script.luac"], &[]),
        LUA_OUTPUT
    );
    assert!(stdout_of(&s, "build/luac", &["-v"], &[]).starts_with("Lua 5.4"));

    assert_null_build(&s);
}

#[test]
fn lua_header_edit_recompiles_exactly_its_includers() {
    // Lua's own Makefile, not Debian's libtool one, is what the port follows and what make runs:
    // the copy gets it back by reversing Debian's build-system patch.
    let setup = MakeSetup {
        prepare: &[&[
            "patch",
            "-R",
            "-p1",
            "-s",
            "-i",
            "debian/patches/0001-build-system.patch",
        ]],
        dir: "src",
        args: &["linux"],
    };
    header_edit_rebuilds_exactly_its_includers("lua", "upstream/src/lstring.h", &setup);
}

// ------------------------------------------------------------------------------------------------
// zlib

#[test]
fn zlib_test_programs_pass_against_both_libraries() {
    let s = copy_port("zlib");
    build(&s);
    let lib = s.path("build");
    let shared: &[(&str, &Path)] = &[("LD_LIBRARY_PATH", &lib)];
    // What `make test` runs: teststatic, testshared and test64.
    for (example, minigzip, env) in [
        ("build/example", "build/minigzip", &[][..]),
        ("build/examplesh", "build/minigzipsh", shared),
        ("build/example64", "build/minigzip64", &[][..]),
    ] {
        let out = stdout_of(&s, example, &["tmpst"], env);
        assert!(out.starts_with("zlib version 1.2.13"), "{out}");
        let packed = run_with(&s, minigzip, &[], env, b"hello world\n");
        assert!(packed.status.success(), "{minigzip}: {packed:?}");
        assert!(packed.stdout.starts_with(&[0x1f, 0x8b]), "gzip data");
        let unpacked = run_with(&s, minigzip, &["-d"], env, &packed.stdout);
        assert!(unpacked.status.success(), "{minigzip} -d: {unpacked:?}");
        assert_eq!(unpacked.stdout, b"hello world\n");
    }

    // The shared programs load the libz.so.1 built here, not the system's.
    let ldd = Command::new("ldd")
        .arg(s.path("build/examplesh"))
        .env("LD_LIBRARY_PATH", &lib)
        .output()
        .expect("ldd runs");
    let ldd = String::from_utf8(ldd.stdout).unwrap();
    let loaded = ldd
        .lines()
        .find_map(|l| l.trim().strip_prefix("libz.so.1 => "))
        .and_then(|r| r.split(" (").next())
        .unwrap_or_else(|| panic!("examplesh needs libz.so.1:\n{ldd}"));
    assert_eq!(
        Path::new(loaded).canonicalize().unwrap(),
        s.path("build/libz.so.1.2.13").canonicalize().unwrap()
    );

    assert_null_build(&s);
}

#[test]
fn zlib_installs_what_make_install_installs() {
    let s = copy_port("zlib");
    s.kiln(&["install", "--destdir", "stage", "--prefix", "/usr"])
        .ok();
    let lib = s.path("stage/usr/lib");
    let mut names: Vec<String> = std::fs::read_dir(&lib)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["libz.a", "libz.so", "libz.so.1", "libz.so.1.2.13"]);
    for link in ["libz.so", "libz.so.1"] {
        let target = std::fs::read_link(lib.join(link)).expect("installed as a link");
        assert_eq!(target, Path::new("libz.so.1.2.13"));
    }
    let shared = lib.join("libz.so.1.2.13").symlink_metadata().unwrap();
    assert!(shared.is_file());
    assert_eq!(
        std::fs::read(lib.join("libz.a")).unwrap(),
        std::fs::read(s.path("build/libz.a")).unwrap()
    );
    let include = s.path("stage/usr/include");
    for header in ["zlib.h", "zconf.h"] {
        let installed = include.join(header);
        assert_eq!(
            std::fs::read(&installed).unwrap(),
            std::fs::read(s.path(&format!("upstream/{header}"))).unwrap()
        );
        let mode = installed.metadata().unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644, "{header}");
    }
    assert_null_build(&s);

    s.kiln(&["uninstall", "--destdir", "stage"]).ok();
    assert!(!s.exists("stage"), "uninstall removes what install made");
}

#[test]
fn zlib_header_edit_recompiles_exactly_its_includers() {
    // inftrees.h: inftrees.c, inflate.c, infback.c and inffast.c, each as a static and a PIC
    // object. configure writes the Makefile make runs.
    let setup = MakeSetup {
        prepare: &[&["sh", "./configure"]],
        dir: ".",
        args: &["all"],
    };
    header_edit_rebuilds_exactly_its_includers("zlib", "upstream/inftrees.h", &setup);
}

// ------------------------------------------------------------------------------------------------
// LuaJIT

const LUAJIT_SCRIPT: &str = r#"
local t = {}
for i = 1, 200 do t[i] = (i * 37) % 101 end
table.sort(t)
print(t[1], t[200], #t)
local s = 0
for i = 1, 100000 do s = s + i % 7 end
print(s)
print(string.format("%5.2f %s", math.pi, jit.arch), (jit.status()))
print("traced", require("jit.util").traceinfo(1) ~= nil)
local ffi = require("ffi")
ffi.cdef("int abs(int);")
print(ffi.C.abs(-5), bit.band(0xff, 0x0f))
"#;

#[test]
fn luajit_runs_with_the_jit_statically_and_from_the_shared_library() {
    let s = copy_port("luajit");
    let run = s.kiln(&["build", "-j2"]).ok();
    // One group: the include scanner holds back only the objects that include a header buildvm
    // generates, so the others compile while the host tools and code generation run. Lines are
    // printed as tasks start: a library object starts before the last generator does.
    let started = run.ran();
    let first_object = started
        .iter()
        .position(|l| l.starts_with("cc: upstream/src/lj_"))
        .expect("library objects compiled");
    let last_codegen = started
        .iter()
        .rposition(|l| {
            [
                "lj_bcdef.h:",
                "lj_ffdef.h:",
                "lj_libdef.h:",
                "lj_recdef.h:",
                "lj_folddef.h:",
            ]
            .iter()
            .any(|g| l.starts_with(g))
        })
        .expect("generated headers made");
    assert!(first_object < last_codegen, "{started:#?}");
    s.write("script.lua", LUAJIT_SCRIPT);

    // With the JIT on (the default, and -jon), the loops are compiled into traces.
    let jit_on = "0\t100\t200\n300000\n 3.14 x64\ttrue\ntraced\ttrue\n5\t15\n";
    assert_eq!(stdout_of(&s, "build/luajit", &["script.lua"], &[]), jit_on);
    assert_eq!(
        stdout_of(&s, "build/luajit", &["-jon", "script.lua"], &[]),
        jit_on
    );
    // Without it the same script traces nothing: the traces above are the JIT's work.
    assert_eq!(
        stdout_of(&s, "build/luajit", &["-joff", "script.lua"], &[]),
        "0\t100\t200\n300000\n 3.14 x64\tfalse\ntraced\tfalse\n5\t15\n"
    );
    // -jv loads jit/v.lua from the sources and jit/vmdef.lua, which buildvm wrote.
    let verbose = run_with(
        &s,
        "build/luajit",
        &["-jv", "-e", "local s = 0 for i = 1, 1000 do s = s + i end"],
        &[("LUA_PATH", Path::new("upstream/src/?.lua;build/?.lua"))],
        b"",
    );
    let trace_log = String::from_utf8_lossy(&verbose.stderr);
    assert!(
        verbose.status.success() && trace_log.contains("[TRACE   1 (command line):1 loop]"),
        "{verbose:?}"
    );

    // luajit-dynamic maps the shared library built here: /proc/self/maps names the file.
    let lib = s.path("build");
    let maps = r#"
        for line in io.lines("/proc/self/maps") do
            local path = line:match("(/%S*libluajit%S*)$")
            if path then print(path) return end
        end
        print("none")
    "#;
    let shared = [("LD_LIBRARY_PATH", lib.as_path())];
    let mapped = stdout_of(&s, "build/luajit-dynamic", &["-e", maps], &shared);
    assert_eq!(
        Path::new(mapped.trim()).canonicalize().unwrap(),
        s.path("build/libluajit-5.1.so.2.1.0")
            .canonicalize()
            .unwrap(),
        "luajit-dynamic loads the shared library built here"
    );
    assert_eq!(
        stdout_of(&s, "build/luajit-dynamic", &["-jon", "script.lua"], &shared),
        jit_on
    );
    // The static luajit maps no libluajit: it carries libluajit.a inside.
    assert_eq!(stdout_of(&s, "build/luajit", &["-e", maps], &[]), "none\n");

    assert_null_build(&s);
}

#[test]
fn luajit_header_edit_recompiles_exactly_its_includers() {
    // lj_prng.h: about ten of the core's objects, each as a static and a PIC object; no host tool
    // includes it, so buildvm and what it generates stay as they are.
    let setup = MakeSetup {
        prepare: &[],
        dir: "src",
        args: &["default"],
    };
    header_edit_rebuilds_exactly_its_includers("luajit", "upstream/src/lj_prng.h", &setup);
}

/// Compresses `data` with the zstd at `program` and decompresses it again, checking both and that
/// `zstd -t` accepts the frame.
fn zstd_round_trip(s: &Space, program: &str, data: &[u8]) {
    let packed = run_with(s, program, &["-q", "-T2", "-c"], &[], data);
    assert!(packed.status.success(), "{program}: {packed:?}");
    assert!(
        packed.stdout.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
        "a zstd frame"
    );
    assert!(packed.stdout.len() < data.len() / 2, "it compresses");
    let tested = run_with(s, program, &["-q", "-t"], &[], &packed.stdout);
    assert!(tested.status.success(), "{program} -t: {tested:?}");
    let unpacked = run_with(s, program, &["-d", "-q", "-c"], &[], &packed.stdout);
    assert!(unpacked.status.success(), "{program} -d: {unpacked:?}");
    assert!(
        unpacked.stdout == data,
        "{program}: the data came back changed"
    );
}

/// Whether the ELF file at `path` carries DWARF debug information.
fn has_debug_info(s: &Space, path: &str) -> bool {
    let out = Command::new("readelf")
        .args(["-S", "-W"])
        .arg(s.path(path))
        .output()
        .expect("readelf runs");
    String::from_utf8_lossy(&out.stdout).contains(".debug_info")
}

#[test]
fn zstd_builds_and_round_trips_data_and_its_variants_build() {
    let s = copy_port("zstd");
    build(&s);
    // libzstd.a: the library with the legacy decoders and the x86_64 assembly.
    let ar = Command::new("ar")
        .arg("t")
        .arg(s.path("build/libzstd.a"))
        .output()
        .expect("ar runs");
    let members = String::from_utf8(ar.stdout).unwrap();
    for member in [
        "zstd_compress.o",
        "zstd_v05.o",
        "zstd_v07.o",
        "huf_decompress_amd64.o",
        "zdict.o",
    ] {
        assert!(
            members.lines().any(|l| l == member),
            "libzstd.a lacks {member}:\n{members}"
        );
    }
    // Text that compresses, a few megabytes of it, so that -T2 has work for two threads.
    let mut data = Vec::new();
    let mut x: u32 = 1;
    while data.len() < 3 << 20 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        data.extend_from_slice(format!("line {} of {}\n", x >> 16, x % 97).as_bytes());
    }
    zstd_round_trip(&s, "build/zstd", &data);
    let version = stdout_of(&s, "build/zstd", &["-vV"], &[]);
    assert!(version.contains("v1.5.4"), "{version}");
    assert!(
        version.contains("supports: zstd, zstd legacy v0.5+"),
        "{version}"
    );
    // Multithreaded, as upstream's default CLI: -T# is in its help only then.
    let help = stdout_of(&s, "build/zstd", &["-H"], &[]);
    assert!(help.contains("-T#"), "{help}");
    assert!(!has_debug_info(&s, "build/zstd"));

    // The variants: each builds only the tool, in its own build directory.
    s.kiln(&["build", "--variant", "debug", "zstd"]).ok();
    zstd_round_trip(&s, "build/debug/zstd", &data[..1 << 20]);
    assert!(has_debug_info(&s, "build/debug/zstd"), "-g");

    s.kiln(&["build", "--variant", "nolegacy", "zstd"]).ok();
    zstd_round_trip(&s, "build-nolegacy/zstd", &data[..1 << 20]);
    let version = stdout_of(&s, "build-nolegacy/zstd", &["-vV"], &[]);
    assert!(
        version.contains("supports: zstd\n"),
        "no legacy formats: {version}"
    );
    assert!(s.exists("build-nolegacy/cli/upstream/lib/common"));
    assert!(
        !s.exists("build-nolegacy/cli/upstream/lib/legacy"),
        "nolegacy compiles no lib/legacy source"
    );

    // Building the variants changed nothing of the default build.
    assert_null_build(&s);
    let run = s.kiln(&["build", "--variant", "nolegacy", "zstd"]).ok();
    assert!(run.ran().is_empty(), "ran {:?}", run.ran());
}
