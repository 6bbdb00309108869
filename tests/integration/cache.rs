//! The local output cache (`--cache DIR`): restores verified outputs instead of running, keys
//! that travel between checkouts and only as far as they should, ccache's direct mode for
//! implicit dependencies, what is never cached, many kilns at once, damage, and `kiln cache`.

use crate::support::Space;
use std::path::Path;

/// A small C project: a generated header, a library, a program; `-g` objects made the same from
/// any checkout through `-fdebug-prefix-map=${ROOT}=.`.
const C_PROJECT: &str = r#"
[env]
CC = "cc"
CFLAGS = ["-O1", "-g", "-fdebug-prefix-map=${ROOT}=."]

[rule.cc]
run = "${CC} ${CFLAGS} -Iinclude -I${OUT} -MMD -MF ${TGT}.d -c ${SRC} -o ${TGT}"
ext_in = [".c"]
ext_out = [".o"]
depfile = "${TGT}.d"

[[gen]]
name = "version"
run = "sh gen.sh ${SRC} > ${TGT}"
source = ["VERSION"]
target = "version.h"

[[gen]]
name = "hello"
run = "${CC} ${SRC} -o ${TGT}"
source = ["src/*.c"]
target = "hello"
deps = ["version"]
"#;

fn c_project(s: &Space) {
    s.write("build.toml", C_PROJECT)
        .write("VERSION", "1.0\n")
        .write("gen.sh", "echo \"#define VERSION \\\"$(cat $1)\\\"\"\n")
        .write("include/greet.h", "const char *greet(void);\n")
        .write(
            "src/greet.c",
            "#include \"greet.h\"\nconst char *greet(void) { return \"hello\"; }\n",
        )
        .write(
            "src/main.c",
            "#include <stdio.h>\n#include \"greet.h\"\n#include \"version.h\"\nint main(void) { printf(\"%s %s\\n\", greet(), VERSION); return 0; }\n",
        );
}

/// The summary's `N from the cache`.
fn from_cache(stderr: &str) -> usize {
    let summary = stderr.lines().last().unwrap_or_default();
    summary
        .rsplit_once(", ")
        .and_then(|(_, tail)| tail.strip_suffix(" from the cache"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no cache count in {summary:?}"))
}

/// The `[n/N]` lines of the tasks that ran (not those restored from the cache).
fn ran_for_real(run: &crate::support::Run) -> Vec<String> {
    run.stderr
        .lines()
        .filter(|l| l.starts_with('[') && !l.ends_with(" (from the cache)"))
        .map(str::to_string)
        .collect()
}

fn cache_arg(cache: &Space) -> String {
    cache.root().to_string_lossy().into_owned()
}

fn build_cached(s: &Space, cache: &Space, extra: &[&str]) -> crate::support::Run {
    let dir = cache_arg(cache);
    let mut args = vec!["build", "--cache", &dir];
    args.extend_from_slice(extra);
    s.kiln(&args).ok()
}

fn run_program(path: &Path) -> String {
    let out = std::process::Command::new(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_checkout_elsewhere_with_another_out_restores_every_output_and_compiles_nothing() {
    let cache = Space::new();
    let a = Space::new();
    c_project(&a);
    let first = build_cached(&a, &cache, &[]);
    assert_eq!(from_cache(&first.stderr), 0);
    // Another directory, another build directory: every task is a hit.
    let b = Space::new();
    c_project(&b);
    let second = build_cached(&b, &cache, &["--out", &b.path("out2").to_string_lossy()]);
    assert_eq!(from_cache(&second.stderr), 4, "{}", second.stderr);
    assert_eq!(
        ran_for_real(&second),
        Vec::<String>::new(),
        "nothing compiled"
    );
    assert_eq!(run_program(&b.path("out2/hello")), "hello 1.0\n");
    // The -g objects are byte-equal across the checkouts, and so restored ones are right.
    for o in ["src/main.o", "src/greet.o"] {
        assert_eq!(
            std::fs::read(a.path(&format!("build/{o}"))).unwrap(),
            std::fs::read(b.path(&format!("out2/{o}"))).unwrap(),
            "{o}"
        );
    }
    // Built without the cache in a third checkout, the objects are the same bytes as restored.
    let c = Space::new();
    c_project(&c);
    c.kiln(&["build"]).ok();
    for o in ["src/main.o", "src/greet.o", "version.h"] {
        assert_eq!(
            std::fs::read(c.path(&format!("build/{o}"))).unwrap(),
            std::fs::read(b.path(&format!("out2/{o}"))).unwrap(),
            "{o}"
        );
    }
    // The restored outputs are recorded: a second build runs nothing.
    let again = build_cached(&b, &cache, &["--out", &b.path("out2").to_string_lossy()]);
    assert!(again.ran().is_empty(), "{}", again.stderr);
    // The program kept its executable bit.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(b.path("out2/hello"))
        .unwrap()
        .permissions()
        .mode();
    assert_ne!(mode & 0o111, 0);
}

/// A project of one task whose key the test varies piece by piece.
fn keyed(s: &Space, command: &str, env: &str, vars: &str) {
    s.write(
        "build.toml",
        format!(
            "[env]\nMODE = \"{env}\"\nEXTRA = \"{vars}\"\n\
             [rule.make]\nrun = \"{command}\"\nvars = [\"EXTRA\"]\n\
             [[gen]]\nname = \"t\"\nrule = \"make\"\nsource = [\"in.txt\"]\ntarget = \"out.txt\"\ndeps = [\"dep.txt\"]\n"
        ),
    )
    .write("in.txt", "input\n")
    .write("dep.txt", "dep\n");
}

const COMMAND: &str = "cat ${SRC} > ${TGT} && echo ${MODE} >> ${TGT}";

/// Builds `first` into the cache, then `second`: how many tasks `second` restored.
fn hits_after(first: impl Fn(&Space), second: impl Fn(&Space)) -> usize {
    let cache = Space::new();
    let a = Space::new();
    first(&a);
    build_cached(&a, &cache, &[]);
    let b = Space::new();
    second(&b);
    from_cache(&build_cached(&b, &cache, &[]).stderr)
}

#[test]
fn the_same_task_elsewhere_hits() {
    assert_eq!(
        hits_after(
            |s| keyed(s, COMMAND, "m", "v"),
            |s| keyed(s, COMMAND, "m", "v")
        ),
        1
    );
}

#[test]
fn another_command_misses() {
    let other = "cat ${SRC} > ${TGT} ; echo ${MODE} >> ${TGT}";
    assert_eq!(
        hits_after(
            |s| keyed(s, COMMAND, "m", "v"),
            |s| keyed(s, other, "m", "v")
        ),
        0
    );
}

#[test]
fn another_env_value_misses() {
    assert_eq!(
        hits_after(
            |s| keyed(s, COMMAND, "m", "v"),
            |s| keyed(s, COMMAND, "n", "v")
        ),
        0
    );
}

#[test]
fn another_vars_value_misses() {
    assert_eq!(
        hits_after(
            |s| keyed(s, COMMAND, "m", "v"),
            |s| keyed(s, COMMAND, "m", "w")
        ),
        0
    );
}

#[test]
fn another_input_misses() {
    let changed = |s: &Space| {
        keyed(s, COMMAND, "m", "v");
        s.write("in.txt", "other input\n");
    };
    assert_eq!(hits_after(|s| keyed(s, COMMAND, "m", "v"), changed), 0);
}

#[test]
fn another_manual_dependency_misses() {
    let changed = |s: &Space| {
        keyed(s, COMMAND, "m", "v");
        s.write("dep.txt", "other dep\n");
    };
    assert_eq!(hits_after(|s| keyed(s, COMMAND, "m", "v"), changed), 0);
}

#[test]
fn an_edited_header_misses_and_never_restores_a_stale_object() {
    // ccache's direct mode: the entry records the headers the depfile named, with their content.
    let edited = |s: &Space| {
        c_project(s);
        s.write(
            "include/greet.h",
            "const char *greet(void);\n#define GREETING 1\n",
        );
    };
    let cache = Space::new();
    let a = Space::new();
    c_project(&a);
    build_cached(&a, &cache, &[]);
    let b = Space::new();
    edited(&b);
    let run = build_cached(&b, &cache, &[]);
    // The header changed no command and no input: only the two compiles that include it miss
    // (and the link, whose objects then differ... or not: -O1 objects may be equal).
    assert!(from_cache(&run.stderr) <= 3, "{}", run.stderr);
    let ran = ran_for_real(&run);
    for o in ["build/src/main.o", "build/src/greet.o"] {
        assert!(ran.iter().any(|l| l.contains(o)), "{o} compiled: {ran:?}");
    }
    assert!(!ran.iter().any(|l| l.contains("version.h")), "{ran:?}");
    // The object was compiled from the edited header: equal to a build without the cache.
    let c = Space::new();
    edited(&c);
    c.kiln(&["build"]).ok();
    assert_eq!(
        std::fs::read(b.path("build/src/main.o")).unwrap(),
        std::fs::read(c.path("build/src/main.o")).unwrap()
    );
}

#[test]
fn another_compiler_binary_misses() {
    // The same command line, a compiler whose content changed (a PATH shim).
    let project = |s: &Space, comment: &str| {
        s.write(
            "bin/mycc",
            format!("#!/bin/sh\n# {comment}\nexec cc \"$@\"\n"),
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(s.path("bin/mycc"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        s.write(
            "build.toml",
            "[rule.cc]\nrun = \"mycc -c ${SRC} -o ${TGT}\"\next_in = [\".c\"]\next_out = [\".o\"]\n\
             [[gen]]\nname = \"o\"\nrule = \"cc\"\nsource = [\"a.c\"]\n",
        )
        .write("a.c", "int a;\n");
    };
    let run = |s: &Space, cache: &Space| {
        let path = format!(
            "{}:{}",
            s.path("bin").display(),
            std::env::var("PATH").unwrap()
        );
        let dir = cache_arg(cache);
        s.kiln_with(".", &["build", "--cache", &dir], &[("PATH", Some(&path))])
            .ok()
    };
    let cache = Space::new();
    let a = Space::new();
    project(&a, "version 1");
    run(&a, &cache);
    let same = Space::new();
    project(&same, "version 1");
    assert_eq!(from_cache(&run(&same, &cache).stderr), 1);
    let other = Space::new();
    project(&other, "version 2");
    assert_eq!(from_cache(&run(&other, &cache).stderr), 0);
}

#[test]
fn always_update_outputs_nocache_failed_and_disturbed_tasks_are_never_stored() {
    let s = Space::new();
    let cache = Space::new();
    s.write(
        "build.toml",
        r#"
[rule.quiet]
run = "cp ${SRC} ${TGT}"
ext_in = [".q"]
ext_out = [".qo"]
nocache = true

[[gen]]
name = "always"
rule = "always"
source = ["a.txt"]
target = "always.out"

[rule.always]
run = "cp ${SRC} ${TGT}"
always = true

[rule.inplace]
run = "cp ${SRC} ${TGT}"
update_outputs = true

[[gen]]
name = "inplace"
rule = "inplace"
source = ["a.txt"]
target = "inplace.out"

[[gen]]
name = "quiet"
rule = "quiet"
source = ["n.q"]

[[gen]]
name = "disturbed"
run = "cat ${SRC} > ${TGT}; echo more >> ${SRC}"
source = ["d.txt"]
target = "d.out"

[[gen]]
name = "fails"
run = "echo partial > ${TGT}; exit 1"
target = "f.out"

[[gen]]
name = "stored"
run = "cp ${SRC} ${TGT}"
source = ["a.txt"]
target = "a.out"
"#,
    )
    .write("a.txt", "a\n")
    .write("n.q", "n\n")
    .write("d.txt", "d\n");
    let dir = cache_arg(&cache);
    s.kiln(&["build", "-k", "--cache", &dir]).status(1);
    let stats = s.kiln(&["cache", "stats", "--cache", &dir]).ok().stdout;
    // Only `stored` made an entry.
    assert!(stats.contains("entries: 1\n"), "{stats}");
    assert!(stats.contains("stores: 1\n"), "{stats}");
}

#[test]
fn cache_readonly_stores_nothing_and_stats_gc_and_clear_do_what_they_say() {
    let cache = Space::new();
    let dir = cache_arg(&cache);
    let a = Space::new();
    keyed(&a, COMMAND, "m", "v");
    a.kiln(&["build", "--cache", &dir, "--cache-readonly"]).ok();
    let stats = a.kiln(&["cache", "stats", "--cache", &dir]).ok().stdout;
    assert!(
        stats.contains("entries: 0\n") && stats.contains("misses: 1\n"),
        "{stats}"
    );
    // Stored, then a read-only build elsewhere still restores.
    a.kiln(&["distclean"]).ok();
    a.kiln(&["build", "--cache", &dir]).ok();
    let b = Space::new();
    keyed(&b, COMMAND, "m", "v");
    let run = b.kiln(&["build", "--cache", &dir, "--cache-readonly"]).ok();
    assert_eq!(from_cache(&run.stderr), 1);
    let stats = a.kiln(&["cache", "stats", "--cache", &dir]).ok().stdout;
    for line in [
        "entries: 1\n",
        "blobs: 1\n",
        "hits: 1\n",
        "misses: 2\n",
        "stores: 1\n",
    ] {
        assert!(stats.contains(line), "{line:?} in {stats}");
    }
    // KILN_CACHE is --cache.
    let stats = a
        .kiln_with(".", &["cache", "stats"], &[("KILN_CACHE", Some(&dir))])
        .ok()
        .stdout;
    assert!(stats.contains("entries: 1\n"), "{stats}");
    // gc down to a size evicts the least recently used entries.
    let out = a
        .kiln(&["cache", "gc", "--max-size", "0", "--cache", &dir])
        .ok()
        .stdout;
    assert!(out.contains("1 entries evicted"), "{out}");
    let stats = a.kiln(&["cache", "stats", "--cache", &dir]).ok().stdout;
    assert!(stats.contains("entries: 0\n"), "{stats}");
    a.kiln(&["cache", "gc", "--max-size", "lots", "--cache", &dir])
        .status(2);
    a.kiln(&["distclean"]).ok();
    a.kiln(&["build", "--cache", &dir]).ok();
    a.kiln(&["cache", "clear", "--cache", &dir]).ok();
    let stats = a.kiln(&["cache", "stats", "--cache", &dir]).ok().stdout;
    assert!(
        stats.contains("entries: 0\n") && stats.contains("hits: 0\n"),
        "{stats}"
    );
    // Without a cache named, `kiln cache` says what it needs.
    a.kiln_with(".", &["cache", "stats"], &[("KILN_CACHE", None)])
        .status(2)
        .stderr_has("give --cache DIR or set KILN_CACHE");
}

#[test]
fn a_build_trims_the_cache_to_kiln_cache_max_once_it_grew_ten_percent_past_it() {
    let cache = Space::new();
    let dir = cache_arg(&cache);
    let s = Space::new();
    // Ten outputs of 1000 bytes each.
    s.write(
        "build.toml",
        "[rule.pad]\nrun = \"cat ${SRC} ${SRC} ${SRC} ${SRC} ${SRC} ${SRC} ${SRC} ${SRC} ${SRC} ${SRC} > ${TGT}\"\n\
         ext_in = [\".txt\"]\next_out = [\".out\"]\n[[gen]]\nname = \"pads\"\nrule = \"pad\"\nsource = [\"*.txt\"]\n",
    );
    for i in 0..10 {
        s.write(&format!("p{i}.txt"), format!("{i}").repeat(100));
    }
    // Below the limit: nothing trimmed.
    let run = s
        .kiln_with(
            ".",
            &["build", "--cache", &dir],
            &[("KILN_CACHE_MAX", Some("1M"))],
        )
        .ok();
    assert!(!run.stderr.contains("trimmed"), "{}", run.stderr);
    // Past it by more than 10%: trimmed to at most the limit, oldest entries first.
    s.kiln(&["distclean"]).ok();
    for i in 0..10 {
        s.write(&format!("p{i}.txt"), format!("{}", 9 - i).repeat(101));
    }
    let run = s
        .kiln_with(
            ".",
            &["build", "--cache", &dir],
            &[("KILN_CACHE_MAX", Some("8K"))],
        )
        .ok();
    assert!(run.stderr.contains("trimmed to"), "{}", run.stderr);
    let stats = s.kiln(&["cache", "stats", "--cache", &dir]).ok().stdout;
    let size: u64 = stats
        .lines()
        .find_map(|l| {
            l.strip_prefix("size: ")?
                .strip_suffix(" bytes")?
                .parse()
                .ok()
        })
        .unwrap();
    assert!(size <= 8 * 1024, "{stats}");
    assert!(
        !stats.contains("entries: 0\n") && !stats.contains("entries: 20\n"),
        "{stats}"
    );
}

#[test]
fn kiln_install_builds_through_the_cache_too() {
    let cache = Space::new();
    let dir = cache_arg(&cache);
    let project = |s: &Space| {
        keyed(s, COMMAND, "m", "v");
        let text = s.read("build.toml") + "install = \"${PREFIX}/share\"\n";
        s.write("build.toml", text);
    };
    let a = Space::new();
    project(&a);
    a.kiln(&["build", "--cache", &dir]).ok();
    let b = Space::new();
    project(&b);
    let stage = b.path("stage");
    let run = b
        .kiln(&[
            "install",
            "--cache",
            &dir,
            "--destdir",
            &stage.to_string_lossy(),
            "--prefix",
            "/p",
        ])
        .ok();
    assert!(run.stderr.contains("(from the cache)"), "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(stage.join("p/share/out.txt")).unwrap(),
        "input\nm\n"
    );
}
