//! The few Remote Execution API (v2) messages a remote cache exchanges, encoded and decoded by
//! hand: `build.bazel.remote.execution.v2.ActionResult` with its `OutputFile`s and their
//! `Digest`s, as the Bazel HTTP cache protocol keeps under `/ac/`.
//!
//! Only the fields kiln uses are written: `ActionResult { output_files = 2, exit_code = 4 }`,
//! `OutputFile { path = 1, digest = 2, is_executable = 4 }`, `Digest { hash = 1, size_bytes = 2 }`,
//! in field order, defaults left out, as protobuf's own encoders do. Decoding follows the
//! protobuf wire format: fields in any order, the last of a repeated scalar wins, an embedded
//! message seen twice merges, and every other field, of any wire type (groups included), is
//! skipped, since servers and other clients add theirs (bazel-remote's `execution_metadata`,
//! Bazel's `stdout_digest`). Anything malformed (truncated, a known field of the wrong wire
//! type, a bad hash, a negative size, a path that is not UTF-8) is an error, never a panic.

use super::{Digest, OutputFile};

/// The part of `ActionResult` kiln reads and writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActionResult {
    pub output_files: Vec<OutputFile>,
    pub exit_code: i32,
}

const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const SGROUP: u8 = 3;
const EGROUP: u8 = 4;
const I32: u8 = 5;

/// Groups nest at most this deep in what we skip: deeper is refused rather than followed.
const MAX_GROUP_DEPTH: usize = 64;

impl ActionResult {
    /// The message's protobuf encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for file in &self.output_files {
            let mut f = Vec::new();
            put_bytes(&mut f, 1, file.path.as_bytes());
            put_bytes(&mut f, 2, &encode_digest(&file.digest));
            if file.executable {
                put_tag(&mut f, 4, VARINT);
                put_varint(&mut f, 1);
            }
            put_bytes(&mut out, 2, &f);
        }
        if self.exit_code != 0 {
            put_tag(&mut out, 4, VARINT);
            // int32 is sign-extended to 64 bits: a negative code takes ten bytes.
            put_varint(&mut out, i64::from(self.exit_code) as u64);
        }
        out
    }

    /// Decodes a serialized `ActionResult`; the error says what is wrong and where.
    pub fn decode(bytes: &[u8]) -> Result<ActionResult, String> {
        let mut r = Reader { bytes, pos: 0 };
        let mut result = ActionResult::default();
        while let Some((field, wire)) = r.tag()? {
            match (field, wire) {
                (2, LEN) => {
                    let at = r.pos;
                    result
                        .output_files
                        .push(decode_output_file(r.len_delimited()?, at)?);
                }
                (4, VARINT) => result.exit_code = r.varint()? as i32,
                (2 | 4, _) => return Err(r.wrong_type(field, wire)),
                _ => r.skip(field, wire)?,
            }
        }
        Ok(result)
    }
}

fn encode_digest(d: &Digest) -> Vec<u8> {
    let mut out = Vec::with_capacity(80);
    put_bytes(&mut out, 1, d.hex().as_bytes());
    if d.size != 0 {
        put_tag(&mut out, 2, VARINT);
        put_varint(&mut out, d.size);
    }
    out
}

/// `bytes` is the embedded message starting at `base` in the outer one (for messages).
fn decode_output_file(bytes: &[u8], base: usize) -> Result<OutputFile, String> {
    let mut r = Reader { bytes, pos: 0 };
    let mut path = None;
    let mut digest: Option<(Option<[u8; 32]>, u64)> = None;
    let mut executable = false;
    while let Some((field, wire)) = r.tag()? {
        match (field, wire) {
            (1, LEN) => {
                let at = base + r.pos;
                let s = std::str::from_utf8(r.len_delimited()?)
                    .map_err(|_| format!("an output path that is not UTF-8 at byte {at}"))?;
                path = Some(s.to_string());
            }
            (2, LEN) => {
                let at = base + r.pos;
                let d = digest.get_or_insert((None, 0));
                decode_digest(r.len_delimited()?, at, d)?;
            }
            (4, VARINT) => executable = r.varint()? != 0,
            (1 | 2 | 4, _) => return Err(r.wrong_type(field, wire)),
            _ => r.skip(field, wire)?,
        }
    }
    let path = path.filter(|p| !p.is_empty());
    let path = path.ok_or_else(|| format!("an output file without a path at byte {base}"))?;
    match digest {
        Some((Some(sha256), size)) => Ok(OutputFile {
            path,
            digest: Digest { sha256, size },
            executable,
        }),
        _ => Err(format!("output {path:?} has no digest")),
    }
}

/// Merges a `Digest` message into `into` (hash, size).
fn decode_digest(
    bytes: &[u8],
    base: usize,
    into: &mut (Option<[u8; 32]>, u64),
) -> Result<(), String> {
    let mut r = Reader { bytes, pos: 0 };
    while let Some((field, wire)) = r.tag()? {
        match (field, wire) {
            (1, LEN) => {
                let at = base + r.pos;
                let hash = r.len_delimited()?;
                into.0 = Some(super::unhex(hash).ok_or_else(|| {
                    format!("a digest hash that is not 64 hex digits at byte {at}")
                })?);
            }
            (2, VARINT) => {
                let size = r.varint()? as i64;
                if size < 0 {
                    return Err(format!("a negative size_bytes ({size})"));
                }
                into.1 = size as u64;
            }
            (1 | 2, _) => return Err(r.wrong_type(field, wire)),
            _ => r.skip(field, wire)?,
        }
    }
    Ok(())
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_tag(out, field, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A cursor over one message's bytes; `pos` counts from the message's start.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn truncated(&self) -> String {
        format!("truncated at byte {}", self.pos)
    }

    fn wrong_type(&self, field: u32, wire: u8) -> String {
        format!(
            "field {field} has wire type {wire}, not the one its type needs (before byte {})",
            self.pos
        )
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for i in 0..10 {
            let Some(&b) = self.bytes.get(self.pos) else {
                return Err(self.truncated());
            };
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("a varint longer than ten bytes at byte {}", self.pos))
    }

    /// The next field's number and wire type, or `None` at the end of the message.
    fn tag(&mut self) -> Result<Option<(u32, u8)>, String> {
        if self.pos == self.bytes.len() {
            return Ok(None);
        }
        let at = self.pos;
        let tag = self.varint()?;
        let (field, wire) = (tag >> 3, (tag & 7) as u8);
        if field == 0 || field > u64::from(u32::MAX >> 3) || wire > I32 {
            return Err(format!("an invalid field tag {tag} at byte {at}"));
        }
        Ok(Some((field as u32, wire)))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let left = (self.bytes.len() - self.pos) as u64;
        if n > left {
            return Err(self.truncated());
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    fn len_delimited(&mut self) -> Result<&'a [u8], String> {
        let n = self.varint()?;
        self.take(n)
    }

    /// Skips the value of a field this decoder does not know.
    fn skip(&mut self, field: u32, wire: u8) -> Result<(), String> {
        // Open groups, innermost last: a group ends at the EGROUP of its own field.
        let mut groups = Vec::new();
        let (mut field, mut wire) = (field, wire);
        loop {
            match wire {
                VARINT => {
                    self.varint()?;
                }
                I64 => {
                    self.take(8)?;
                }
                LEN => {
                    self.len_delimited()?;
                }
                I32 => {
                    self.take(4)?;
                }
                SGROUP => {
                    if groups.len() == MAX_GROUP_DEPTH {
                        return Err(format!("groups nested too deep at byte {}", self.pos));
                    }
                    groups.push(field);
                }
                EGROUP => {
                    if groups.pop() != Some(field) {
                        return Err(format!("an unmatched end of group before byte {}", self.pos));
                    }
                }
                _ => return Err(format!("an invalid wire type {wire}")),
            }
            if groups.is_empty() {
                return Ok(());
            }
            match self.tag()? {
                Some((f, w)) => (field, wire) = (f, w),
                None => return Err(self.truncated()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file(path: &str, content: &[u8], executable: bool) -> OutputFile {
        OutputFile {
            path: path.to_string(),
            digest: Digest::of(content),
            executable,
        }
    }

    #[test]
    fn encodes_as_protobuf_does() {
        let result = ActionResult {
            output_files: vec![file("a", b"abc", true)],
            exit_code: 0,
        };
        let hash = Digest::of(b"abc").hex();
        // Digest { hash = 1: 64 bytes, size_bytes = 2: 3 }
        let mut digest = vec![0x0a, 64];
        digest.extend_from_slice(hash.as_bytes());
        digest.extend_from_slice(&[0x10, 3]);
        // OutputFile { path = 1: "a", digest = 2, is_executable = 4: true }
        let mut output = vec![0x0a, 1, b'a', 0x12, digest.len() as u8];
        output.extend_from_slice(&digest);
        output.extend_from_slice(&[0x20, 1]);
        // ActionResult { output_files = 2 }
        let mut expected = vec![0x12, output.len() as u8];
        expected.extend_from_slice(&output);
        assert_eq!(result.encode(), expected);
        assert_eq!(ActionResult::decode(&expected).unwrap(), result);
    }

    #[test]
    fn a_negative_exit_code_takes_ten_bytes() {
        let result = ActionResult {
            output_files: vec![],
            exit_code: -1,
        };
        let bytes = result.encode();
        assert_eq!(bytes.len(), 11);
        assert_eq!(ActionResult::decode(&bytes).unwrap(), result);
        assert_eq!(ActionResult::decode(&[]).unwrap(), ActionResult::default());
    }

    #[test]
    fn skips_unknown_fields_of_every_wire_type() {
        let result = ActionResult {
            output_files: vec![file("${OUT}/a.o", b"object", false)],
            exit_code: 3,
        };
        let unknown: &[u8] = &[
            0x28, 0x96, 0x01, // field 5, varint 150
            0x19, 1, 2, 3, 4, 5, 6, 7, 8, // field 3, fixed64
            0x4a, 2, 0xff, 0xfe, // field 9 (execution_metadata), 2 bytes
            0x55, 1, 2, 3, 4, // field 10, fixed32
            0x5b, 0x08, 1, 0x63, 0x64, 0x0a, 0, 0x5c, // group 11 { 1: 1, group 12 {}, 1: "" }
        ];
        let mut bytes = unknown.to_vec();
        bytes.extend_from_slice(&result.encode());
        bytes.extend_from_slice(unknown);
        assert_eq!(ActionResult::decode(&bytes).unwrap(), result);

        // Unknown fields inside an OutputFile and a Digest too.
        let mut digest = unknown.to_vec();
        digest.extend_from_slice(&encode_digest(&Digest::of(b"x")));
        let mut output = vec![0x0a, 1, b'x'];
        output.extend_from_slice(unknown);
        put_bytes(&mut output, 2, &digest);
        let mut bytes = Vec::new();
        put_bytes(&mut bytes, 2, &output);
        assert_eq!(
            ActionResult::decode(&bytes).unwrap().output_files,
            [file("x", b"x", false)]
        );
    }

    #[test]
    fn refuses_malformed_messages() {
        // A message is not self-delimiting: cut between two fields, it is a shorter message
        // (HTTP's Content-Length catches that); cut anywhere else, it is an error.
        let first = file("a", b"abc", true);
        let good = ActionResult {
            output_files: vec![first.clone(), file("b", b"", false)],
            exit_code: 0,
        }
        .encode();
        let boundary = ActionResult {
            output_files: vec![first.clone()],
            exit_code: 0,
        }
        .encode()
        .len();
        for n in 1..good.len() {
            let decoded = ActionResult::decode(&good[..n]);
            if n == boundary {
                assert_eq!(decoded.unwrap().output_files, std::slice::from_ref(&first));
            } else {
                assert!(decoded.is_err(), "{n} bytes of {} decoded", good.len());
            }
        }
        let bad: &[&[u8]] = &[
            b"not a protobuf",
            &[0x00, 0x01],                     // field 0
            &[0x16],                           // wire type 6
            &[0x12, 0x05, 0x0a],               // a length past the end
            &[0x10, 0x01],                     // output_files as a varint
            &[0xff; 11],                       // a varint of eleven bytes
            &[0x5b, 0x08, 1],                  // a group never closed
            &[0x5c],                           // a group closed, never opened
            &[0x5b, 0x64],                     // a group closed by another field
            &[0x12, 0x03, 0x0a, 0x01, b'a'],   // an output without a digest
            &[0x12, 0x04, 0x12, 0x02, 0x10, 1], // an output without a path
            &[0x12, 0x05, 0x0a, 0x01, 0xff, 0x12, 0x00], // a path not UTF-8
            &[0x12, 0x07, 0x0a, 0x01, b'a', 0x12, 0x02, 0x0a, 0x00], // an empty hash
        ];
        for bytes in bad {
            assert!(ActionResult::decode(bytes).is_err(), "{bytes:?} decoded");
        }
        let deep: Vec<u8> = std::iter::repeat_n(0x5b, 10_000).collect();
        assert!(ActionResult::decode(&deep).is_err());
    }

    #[test]
    fn refuses_a_negative_size() {
        let mut digest = Vec::new();
        put_bytes(&mut digest, 1, Digest::of(b"").hex().as_bytes());
        put_tag(&mut digest, 2, VARINT);
        put_varint(&mut digest, (-5i64) as u64);
        let mut output = Vec::new();
        put_bytes(&mut output, 1, b"a");
        put_bytes(&mut output, 2, &digest);
        let mut bytes = Vec::new();
        put_bytes(&mut bytes, 2, &output);
        let err = ActionResult::decode(&bytes).unwrap_err();
        assert!(err.contains("negative"), "{err}");
    }

    fn output_file() -> impl Strategy<Value = OutputFile> {
        (
            "[^\u{0}]{1,40}",
            any::<[u8; 32]>(),
            any::<u64>(),
            any::<bool>(),
        )
            .prop_map(|(path, sha256, size, executable)| OutputFile {
                path,
                digest: Digest {
                    sha256,
                    size: size >> 1, // size_bytes is an int64
                },
                executable,
            })
    }

    proptest! {
        #[test]
        fn roundtrips(
            output_files in proptest::collection::vec(output_file(), 0..5),
            exit_code in any::<i32>(),
        ) {
            let result = ActionResult { output_files, exit_code };
            prop_assert_eq!(ActionResult::decode(&result.encode()).unwrap(), result);
        }

        #[test]
        fn garbage_is_an_error_or_a_message_never_a_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let _ = ActionResult::decode(&bytes);
        }
    }
}
