//! `kiln install` and `kiln uninstall`. Install copies the targets of every generator with an
//! `install` directory and the files of every `[[install]]` entry to their destinations (under
//! DESTDIR when one is given), each replaced atomically: a temporary file in the destination
//! directory, its mode set, renamed over the old one. A file the build made as a symlink is
//! installed as a symlink with the same link text. What was written (files, links, and the
//! directories install created) is kept in `<out>/.kiln/installed`, one record per DESTDIR, so that
//! uninstall removes exactly that: a file someone changed or replaced since is left alone, and an
//! entry whose directory no longer resolves to where install wrote it (a directory replaced by a
//! symlink) is never followed. DESTDIR never enters a signature: it is not an env value.

use crate::codec::{
    Encode, Reader, checked_body, encode_enum, encode_struct, put_crc, put_u64, replace_file,
};
use crate::error::Error;
use crate::generator::Expansion;
use crate::glob::{self, Pattern};
use crate::paths::{self, absolute};
use crate::progress::Progress;
use crate::project::Project;
use crate::template::Lookup;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The manifest of what was installed, in kiln's state directory.
const MANIFEST: &str = "installed";
const MAGIC: &[u8; 8] = b"KILNINST";
const FORMAT: u32 = 1;

/// One file to install.
#[derive(Debug)]
struct Item {
    /// A kiln path.
    from: String,
    /// The destination directory, without DESTDIR.
    dir: String,
    /// Permissions to set; `None`: the source's.
    mode: Option<u32>,
}

/// What an entry of the manifest is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Link,
    Dir,
}

/// Something install wrote, by its canonical absolute path (DESTDIR included).
#[derive(Debug, Clone)]
struct Entry {
    kind: Kind,
    path: String,
    /// A link's text.
    link: String,
    /// A file's device, inode and change time (ns) when written: another file at the path, or
    /// this one changed since, is not install's to remove.
    dev: usize,
    ino: usize,
    ctime: usize,
}

/// What the installs into one DESTDIR wrote.
#[derive(Debug, Clone, Default)]
struct Record {
    /// The DESTDIR, absolute; empty for none.
    destdir: String,
    entries: Vec<Entry>,
}

encode_enum!(Kind { File, Link, Dir });
encode_struct!(Entry { kind, path, link, dev, ino, ctime });
encode_struct!(Record { destdir, entries });

/// `kiln install` after a successful build: copies everything the project declares for
/// installing into `destdir` (if any) and records it. Returns the exit status.
pub fn install(
    project: &Project,
    destdir: Option<&Path>,
    progress: &mut dyn Progress,
) -> Result<i32, Error> {
    let expansion = Expansion::expand_all(project)?;
    let items = plan(project, &expansion)?;
    let key = destdir.map_or(String::new(), |d| d.to_string_lossy().into_owned());
    let state_dir = project.state_dir();
    std::fs::create_dir_all(&state_dir)
        .map_err(|e| Error::io(format!("cannot create {}", state_dir.display()), e))?;
    let manifest = state_dir.join(MANIFEST);
    let mut records = read(&manifest);
    let mut written = Vec::new();
    let mut result = Ok(());
    for item in &items {
        match install_one(project, item, destdir, &mut written) {
            Ok(to) => progress.message(&format!("install {} -> {}", item.from, to.display())),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    // What was written is recorded even when a copy failed, so that uninstall can remove it.
    let at = match records.iter().position(|r| r.destdir == key) {
        Some(i) => i,
        None => {
            records.push(Record {
                destdir: key,
                entries: Vec::new(),
            });
            records.len() - 1
        }
    };
    // The contract: uninstall removes what the last install (into this DESTDIR) wrote.
    records[at].entries = written;
    write(&manifest, &records)?;
    result?;
    progress.done(&format!(
        "'install' finished: {} file{} installed",
        items.len(),
        if items.len() == 1 { "" } else { "s" }
    ));
    Ok(0)
}

/// `kiln uninstall`: removes what the installs into `destdir` wrote and nothing else. Returns the
/// exit status.
pub fn uninstall(
    project: &Project,
    destdir: Option<&Path>,
    progress: &mut dyn Progress,
) -> Result<i32, Error> {
    let key = destdir.map_or(String::new(), |d| d.to_string_lossy().into_owned());
    let manifest = project.state_dir().join(MANIFEST);
    let mut records = read(&manifest);
    let Some(at) = records.iter().position(|r| r.destdir == key) else {
        let mut text = String::from("nothing to uninstall: kiln has installed nothing");
        if !key.is_empty() {
            text.push_str(&format!(" into --destdir {key}"));
        }
        let others: Vec<&str> = records
            .iter()
            .filter(|r| !r.destdir.is_empty())
            .map(|r| r.destdir.as_str())
            .collect();
        if !others.is_empty() {
            text.push_str(&format!(
                " (it installed into --destdir {})",
                others.join(", ")
            ));
        }
        progress.done(&text);
        return Ok(0);
    };
    let record = records.remove(at);
    let mut removed = 0;
    let mut dirs = Vec::new();
    for e in &record.entries {
        if e.kind == Kind::Dir {
            dirs.push(e);
            continue;
        }
        let path = Path::new(&e.path);
        let Some(state) = look(path) else { continue };
        let ours = match (e.kind, state) {
            (_, Look::Moved(to)) => {
                progress.message(&format!(
                    "warning: left {} alone: its directory now resolves to {}",
                    e.path,
                    to.display()
                ));
                continue;
            }
            (Kind::File, Look::Here(m)) => {
                m.is_file()
                    && m.dev() as usize == e.dev
                    && m.ino() as usize == e.ino
                    && ctime(&m) == e.ctime
            }
            (_, Look::Here(m)) => {
                m.file_type().is_symlink()
                    && std::fs::read_link(path).is_ok_and(|t| t.as_os_str() == e.link.as_str())
            }
        };
        if !ours {
            progress.message(&format!(
                "warning: left {} alone: it changed since kiln installed it",
                e.path
            ));
            continue;
        }
        std::fs::remove_file(path)
            .map_err(|err| Error::io(format!("cannot remove {}", e.path), err))?;
        progress.message(&format!("uninstall {}", e.path));
        removed += 1;
    }
    // The directories install created, deepest first, when they are empty now.
    dirs.sort_by_key(|e| std::cmp::Reverse(e.path.matches('/').count()));
    for e in dirs {
        let path = Path::new(&e.path);
        if let Some(Look::Here(m)) = look(path)
            && m.is_dir()
            && std::fs::remove_dir(path).is_ok()
        {
            progress.message(&format!("uninstall {}/", e.path));
        }
    }
    write(&manifest, &records)?;
    progress.done(&format!(
        "'uninstall' finished: {removed} file{} removed",
        if removed == 1 { "" } else { "s" }
    ));
    Ok(0)
}

/// What is at a recorded path now.
enum Look {
    /// It is there, in the directory install wrote it in.
    Here(std::fs::Metadata),
    /// Its directory resolves elsewhere now (it or a parent became a symlink).
    Moved(PathBuf),
}

/// Looks at `path` without following it or trusting its directory: `None` if it is gone.
fn look(path: &Path) -> Option<Look> {
    let parent = path.parent()?;
    let resolved = parent.canonicalize().ok()?;
    if resolved != parent {
        return Some(Look::Moved(resolved.join(path.file_name()?)));
    }
    path.symlink_metadata().ok().map(Look::Here)
}

/// Every file to install, in order: each generator's targets, then each `[[install]]` entry's
/// files. An entry that matches nothing is an error naming it.
fn plan(project: &Project, expansion: &Expansion) -> Result<Vec<Item>, Error> {
    let mut items = Vec::new();
    for (g, gn) in project.gens.iter().enumerate() {
        let Some(dest) = &gn.install else { continue };
        for &f in &expansion.gen_outputs[g] {
            items.push(Item {
                from: expansion.graph.path(f).to_string(),
                dir: dest.clone(),
                mode: None,
            });
        }
    }
    for entry in &project.installs {
        let env = &project.parts[entry.part].env;
        let dir = &project.parts[entry.part].dir;
        let out = project.out_from_part(entry.part);
        for source in &entry.sources {
            let what = "in `source` of [[install]]";
            let texts = match source.value.sole_var().and_then(|n| env.get(n)) {
                Some(values) => values.to_vec(),
                None => vec![
                    source
                        .value
                        .expand_plain(env, &out)
                        .map_err(|e| project.template_error(source, &e, what))?,
                ],
            };
            for text in texts {
                let norm = if text.starts_with('/') {
                    let abs = paths::normalize(&text);
                    paths::from_absolute(&project.root, Path::new(&abs)).unwrap_or(abs)
                } else {
                    paths::join(dir, &text)
                };
                let files = resolve(project, expansion, &norm);
                if files.is_empty() {
                    return Err(project
                        .error_at(
                            source.span.clone(),
                            format!("`{norm}` in `source` of [[install]] matches nothing"),
                        )
                        .note("expected a file, a glob that matches files, or a generator's target")
                        .into());
                }
                items.extend(files.into_iter().map(|from| Item {
                    from,
                    dir: entry.dest.clone(),
                    mode: entry.mode,
                }));
            }
        }
    }
    Ok(items)
}

/// The files the kiln path `norm` names: a generator's output, a glob's matches, or a file.
fn resolve(project: &Project, expansion: &Expansion, norm: &str) -> Vec<String> {
    if let Some(out) = expansion.declared_output(norm) {
        return vec![out.to_string()];
    }
    let abs = absolute(&project.root, norm);
    if glob::is_glob(norm) && abs.symlink_metadata().is_err() {
        return match Pattern::new(norm) {
            Ok(p) => glob::expand(&project.root, &p, &project.out).files,
            Err(_) => Vec::new(),
        };
    }
    match abs.metadata() {
        Ok(m) if !m.is_dir() => vec![norm.to_string()],
        _ => Vec::new(),
    }
}

/// Installs one file into its directory under `destdir`, adding what it wrote to `written`;
/// returns where it went.
fn install_one(
    project: &Project,
    item: &Item,
    destdir: Option<&Path>,
    written: &mut Vec<Entry>,
) -> Result<PathBuf, Error> {
    let from = absolute(&project.root, &item.from);
    let dir = match destdir {
        Some(d) => d.join(item.dir.trim_start_matches('/')),
        None => PathBuf::from(&item.dir),
    };
    let fail = |what: &str, path: &Path, e: io::Error| {
        Error::io(format!("cannot install {}: {what} {}", item.from, path.display()), e)
    };
    let meta = from.symlink_metadata().map_err(|e| {
        fail("cannot read", &from, e)
    })?;
    make_dirs(&dir, written).map_err(|e| fail("cannot create", &dir, e))?;
    let dir = dir
        .canonicalize()
        .map_err(|e| fail("cannot resolve", &dir, e))?;
    let name = from.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let target = dir.join(&name);
    if target.symlink_metadata().is_ok_and(|m| m.is_dir()) {
        return Err(fail(
            "a directory is in the way at",
            &target,
            io::Error::from(io::ErrorKind::IsADirectory),
        ));
    }
    let tmp = dir.join(format!(".{name}.kiln-install-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let done = if meta.file_type().is_symlink() {
        let text = std::fs::read_link(&from).map_err(|e| fail("cannot read", &from, e))?;
        std::os::unix::fs::symlink(&text, &tmp)
            .and_then(|_| std::fs::rename(&tmp, &target))
            .map(|_| Entry {
                kind: Kind::Link,
                path: utf8(&target),
                link: text.to_string_lossy().into_owned(),
                dev: 0,
                ino: 0,
                ctime: 0,
            })
    } else {
        let mode = item.mode.unwrap_or(meta.mode() & 0o7777);
        copy(&from, &tmp, mode)
            .and_then(|_| std::fs::rename(&tmp, &target))
            .and_then(|_| target.symlink_metadata())
            .map(|m| Entry {
                kind: Kind::File,
                path: utf8(&target),
                link: String::new(),
                dev: m.dev() as usize,
                ino: m.ino() as usize,
                ctime: ctime(&m),
            })
    };
    match done {
        Ok(entry) => {
            written.push(entry);
            Ok(target)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(fail("cannot write", &target, e))
        }
    }
}

/// Copies `from` to the new file `to` with permissions `mode`.
fn copy(from: &Path, to: &Path, mode: u32) -> io::Result<()> {
    let mut src = std::fs::File::open(from)?;
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)?;
    io::copy(&mut src, &mut dst)?;
    dst.set_permissions(std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Creates `dir` and its missing parents, recording each one created.
fn make_dirs(dir: &Path, written: &mut Vec<Entry>) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut d = dir;
    while let Err(e) = d.symlink_metadata() {
        if e.kind() != io::ErrorKind::NotFound {
            return Err(e);
        }
        missing.push(d);
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    for m in missing.into_iter().rev() {
        match std::fs::create_dir(m) {
            Ok(()) => written.push(Entry {
                kind: Kind::Dir,
                path: utf8(&m.canonicalize()?),
                link: String::new(),
                dev: 0,
                ino: 0,
                ctime: 0,
            }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A file's change time in nanoseconds.
fn ctime(m: &std::fs::Metadata) -> usize {
    (m.ctime() as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(m.ctime_nsec() as u64) as usize
}

fn utf8(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The records of `path`; none if it is missing or damaged.
fn read(path: &Path) -> Vec<Record> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let parse = || -> Option<Vec<Record>> {
        let rest = bytes.strip_prefix(MAGIC)?;
        let (format, rest) = rest.split_at_checked(4)?;
        if format != FORMAT.to_le_bytes() {
            return None;
        }
        let body = checked_body(rest)?;
        let mut r = Reader::new(body);
        let records = Vec::<Record>::read(&mut r)?;
        r.at_end().then_some(records)
    };
    parse().unwrap_or_default()
}

/// Writes `records` to `path` (removes it when there are none).
fn write(path: &Path, records: &[Record]) -> Result<(), Error> {
    let records: Vec<&Record> = records.iter().filter(|r| !r.entries.is_empty()).collect();
    if records.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(Error::io(format!("cannot remove {}", path.display()), e))
            }
            _ => Ok(()),
        };
    }
    let mut buf = Vec::new();
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&FORMAT.to_le_bytes());
    let body_at = buf.len();
    put_u64(&mut buf, records.len() as u64);
    for r in records {
        r.put(&mut buf);
    }
    put_crc(&mut buf, body_at);
    replace_file(path, &buf).map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}
