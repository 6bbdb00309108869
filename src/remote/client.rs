//! A Remote Execution API (v2) client over gRPC: Capabilities, the CAS (FindMissingBlobs,
//! BatchUpdateBlobs, BatchReadBlobs, and ByteStream for blobs past the batch limit), the
//! ActionCache, and Execution with its long-running operation. Its calls block: the build's
//! worker threads make them, each on the one tokio runtime the client owns. Every unary call is
//! bounded by `--remote-timeout`; an execution is not (it lasts as long as its command), but a
//! peer that stops answering is found by HTTP/2 keep-alive pings.

use super::{from_proto, to_proto};
use crate::cache::Digest;
use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use bazel_remote_apis::google::bytestream as bs;
use bazel_remote_apis::google::longrunning::operation;
use prost::Message;
use re::action_cache_client::ActionCacheClient;
use re::capabilities_client::CapabilitiesClient;
use re::content_addressable_storage_client::ContentAddressableStorageClient;
use re::execution_client::ExecutionClient;
use std::time::Duration;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// Blobs at most this big go in batches when the server names no limit (4 MiB is gRPC's
/// default message size; the batch's own framing needs room).
const DEFAULT_BATCH: usize = 4 << 20;
/// Connections to the engine.
const CONNECTIONS: usize = 4;
/// How much of a blob one ByteStream write message carries.
const CHUNK: usize = 1 << 20;

/// A connection to one engine (or remote cache) and instance.
pub struct Client {
    rt: tokio::runtime::Runtime,
    /// A few connections, taken in turn: executions hold a stream each for as long as their
    /// command runs, and servers bound the streams of one connection (often to 100).
    channels: Vec<Channel>,
    next: std::sync::atomic::AtomicUsize,
    instance: String,
    headers: Vec<(AsciiMetadataKey, AsciiMetadataValue)>,
    timeout: Duration,
    url: String,
    /// The largest batch the server takes, in bytes of blob content.
    max_batch: usize,
}

/// A blob to upload: bytes in memory, or a file whose content must still be what `Digest`
/// names when it is read (it is re-hashed as it is sent).
pub enum Blob {
    Bytes(Vec<u8>),
    File(std::path::PathBuf),
}

/// What an execution given up because the build was interrupted says.
pub const CANCELLED: &str = "interrupted";

/// An upload refused because a file changed after its digest was taken (an input edited while
/// the build ran): the Action that names it is not trusted.
pub const EDITED: &str = "changed while it was uploaded";

impl Client {
    /// Opens `url` (`grpc://host:port` or `grpcs://host:port`, TLS verified against the
    /// system's roots) for `instance`, sending `headers` with every call, and asks for the
    /// server's capabilities.
    pub fn connect(
        url: &str,
        instance: &str,
        headers: &[(String, String)],
        timeout: Duration,
    ) -> Result<Client, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("{url}: not a grpc:// or grpcs:// address"))?;
        let tls = match scheme {
            "grpc" => false,
            "grpcs" => true,
            _ => return Err(format!("{url}: not a grpc:// or grpcs:// address")),
        };
        let authority = rest.trim_end_matches('/');
        let http = format!("{}://{authority}", if tls { "https" } else { "http" });
        let mut endpoint = Endpoint::from_shared(http)
            .map_err(|e| format!("{url}: {e}"))?
            .connect_timeout(timeout)
            // gRPC servers allow a ping every 5 minutes by default and hang up on clients
            // that ping more often.
            .http2_keep_alive_interval(Duration::from_secs(300))
            .keep_alive_timeout(Duration::from_secs(20));
        if tls {
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().with_native_roots())
                .map_err(|e| format!("{url}: {e}"))?;
        }
        let mut parsed = Vec::new();
        for (name, value) in headers {
            let key = AsciiMetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| format!("`{name}` cannot be sent as a gRPC header"))?;
            let value = AsciiMetadataValue::try_from(value.as_str())
                .map_err(|_| format!("the value of `{name}` cannot be sent as a gRPC header"))?;
            parsed.push((key, value));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kiln-remote")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the remote client: {e}"))?;
        let channels = {
            let _entered = rt.enter();
            (0..CONNECTIONS).map(|_| endpoint.connect_lazy()).collect()
        };
        let mut client = Client {
            rt,
            channels,
            next: std::sync::atomic::AtomicUsize::new(0),
            instance: instance.to_string(),
            headers: parsed,
            timeout,
            url: url.to_string(),
            max_batch: DEFAULT_BATCH,
        };
        let caps = client.capabilities()?;
        if let Some(cache) = &caps.cache_capabilities {
            let sha256 = re::digest_function::Value::Sha256 as i32;
            if !cache.digest_functions.is_empty() && !cache.digest_functions.contains(&sha256) {
                return Err(format!("{url}: the server does not take SHA-256 digests"));
            }
            if cache.max_batch_total_size_bytes > 0 {
                client.max_batch = (cache.max_batch_total_size_bytes as usize).min(DEFAULT_BATCH);
            }
        }
        Ok(client)
    }

    /// The next connection to use.
    fn channel(&self) -> Channel {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.channels[n % self.channels.len()].clone()
    }

    /// The address, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A request carrying the headers, bounded by the timeout unless `unbounded`.
    fn request<T>(&self, message: T, unbounded: bool) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        for (k, v) in &self.headers {
            request.metadata_mut().insert(k.clone(), v.clone());
        }
        if !unbounded {
            request.set_timeout(self.timeout);
        }
        request
    }

    /// Runs `future` on the client's runtime, bounded by the timeout (a server that accepts
    /// the connection and never answers).
    fn block<F: std::future::Future<Output = Result<T, tonic::Status>>, T>(
        &self,
        what: &str,
        future: F,
    ) -> Result<T, String> {
        let timeout = self.timeout;
        self.rt
            .block_on(async move { tokio::time::timeout(timeout, future).await })
            .map_err(|_| format!("{}: {what} timed out after {:?}", self.url, timeout))?
            .map_err(|s| self.status(what, &s))
    }

    fn status(&self, what: &str, s: &tonic::Status) -> String {
        format!("{}: {what}: {:?}: {}", self.url, s.code(), s.message())
    }

    /// GetCapabilities.
    pub fn capabilities(&self) -> Result<re::ServerCapabilities, String> {
        let mut c = CapabilitiesClient::new(self.channel());
        let req = self.request(
            re::GetCapabilitiesRequest {
                instance_name: self.instance.clone(),
            },
            false,
        );
        self.block("GetCapabilities", async move {
            c.get_capabilities(req).await.map(|r| r.into_inner())
        })
    }

    fn cas(&self) -> ContentAddressableStorageClient<Channel> {
        ContentAddressableStorageClient::new(self.channel())
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX)
    }

    /// Of `digests`, those the CAS lacks.
    pub fn find_missing(&self, digests: &[Digest]) -> Result<Vec<Digest>, String> {
        let mut cas = self.cas();
        let req = self.request(
            re::FindMissingBlobsRequest {
                instance_name: self.instance.clone(),
                blob_digests: digests.iter().map(to_proto).collect(),
                digest_function: 0,
            },
            false,
        );
        let missing = self.block("FindMissingBlobs", async move {
            cas.find_missing_blobs(req).await.map(|r| r.into_inner())
        })?;
        missing
            .missing_blob_digests
            .iter()
            .map(|d| from_proto(d).ok_or_else(|| format!("{}: a malformed digest", self.url)))
            .collect()
    }

    /// Uploads blobs: small ones in batches, larger ones through ByteStream. Returns the bytes
    /// sent. A file whose content no longer matches its digest fails the upload ([`EDITED`]).
    pub fn upload(&self, blobs: &[(Digest, &Blob)]) -> Result<u64, String> {
        let mut sent = 0;
        let mut batch: Vec<re::batch_update_blobs_request::Request> = Vec::new();
        let mut batch_size = 0;
        for (digest, blob) in blobs {
            let data = read_verified(digest, blob)?;
            sent += data.len() as u64;
            if data.len() + 1024 > self.max_batch {
                self.write_stream(digest, data)?;
                continue;
            }
            if batch_size + data.len() + 1024 > self.max_batch {
                self.update_batch(std::mem::take(&mut batch))?;
                batch_size = 0;
            }
            batch_size += data.len() + 128;
            batch.push(re::batch_update_blobs_request::Request {
                digest: Some(to_proto(digest)),
                data,
                compressor: 0,
            });
        }
        if !batch.is_empty() {
            self.update_batch(batch)?;
        }
        Ok(sent)
    }

    fn update_batch(&self, requests: Vec<re::batch_update_blobs_request::Request>) -> Result<(), String> {
        let mut cas = self.cas();
        let req = self.request(
            re::BatchUpdateBlobsRequest {
                instance_name: self.instance.clone(),
                requests,
                digest_function: 0,
            },
            false,
        );
        let resp = self.block("BatchUpdateBlobs", async move {
            cas.batch_update_blobs(req).await.map(|r| r.into_inner())
        })?;
        for r in resp.responses {
            if let Some(status) = r.status.filter(|s| s.code != 0) {
                return Err(format!(
                    "{}: BatchUpdateBlobs refused a blob: {}",
                    self.url, status.message
                ));
            }
        }
        Ok(())
    }

    fn write_stream(&self, digest: &Digest, data: Vec<u8>) -> Result<(), String> {
        let mut client = bs::byte_stream_client::ByteStreamClient::new(self.channel());
        let name = format!(
            "{}uploads/{}/blobs/{}/{}",
            self.prefix(),
            upload_id(),
            digest.hex(),
            digest.size
        );
        let mut messages = Vec::new();
        let mut offset = 0;
        loop {
            let end = (offset + CHUNK).min(data.len());
            messages.push(bs::WriteRequest {
                resource_name: if offset == 0 { name.clone() } else { String::new() },
                write_offset: offset as i64,
                finish_write: end == data.len(),
                data: data[offset..end].to_vec(),
            });
            offset = end;
            if offset == data.len() {
                break;
            }
        }
        let req = self.request(tokio_stream::iter(messages), false);
        let resp = self.block("ByteStream.Write", async move {
            client.write(req).await.map(|r| r.into_inner())
        })?;
        if resp.committed_size != digest.size as i64 && resp.committed_size != -1 {
            return Err(format!(
                "{}: ByteStream.Write committed {} of {} bytes",
                self.url, resp.committed_size, digest.size
            ));
        }
        Ok(())
    }

    fn prefix(&self) -> String {
        if self.instance.is_empty() {
            String::new()
        } else {
            format!("{}/", self.instance)
        }
    }

    /// A blob's bytes, verified against its digest; `None` if the CAS does not have it.
    pub fn read(&self, digest: &Digest) -> Result<Option<Vec<u8>>, String> {
        let data = if (digest.size as usize) + 1024 > self.max_batch {
            match self.read_stream(digest) {
                Err(e) if e.contains("NotFound") => return Ok(None),
                other => other?,
            }
        } else {
            let mut cas = self.cas();
            let req = self.request(
                re::BatchReadBlobsRequest {
                    instance_name: self.instance.clone(),
                    digests: vec![to_proto(digest)],
                    acceptable_compressors: Vec::new(),
                    digest_function: 0,
                },
                false,
            );
            let resp = self.block("BatchReadBlobs", async move {
                cas.batch_read_blobs(req).await.map(|r| r.into_inner())
            })?;
            let r = resp
                .responses
                .into_iter()
                .next()
                .ok_or_else(|| format!("{}: BatchReadBlobs answered nothing", self.url))?;
            match r.status.map_or(0, |s| s.code) {
                0 => {}
                // NOT_FOUND: evicted, or never there.
                5 => return Ok(None),
                code => {
                    return Err(format!(
                        "{}: BatchReadBlobs: code {code} for blob {}",
                        self.url,
                        digest.hex()
                    ));
                }
            }
            r.data
        };
        if !digest.verifies(&data) {
            return Err(format!(
                "{}: the bytes sent for blob {} do not match its digest",
                self.url,
                digest.hex()
            ));
        }
        Ok(Some(data))
    }

    fn read_stream(&self, digest: &Digest) -> Result<Vec<u8>, String> {
        let mut client = bs::byte_stream_client::ByteStreamClient::new(self.channel());
        let req = self.request(
            bs::ReadRequest {
                resource_name: format!("{}blobs/{}/{}", self.prefix(), digest.hex(), digest.size),
                read_offset: 0,
                read_limit: 0,
            },
            false,
        );
        let limit = digest.size as usize;
        self.block("ByteStream.Read", async move {
            let mut stream = client.read(req).await?.into_inner();
            let mut data = Vec::with_capacity(limit);
            while let Some(chunk) = stream.message().await? {
                data.extend_from_slice(&chunk.data);
                if data.len() > limit {
                    break;
                }
            }
            Ok(data)
        })
    }

    /// The ActionCache's result for an Action, if it has one.
    pub fn action_result(&self, action: &Digest) -> Result<Option<re::ActionResult>, String> {
        let mut ac = ActionCacheClient::new(self.channel()).max_decoding_message_size(usize::MAX);
        let req = self.request(
            re::GetActionResultRequest {
                instance_name: self.instance.clone(),
                action_digest: Some(to_proto(action)),
                inline_stdout: true,
                inline_stderr: true,
                inline_output_files: Vec::new(),
                digest_function: 0,
            },
            false,
        );
        self.block("GetActionResult", async move {
            match ac.get_action_result(req).await {
                Ok(r) => Ok(Some(r.into_inner())),
                Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
                Err(s) => Err(s),
            }
        })
    }

    /// Stores a result in the ActionCache (after the blobs it names).
    pub fn update_action_result(&self, action: &Digest, result: re::ActionResult) -> Result<(), String> {
        let mut ac = ActionCacheClient::new(self.channel());
        let req = self.request(
            re::UpdateActionResultRequest {
                instance_name: self.instance.clone(),
                action_digest: Some(to_proto(action)),
                action_result: Some(result),
                results_cache_policy: None,
                digest_function: 0,
            },
            false,
        );
        self.block("UpdateActionResult", async move {
            ac.update_action_result(req).await.map(|_| ())
        })
    }

    /// Runs an Action on the engine and waits for its result (the engine answers from its own
    /// cache unless `skip_cache`), at most `limit` once the engine has taken it.
    /// Gives up (an error naming [`CANCELLED`]) once `cancel` is set.
    pub fn execute(
        &self,
        action: &Digest,
        skip_cache: bool,
        limit: Option<Duration>,
        cancel: &std::sync::atomic::AtomicBool,
    ) -> Result<re::ExecuteResponse, String> {
        let mut exec = ExecutionClient::new(self.channel()).max_decoding_message_size(usize::MAX);
        let req = self.request(
            re::ExecuteRequest {
                instance_name: self.instance.clone(),
                skip_cache_lookup: skip_cache,
                action_digest: Some(to_proto(action)),
                ..Default::default()
            },
            true,
        );
        let url = self.url.clone();
        let taken = self.timeout;
        let done = self.rt.block_on(async move {
            // The engine takes the Action (its first answer) within the timeout; the execution
            // itself lasts as long as its command, bounded by `limit`.
            let first = tokio::time::timeout(taken, async {
                let mut stream = exec.execute(req).await?.into_inner();
                let op = stream.message().await?;
                Ok::<_, tonic::Status>((stream, op))
            });
            let (mut stream, mut first) = first
                .await
                .map_err(|_| tonic::Status::deadline_exceeded(format!("no answer within {taken:?}")))??;
            let wait = async move {
            let mut name = String::new();
            loop {
                while let Some(op) = match first.take() {
                    Some(op) => Some(op),
                    None => stream.message().await?,
                } {
                    if op.done {
                        return Ok(op);
                    }
                    name = op.name;
                }
                // The stream ended before the operation did: wait on it by name.
                if name.is_empty() {
                    return Err(tonic::Status::unavailable("the execution stream ended early"));
                }
                let wait = self.request(re::WaitExecutionRequest { name: name.clone() }, true);
                stream = exec.wait_execution(wait).await?.into_inner();
            }
            };
            let bounded = async move {
                match limit {
                    Some(limit) => tokio::time::timeout(limit, wait).await.map_err(|_| {
                        tonic::Status::deadline_exceeded(format!("the Action ran past {limit:?}"))
                    })?,
                    None => wait.await,
                }
            };
            let interrupted = async {
                while !cancel.load(std::sync::atomic::Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            };
            tokio::select! {
                done = bounded => done,
                () = interrupted => Err(tonic::Status::cancelled(CANCELLED)),
            }
        });
        let op = done.map_err(|s| self.status("Execute", &s))?;
        match op.result {
            Some(operation::Result::Response(any)) => re::ExecuteResponse::decode(any.value.as_slice())
                .map_err(|e| format!("{url}: a malformed ExecuteResponse: {e}")),
            Some(operation::Result::Error(status)) => Err(format!(
                "{url}: Execute failed: code {}: {}",
                status.code, status.message
            )),
            None => Err(format!("{url}: Execute finished without a result")),
        }
    }
}

/// A blob's bytes; a file's are checked against the digest they were named by.
fn read_verified(digest: &Digest, blob: &Blob) -> Result<Vec<u8>, String> {
    match blob {
        Blob::Bytes(b) => Ok(b.clone()),
        Blob::File(path) => {
            let data = std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
            if !digest.verifies(&data) {
                return Err(format!("`{}` {EDITED}", path.display()));
            }
            Ok(data)
        }
    }
}

/// A name for one upload, unique enough among a build's concurrent writes.
fn upload_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let h = blake3::hash(format!("{}-{t}-{n}", std::process::id()).as_bytes());
    let b = h.as_bytes();
    // A UUID's form (version 4 bits set), as engines expect.
    format!(
        "{}-{}-4{}-8{}-{}",
        crate::cache::hex(&b[0..4]),
        crate::cache::hex(&b[4..6]),
        &crate::cache::hex(&b[6..8])[1..],
        &crate::cache::hex(&b[8..10])[1..],
        crate::cache::hex(&b[10..16])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_edited_after_its_digest_was_taken_is_not_uploaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.c");
        std::fs::write(&path, "int a;\n").unwrap();
        let digest = Digest::of(b"int a;\n");
        let blob = Blob::File(path.clone());
        assert_eq!(read_verified(&digest, &blob).unwrap(), b"int a;\n");
        std::fs::write(&path, "int b;\n").unwrap();
        let err = read_verified(&digest, &blob).unwrap_err();
        assert!(err.contains(EDITED), "{err}");
    }

    #[test]
    fn upload_names_look_like_uuids() {
        let id = upload_id();
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(&id[14..15], "4");
        assert_ne!(upload_id(), id);
    }
}
