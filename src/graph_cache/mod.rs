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
//! After a build-file edit the cache no longer holds, but what it says of the last graph still
//! serves: its paths and, for each task, a digest of its key and of its definition (see
//! [`task_digests`]) let the snapshot of the last build vouch for the tasks the edit left as they
//! were ([`previous`]).
//!
//! Format: `KILNGRPH`, u32 format version, u32 crc32 of the head, u64 length of the head, u64
//! length of the body; the head
//! (the kiln version, a 16-byte id that the snapshot names, the key, the root, the build
//! directory, the warnings, the file count, the paths one after the other as one string, and
//! where each path ends as little-endian u32s); the body (the project, every task, each
//! generator's tasks and outputs) in the codec's encoding, field by field in the order the lists
//! below give (`encode_struct!`); a crc32 of the body; the task digests (per task 16 bytes of its
//! key's digest and 16 of its definition's) and their crc32. The body is checked as it is read:
//! an id that names nothing refuses it.

use crate::codec::{
    CheckedFile, Encode, Reader, checked_body, encode_enum, encode_struct, put_bool, put_i64,
    put_opt_stat, put_str, put_strings, put_u64,
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
const FORMAT: u32 = 15;
/// Magic, format, head crc, head length, body length.
const PREFIX: usize = 32;
/// A task's digests: its key's and its definition's.
pub const DIGESTS: usize = 32;

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
    sources, post, name, parts, groups, rules, gens, remote_platform
} skip { root, out, configure, installs });
encode_struct!(Part { dir, parent, rules } skip { env });
encode_struct!(Group { name, order, jobs });
encode_struct!(Rule {
    name, ext_in, ext_out, before, color, always, update_outputs, scan, compdb, nocache, remote, span
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
/// `digests` are the graph's [`task_digests`] where the build took them already.
pub fn save(
    path: &Path,
    key: &Key,
    project: &Project,
    expansion: &Expansion,
    digests: Option<&[u8]>,
) -> io::Result<GraphId> {
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

    // Written a megabyte at a time: a graph's body is most of a build's memory already.
    let mut file = CheckedFile::create(path)?;
    let mut prefix = Vec::with_capacity(PREFIX);
    prefix.extend_from_slice(MAGIC);
    prefix.extend_from_slice(&FORMAT.to_le_bytes());
    prefix.extend_from_slice(&crc32fast::hash(&head).to_le_bytes());
    prefix.extend_from_slice(&(head.len() as u64).to_le_bytes());
    prefix.extend_from_slice(&0u64.to_le_bytes());
    file.write_unchecked(&prefix)?;
    file.write_unchecked(&head)?;
    drop(head);

    // The project and its expansion.
    let mut buf = Vec::with_capacity(2 << 20);
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
        file.drain_full(&mut buf)?;
    }
    put_u64(&mut buf, graph.tasks().len() as u64);
    for (t, env) in graph.tasks().iter().zip(env_of) {
        t.put(&mut buf);
        put_u64(&mut buf, env);
        file.drain_full(&mut buf)?;
    }
    expansion.gen_tasks.put(&mut buf);
    expansion.gen_outputs.put(&mut buf);
    file.drain(&mut buf)?;
    let body_len = file.end_section()?;
    file.patch(24, &body_len.to_le_bytes())?;
    match digests {
        Some(d) => buf.extend_from_slice(d),
        None => buf = task_digests(graph),
    }
    file.drain(&mut buf)?;
    file.finish()?;
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
        path_at(&self.blob, &self.ends, i)
    }

    /// Reads the body: the project and its expansion. `None` if it is damaged.
    pub fn load(self) -> Option<(Project, Expansion, Key)> {
        let mut bytes = Vec::new();
        let mut file = self.file;
        file.read_to_end(&mut bytes).ok()?;
        crate::stats::mark("cache: read");
        let (body, digests) = bytes.split_at_checked(self.body_len)?;
        let (body, digests) = (checked_body(body)?, checked_body(digests)?);
        let graph = Graph::from_paths(self.blob, self.ends)?;
        let (project, expansion) =
            decode_body(body, graph, self.root, self.out, self.warnings, &self.key)?;
        // The digests are not used here, but a file damaged anywhere is not used at all.
        (digests.len() == expansion.graph.tasks().len() * DIGESTS)
            .then_some((project, expansion, self.key))
    }
}

/// A cache file's head as written, not yet judged against this build.
struct Head {
    id: GraphId,
    build_file: PathBuf,
    file_hash: Hash,
    overrides: Hash,
    recorded_at: i64,
    dirs: BTreeMap<String, Option<Stat>>,
    configure: Option<Hash>,
    parts: Vec<(String, Hash)>,
    root: PathBuf,
    out: String,
    warnings: Vec<String>,
    blob: String,
    ends: Vec<u32>,
    /// Where the body starts, and its length.
    body_at: u64,
    body_len: usize,
}

/// Reads the head of the cache at `path`, leaving `file` at the start of the body.
fn read_head(path: &Path) -> Option<(File, Head)> {
    let mut file = File::open(path).ok()?;
    let total = file.metadata().ok()?.len();
    let mut prefix = [0u8; PREFIX];
    file.read_exact(&mut prefix).ok()?;
    if &prefix[..8] != MAGIC || prefix[8..12] != FORMAT.to_le_bytes() {
        return None;
    }
    let word = |at: usize| u64::from_le_bytes(prefix[at..at + 8].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(prefix[12..16].try_into().ok()?);
    let (head_len, body_len) = (word(16), word(24));
    let body_at = PREFIX as u64 + head_len;
    if body_at.checked_add(body_len)? > total {
        return None;
    }
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
    let build_file = PathBuf::from(r.str_ref()?);
    let (file_hash, overrides) = (r.hash()?, r.hash()?);
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
    let mut parts = Vec::new();
    for _ in 0..r.read_len()? {
        let p = r.str()?;
        let h = r.hash()?;
        parts.push((p, h));
    }
    let root = PathBuf::from(r.str_ref()?);
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
    // The crc catches damage, not a hand-made file: paths are sliced by these.
    if !crate::graph::Graph::paths_are_whole(&blob, &ends) {
        return None;
    }
    let head = Head {
        id,
        build_file,
        file_hash,
        overrides,
        recorded_at,
        dirs,
        configure,
        parts,
        root,
        out,
        warnings,
        blob,
        ends,
        body_at,
        body_len: usize::try_from(body_len).ok()?,
    };
    Some((file, head))
}

/// Opens the cache at `path` and reads its head if it is valid for this build file (whose content
/// hashes to `file_hash`) and these overrides; `None` means a full load.
pub fn open(path: &Path, build_file: &Path, file_hash: &Hash, overrides: &Hash) -> Option<Opened> {
    let (file, head) = read_head(path)?;
    if head.build_file != build_file || &head.file_hash != file_hash || &head.overrides != overrides
    {
        return None;
    }
    if let Some(d) = head.configure {
        let state_dir = path.parent()?;
        if crate::configure::still_holds(state_dir) != Some(d) {
            return None;
        }
    }
    let root = head.root;
    if build_file.parent() != Some(root.as_path()) {
        return None;
    }
    // Every part's build file is as it was.
    for (p, h) in &head.parts {
        let bytes = std::fs::read(absolute(&root, p)).ok()?;
        if blake3::hash(&bytes).as_bytes() != h {
            return None;
        }
    }
    // Every directory a glob listed is as it was.
    for (d, before) in &head.dirs {
        let now = filestate::stat(&absolute(&root, d));
        let still = match (before, now) {
            (Some(b), Some(n)) => filestate::unchanged_since(b, &n, head.recorded_at),
            (None, None) => true,
            _ => false,
        };
        if !still {
            return None;
        }
    }
    let key = Key {
        build_file: head.build_file,
        file_hash: head.file_hash,
        overrides: head.overrides,
        recorded_at: head.recorded_at,
        dirs: head.dirs,
        parts: head.parts,
        configure: head.configure,
    };
    Some(Opened {
        id: head.id,
        key,
        root,
        out: head.out,
        warnings: head.warnings,
        blob: head.blob,
        ends: head.ends,
        file,
        body_len: head.body_len,
    })
}

/// Path `i` of paths stored one after the other in `blob`, ending where `ends` says.
fn path_at<'a>(blob: &'a str, ends: &[u32], i: usize) -> &'a str {
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    &blob[start..ends[i] as usize]
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

mod previous;
#[cfg(test)]
mod tests;

pub use previous::{key_digest, previous, task_digests};
#[cfg(test)]
use previous::definition_digest;
