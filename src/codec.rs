//! The binary encoding shared by kiln's state files (the store and the graph cache): LEB128
//! varints (zigzag for signed), strings as a length and UTF-8 bytes, 32-byte hashes, and a
//! bounds-checked [`Reader`] whose every read returns `None` on malformed input. Values that
//! encode themselves implement [`Encode`]; a struct does so through `encode_struct!` from one
//! list of its fields, which gives both directions.

use crate::filestate::{Hash, Stat};

pub fn put_u64(buf: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            buf.push(byte);
            return;
        }
        buf.push(byte | 0x80);
    }
}

pub fn put_i64(buf: &mut Vec<u8>, v: i64) {
    put_u64(buf, ((v << 1) ^ (v >> 63)) as u64);
}

pub fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_u64(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

pub fn put_hashed(buf: &mut Vec<u8>, items: &[(String, Hash)]) {
    put_u64(buf, items.len() as u64);
    for (s, h) in items {
        put_str(buf, s);
        buf.extend_from_slice(h);
    }
}

pub fn put_strings(buf: &mut Vec<u8>, items: &[String]) {
    put_u64(buf, items.len() as u64);
    for s in items {
        put_str(buf, s);
    }
}

/// `bytes` without the crc32 at their end, if it matches them.
pub fn checked_body(bytes: &[u8]) -> Option<&[u8]> {
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    (crc32fast::hash(body).to_le_bytes() == crc).then_some(body)
}

/// Appends the crc32 of `buf[from..]`, for [`checked_body`].
pub fn put_crc(buf: &mut Vec<u8>, from: usize) {
    let crc = crc32fast::hash(&buf[from..]);
    buf.extend_from_slice(&crc.to_le_bytes());
}

/// Replaces the file at `path` with `bytes` at once: a temporary file renamed into place (no
/// fsync: for caches that are checked when read and rebuilt when lost).
pub fn replace_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// A file written in pieces that ends with the crc32 of what came before it (as [`put_crc`] and
/// [`checked_body`] have it), into a temporary file renamed into place by [`CheckedFile::finish`]:
/// for a cache too large to hold twice, encoded in memory and then again on its way out.
/// A file may also be cut into sections, each ending with its own crc32 ([`CheckedFile::end_section`]),
/// after a prefix written as it is ([`CheckedFile::write_unchecked`]) and patched at the end
/// ([`CheckedFile::patch`]) with what only the end knows.
pub struct CheckedFile {
    path: std::path::PathBuf,
    tmp: std::path::PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    crc: crc32fast::Hasher,
    /// Bytes drained since the last section ended.
    section: u64,
}

impl CheckedFile {
    pub fn create(path: &std::path::Path) -> std::io::Result<CheckedFile> {
        let tmp = path.with_extension("tmp");
        Ok(CheckedFile {
            out: std::io::BufWriter::with_capacity(1 << 16, std::fs::File::create(&tmp)?),
            path: path.to_path_buf(),
            tmp,
            crc: crc32fast::Hasher::new(),
            section: 0,
        })
    }

    /// Writes `buf` and empties it.
    pub fn drain(&mut self, buf: &mut Vec<u8>) -> std::io::Result<()> {
        use std::io::Write;
        self.crc.update(buf);
        self.out.write_all(buf)?;
        self.section += buf.len() as u64;
        buf.clear();
        Ok(())
    }

    /// [`CheckedFile::drain`] once `buf` holds a megabyte or more: encode into `buf`, call this
    /// now and then, and the whole file is never in memory.
    pub fn drain_full(&mut self, buf: &mut Vec<u8>) -> std::io::Result<()> {
        if buf.len() >= 1 << 20 {
            self.drain(buf)?;
        }
        Ok(())
    }

    /// Writes bytes outside any section's checksum.
    pub fn write_unchecked(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        self.out.write_all(bytes)
    }

    /// Ends a section with the crc32 of what was drained since the last one; returns the section's
    /// length with its crc.
    pub fn end_section(&mut self) -> std::io::Result<u64> {
        use std::io::Write;
        let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
        self.out.write_all(&crc.to_le_bytes())?;
        Ok(std::mem::take(&mut self.section) + 4)
    }

    /// Overwrites bytes already written at `at`, and goes on at the end.
    pub fn patch(&mut self, at: u64, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom, Write};
        self.out.seek(SeekFrom::Start(at))?;
        self.out.write_all(bytes)?;
        self.out.seek(SeekFrom::End(0))?;
        Ok(())
    }

    /// Writes the checksum and puts the file in place.
    pub fn finish(mut self) -> std::io::Result<()> {
        use std::io::Write;
        let crc = self.crc.clone().finalize();
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.flush()?;
        std::fs::rename(&self.tmp, &self.path)
    }
}

/// A file's stat: size, mtime, ctime, inode.
pub fn put_stat(buf: &mut Vec<u8>, s: &Stat) {
    put_u64(buf, s.size);
    put_i64(buf, s.mtime);
    put_i64(buf, s.ctime);
    put_u64(buf, s.ino);
}

/// A stat or its absence.
pub fn put_opt_stat(buf: &mut Vec<u8>, s: &Option<Stat>) {
    put_bool(buf, s.is_some());
    if let Some(s) = s {
        put_stat(buf, s);
    }
}

/// A count and that many `(name, value)` string pairs.
pub fn put_pairs(buf: &mut Vec<u8>, pairs: &[(String, String)]) {
    put_u64(buf, pairs.len() as u64);
    for (k, v) in pairs {
        put_str(buf, k);
        put_str(buf, v);
    }
}

pub fn put_bool(buf: &mut Vec<u8>, v: bool) {
    buf.push(u8::from(v));
}

pub fn put_u32s(buf: &mut Vec<u8>, items: impl ExactSizeIterator<Item = u32>) {
    put_u64(buf, items.len() as u64);
    for i in items {
        put_u64(buf, u64::from(i));
    }
}

/// A cursor over a payload; every read checks bounds.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn u8(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    pub fn u64(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    pub fn i64(&mut self) -> Option<i64> {
        let v = self.u64()?;
        Some(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    pub fn read_len(&mut self) -> Option<usize> {
        let n = usize::try_from(self.u64()?).ok()?;
        (n <= self.bytes.len() - self.pos).then_some(n)
    }

    pub fn str(&mut self) -> Option<String> {
        self.str_ref().map(str::to_owned)
    }

    pub fn hash(&mut self) -> Option<Hash> {
        let h: Hash = self.bytes.get(self.pos..self.pos + 32)?.try_into().ok()?;
        self.pos += 32;
        Some(h)
    }

    pub fn hashed(&mut self) -> Option<Vec<(String, Hash)>> {
        let n = self.read_len()?;
        (0..n).map(|_| Some((self.str()?, self.hash()?))).collect()
    }

    pub fn strings(&mut self) -> Option<Vec<String>> {
        // Sized up front: collecting through `Option` would start from a guess of four.
        let n = self.read_len()?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.str()?);
        }
        Some(v)
    }

    /// What [`put_stat`] wrote.
    pub fn stat(&mut self) -> Option<Stat> {
        Some(Stat {
            size: self.u64()?,
            mtime: self.i64()?,
            ctime: self.i64()?,
            ino: self.u64()?,
        })
    }

    /// What [`put_opt_stat`] wrote.
    pub fn opt_stat(&mut self) -> Option<Option<Stat>> {
        if !self.bool()? {
            return Some(None);
        }
        self.stat().map(Some)
    }

    /// What [`put_pairs`] wrote.
    pub fn pairs(&mut self) -> Option<Vec<(String, String)>> {
        let n = self.read_len()?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push((self.str()?, self.str()?));
        }
        Some(v)
    }
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, pos: 0 }
    }

    /// Whether everything was read.
    pub fn at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }

    /// A string borrowed from the input.
    pub fn str_ref(&mut self) -> Option<&'a str> {
        let n = self.read_len()?;
        let s = std::str::from_utf8(self.bytes.get(self.pos..self.pos + n)?).ok()?;
        self.pos += n;
        Some(s)
    }

    /// The next `n` bytes, borrowed.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let b = self.bytes.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(b)
    }

    /// What is left to read.
    pub fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    pub fn bool(&mut self) -> Option<bool> {
        match self.u8()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    pub fn u32(&mut self) -> Option<u32> {
        u32::try_from(self.u64()?).ok()
    }

    /// A count and that many values below `limit`, each handed to `push`; `None` if any is not.
    pub fn u32s_below(&mut self, limit: usize, mut push: impl FnMut(u32)) -> Option<()> {
        for _ in 0..self.read_len()? {
            let v = self.u32()?;
            if v as usize >= limit {
                return None;
            }
            push(v);
        }
        Some(())
    }
}

/// A value in the codec's encoding, written by [`Encode::put`] and read back by
/// [`Encode::read`]. Structs implement it through `encode_struct!`, which names each field once.
pub trait Encode: Sized {
    fn put(&self, buf: &mut Vec<u8>);
    fn read(r: &mut Reader) -> Option<Self>;
}

/// [`Encode`] for scalars, each from the function that writes it and the read that reads it back.
macro_rules! encode_scalar {
    ($($ty:ty => $put:expr, $read:expr;)*) => {$(
        impl Encode for $ty {
            #[inline]
            fn put(&self, buf: &mut Vec<u8>) {
                $put(buf, self)
            }
            #[inline]
            fn read(r: &mut Reader) -> Option<Self> {
                $read(r)
            }
        }
    )*};
}

encode_scalar! {
    bool => |buf, v: &bool| put_bool(buf, *v), Reader::bool;
    u32 => |buf, v: &u32| put_u64(buf, u64::from(*v)), Reader::u32;
    usize => |buf, v: &usize| put_u64(buf, *v as u64),
        |r: &mut Reader| usize::try_from(r.u64()?).ok();
    String => |buf, v: &String| put_str(buf, v), Reader::str;
}

impl<T: Encode> Encode for Option<T> {
    #[inline]
    fn put(&self, buf: &mut Vec<u8>) {
        put_bool(buf, self.is_some());
        if let Some(v) = self {
            v.put(buf);
        }
    }
    #[inline]
    fn read(r: &mut Reader) -> Option<Self> {
        if r.bool()? {
            T::read(r).map(Some)
        } else {
            Some(None)
        }
    }
}

/// A count and that many values.
fn put_list<T: Encode>(buf: &mut Vec<u8>, items: &[T]) {
    put_u64(buf, items.len() as u64);
    for v in items {
        v.put(buf);
    }
}

impl<T: Encode> Encode for Vec<T> {
    #[inline]
    fn put(&self, buf: &mut Vec<u8>) {
        put_list(buf, self);
    }
    #[inline]
    fn read(r: &mut Reader) -> Option<Self> {
        // Sized up front: `read_len` bounds the count by the bytes left.
        let n = r.read_len()?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(T::read(r)?);
        }
        Some(v)
    }
}

impl<T: Encode, const N: usize> Encode for smallvec::SmallVec<[T; N]> {
    #[inline]
    fn put(&self, buf: &mut Vec<u8>) {
        put_list(buf, self);
    }
    // Inlined, and grown as it fills rather than sized up front (most such lists fit inline): each
    // task holds three, and either change slowed the graph cache's load by a tenth.
    #[inline(always)]
    fn read(r: &mut Reader) -> Option<Self> {
        let n = r.read_len()?;
        let mut v = smallvec::SmallVec::new();
        for _ in 0..n {
            v.push(T::read(r)?);
        }
        Some(v)
    }
}

impl<A: Encode, B: Encode> Encode for (A, B) {
    #[inline]
    fn put(&self, buf: &mut Vec<u8>) {
        self.0.put(buf);
        self.1.put(buf);
    }
    #[inline]
    fn read(r: &mut Reader) -> Option<Self> {
        Some((A::read(r)?, B::read(r)?))
    }
}

impl Encode for std::ops::Range<usize> {
    #[inline]
    fn put(&self, buf: &mut Vec<u8>) {
        self.start.put(buf);
        self.end.put(buf);
    }
    #[inline]
    fn read(r: &mut Reader) -> Option<Self> {
        Some(usize::read(r)?..usize::read(r)?)
    }
}

/// Implements [`Encode`] for a struct from one list of its fields: those encoded, in order, then
/// after `skip` those left out, which read back as their default. Both lists together must name
/// every field, so that a field added to the struct does not compile until it is placed in one.
macro_rules! encode_struct {
    ($ty:ident { $($field:ident),* $(,)? } skip { $($skip:ident),* $(,)? }) => {
        impl $crate::codec::Encode for $ty {
            #[inline]
            fn put(&self, buf: &mut Vec<u8>) {
                let $ty { $($field,)* $($skip: _,)* } = self;
                $($crate::codec::Encode::put($field, buf);)*
            }
            #[inline]
            fn read(r: &mut $crate::codec::Reader) -> Option<Self> {
                $(let $field = $crate::codec::Encode::read(r)?;)*
                Some($ty {
                    $($field,)*
                    $($skip: Default::default(),)*
                })
            }
        }
    };
    ($ty:ident { $($field:ident),* $(,)? }) => {
        encode_struct!($ty { $($field),* } skip {});
    };
}
pub(crate) use encode_struct;

/// Implements [`Encode`] for a fieldless enum from the list of its variants, each encoded as its
/// place in the list. The list must name every variant.
macro_rules! encode_enum {
    ($ty:ident { $($variant:ident),+ $(,)? }) => {
        impl $crate::codec::Encode for $ty {
            #[inline]
            fn put(&self, buf: &mut Vec<u8>) {
                const ALL: &[$ty] = &[$($ty::$variant),+];
                // Exhaustive: a variant missing from the list does not compile.
                match self {
                    $($ty::$variant)|+ => {}
                }
                let at = ALL.iter().position(|v| v == self).unwrap_or_default();
                $crate::codec::put_u64(buf, at as u64);
            }
            #[inline]
            fn read(r: &mut $crate::codec::Reader) -> Option<Self> {
                const ALL: &[$ty] = &[$($ty::$variant),+];
                ALL.get(usize::try_from(r.u64()?).ok()?).copied()
            }
        }
    };
}
pub(crate) use encode_enum;
