//! The local cache under stress: many kilns racing on the same keys, a kiln killed while it
//! stores, and entries and blobs damaged on disk. Nothing unverified ever reaches a build
//! directory, and no entry is ever torn.

use crate::support::{KILN, Space};
use kiln::cache::local::LocalCache;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Twelve inputs copied with a short sleep, and one task joining them.
fn project(s: &Space, round: usize) {
    s.write(
        "build.toml",
        "[rule.copy]\nrun = \"sleep 0.05; cat ${SRC} > ${TGT}\"\next_in = [\".txt\"]\next_out = [\".out\"]\n\
         [[gen]]\nname = \"copies\"\nrule = \"copy\"\nsource = [\"in/*.txt\"]\n\
         [[gen]]\nname = \"all\"\nrun = \"cat ${SRC} > ${TGT}\"\nuse = [\"copies\"]\ntarget = \"all\"\n",
    );
    for i in 0..12 {
        s.write(
            &format!("in/t{i:02}.txt"),
            format!("round {round} input {i}\n"),
        );
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().to_path_buf())
        .collect()
}

/// The build directory's outputs (not kiln's state), by path relative to it.
fn outputs(s: &Space) -> Vec<(String, Vec<u8>)> {
    let build = s.path("build");
    let mut out: Vec<(String, Vec<u8>)> = files_under(&build)
        .into_iter()
        .filter(|p| !p.starts_with(build.join(".kiln")) && !p.ends_with("CACHEDIR.TAG"))
        .map(|p| {
            let rel = p
                .strip_prefix(&build)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (rel, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// The stores each build recorded in the cache's log, summed.
fn stores(cache: &Path) -> u64 {
    std::fs::read_to_string(cache.join("log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(2)?.parse::<u64>().ok())
        .sum()
}

#[test]
fn eight_kilns_racing_on_the_same_keys_for_ten_rounds_tear_nothing() {
    let cache = Space::new();
    let copies: Vec<Space> = (0..8).map(|_| Space::new()).collect();
    let reference = Space::new();
    let mut entries_made = 0;
    for round in 0..10 {
        for s in copies.iter().chain([&reference]) {
            project(s, round);
        }
        reference.kiln(&["build"]).ok();
        let children: Vec<_> = copies
            .iter()
            .map(|s| {
                Command::new(KILN)
                    .args(["build", "-j2", "--cache"])
                    .arg(cache.root())
                    .current_dir(s.root())
                    .env_remove("MAKEFLAGS")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // Every output equals the uncached build's.
        let expected = outputs(&reference);
        assert_eq!(expected.len(), 13);
        for s in &copies {
            assert_eq!(outputs(s), expected, "round {round}");
        }
        entries_made += 13;
    }
    let cache_dir = cache.root();
    let local = LocalCache::open(cache_dir).unwrap();
    assert!(local.damaged().is_empty(), "{:?}", local.damaged());
    // They raced: more stores than entries, so some keys were stored by several kilns at once.
    let stored = stores(cache_dir);
    assert!(
        stored > entries_made,
        "{stored} stores for {entries_made} entries: no two kilns stored one key"
    );
    eprintln!("{stored} stores for {entries_made} entries");
    let entries = files_under(&cache_dir.join("entries")).len() as u64;
    assert_eq!(entries, entries_made);
}

#[test]
fn a_kiln_killed_while_it_stores_leaves_no_torn_entry() {
    let cache = Space::new();
    let tmp = cache.path("tmp");
    let mut caught = 0;
    for attempt in 0..30 {
        let s = Space::new();
        // A 48 MiB output takes a while to copy into the cache.
        s.write(
            "build.toml",
            format!(
                "[[gen]]\nname = \"big\"\nrun = \"head -c 50331648 /dev/zero | tr '\\\\0' '{}' > ${{TGT}}\"\ntarget = \"big\"\n",
                (b'a' + (attempt % 26) as u8) as char
            ),
        );
        let mut child = Command::new(KILN)
            .args(["build", "--cache"])
            .arg(cache.root())
            .current_dir(s.root())
            .env_remove("MAKEFLAGS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill it the moment a file appears in the cache's temporary directory.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut killed = false;
        while std::time::Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            if std::fs::read_dir(&tmp).is_ok_and(|mut d| d.next().is_some()) {
                let _ = child.kill();
                killed = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        let _ = child.wait();
        let local = LocalCache::open(cache.root()).unwrap();
        assert!(local.damaged().is_empty(), "{:?}", local.damaged());
        if killed {
            caught += 1;
            // The next build completes, and its output is whole.
            s.kiln(&["build", "--cache", &cache.root().to_string_lossy()])
                .ok();
            assert_eq!(
                std::fs::metadata(s.path("build/big")).unwrap().len(),
                50331648
            );
            assert!(local.damaged().is_empty());
        }
        eprintln!("attempt {attempt}: killed while storing: {killed}");
        if caught >= 3 {
            break;
        }
    }
    assert!(caught >= 1, "no kiln was caught storing in 30 attempts");
}

/// What a damage does to a file of the cache.
fn damage(path: &Path, how: &str) {
    let mut bytes = std::fs::read(path).unwrap();
    match how {
        "truncated" => bytes.truncate(bytes.len() / 2),
        "bit-flipped" => {
            let i = bytes.len() / 3;
            bytes[i] ^= 0x04;
        }
        "resized" => bytes.extend_from_slice(b"more"),
        "missing" => {
            std::fs::remove_file(path).unwrap();
            return;
        }
        _ => unreachable!(),
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn damaged_entries_and_blobs_are_misses_with_a_warning_and_are_repaired() {
    let cache = Space::new();
    let dir = cache.root().to_string_lossy().into_owned();
    let first = Space::new();
    project(&first, 0);
    first.kiln(&["build", "--cache", &dir]).ok();
    let expected = outputs(&first);
    for (kind, how) in [
        ("entries", "truncated"),
        ("entries", "bit-flipped"),
        ("entries", "resized"),
        ("entries", "missing"),
        ("blobs", "truncated"),
        ("blobs", "bit-flipped"),
        ("blobs", "resized"),
        ("blobs", "missing"),
    ] {
        // Damage every file of the kind: each task meets it.
        for f in files_under(&cache.path(kind)) {
            damage(&f, how);
        }
        let s = Space::new();
        project(&s, 0);
        let run = s.kiln(&["build", "--cache", &dir]).ok();
        assert_eq!(outputs(&s), expected, "{kind} {how}");
        let summary = run.stderr.lines().last().unwrap().to_string();
        assert!(
            summary.ends_with(", 0 from the cache"),
            "{kind} {how}: {summary}"
        );
        if how != "missing" || kind == "blobs" {
            assert!(
                run.stderr.contains("warning: cache "),
                "{kind} {how}: no warning in {}",
                run.stderr
            );
        }
        // Repaired: the runs stored whole entries again, and the next checkout gets them all.
        let local = LocalCache::open(cache.root()).unwrap();
        assert!(
            local.damaged().is_empty(),
            "{kind} {how}: {:?}",
            local.damaged()
        );
        let next = Space::new();
        project(&next, 0);
        let run = next.kiln(&["build", "--cache", &dir]).ok();
        assert!(
            run.stderr.ends_with(", 13 from the cache\n"),
            "{kind} {how}: {}",
            run.stderr
        );
        assert_eq!(outputs(&next), expected);
    }
}
