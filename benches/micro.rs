//! Micro-benchmarks of the engine's load paths, with divan: `cargo bench --bench micro`.
//!
//! - `build_file`: reading, validating and expanding a build.toml of one generator per task
//!   (the benchmark project's explicit form: N sources in modules of 100, an archive per module,
//!   one final output), at N = 10,000 and 50,000. A project whose graph is cached does not do this.
//! - `graph_cache`: what replaces it when the build file has not changed: the graph cache's head
//!   and body read back (`graph_cache::open` and `Opened::load`), at the same sizes.
//! - `graph`: building the task graph of 100,000 compile tasks, 1,000 archives and a final task
//!   straight through the graph API (interning paths, adding tasks, checking producers).
//! - `store`: loading a store of 101,001 task records and 201,001 file records, indexed
//!   (`Store::open`) and, as a build seeded by its snapshot does, without an index
//!   (`Store::open_unindexed`).
//!
//! Inputs are generated once per process in a temporary directory.

use kiln::filestate::{Recorded, Stat};
use kiln::generator::Expansion;
use kiln::graph::Graph;
use kiln::graph_cache;
use kiln::ids::FileId;
use kiln::project::{Overrides, Project};
use kiln::store::{Record, Store, TaskRecord};
use kiln::task::Task;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn main() {
    divan::main();
}

const MODULE: usize = 100;

/// A project directory with N sources and the explicit build.toml, made once per N.
struct Fixture {
    _dir: tempfile::TempDir,
    build_file: PathBuf,
    bytes: Vec<u8>,
    cache: PathBuf,
    file_hash: [u8; 32],
    overrides: [u8; 32],
}

fn fixture(n: usize) -> &'static Fixture {
    static SMALL: OnceLock<Fixture> = OnceLock::new();
    static LARGE: OnceLock<Fixture> = OnceLock::new();
    let cell = if n <= 10_000 { &SMALL } else { &LARGE };
    cell.get_or_init(|| make_fixture(n))
}

fn make_fixture(n: usize) -> Fixture {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let root = dir.path().canonicalize().expect("canonical");
    let mut toml =
        String::from("[project]\nout = \"out\"\n\n[rule.cat]\nrun = \"cat ${SRC} > ${TGT}\"\n");
    let mut libs = Vec::new();
    for m in 0..n.div_ceil(MODULE) {
        let module = format!("mod{m}");
        std::fs::create_dir_all(root.join(&module)).expect("module directory");
        std::fs::write(root.join(&module).join("mod.h"), "#define M 1\n").expect("header");
        let mut objs = Vec::new();
        for k in 0..MODULE.min(n - m * MODULE) {
            let src = format!("{module}/f{k:03}.c");
            std::fs::write(root.join(&src), format!("/* {src} */\n")).expect("source");
            let _ = write!(
                toml,
                "\n[[gen]]\nrule = \"cat\"\nsource = [\"{src}\", \"{module}/mod.h\"]\ntarget = \"{module}/f{k:03}.o\"\n"
            );
            objs.push(format!("\"{module}/f{k:03}.o\""));
        }
        let _ = write!(
            toml,
            "\n[[gen]]\nname = \"{module}\"\nrule = \"cat\"\nsource = [{}]\ntarget = \"lib{module}.a\"\n",
            objs.join(", ")
        );
        libs.push(format!("\"lib{module}.a\""));
    }
    let _ = write!(
        toml,
        "\n[[gen]]\nname = \"final\"\nrule = \"cat\"\nsource = [{}]\ntarget = \"final\"\n",
        libs.join(", ")
    );
    let build_file = root.join("build.toml");
    std::fs::write(&build_file, &toml).expect("build file");
    let bytes = toml.into_bytes();

    // The graph cache, as a first build writes it.
    let (project, expansion) = load(&build_file, bytes.clone());
    let state = root.join("out/.kiln");
    std::fs::create_dir_all(&state).expect("state directory");
    let file_hash = *blake3::hash(&bytes).as_bytes();
    let overrides = graph_cache::overrides_digest(&Overrides::default());
    let key = graph_cache::Key {
        build_file: build_file.clone(),
        file_hash,
        overrides,
        recorded_at: i64::MAX,
        dirs: Default::default(),
        parts: Vec::new(),
        configure: None,
    };
    let cache = state.join("graph");
    graph_cache::save(&cache, &key, &project, &expansion, None).expect("the graph cache");
    Fixture {
        _dir: dir,
        build_file,
        bytes,
        cache,
        file_hash,
        overrides,
    }
}

fn load(build_file: &Path, bytes: Vec<u8>) -> (Project, Expansion) {
    let project = Project::from_bytes(bytes, build_file, "build.toml", &Overrides::default())
        .expect("a valid build file");
    let expansion = Expansion::expand_all(&project).expect("expansion");
    (project, expansion)
}

#[divan::bench(args = [10_000, 50_000], sample_count = 10)]
fn build_file(bencher: divan::Bencher, n: usize) {
    let f = fixture(n);
    bencher
        .with_inputs(|| f.bytes.clone())
        .bench_values(|bytes| load(&f.build_file, bytes));
}

#[divan::bench(args = [10_000, 50_000], sample_count = 20)]
fn graph_cache(bencher: divan::Bencher, n: usize) {
    let f = fixture(n);
    bencher.bench(|| {
        graph_cache::open(&f.cache, &f.build_file, &f.file_hash, &f.overrides)
            .expect("a valid cache")
            .load()
            .expect("a readable cache")
    });
}

#[divan::bench(sample_count = 10)]
fn graph_100k_tasks(bencher: divan::Bencher) {
    let task = |inputs: Vec<FileId>, output: FileId| Task {
        generator: 0,
        group: 0,
        rule: 0,
        inputs: inputs.into(),
        outputs: smallvec::smallvec![output],
        deps: Default::default(),
        order_only: Default::default(),
        depfile: None,
        commands: Vec::new(),
        env: Default::default(),
        always: false,
        update_outputs: false,
        own_key: None,
    };
    bencher.bench(|| {
        let mut g = Graph::default();
        let mut libs = Vec::new();
        for m in 0..1_000 {
            let header = g.file(&format!("mod{m}/mod.h"));
            let mut objs = Vec::new();
            for k in 0..MODULE {
                let src = g.file(&format!("mod{m}/f{k:03}.c"));
                let obj = g.file(&format!("out/mod{m}/f{k:03}.o"));
                g.add_task(task(vec![src, header], obj))
                    .expect("one producer");
                objs.push(obj);
            }
            let lib = g.file(&format!("out/libmod{m}.a"));
            g.add_task(task(objs, lib)).expect("one producer");
            libs.push(lib);
        }
        let fin = g.file("out/final");
        g.add_task(task(libs, fin)).expect("one producer");
        g
    });
}

/// A store of the benchmark project's records at N = 100,000.
fn store_path() -> &'static Path {
    static STORE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &STORE
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let path = dir.path().join("store");
            let (mut store, _) = Store::open(&path, true).expect("a new store");
            let stat = Stat {
                size: 100,
                mtime: 1,
                ctime: 1,
                ino: 1,
            };
            let file = |p: String| {
                Record::File(
                    p,
                    Recorded {
                        stat,
                        hash: [7; 32],
                        recorded_at: 2,
                    },
                )
            };
            let task = |key: String, inputs: Vec<String>| {
                Record::Task(TaskRecord {
                    key: key.clone(),
                    group: "main".into(),
                    signature: [1; 32],
                    duration_ms: 3,
                    outputs: vec![(key, [2; 32])],
                    inputs: inputs.into_iter().map(|i| (i, [3; 32])).collect(),
                    commands: vec!["cat a b > c".into()],
                    ..TaskRecord::default()
                })
            };
            let mut libs = Vec::new();
            for m in 0..1_000 {
                let mut batch = vec![file(format!("mod{m}/mod.h"))];
                let mut objs = Vec::new();
                for k in 0..MODULE {
                    let obj = format!("out/mod{m}/f{k:03}.o");
                    batch.push(file(format!("mod{m}/f{k:03}.c")));
                    batch.push(file(obj.clone()));
                    batch.push(task(
                        obj.clone(),
                        vec![format!("mod{m}/f{k:03}.c"), format!("mod{m}/mod.h")],
                    ));
                    objs.push(obj);
                }
                let lib = format!("out/libmod{m}.a");
                batch.push(file(lib.clone()));
                batch.push(task(lib.clone(), objs));
                libs.push(lib);
                store.append(batch).expect("appended");
            }
            store
                .append(vec![
                    file("out/final".into()),
                    task("out/final".into(), libs),
                ])
                .expect("appended");
            drop(store);
            (dir, path)
        })
        .1
}

#[divan::bench(sample_count = 20)]
fn store_open_indexed(bencher: divan::Bencher) {
    let path = store_path();
    bencher.bench(|| Store::open(path, false).expect("a readable store"));
}

#[divan::bench(sample_count = 20)]
fn store_open_unindexed(bencher: divan::Bencher) {
    let path = store_path();
    bencher.bench(|| Store::open_unindexed(path).expect("a readable store"));
}
