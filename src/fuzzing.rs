//! The bodies of the fuzz targets in `fuzz/`, here so that the corpus and every crash found can be
//! replayed as ordinary tests (`tests/integration/fuzzed.rs`). Each takes arbitrary bytes and must
//! return without panicking whatever they are.

use crate::generator::Expansion;
use crate::project::{Overrides, Project};
use crate::store::Store;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// An empty directory to stand for the project root (expansion looks at the file system; nothing
/// is written there). One fixed name, so that runs do not leave directories behind.
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join("kiln-fuzz-scratch");
        let _ = std::fs::create_dir_all(&dir);
        dir.canonicalize().unwrap_or(dir)
    })
}

/// The build-file front end: parse, validate and expand `data` as a build.toml, and render any
/// error as the user would see it.
pub fn build_file(data: &[u8]) {
    let path = scratch().join("build.toml");
    let project =
        match Project::from_bytes(data.to_vec(), &path, "build.toml", &Overrides::default()) {
            Ok(p) => p,
            Err(e) => {
                let _ = e.to_string();
                return;
            }
        };
    if let Err(e) = Expansion::expand_all(&project) {
        let _ = e.to_string();
    }
}

/// The store loader: load `data` as a store and read every record it kept.
pub fn store(data: &[u8]) {
    let (store, _warning) = Store::from_bytes(&scratch().join("store"), data.to_vec());
    for v in store.tasks() {
        let _ = store.owned(&v);
        let implicit = store.implicit_paths(&v).unwrap_or_default();
        for path in v.outputs().map(|(p, _)| p).chain(implicit) {
            let _ = store.file(path);
        }
        let _ = store.task(v.key);
    }
}
