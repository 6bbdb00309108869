use super::*;

/// A project of two sources mapped through a rule and linked, expanded and cached.
fn cached(dir: &Path) -> (PathBuf, Key, usize) {
    let root = dir.canonicalize().unwrap();
    // Made before the glob lists the root: the cache is valid while the listing is.
    std::fs::create_dir_all(root.join("build/.kiln")).unwrap();
    std::fs::write(root.join("a.c"), "a").unwrap();
    std::fs::write(root.join("b.c"), "b").unwrap();
    let text = "[rule.cc]\nrun = \"cc -c ${SRC} -o ${TGT}\"\next_in = [\".c\"]\next_out = [\".o\"]\n\
                [[gen]]\nname = \"app\"\nrun = \"cc ${SRC} -o ${TGT}\"\nsource = \"*.c\"\ntarget = \"app\"\n";
    let build_file = root.join("build.toml");
    std::fs::write(&build_file, text).unwrap();
    let project = Project::from_bytes(
        text.as_bytes().to_vec(),
        &build_file,
        "build.toml",
        &Overrides::default(),
    )
    .unwrap();
    let expansion = Expansion::expand_all(&project).unwrap();
    let key = Key {
        build_file: build_file.clone(),
        file_hash: *blake3::hash(text.as_bytes()).as_bytes(),
        overrides: overrides_digest(&Overrides::default()),
        recorded_at: i64::MAX,
        dirs: expansion.glob_dirs.clone(),
        parts: Vec::new(),
        configure: None,
    };
    let path = root.join("build/.kiln/graph");
    save(&path, &key, &project, &expansion, None).unwrap();
    (path, key, expansion.graph.tasks().len())
}

#[inline]
fn read(path: &Path, key: &Key) -> Option<(Project, Expansion, Key)> {
    open(path, &key.build_file, &key.file_hash, &key.overrides)?.load()
}

#[test]
fn a_cached_graph_reads_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (path, key, tasks) = cached(dir.path());
    let (project, expansion, _) = read(&path, &key).unwrap();
    assert_eq!(tasks, 3);
    assert_eq!(expansion.graph.tasks().len(), 3);
    assert_eq!(project.gens[0].name, "app");
    let link = expansion.graph.task(TaskId(2));
    assert_eq!(link.commands, vec!["cc build/a.o build/b.o -o build/app"]);
    assert_eq!(expansion.graph.key(TaskId(2)), "build/app");
    // Another build file, other overrides: not this cache.
    assert!(open(&path, &key.build_file, &[0; 32], &key.overrides).is_none());
    assert!(open(&path, &key.build_file, &key.file_hash, &[0; 32]).is_none());
}

#[test]
fn a_path_table_out_of_order_is_refused_even_with_a_good_crc() {
    let dir = tempfile::tempdir().unwrap();
    let (path, key, _) = cached(dir.path());
    let bytes = std::fs::read(&path).unwrap();
    let head_len = u64::from_le_bytes(bytes[16..24].try_into().unwrap()) as usize;
    let head = PREFIX..PREFIX + head_len;
    // The head ends with where each path ends, as u32s: swap the last two, or send the
    // first one past the end of the paths, and give the head a matching crc.
    let swap = |b: &mut Vec<u8>| {
        let end = head.end;
        let (last, before) = (b[end - 4..end].to_vec(), b[end - 8..end - 4].to_vec());
        b[end - 8..end - 4].copy_from_slice(&last);
        b[end - 4..end].copy_from_slice(&before);
    };
    let count = cached_file_count(&path, &key);
    let past = |b: &mut Vec<u8>| {
        let first = head.end - 4 * count;
        b[first..first + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    };
    for damage in [&swap as &dyn Fn(&mut Vec<u8>), &past] {
        let mut b = bytes.clone();
        damage(&mut b);
        assert_ne!(b, bytes);
        let crc = crc32fast::hash(&b[head.clone()]);
        b[12..16].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&path, &b).unwrap();
        // Refused when opened: a null build reads paths from the head without loading.
        assert!(open(&path, &key.build_file, &key.file_hash, &key.overrides).is_none());
    }
    std::fs::write(&path, &bytes).unwrap();
    assert!(read(&path, &key).is_some());
}

/// How many paths the cache at `path` holds.
fn cached_file_count(path: &Path, key: &Key) -> usize {
    open(path, &key.build_file, &key.file_hash, &key.overrides)
        .unwrap()
        .ends
        .len()
}

#[test]
fn a_damaged_cache_is_never_used() {
    let dir = tempfile::tempdir().unwrap();
    let (path, key, _) = cached(dir.path());
    let bytes = std::fs::read(&path).unwrap();
    assert!(read(&path, &key).is_some(), "the intact cache is used");
    for cut in 0..bytes.len() {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        assert!(read(&path, &key).is_none(), "cut at {cut}");
    }
    for at in 0..bytes.len() {
        let mut b = bytes.clone();
        b[at] ^= 1 << (at % 8);
        std::fs::write(&path, &b).unwrap();
        assert!(read(&path, &key).is_none(), "flip at {at}");
    }
    // Nothing else about the file changed: the intact bytes are used again.
    std::fs::write(&path, &bytes).unwrap();
    assert!(
        read(&path, &key).is_some(),
        "the intact cache is used again"
    );
}

#[test]
fn the_last_graph_is_described_whatever_changed_since() {
    let dir = tempfile::tempdir().unwrap();
    let (path, key, tasks) = cached(dir.path());
    let (_, expansion, _) = read(&path, &key).unwrap();
    let graph = &expansion.graph;
    // Read without a key: the build file may have changed since.
    let previous = previous(&path).unwrap();
    assert_eq!(previous.task_count(), tasks);
    assert_eq!(previous.file_count(), graph.file_count());
    assert_eq!(previous.path(0), graph.path(FileId(0)));
    let digests = task_digests(graph);
    for t in graph.task_ids() {
        let (key_half, definition) = previous.digests(t.index());
        assert_eq!(key_half, key_digest(graph.key(t)));
        assert_eq!(definition, &digests[t.index() * DIGESTS + 16..][..16]);
    }
    // Damage anywhere is refused, the digests too (the last 4 bytes are their crc).
    let bytes = std::fs::read(&path).unwrap();
    for at in [10, bytes.len() - 20, bytes.len() - 2] {
        let mut b = bytes.clone();
        b[at] ^= 1;
        std::fs::write(&path, &b).unwrap();
        assert!(super::previous(&path).is_none(), "flip at {at}");
    }
}

#[test]
fn a_definition_covers_the_command_env_and_files_and_not_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (path, key, _) = cached(dir.path());
    let (_, expansion, _) = read(&path, &key).unwrap();
    let base = definition_digest(&expansion.graph, TaskId(0));
    let changed = |change: &dyn Fn(&mut Task)| {
        let mut graph = Graph::default();
        for (i, t) in expansion.graph.tasks().iter().enumerate() {
            let mut t = t.clone();
            for f in t.inputs.iter_mut().chain(t.outputs.iter_mut()) {
                *f = graph.file(expansion.graph.path(*f));
            }
            if i == 0 {
                change(&mut t);
            }
            graph.add_task(t).unwrap();
        }
        definition_digest(&graph, TaskId(0)) != base
    };
    assert!(!changed(&|_| {}), "the same task in another graph");
    assert!(!changed(&|t| t.generator = 7), "the generator's place is not decided on");
    assert!(changed(&|t| t.commands[0].push(' ')));
    assert!(changed(&|t| t.env = vec![("X".into(), "1".into())].into()));
    assert!(changed(&|t| t.always = true));
    assert!(changed(&|t| t.inputs.clear()));
}
