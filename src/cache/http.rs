//! A remote cache speaking the Bazel HTTP cache protocol, as bazel-remote and nginx's WebDAV
//! module serve it: an entry is `GET`/`PUT <url>/ac/<key hex>`, a serialized
//! `build.bazel.remote.execution.v2.ActionResult` (`reapi.rs`); a blob is
//! `GET`/`PUT <url>/cas/<sha256 hex>`.
//!
//! Approach: every request is bounded by one timeout covering the connection and the whole
//! response; a 404 is a miss; any other failure (a status, a timeout, a refused connection,
//! bytes that do not decode or do not match their digest) is [`Fetched::Trouble`] with a short
//! reason for the caller's one warning. Nothing is trusted: every blob is checked against its
//! digest before it is returned, and a blob is read and checked again before it is uploaded,
//! so a file that changed since it was hashed is never stored under the old name. `put`
//! uploads the blobs first (skipping those a `HEAD` shows are there) and the entry last, so
//! that no reader sees an entry before its blobs.
//!
//! The implicit dependencies travel as one more output file of the `ActionResult`, at the
//! reserved path [`IMPLICIT_PATH`], always there (with the empty blob when there are none, so
//! that no entry is empty: bazel-remote takes an empty `ActionResult` for a missing one), whose
//! blob is a text listing: UTF-8, one line per dependency, in the entry's order, each line exactly the 64
//! lower-case hex digits of the content's BLAKE3 hash, one space, the path, and `\n`
//! (`8f4e...1c src/config.h\n`). A path is never empty and never holds a `\n` (`put` refuses
//! such an entry); it may hold spaces, as the hash has a fixed width.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use ureq::http::{HeaderName, HeaderValue};

use super::reapi::ActionResult;
use super::unhex;
use super::{Backend, Digest, Entry, Fetched, Key, OutputFile};

/// The output path under which an entry's implicit dependencies travel.
pub const IMPLICIT_PATH: &str = ".kiln/implicit";

/// An `ActionResult` larger than this is not one kiln wrote.
const MAX_ENTRY_BYTES: u64 = 16 << 20;

/// What a GET that was answered brought.
enum Got {
    Body(Vec<u8>),
    /// A 404.
    NotFound,
    /// A body longer than the limit.
    TooLarge,
}

/// A remote cache at an `http://` or `https://` URL.
pub struct HttpCache {
    /// The URL without a trailing slash or credentials: `/ac/...` and `/cas/...` follow it.
    base: String,
    agent: ureq::Agent,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
}

impl HttpCache {
    /// A cache at `url` (`http://` or `https://`, optionally with a path prefix and
    /// `user:password@`, sent as basic authorization), sending `headers` with every request,
    /// each request bounded by `timeout`. `https://` verifies the server against the system's
    /// roots. Nothing is sent yet.
    pub fn new(
        url: &str,
        headers: Vec<(String, String)>,
        timeout: Duration,
    ) -> Result<HttpCache, String> {
        let (base, userinfo) = split_url(url)?;
        let mut parsed = Vec::new();
        for (name, value) in &headers {
            let n = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| format!("{name:?} is not a valid HTTP header name"))?;
            let v = HeaderValue::from_str(value.trim())
                .map_err(|_| format!("the value of header {name:?} is not a valid HTTP header"))?;
            parsed.push((n, v));
        }
        if let Some(userinfo) = userinfo
            && !parsed.iter().any(|(n, _)| n == ureq::http::header::AUTHORIZATION)
        {
            let value = format!("Basic {}", base64(userinfo.as_bytes()));
            let value = HeaderValue::from_str(&value).map_err(|e| e.to_string())?;
            parsed.push((ureq::http::header::AUTHORIZATION, value));
        }
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .tls_config(tls)
            .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(HttpCache {
            base,
            agent,
            headers: parsed,
            timeout,
        })
    }

    /// GETs `path`, whose body may be `limit` bytes at most.
    fn get(&self, path: &str, limit: u64) -> Result<Got, String> {
        let request = self.agent.get(format!("{}{path}", self.base));
        let mut response = self
            .with_headers(request)
            .call()
            .map_err(|e| format!("GET {path}: {}", self.reason(e)))?;
        match response.status().as_u16() {
            200 => {}
            404 => {
                drain(&mut response);
                return Ok(Got::NotFound);
            }
            _ => return Err(format!("GET {path}: {}", status(&mut response))),
        }
        if response.body().content_length().is_some_and(|n| n > limit) {
            return Ok(Got::TooLarge);
        }
        match response.body_mut().with_config().limit(limit).read_to_vec() {
            Ok(body) => Ok(Got::Body(body)),
            Err(ureq::Error::BodyExceedsLimit(_)) => Ok(Got::TooLarge),
            Err(e) => Err(format!("GET {path}: {}", self.reason(e))),
        }
    }

    /// Whether the server says it holds `digest`'s blob: a `HEAD` answered 200, with the blob's
    /// size if with any.
    /// A failure to ask is an error: what follows would fail the same way.
    fn has(&self, digest: &Digest) -> Result<bool, String> {
        let path = format!("/cas/{}", digest.hex());
        let request = self.agent.head(format!("{}{path}", self.base));
        let response = self
            .with_headers(request)
            .call()
            .map_err(|e| format!("HEAD {path}: {}", self.reason(e)))?;
        // nginx says the size; bazel-remote, which checks every blob it is sent, says nothing.
        let length = response
            .headers()
            .get(ureq::http::header::CONTENT_LENGTH)
            .map(|v| v.to_str().ok().and_then(|v| v.parse::<u64>().ok()));
        Ok(response.status().as_u16() == 200 && length.is_none_or(|n| n == Some(digest.size)))
    }

    fn put_bytes(&self, path: &str, bytes: &[u8]) -> Result<(), String> {
        let request = self.agent.put(format!("{}{path}", self.base));
        let mut response = self
            .with_headers(request)
            .send(bytes)
            .map_err(|e| format!("PUT {path}: {}", self.reason(e)))?;
        if response.status().is_success() {
            drain(&mut response);
            Ok(())
        } else {
            Err(format!("PUT {path}: {}", status(&mut response)))
        }
    }

    /// Uploads a blob unless the server has it or it is empty (the empty blob always exists).
    fn upload(&self, digest: &Digest, bytes: &[u8]) -> Result<(), String> {
        if digest.size == 0 || self.has(digest)? {
            return Ok(());
        }
        self.put_bytes(&format!("/cas/{}", digest.hex()), bytes)
    }

    fn with_headers<B>(&self, mut request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        request
    }

    /// A short human reason for a failed request.
    fn reason(&self, e: ureq::Error) -> String {
        use std::io::ErrorKind;
        match e {
            ureq::Error::Timeout(_) => format!("no answer within {:?}", self.timeout),
            ureq::Error::HostNotFound => "host not found".to_string(),
            ureq::Error::Io(e) => match e.kind() {
                ErrorKind::ConnectionRefused => "connection refused".to_string(),
                ErrorKind::ConnectionReset => "connection reset by the server".to_string(),
                ErrorKind::UnexpectedEof => "the server closed the connection".to_string(),
                ErrorKind::TimedOut | ErrorKind::WouldBlock => {
                    format!("no answer within {:?}", self.timeout)
                }
                _ => e.to_string(),
            },
            e => e.to_string(),
        }
    }
}

impl Backend for HttpCache {
    fn name(&self) -> String {
        self.base.clone()
    }

    fn get_entry(&self, key: &Key) -> Fetched<Entry> {
        let path = format!("/ac/{}", key.hex());
        let bytes = match self.get(&path, MAX_ENTRY_BYTES) {
            Ok(Got::Body(bytes)) => bytes,
            Ok(Got::NotFound) => return Fetched::Miss,
            Ok(Got::TooLarge) => {
                return Fetched::Trouble(format!("GET {path}: larger than any entry kiln writes"));
            }
            Err(e) => return Fetched::Trouble(e),
        };
        let result = match ActionResult::decode(&bytes) {
            Ok(result) => result,
            Err(e) => return Fetched::Trouble(format!("GET {path}: not an ActionResult: {e}")),
        };
        if result.exit_code != 0 {
            let code = result.exit_code;
            return Fetched::Trouble(format!("GET {path}: a failed run (exit code {code})"));
        }
        let (listings, outputs): (Vec<OutputFile>, Vec<OutputFile>) = result
            .output_files
            .into_iter()
            .partition(|f| f.path == IMPLICIT_PATH);
        let implicit = match listings.as_slice() {
            [] => Vec::new(),
            [listing] => match self.get_blob(&listing.digest) {
                Fetched::Hit(bytes) => match decode_implicit(&bytes) {
                    Ok(implicit) => implicit,
                    Err(e) => {
                        let hex = listing.digest.hex();
                        return Fetched::Trouble(format!("GET /cas/{hex}: {e}"));
                    }
                },
                Fetched::Miss => return Fetched::Miss,
                Fetched::Trouble(e) => return Fetched::Trouble(e),
            },
            _ => return Fetched::Trouble(format!("GET {path}: two {IMPLICIT_PATH} outputs")),
        };
        Fetched::Hit(Entry { outputs, implicit })
    }

    fn get_blob(&self, digest: &Digest) -> Fetched<Vec<u8>> {
        if digest.size == 0 && digest.verifies(b"") {
            return Fetched::Hit(Vec::new());
        }
        let path = format!("/cas/{}", digest.hex());
        let mismatch = || format!("GET {path}: the blob does not match its digest");
        match self.get(&path, digest.size) {
            Ok(Got::Body(bytes)) if digest.verifies(&bytes) => Fetched::Hit(bytes),
            Ok(Got::Body(_) | Got::TooLarge) => Fetched::Trouble(mismatch()),
            Ok(Got::NotFound) => Fetched::Miss,
            Err(e) => Fetched::Trouble(e),
        }
    }

    fn put(&self, key: &Key, entry: &Entry, blobs: &[(Digest, &Path)]) -> Result<(), String> {
        let mut files = entry.outputs.clone();
        if files.iter().any(|f| f.path == IMPLICIT_PATH) {
            return Err(format!("an output at the reserved path {IMPLICIT_PATH}"));
        }
        let mut uploaded = BTreeSet::new();
        let listing = encode_implicit(&entry.implicit)?;
        let digest = Digest::of(&listing);
        self.upload(&digest, &listing)?;
        uploaded.insert(digest);
        files.push(OutputFile {
            path: IMPLICIT_PATH.to_string(),
            digest,
            executable: false,
        });
        for output in &entry.outputs {
            if !uploaded.insert(output.digest) {
                continue;
            }
            let Some((_, file)) = blobs.iter().find(|(d, _)| *d == output.digest) else {
                return Err(format!("no file given for the blob of {}", output.path));
            };
            let bytes = std::fs::read(file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            if !output.digest.verifies(&bytes) {
                return Err(format!("{} changed since it was hashed", file.display()));
            }
            self.upload(&output.digest, &bytes)?;
        }
        let result = ActionResult {
            output_files: files,
            exit_code: 0,
        };
        self.put_bytes(&format!("/ac/{}", key.hex()), &result.encode())
    }
}

/// `NAME: VALUE` (as `--remote-header` takes it) to a header.
pub fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not a header: NAME: VALUE"))?;
    let (name, value) = (name.trim(), value.trim());
    if HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("{name:?} is not a valid HTTP header name"));
    }
    if HeaderValue::from_str(value).is_err() {
        return Err(format!("the value of header {name:?} is not a valid HTTP header"));
    }
    Ok((name.to_string(), value.to_string()))
}

/// The listing of implicit dependencies (see the module's documentation).
pub fn encode_implicit(implicit: &[(String, [u8; 32])]) -> Result<Vec<u8>, String> {
    let mut out = String::new();
    for (path, hash) in implicit {
        if path.is_empty() || path.contains('\n') {
            return Err(format!("an implicit dependency kiln cannot list: {path:?}"));
        }
        out.push_str(&super::hex(hash));
        out.push(' ');
        out.push_str(path);
        out.push('\n');
    }
    Ok(out.into_bytes())
}

/// Reads a listing [`encode_implicit`] wrote; anything else is an error.
pub fn decode_implicit(bytes: &[u8]) -> Result<Vec<(String, [u8; 32])>, String> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| "an implicit listing not in UTF-8".to_string())?;
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let body = text
        .strip_suffix('\n')
        .ok_or_else(|| "an implicit listing whose last line is cut".to_string())?;
    let mut out = Vec::new();
    for (n, line) in body.split('\n').enumerate() {
        let bad = || format!("line {} of the implicit listing is not HASH PATH", n + 1);
        let (hash, path) = line.split_at_checked(64).ok_or_else(bad)?;
        let path = path.strip_prefix(' ').filter(|p| !p.is_empty());
        match (unhex(hash.as_bytes()), path) {
            (Some(hash), Some(path)) => out.push((path.to_string(), hash)),
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

/// Splits `scheme://[userinfo@]host[:port][/prefix]` into the base URL (no trailing slash, no
/// credentials) and the credentials. Errors name the URL without its credentials.
fn split_url(url: &str) -> Result<(String, Option<String>), String> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, prefix) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => (Some(userinfo.to_string()), host),
        None => (None, authority),
    };
    let shown = match scheme {
        "" => format!("{host}{prefix}"),
        _ => format!("{scheme}://{host}{prefix}"),
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!("{shown}: an HTTP cache URL starts with http:// or https://"));
    }
    if url.contains(['?', '#']) {
        return Err(format!("{shown}: an HTTP cache URL has no query or fragment"));
    }
    if host.is_empty() {
        return Err(format!("{shown}: no host"));
    }
    let base = format!("{scheme}://{host}{}", prefix.trim_end_matches('/'));
    ureq::http::Uri::try_from(base.as_str()).map_err(|e| format!("{shown}: {e}"))?;
    Ok((base, userinfo))
}

/// Reads what is left of a short answer, so that its connection serves the next request.
fn drain(response: &mut ureq::http::Response<ureq::Body>) {
    let _ = response.body_mut().with_config().limit(64 << 10).read_to_vec();
}

/// `answered 500 Internal Server Error`, the answer read to its end.
fn status(response: &mut ureq::http::Response<ureq::Body>) -> String {
    drain(response);
    let s = response.status();
    format!("answered {} {}", s.as_u16(), s.canonical_reason().unwrap_or(""))
        .trim_end()
        .to_string()
}

/// Standard base64 with padding, for basic authorization.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_implicit_listing_is_hash_space_path_lines() {
        let implicit = vec![
            ("src/config.h".to_string(), [0xab; 32]),
            ("/usr/include/my header.h".to_string(), [0x01; 32]),
        ];
        let bytes = encode_implicit(&implicit).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(
            text,
            format!(
                "{} src/config.h\n{} /usr/include/my header.h\n",
                "ab".repeat(32),
                "01".repeat(32)
            )
        );
        assert_eq!(decode_implicit(&bytes).unwrap(), implicit);
        assert_eq!(decode_implicit(b"").unwrap(), []);
        assert_eq!(encode_implicit(&[]).unwrap(), b"");
    }

    #[test]
    fn an_implicit_listing_refuses_what_it_cannot_hold() {
        assert!(encode_implicit(&[("a\nb".to_string(), [0; 32])]).is_err());
        assert!(encode_implicit(&[(String::new(), [0; 32])]).is_err());
    }

    #[test]
    fn a_damaged_implicit_listing_is_an_error() {
        let good = encode_implicit(&[("a.h".to_string(), [7; 32])]).unwrap();
        for n in 1..good.len() {
            assert!(decode_implicit(&good[..n]).is_err(), "{n} bytes decoded");
        }
        let hash = "07".repeat(32);
        let bad = [
            "\n".to_string(),
            format!("{hash}a.h\n"),
            format!("{hash} \n"),
            format!("{} a.h\n", "zz".repeat(32)),
            format!("{hash} a.h\n\n"),
        ];
        for text in &bad {
            assert!(decode_implicit(text.as_bytes()).is_err(), "{text:?} decoded");
        }
        assert!(decode_implicit(&[0xff, b'\n']).is_err());
        // A path may begin with a space: only the first one separates.
        let spaced = format!("{hash}  a.h\n");
        assert_eq!(decode_implicit(spaced.as_bytes()).unwrap()[0].0, " a.h");
    }

    #[test]
    fn urls_keep_their_prefix_and_lose_their_credentials() {
        let t = Duration::from_secs(1);
        let cache = HttpCache::new("http://cache:8080/", vec![], t).unwrap();
        assert_eq!(cache.name(), "http://cache:8080");
        let cache = HttpCache::new("HTTPS://u:p@cache.example/team/kiln//", vec![], t).unwrap();
        assert_eq!(cache.name(), "https://cache.example/team/kiln");
        let auth = &cache.headers[0];
        assert_eq!(auth.0, "authorization");
        assert_eq!(auth.1, "Basic dTpw");
        for bad in ["grpc://cache:9092", "cache:8080", "http://", "http://c/?a=b", "http://c/#x"] {
            assert!(HttpCache::new(bad, vec![], t).is_err(), "{bad} accepted");
        }
        let err = HttpCache::new("grpc://me:secret@cache:9092", vec![], t).err().unwrap();
        assert!(!err.contains("secret"), "{err}");
        let header = vec![("Bad Name".to_string(), "x".to_string())];
        assert!(HttpCache::new("http://c", header, t).is_err());
    }

    #[test]
    fn headers_parse_as_name_colon_value() {
        assert_eq!(
            parse_header("Authorization: Bearer a:b").unwrap(),
            ("Authorization".to_string(), "Bearer a:b".to_string())
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: x").is_err());
        assert!(parse_header("X-Ok: line\nbreak").is_err());
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"user:pass word"), "dXNlcjpwYXNzIHdvcmQ=");
    }
}
