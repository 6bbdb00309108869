//! Every input in the fuzzers' corpora and every crash they ever found (`fuzz/corpus/<target>/`,
//! `fuzz/artifacts/<target>/`), replayed through the fuzz targets' own bodies: none may panic.

use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let data = std::fs::read(&f).unwrap();
            let outcome = std::panic::catch_unwind(|| body(&data));
            assert!(outcome.is_ok(), "{} panics", f.display());
            n += 1;
        }
    }
    n
}

#[test]
fn the_build_file_corpus_replays_without_a_panic() {
    let n = replay("build_file", kiln::fuzzing::build_file);
    assert!(n > 10, "only {n} inputs: is the corpus there?");
}

#[test]
fn the_store_corpus_replays_without_a_panic() {
    let n = replay("store", kiln::fuzzing::store);
    assert!(n > 10, "only {n} inputs: is the corpus there?");
}
