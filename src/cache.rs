//! The graph cache, `<out>/.kiln/graph`: a binary copy of the validated project (without its
//! templates, which only expansion needs) and of its expansion into tasks, so that a build whose
//! build file has not changed neither parses TOML nor walks globs; and a snapshot of how the last
//! build ended (each file's stat when its hash was taken, each task's implicit dependencies and
//! whether it was up to date), with the fingerprint of the store at that moment.
//!
//! The snapshot lets a build decide without reading the store: if the store is exactly as the
//! snapshot saw it, a task that was up to date then and none of whose files (inputs, manual and
//! implicit dependencies, outputs) has a different stat, trusted under the racy-timestamp rule,
//! is up to date now, since unchanged stats stand for unchanged contents and so for an unchanged
//! signature. The store remains the record; the snapshot only shortens the way to it.
//!
//! The cache is valid only while everything expansion depended on is unchanged: the kiln version,
//! the build file's path and content (hashed), the command line's overrides (`-D`, `--out`), the
//! project root, and every directory a glob listed (its stat, under the racy-timestamp rule with a
//! clock reading taken before the globs ran; a starting directory that was missing must still be
//! missing). Sources named by plain path are checked by the build itself: one that has gone sends
//! it back to a full load, which reports the error as always. Lazy projects are not cached:
//! their later groups depend on what earlier groups make.
//!
//! Format: `KILNGRPH`, u32 format version, the kiln version, then the key and the payload in the
//! codec's encoding, then a crc32 of everything before it.

use crate::codec::{Reader, put_bool, put_i64, put_str, put_strings, put_u32s, put_u64};
use crate::env::Env;
use crate::error::SourceText;
use crate::filestate::{self, Hash, Stat};
use crate::generator::Expansion;
use crate::graph::Graph;
use crate::manifest::{Order, PostMode};
use crate::project::{Color, Gen, Group, Overrides, Project, Rule, absolute};
use crate::task::{FileId, Task, TaskId};
use std::collections::BTreeMap;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"KILNGRPH";
const FORMAT: u32 = 1;

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
}

/// What the snapshot knew about a file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FileMark {
    Unknown,
    Missing,
    /// Present with this stat, its hash taken at `recorded_at`.
    Present {
        stat: Stat,
        recorded_at: i64,
    },
}

impl FileMark {
    /// Whether a file whose stat is now `now` is as the snapshot knew it.
    pub fn unchanged(&self, now: Option<&Stat>) -> bool {
        match (self, now) {
            (FileMark::Missing, None) => true,
            (FileMark::Present { stat, recorded_at }, Some(now)) => {
                stat == now && now.mtime < *recorded_at
            }
            _ => false,
        }
    }
}

/// The store file's identity and size: unchanged means nothing was appended or rewritten.
pub fn store_mark(store: &Path) -> Option<Stat> {
    filestate::stat(store)
}

/// How the last build ended.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The store as it was when the snapshot was taken.
    pub store: Option<Stat>,
    /// By file id.
    pub files: Vec<FileMark>,
    /// By task id: up to date when the build ended.
    pub clean: Vec<bool>,
    /// By task id: the implicit dependencies its record names.
    pub implicit: Vec<Vec<FileId>>,
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
        h.update(out.as_os_str().as_encoded_bytes());
    }
    *h.finalize().as_bytes()
}

fn put_stat(buf: &mut Vec<u8>, s: &Option<Stat>) {
    put_bool(buf, s.is_some());
    if let Some(s) = s {
        put_u64(buf, s.size);
        put_i64(buf, s.mtime);
        put_i64(buf, s.ctime);
        put_u64(buf, s.ino);
    }
}

fn read_stat(r: &mut Reader) -> Option<Option<Stat>> {
    if !r.bool()? {
        return Some(None);
    }
    Some(Some(Stat {
        size: r.u64()?,
        mtime: r.i64()?,
        ctime: r.i64()?,
        ino: r.u64()?,
    }))
}

fn put_span(buf: &mut Vec<u8>, s: &Range<usize>) {
    put_u64(buf, s.start as u64);
    put_u64(buf, s.end as u64);
}

fn read_span(r: &mut Reader) -> Option<Range<usize>> {
    Some(r.u64()? as usize..r.u64()? as usize)
}

fn put_opt_u64(buf: &mut Vec<u8>, v: Option<u64>) {
    put_bool(buf, v.is_some());
    if let Some(v) = v {
        put_u64(buf, v);
    }
}

fn read_opt_u64(r: &mut Reader) -> Option<Option<u64>> {
    if r.bool()? {
        Some(Some(r.u64()?))
    } else {
        Some(None)
    }
}

const COLORS: [Color; 9] = [
    Color::Black,
    Color::Red,
    Color::Green,
    Color::Yellow,
    Color::Blue,
    Color::Magenta,
    Color::Cyan,
    Color::White,
    Color::Normal,
];

/// Writes the cache: a temporary file renamed into place.
pub fn save(
    path: &Path,
    key: &Key,
    project: &Project,
    x: &Expansion,
    snapshot: &Snapshot,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(1 << 16);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&FORMAT.to_le_bytes());
    put_str(&mut buf, env!("CARGO_PKG_VERSION"));

    // The key.
    put_str(&mut buf, &key.build_file.to_string_lossy());
    buf.extend_from_slice(&key.file_hash);
    buf.extend_from_slice(&key.overrides);
    put_i64(&mut buf, key.recorded_at);
    put_u64(&mut buf, key.dirs.len() as u64);
    for (d, s) in &key.dirs {
        put_str(&mut buf, d);
        put_stat(&mut buf, s);
    }

    // The project, without templates (nor the build file's text: the caller has read it).
    put_str(&mut buf, &project.source.name);
    put_str(&mut buf, &project.root.to_string_lossy());
    put_str(&mut buf, &project.out);
    put_bool(&mut buf, project.post == PostMode::Lazy);
    put_bool(&mut buf, project.name.is_some());
    put_str(&mut buf, project.name.as_deref().unwrap_or(""));
    put_u64(&mut buf, project.groups.len() as u64);
    for g in &project.groups {
        put_str(&mut buf, &g.name);
        put_bool(&mut buf, g.order == Order::Sequence);
        put_opt_u64(&mut buf, g.jobs.map(|j| j as u64));
    }
    put_u64(&mut buf, project.rules.len() as u64);
    for r in &project.rules {
        put_str(&mut buf, &r.name);
        put_strings(&mut buf, &r.ext_in);
        put_strings(&mut buf, &r.ext_out);
        put_u32s(&mut buf, r.before.iter().map(|&b| b as u32));
        put_opt_u64(
            &mut buf,
            r.color
                .and_then(|c| COLORS.iter().position(|x| *x == c))
                .map(|i| i as u64),
        );
        put_bool(&mut buf, r.always);
        put_bool(&mut buf, r.update_outputs);
        put_span(&mut buf, &r.span);
    }
    put_u64(&mut buf, project.gens.len() as u64);
    for g in &project.gens {
        put_str(&mut buf, &g.name);
        put_span(&mut buf, &g.span);
        put_u64(&mut buf, g.group as u64);
        put_opt_u64(&mut buf, g.rule.map(|r| r as u64));
        put_u64(&mut buf, g.uses.len() as u64);
        for (u, span) in &g.uses {
            put_u64(&mut buf, *u as u64);
            put_span(&mut buf, span);
        }
    }

    // The expansion.
    let graph = &x.graph;
    put_u64(&mut buf, graph.file_count() as u64);
    for f in 0..graph.file_count() as u32 {
        put_str(&mut buf, graph.path(FileId(f)));
    }
    put_u64(&mut buf, graph.tasks().len() as u64);
    for t in graph.tasks() {
        put_u64(&mut buf, t.generator as u64);
        put_u64(&mut buf, t.group as u64);
        put_u64(&mut buf, t.rule as u64);
        put_u32s(&mut buf, t.inputs.iter().map(|f| f.0));
        put_u32s(&mut buf, t.outputs.iter().map(|f| f.0));
        put_u32s(&mut buf, t.deps.iter().map(|f| f.0));
        put_opt_u64(&mut buf, t.depfile.map(|f| u64::from(f.0)));
        put_strings(&mut buf, &t.commands);
        put_u64(&mut buf, t.env.len() as u64);
        for (k, v) in &t.env {
            put_str(&mut buf, k);
            put_str(&mut buf, v);
        }
        put_bool(&mut buf, t.always);
        put_bool(&mut buf, t.update_outputs);
        put_bool(&mut buf, t.own_key.is_some());
        put_str(&mut buf, t.own_key.as_deref().unwrap_or(""));
    }
    for tasks in &x.gen_tasks {
        put_u32s(&mut buf, tasks.iter().map(|t| t.0));
    }
    for outs in &x.gen_outputs {
        put_u32s(&mut buf, outs.iter().map(|f| f.0));
    }
    put_strings(&mut buf, &x.warnings);

    // The snapshot.
    put_stat(&mut buf, &snapshot.store);
    put_u64(&mut buf, snapshot.files.len() as u64);
    for mark in &snapshot.files {
        match mark {
            FileMark::Unknown => buf.push(0),
            FileMark::Missing => buf.push(1),
            FileMark::Present { stat, recorded_at } => {
                buf.push(2);
                put_stat(&mut buf, &Some(*stat));
                put_i64(&mut buf, *recorded_at);
            }
        }
    }
    put_u64(&mut buf, snapshot.clean.len() as u64);
    for (clean, implicit) in snapshot.clean.iter().zip(&snapshot.implicit) {
        put_bool(&mut buf, *clean);
        put_u32s(&mut buf, implicit.iter().map(|f| f.0));
    }

    let crc = crc32fast::hash(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &buf)?;
    std::fs::rename(&tmp, path)
}

/// What a valid cache holds.
pub struct Cached {
    pub project: Project,
    pub expansion: Expansion,
    pub key: Key,
    pub snapshot: Snapshot,
}

/// Reads the cache at `path` if it is valid for this build file (whose content hashes to
/// `file_hash`) and these overrides; `None` means a full load. The project keeps the build file's
/// name but not its text: a graph that was cached was validated, and nothing in a build from it
/// points into the build file.
pub fn load(path: &Path, build_file: &Path, file_hash: &Hash, overrides: &Hash) -> Option<Cached> {
    let bytes = std::fs::read(path).ok()?;
    crate::stats::mark("cache: read");
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    if crc32fast::hash(body).to_le_bytes() != crc || body.get(..8)? != MAGIC {
        return None;
    }
    let mut r = Reader::new(body.get(8..)?);
    if r.hash4()? != FORMAT.to_le_bytes() || r.str()? != env!("CARGO_PKG_VERSION") {
        return None;
    }
    if Path::new(&r.str()?) != build_file || &r.hash()? != file_hash || &r.hash()? != overrides {
        return None;
    }
    let recorded_at = r.i64()?;
    let n = r.read_len()?;
    let mut dirs = BTreeMap::new();
    for _ in 0..n {
        let d = r.str()?;
        let s = read_stat(&mut r)?;
        dirs.insert(d, s);
    }

    let name = r.str()?;
    let text = String::new();
    let root = PathBuf::from(r.str()?);
    if build_file.parent() != Some(root.as_path()) {
        return None;
    }
    // Every directory a glob listed is as it was.
    for (d, before) in &dirs {
        let now = filestate::stat(&absolute(&root, d));
        let still = match (before, now) {
            (Some(b), Some(n)) => *b == n && n.mtime < recorded_at,
            (None, None) => true,
            _ => false,
        };
        if !still {
            return None;
        }
    }
    let out = r.str()?;
    let post = if r.bool()? {
        PostMode::Lazy
    } else {
        PostMode::AtOnce
    };
    let has_name = r.bool()?;
    let pname = r.str()?;
    let mut groups = Vec::new();
    for _ in 0..r.read_len()? {
        groups.push(Group {
            name: r.str()?,
            order: if r.bool()? {
                Order::Sequence
            } else {
                Order::Parallel
            },
            jobs: read_opt_u64(&mut r)?.map(|j| j as usize),
        });
    }
    let mut rules = Vec::new();
    for _ in 0..r.read_len()? {
        rules.push(Rule {
            name: r.str()?,
            commands: Vec::new(),
            ext_in: r.strings()?,
            ext_out: r.strings()?,
            depfile: None,
            vars: Vec::new(),
            before: r.u32s()?.into_iter().map(|b| b as usize).collect(),
            color: match read_opt_u64(&mut r)? {
                Some(i) => Some(*COLORS.get(i as usize)?),
                None => None,
            },
            always: r.bool()?,
            update_outputs: r.bool()?,
            signature_names: Vec::new(),
            span: read_span(&mut r)?,
        });
    }
    let mut gens = Vec::new();
    for _ in 0..r.read_len()? {
        let name = r.str()?;
        let span = read_span(&mut r)?;
        let group = r.u64()? as usize;
        let rule = read_opt_u64(&mut r)?.map(|x| x as usize);
        let mut uses = Vec::new();
        for _ in 0..r.read_len()? {
            uses.push((r.u64()? as usize, read_span(&mut r)?));
        }
        gens.push(Gen {
            name,
            span,
            group: (group < groups.len()).then_some(group)?,
            rule,
            sources: Vec::new(),
            exclude: Vec::new(),
            targets: Vec::new(),
            uses,
            deps: Vec::new(),
            env: Env::default(),
        });
    }
    let project = Project {
        source: Arc::new(SourceText { name, text }),
        root,
        out,
        post,
        name: has_name.then_some(pname),
        env: Env::default(),
        groups,
        rules,
        gens,
    };

    crate::stats::mark("cache: project");
    let mut graph = Graph::default();
    let files = r.read_len()?;
    for _ in 0..files {
        graph.push_new_path(r.str_ref()?);
    }
    crate::stats::mark("cache: paths");
    let file_id = |i: u32| (i < files as u32).then_some(FileId(i));
    // A list of file ids, decoded straight into place.
    fn ids(r: &mut Reader, files: usize) -> Option<Vec<FileId>> {
        let n = r.read_len()?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let i = r.u32()?;
            if i as usize >= files {
                return None;
            }
            v.push(FileId(i));
        }
        Some(v)
    }
    for _ in 0..r.read_len()? {
        let generator = r.u64()? as usize;
        let group = r.u64()? as usize;
        let rule = r.u64()? as usize;
        if generator >= project.gens.len()
            || group >= project.groups.len()
            || rule >= project.rules.len()
        {
            return None;
        }
        let inputs = ids(&mut r, files)?;
        let outputs = ids(&mut r, files)?;
        let deps = ids(&mut r, files)?;
        let depfile = match read_opt_u64(&mut r)? {
            Some(f) => Some(file_id(f as u32)?),
            None => None,
        };
        let commands = r.strings()?;
        let mut env = Vec::new();
        for _ in 0..r.read_len()? {
            env.push((r.str()?, r.str()?));
        }
        let task = Task {
            generator,
            group,
            rule,
            inputs,
            outputs,
            deps,
            depfile,
            commands,
            env,
            always: r.bool()?,
            update_outputs: r.bool()?,
            own_key: {
                let has = r.bool()?;
                let k = r.str()?;
                has.then_some(k)
            },
        };
        graph.add_task(task).ok()?;
    }
    crate::stats::mark("cache: tasks");
    let tasks = graph.tasks().len() as u32;
    let mut gen_tasks = Vec::new();
    for _ in 0..project.gens.len() {
        let n = r.read_len()?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let t = r.u32()?;
            v.push((t < tasks).then_some(TaskId(t))?);
        }
        gen_tasks.push(v);
    }
    let mut gen_outputs = Vec::new();
    for _ in 0..project.gens.len() {
        gen_outputs.push(ids(&mut r, files)?);
    }
    let warnings = r.strings()?;

    let store = read_stat(&mut r)?;
    let n = r.read_len()?;
    if n != files {
        return None;
    }
    let mut marks = Vec::with_capacity(n);
    for _ in 0..n {
        marks.push(match r.u8()? {
            0 => FileMark::Unknown,
            1 => FileMark::Missing,
            2 => FileMark::Present {
                stat: read_stat(&mut r)??,
                recorded_at: r.i64()?,
            },
            _ => return None,
        });
    }
    let n = r.read_len()?;
    if n != tasks as usize {
        return None;
    }
    let mut clean = Vec::with_capacity(n);
    let mut implicit = Vec::with_capacity(n);
    for _ in 0..n {
        clean.push(r.bool()?);
        implicit.push(ids(&mut r, files)?);
    }
    if !r.at_end() {
        return None;
    }
    let key = Key {
        build_file: build_file.to_path_buf(),
        file_hash: *file_hash,
        overrides: *overrides,
        recorded_at,
        dirs: dirs.clone(),
    };
    let expansion = Expansion::from_cache(
        graph,
        gen_tasks,
        gen_outputs,
        project.groups.len(),
        warnings,
        dirs,
    );
    Some(Cached {
        project,
        expansion,
        key,
        snapshot: Snapshot {
            store,
            files: marks,
            clean,
            implicit,
        },
    })
}
