//! `[configure]`'s cache, `<out>/.kiln/configure`: the results with the digest of what they depend
//! on, and what a null build needs to check that outside the build file nothing they depend on
//! changed ([`still_holds`]).
//!
//! Format: `KILNCONF`, u32 format version, then a body (the digest; each program's name, the value
//! the process environment gave it, its candidates, where it was found, the hash of its content
//! and its stat then; each `.pc` file's path and hash; `PKG_CONFIG_PATH`; the results as name and
//! values) and a crc32 of the body.

use super::{Found, Results, locate, rehash, search};
use crate::codec::{
    Reader, checked_body, put_crc, put_opt_stat, put_str, put_strings, put_u64, replace_file,
};
use crate::filestate::{self, Hash};
use std::path::{Path, PathBuf};

/// What the cache file holds.
#[derive(Debug, Clone, Default)]
pub(super) struct Cached {
    pub(super) digest: Hash,
    pub(super) programs: Vec<Found>,
    pub(super) pc_files: Vec<(PathBuf, Hash)>,
    pub(super) pkg_config_path: String,
    pub(super) results: Results,
}

const MAGIC: &[u8; 8] = b"KILNCONF";
const FORMAT: u32 = 2;
pub(super) const FILE: &str = "configure";

/// The digest of the cache in `state_dir`, if what it depended on outside the build file (the
/// programs found, the process environment's values for them, `PKG_CONFIG_PATH`, the `.pc`
/// files) is as it was; `None` otherwise or if there is no cache.
pub fn still_holds(state_dir: &Path) -> Option<Hash> {
    let c = read(&state_dir.join(FILE))?;
    if std::env::var("PKG_CONFIG_PATH").unwrap_or_default() != c.pkg_config_path {
        return None;
    }
    for p in &c.programs {
        let now = std::env::var(&p.name).ok();
        if now != p.from_env {
            return None;
        }
        if p.path.is_some() {
            let path = locate(&p.candidates)?;
            if Some(&path) != p.path.as_ref() {
                return None;
            }
            // The same stat (size, times, inode) as when hashed: the same content.
            let stat = filestate::stat(&path);
            if stat.is_none() || stat != p.stat {
                let (_, hash) = search(&p.candidates)?;
                if hash != p.hash {
                    return None;
                }
            }
        }
    }
    (rehash(&c.pc_files) == c.pc_files).then_some(c.digest)
}

/// The digest the cache in `state_dir` holds, whatever it depended on.
pub fn cached_digest(state_dir: &Path) -> Option<Hash> {
    read(&state_dir.join(FILE)).map(|c| c.digest)
}

/// The results the cache holds, without checking them (for commands that do not build).
pub fn cached_results(state_dir: &Path) -> Option<Results> {
    read(&state_dir.join(FILE)).map(|c| c.results)
}

pub(super) fn write(path: &Path, c: &Cached) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut buf = Vec::new();
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&FORMAT.to_le_bytes());
    let body_at = buf.len();
    buf.extend_from_slice(&c.digest);
    put_u64(&mut buf, c.programs.len() as u64);
    for p in &c.programs {
        put_str(&mut buf, &p.name);
        put_str(&mut buf, p.from_env.as_deref().unwrap_or(""));
        buf.push(u8::from(p.from_env.is_some()));
        put_strings(&mut buf, &p.candidates);
        put_str(
            &mut buf,
            &p.path.as_ref().map_or(String::new(), |x| x.to_string_lossy().into_owned()),
        );
        buf.push(u8::from(p.path.is_some()));
        buf.extend_from_slice(&p.hash);
        put_opt_stat(&mut buf, &p.stat);
    }
    put_u64(&mut buf, c.pc_files.len() as u64);
    for (p, h) in &c.pc_files {
        put_str(&mut buf, &p.to_string_lossy());
        buf.extend_from_slice(h);
    }
    put_str(&mut buf, &c.pkg_config_path);
    put_u64(&mut buf, c.results.len() as u64);
    for (n, v) in &c.results {
        put_str(&mut buf, n);
        put_strings(&mut buf, v);
    }
    put_crc(&mut buf, body_at);
    replace_file(path, &buf)
}

pub(super) fn read(path: &Path) -> Option<Cached> {
    let bytes = std::fs::read(path).ok()?;
    let rest = bytes.strip_prefix(MAGIC)?;
    let (format, rest) = rest.split_at_checked(4)?;
    if format != FORMAT.to_le_bytes() {
        return None;
    }
    let mut r = Reader::new(checked_body(rest)?);
    let digest: Hash = r.take(32)?.try_into().ok()?;
    let mut programs = Vec::new();
    for _ in 0..r.read_len()? {
        let name = r.str()?;
        let env_value = r.str()?;
        let from_env = (r.u8()? == 1).then_some(env_value);
        let candidates = r.strings()?;
        let path = r.str()?;
        let path = (r.u8()? == 1).then(|| PathBuf::from(path));
        let hash: Hash = r.take(32)?.try_into().ok()?;
        let stat = r.opt_stat()?;
        programs.push(Found {
            name,
            from_env,
            candidates,
            path,
            hash,
            stat,
        });
    }
    let mut pc_files = Vec::new();
    for _ in 0..r.read_len()? {
        let p = PathBuf::from(r.str()?);
        let h: Hash = r.take(32)?.try_into().ok()?;
        pc_files.push((p, h));
    }
    let pkg_config_path = r.str()?;
    let mut results = Vec::new();
    for _ in 0..r.read_len()? {
        let n = r.str()?;
        results.push((n, r.strings()?));
    }
    r.at_end().then_some(Cached {
        digest,
        programs,
        pc_files,
        pkg_config_path,
        results,
    })
}
