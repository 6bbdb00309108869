//! The graph cache, `<out>/.kiln/graph`: a binary copy of the validated project (without its
//! templates, which only expansion needs) and of its expansion into tasks, so that a build whose
//! build file has not changed neither parses TOML nor walks globs.
//!
//! The cache is valid only while everything expansion depended on is unchanged: the kiln version,
//! the build file's path and content (hashed), the command line's overrides (`-D`, `--out`), the
//! project root, every part's build file (`subdirs`, hashed), and every directory a glob listed (its stat, under the racy-timestamp rule with a
//! clock reading taken before the globs ran; a starting directory that was missing must still be
//! missing). Sources named by plain path are checked by the build itself: one that has gone sends
//! it back to a full load, which reports the error as always. Lazy projects are not cached:
//! their later groups depend on what earlier groups make.
//!
//! The file is read in two steps. Its head holds the key, the expansion's warnings and every
//! file's path: enough for a build to decide, with the [`crate::snapshot`] of how the last build
//! ended, that nothing needs doing. The body (the project and the tasks) is read only when
//! something does.
//!
//! Format: `KILNGRPH`, u32 format version, u32 crc32 of the head, u64 length of the head; the head
//! (the kiln version, a 16-byte id that the snapshot names, the key, the root, the build
//! directory, the warnings, the file count, the paths one after the other as one string, and
//! where each path ends as little-endian u32s); the body (the project, every task, each
//! generator's tasks and outputs) in the codec's encoding, field by field in the order the lists
//! below give (`encode_struct!`); a crc32 of the body. The body is checked as it is read: an id
//! that names nothing refuses it.

use crate::codec::{
    Encode, Reader, checked_body, encode_enum, encode_struct, put_bool, put_crc, put_i64, put_opt_stat,
    put_str, put_strings, put_u64, replace_file,
};
use crate::error::{SourceText, Sources};
use crate::filestate::{self, Hash, Stat};
use crate::generator::Expansion;
use crate::graph::Graph;
use crate::ids::{FileId, TaskId};
use crate::manifest::{Order, PostMode};
use crate::paths::absolute;
use crate::progress::Color;
use crate::project::{Gen, Group, Overrides, Part, Project, Rule};
use crate::task::{Files, Task, TaskEnv, Tasks};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"KILNGRPH";
const FORMAT: u32 = 13;
/// Magic, format, head crc, head length.
const PREFIX: usize = 24;

/// Names one written graph: a snapshot applies only to the graph it was taken with.
pub type GraphId = [u8; 16];

/// What a cached expansion depended on.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The build file, canonical.
    pub build_file: PathBuf,
    pub file_hash: Hash,
    pub overrides: Hash,
    /// The file system's time before the globs ran.
    pub recorded_at: i64,
    /// Directories the globs listed (kiln paths) and their stats then.
    pub dirs: BTreeMap<String, Option<Stat>>,
    /// The parts' build files (`[project] subdirs`), as kiln paths, and their content hashes.
    pub parts: Vec<(String, Hash)>,
    /// The digest of `[configure]`'s results, when the project has it: the cache holds while
    /// [`crate::configure::still_holds`] gives it.
    pub configure: Option<Hash>,
}

/// A digest of what the command line adds to the build file.
pub fn overrides_digest(o: &Overrides) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(b"kiln overrides v1");
    for (k, v) in &o.defines {
        for part in [k.as_bytes(), v.as_bytes()] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
    }
    if let Some(out) = &o.out {
        h.update(b"out");
        h.update(&(out.as_os_str().len() as u64).to_le_bytes());
        h.update(out.as_os_str().as_encoded_bytes());
    }
    if let Some(variant) = &o.variant {
        h.update(b"variant");
        h.update(variant.as_bytes());
    }
    *h.finalize().as_bytes()
}

// The body's types, each field named once: stored, or after `skip` rebuilt as its default
// (templates and env values, which only expansion needs; the root and build directory, which the
// head holds).
encode_struct!(Project {
    sources, post, name, parts, groups, rules, gens
} skip { root, out, configure, installs });
encode_struct!(Part { dir, parent, rules } skip { env });
encode_struct!(Group { name, order, jobs });
encode_struct!(Rule {
    name, ext_in, ext_out, before, color, always, update_outputs, scan, compdb, nocache, span
} skip { commands, depfile, signature_names });
encode_struct!(Gen {
    name, span, group, rule, uses, map, default, part
} skip {
    sources, exclude, targets, deps, dep_gens, order_only, order_gens, env, ext_rules, objdir,
    install
});
encode_struct!(Task {
    generator, group, rule, inputs, outputs, deps, order_only, depfile, commands, always,
    update_outputs, own_key
} skip { env });
encode_enum!(PostMode { AtOnce, Lazy });
encode_enum!(Order { Parallel, Sequence });

/// A colour by its place among the names a build file may give one.
impl Encode for Color {
    #[inline]
    fn put(&self, buf: &mut Vec<u8>) {
        let at = Color::NAMES.iter().position(|(_, c)| c == self);
        put_u64(buf, at.unwrap_or_default() as u64);
    }
    #[inline]
    fn read(r: &mut Reader) -> Option<Self> {
        let at = usize::try_from(r.u64()?).ok()?;
        Color::NAMES.get(at).map(|&(_, c)| c)
    }
}

/// The build files by name and place only: a project read back from the cache has no text to
/// quote.
impl Encode for Sources {
    fn put(&self, buf: &mut Vec<u8>) {
        let files: Vec<(usize, String)> = self.files().map(|(b, s)| (b, s.name.clone())).collect();
        files.put(buf);
    }
    fn read(r: &mut Reader) -> Option<Self> {
        let files = Vec::<(usize, String)>::read(r)?;
        if files.is_empty() || !files.is_sorted_by_key(|(b, _)| *b) {
            return None;
        }
        let mut sources = Sources::default();
        for (base, name) in files {
            let text = String::new();
            sources.add_at(base, Arc::new(SourceText { name, text }));
        }
        Some(sources)
    }
}

/// Ids as their number.
macro_rules! encode_id {
    ($($ty:ident),*) => {$(
        impl Encode for $ty {
            #[inline]
            fn put(&self, buf: &mut Vec<u8>) {
                self.0.put(buf);
            }
            #[inline]
            fn read(r: &mut Reader) -> Option<Self> {
                u32::read(r).map($ty)
            }
        }
    )*};
}
encode_id!(FileId, TaskId);

/// Writes the cache (a temporary file renamed into place) and returns the id it was given.
pub fn save(path: &Path, key: &Key, project: &Project, expansion: &Expansion) -> io::Result<GraphId> {
    let graph = &expansion.graph;
    let id = new_id(key);
    let mut head = Vec::with_capacity(1 << 16);
    put_str(&mut head, env!("CARGO_PKG_VERSION"));
    head.extend_from_slice(&id);
    put_str(&mut head, &key.build_file.to_string_lossy());
    head.extend_from_slice(&key.file_hash);
    head.extend_from_slice(&key.overrides);
    put_i64(&mut head, key.recorded_at);
    put_u64(&mut head, key.dirs.len() as u64);
    for (d, s) in &key.dirs {
        put_str(&mut head, d);
        put_opt_stat(&mut head, s);
    }
    put_bool(&mut head, key.configure.is_some());
    head.extend_from_slice(&key.configure.unwrap_or_default());
    put_u64(&mut head, key.parts.len() as u64);
    for (p, h) in &key.parts {
        put_str(&mut head, p);
        head.extend_from_slice(h);
    }
    put_str(&mut head, &project.root.to_string_lossy());
    put_str(&mut head, &project.out);
    put_strings(&mut head, &expansion.warnings);
    let files = graph.file_count();
    put_u64(&mut head, files as u64);
    let (blob, ends) = graph.paths();
    put_str(&mut head, blob);
    for &e in ends {
        head.extend_from_slice(&e.to_le_bytes());
    }

    let mut buf = Vec::with_capacity(PREFIX + head.len() + (64 << 10));
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&FORMAT.to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(&head).to_le_bytes());
    buf.extend_from_slice(&(head.len() as u64).to_le_bytes());
    buf.extend_from_slice(&head);
    drop(head);
    let body_at = buf.len();

    // The project and its expansion.
    project.put(&mut buf);
    // Each distinct env list once (tasks share them), then the tasks, each naming its list.
    let mut lists: HashMap<*const (String, String), u64> = HashMap::new();
    let mut table: Vec<&[(String, String)]> = Vec::new();
    let env_of: Vec<u64> = graph
        .tasks()
        .iter()
        .map(|t| {
            *lists.entry(t.env.as_ptr()).or_insert_with(|| {
                table.push(&t.env);
                table.len() as u64 - 1
            })
        })
        .collect();
    put_u64(&mut buf, table.len() as u64);
    for list in table {
        list.to_vec().put(&mut buf);
    }
    put_u64(&mut buf, graph.tasks().len() as u64);
    for (t, env) in graph.tasks().iter().zip(env_of) {
        t.put(&mut buf);
        put_u64(&mut buf, env);
    }
    expansion.gen_tasks.put(&mut buf);
    expansion.gen_outputs.put(&mut buf);
    put_crc(&mut buf, body_at);
    replace_file(path, &buf)?;
    Ok(id)
}

/// An id no other graph written here has: the key and the moment, hashed.
fn new_id(key: &Key) -> GraphId {
    let mut h = blake3::Hasher::new();
    h.update(&key.file_hash);
    h.update(&key.overrides);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    h.update(&now.as_nanos().to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&h.finalize().as_bytes()[..16]);
    id
}

/// A valid cache whose head has been read: every file's path, and the rest still on disk.
pub struct Opened {
    pub id: GraphId,
    pub key: Key,
    pub root: PathBuf,
    /// The build directory as a kiln path.
    pub out: String,
    pub warnings: Vec<String>,
    blob: String,
    ends: Vec<u32>,
    file: File,
    body_len: usize,
}

impl Opened {
    pub fn file_count(&self) -> usize {
        self.ends.len()
    }

    pub fn path(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.blob[start..self.ends[i] as usize]
    }

    /// Reads the body: the project and its expansion. `None` if it is damaged.
    pub fn load(self) -> Option<(Project, Expansion, Key)> {
        let mut bytes = vec![0u8; self.body_len];
        let mut file = self.file;
        file.read_exact(&mut bytes).ok()?;
        crate::stats::mark("cache: read");
        let body = checked_body(&bytes)?;
        let graph = Graph::from_paths(self.blob, self.ends)?;
        let (project, expansion) =
            decode_body(body, graph, self.root, self.out, self.warnings, &self.key)?;
        Some((project, expansion, self.key))
    }
}

/// Opens the cache at `path` and reads its head if it is valid for this build file (whose content
/// hashes to `file_hash`) and these overrides; `None` means a full load.
pub fn open(path: &Path, build_file: &Path, file_hash: &Hash, overrides: &Hash) -> Option<Opened> {
    let mut file = File::open(path).ok()?;
    let total = file.metadata().ok()?.len();
    let mut prefix = [0u8; PREFIX];
    file.read_exact(&mut prefix).ok()?;
    if &prefix[..8] != MAGIC || prefix[8..12] != FORMAT.to_le_bytes() {
        return None;
    }
    let crc = u32::from_le_bytes(prefix[12..16].try_into().ok()?);
    let head_len = u64::from_le_bytes(prefix[16..24].try_into().ok()?);
    let body_len = usize::try_from(total.checked_sub(PREFIX as u64 + head_len)?).ok()?;
    let mut head = vec![0u8; usize::try_from(head_len).ok()?];
    file.read_exact(&mut head).ok()?;
    if crc32fast::hash(&head) != crc {
        return None;
    }
    let mut r = Reader::new(&head);
    if r.str_ref()? != env!("CARGO_PKG_VERSION") {
        return None;
    }
    let id: GraphId = r.take(16)?.try_into().ok()?;
    if Path::new(r.str_ref()?) != build_file || &r.hash()? != file_hash || &r.hash()? != overrides {
        return None;
    }
    let recorded_at = r.i64()?;
    let mut dirs = BTreeMap::new();
    for _ in 0..r.read_len()? {
        let d = r.str()?;
        let s = r.opt_stat()?;
        dirs.insert(d, s);
    }
    let has_configure = r.bool()?;
    let configure_digest = r.hash()?;
    let configure = has_configure.then_some(configure_digest);
    if let Some(d) = configure {
        let state_dir = path.parent()?;
        if crate::configure::still_holds(state_dir) != Some(d) {
            return None;
        }
    }
    let mut parts = Vec::new();
    for _ in 0..r.read_len()? {
        let p = r.str()?;
        let h = r.hash()?;
        parts.push((p, h));
    }
    let root = PathBuf::from(r.str_ref()?);
    if build_file.parent() != Some(root.as_path()) {
        return None;
    }
    // Every part's build file is as it was.
    for (p, h) in &parts {
        let bytes = std::fs::read(absolute(&root, p)).ok()?;
        if blake3::hash(&bytes).as_bytes() != h {
            return None;
        }
    }
    // Every directory a glob listed is as it was.
    for (d, before) in &dirs {
        let now = filestate::stat(&absolute(&root, d));
        let still = match (before, now) {
            (Some(b), Some(n)) => filestate::unchanged_since(b, &n, recorded_at),
            (None, None) => true,
            _ => false,
        };
        if !still {
            return None;
        }
    }
    let out = r.str()?;
    let warnings = r.strings()?;
    let files = r.read_len()?;
    let blob = r.str()?;
    let raw = r.take(files.checked_mul(4)?)?;
    if !r.at_end() {
        return None;
    }
    let ends: Vec<u32> = raw
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    // The crc catches damage, not a hand-made file: `Opened::path` slices by these.
    if !crate::graph::Graph::paths_are_whole(&blob, &ends) {
        return None;
    }
    let key = Key {
        build_file: build_file.to_path_buf(),
        file_hash: *file_hash,
        overrides: *overrides,
        recorded_at,
        dirs,
        parts,
        configure,
    };
    Some(Opened {
        id,
        key,
        root,
        out,
        warnings,
        blob,
        ends,
        file,
        body_len,
    })
}

fn decode_body(
    body: &[u8],
    mut graph: Graph,
    root: PathBuf,
    out: String,
    warnings: Vec<String>,
    key: &Key,
) -> Option<(Project, Expansion)> {
    let mut r = Reader::new(body);
    let mut project = Project::read(&mut r)?;
    project.root = root;
    project.out = out;
    crate::stats::mark("cache: project");

    // The crc catches damage, not a hand-made file: every id must name something.
    let (gens, groups, rules) = (
        project.gens.len(),
        project.groups.len(),
        project.rules.len(),
    );
    let files = graph.file_count();
    let known = |fs: &[FileId]| fs.iter().all(|f| f.index() < files);
    if project.gens.iter().any(|g| g.group >= groups) {
        return None;
    }
    let lists = (0..r.read_len()?)
        .map(|_| Vec::<(String, String)>::read(&mut r).map(TaskEnv::from))
        .collect::<Option<Vec<TaskEnv>>>()?;
    let n = r.read_len()?;
    graph.reserve_tasks(n);
    for _ in 0..n {
        let mut task = Task::read(&mut r)?;
        task.env = lists.get(r.read_len()?)?.clone();
        let whole = task.generator < gens
            && task.group < groups
            && task.rule < rules
            && known(&task.inputs)
            && known(&task.outputs)
            && known(&task.deps)
            && known(task.depfile.as_slice());
        if !whole {
            return None;
        }
        graph.add_task(task).ok()?;
    }
    crate::stats::mark("cache: tasks");
    let tasks = graph.tasks().len();
    let gen_tasks = Vec::<Tasks>::read(&mut r)?;
    let gen_outputs = Vec::<Files>::read(&mut r)?;
    if !r.at_end()
        || gen_tasks.len() != gens
        || gen_outputs.len() != gens
        || !gen_tasks.iter().flatten().all(|t| t.index() < tasks)
        || !gen_outputs.iter().all(|o| known(o))
    {
        return None;
    }
    let expansion = Expansion::from_cache(
        graph,
        gen_tasks,
        gen_outputs,
        project.groups.len(),
        warnings,
        key.dirs.clone(),
    );
    Some((project, expansion))
}

#[cfg(test)]
mod tests {
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
        save(&path, &key, &project, &expansion).unwrap();
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
}
