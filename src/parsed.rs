//! Parsed build files, kept by content: `<out>/.kiln/parsed` holds each build file's manifest (its
//! spans too) under the blake3 hash of its text, so that a project of several build files parses
//! again only the files whose text changed and decodes the others. Validation and expansion still
//! see every part; only the TOML parse, the largest cost of loading a big project, is saved.
//!
//! Format: `KILNPARS`, u32 format version, the kiln version; then a body of entries (hash,
//! encoded manifest) followed by a crc32 of the body. A file that is missing, damaged or from
//! another version is an empty cache.

use crate::codec::{Encode, Reader, checked_body, put_crc, put_str, put_u64, replace_file};
use crate::error::{Diagnostic, SourceText};
use crate::filestate::Hash;
use crate::manifest::{Jobs, Manifest, Strings};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use toml::Spanned;

const MAGIC: &[u8; 8] = b"KILNPARS";
const FORMAT: u32 = 7;

/// The manifests known by the hash of their text: read from the cache file, or parsed now.
#[derive(Default)]
pub struct Parsed {
    known: HashMap<Hash, Vec<u8>>,
    /// The hashes of the texts asked for in this load, in order, and whether any was parsed.
    used: Vec<Hash>,
    parsed_any: bool,
}

impl Parsed {
    /// The cache at `path`; empty if it is missing or not readable as one.
    pub fn open(path: &Path) -> Parsed {
        let known = std::fs::read(path)
            .ok()
            .and_then(|bytes| read_entries(&bytes))
            .unwrap_or_default();
        Parsed {
            known,
            ..Parsed::default()
        }
    }

    /// The manifest of `source`: decoded when its text is known, else parsed (and kept).
    pub fn manifest(&mut self, source: &Arc<SourceText>) -> Result<Manifest, Diagnostic> {
        let hash = *blake3::hash(source.text.as_bytes()).as_bytes();
        self.used.push(hash);
        if let Some(m) = self
            .known
            .get(&hash)
            .and_then(|bytes| Manifest::read(&mut Reader::new(bytes)))
        {
            crate::stats::count("files decoded", 1);
            return Ok(m);
        }
        crate::stats::count("files parsed", 1);
        let m = crate::manifest::parse(source)?;
        let mut bytes = Vec::new();
        m.put(&mut bytes);
        self.known.insert(hash, bytes);
        self.parsed_any = true;
        Ok(m)
    }

    /// Whether this load parsed any text rather than decoding it.
    #[cfg(test)]
    pub fn parsed_any(&self) -> bool {
        self.parsed_any
    }

    /// Writes the manifests this load used (and only those) to `path`, if any was parsed now.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if !self.parsed_any {
            return Ok(());
        }
        let mut buf = Vec::new();
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&FORMAT.to_le_bytes());
        put_str(&mut buf, env!("CARGO_PKG_VERSION"));
        let body_at = buf.len();
        let mut seen = std::collections::HashSet::new();
        let entries: Vec<&Hash> = self.used.iter().filter(|h| seen.insert(**h)).collect();
        put_u64(&mut buf, entries.len() as u64);
        for h in entries {
            buf.extend_from_slice(h);
            put_str_bytes(&mut buf, &self.known[h]);
        }
        put_crc(&mut buf, body_at);
        replace_file(path, &buf)
    }
}

fn put_str_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    put_u64(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

fn read_entries(bytes: &[u8]) -> Option<HashMap<Hash, Vec<u8>>> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let (format, rest) = rest.split_at_checked(4)?;
    if format != FORMAT.to_le_bytes() {
        return None;
    }
    let mut r = Reader::new(rest);
    if r.str_ref()? != env!("CARGO_PKG_VERSION") {
        return None;
    }
    let body = checked_body(r.rest())?;
    let mut r = Reader::new(body);
    let mut known = HashMap::new();
    for _ in 0..r.read_len()? {
        let hash: Hash = r.take(32)?.try_into().ok()?;
        let n = r.read_len()?;
        known.insert(hash, r.take(n)?.to_vec());
    }
    r.at_end().then_some(known)
}

// The manifest's structs encode through `shift_fields!` in `manifest.rs`, which lists their
// fields once for both; the types they are made of encode here.
impl Encode for Jobs {
    fn put(&self, buf: &mut Vec<u8>) {
        self.0.put(buf);
    }
    fn read(r: &mut Reader) -> Option<Self> {
        u32::read(r).map(Jobs)
    }
}

impl<T: Encode> Encode for Spanned<T> {
    fn put(&self, buf: &mut Vec<u8>) {
        self.span().put(buf);
        self.get_ref().put(buf);
    }
    fn read(r: &mut Reader) -> Option<Self> {
        let span = std::ops::Range::<usize>::read(r)?;
        Some(Spanned::new(span, T::read(r)?))
    }
}

impl<K: Encode + Ord, V: Encode> Encode for BTreeMap<K, V> {
    fn put(&self, buf: &mut Vec<u8>) {
        put_u64(buf, self.len() as u64);
        for (k, v) in self {
            k.put(buf);
            v.put(buf);
        }
    }
    fn read(r: &mut Reader) -> Option<Self> {
        let n = r.read_len()?;
        let mut map = BTreeMap::new();
        for _ in 0..n {
            let k = K::read(r)?;
            map.insert(k, V::read(r)?);
        }
        Some(map)
    }
}

impl Encode for Strings {
    fn put(&self, buf: &mut Vec<u8>) {
        match self {
            Strings::One(s) => {
                false.put(buf);
                s.put(buf);
            }
            Strings::List(items) => {
                true.put(buf);
                items.put(buf);
            }
        }
    }
    fn read(r: &mut Reader) -> Option<Self> {
        Some(if bool::read(r)? {
            Strings::List(Vec::read(r)?)
        } else {
            Strings::One(String::read(r)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> Arc<SourceText> {
        Arc::new(SourceText {
            name: "build.toml".into(),
            text: text.into(),
        })
    }

    const TEXT: &str = r#"
[project]
subdirs = ["lib"]
[env]
CC = ["cc", "-O2"]
[[group]]
name = "g"
jobs = 2
order = "sequence"
[rule.cc]
run = "${CC} -c ${SRC} -o ${TGT}"
ext_in = [".c"]
ext_out = ".o"
always = true
[[gen]]
rule = "cc"
source = ["a.c", "b.c"]
env = { X = "1" }
ext_rules = { ".c" = "cc" }
map = false
default = false
"#;

    #[test]
    fn a_manifest_reads_back_as_parsed_and_the_cache_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("parsed");
        let mut parsed = Parsed::open(&path);
        let first = parsed.manifest(&source(TEXT)).unwrap();
        assert!(parsed.parsed_any());
        parsed.save(&path).unwrap();

        let mut again = Parsed::open(&path);
        let decoded = again.manifest(&source(TEXT)).unwrap();
        assert!(!again.parsed_any(), "the known text is decoded, not parsed");
        assert_eq!(format!("{first:?}"), format!("{decoded:?}"));
        // Another text is parsed.
        again.manifest(&source("[env]\nA = \"1\"\n")).unwrap();
        assert!(again.parsed_any());
    }

    #[test]
    fn a_damaged_cache_is_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("parsed");
        let mut parsed = Parsed::open(&path);
        parsed.manifest(&source(TEXT)).unwrap();
        parsed.save(&path).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 6;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let mut reopened = Parsed::open(&path);
        reopened.manifest(&source(TEXT)).unwrap();
        assert!(reopened.parsed_any());
    }
}
