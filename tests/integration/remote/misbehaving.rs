//! A Remote Execution API peer that misbehaves: a loopback gRPC server of the test's own whose
//! ActionCache has a result for every Action, naming an output by the digest of its right
//! content, and whose CAS then sends other bytes of the same size ([`Mode::Lies`]), or says it
//! no longer has the blob ([`Mode::Evicted`]); or whose results are of failed runs
//! ([`Mode::Failed`]). It records the headers of every call.

use crate::support::*;
use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use re::action_cache_server::{ActionCache, ActionCacheServer};
use re::capabilities_server::{Capabilities, CapabilitiesServer};
use re::content_addressable_storage_server::{
    ContentAddressableStorage, ContentAddressableStorageServer,
};
use std::sync::{Arc, Mutex};
use tonic::{Request, Response, Status};

const RIGHT: &[u8] = b"right\n";
const WRONG: &[u8] = b"wrong\n";

/// A call's method and its `x-kiln-test` header.
type Call = (String, Option<String>);

#[derive(Clone, Copy, Default, PartialEq)]
enum Mode {
    #[default]
    Lies,
    Evicted,
    Failed,
    /// Knows no result, and rewrites `Liar::edit` when asked which blobs it lacks: an input
    /// edited between kiln's hashing it and sending it.
    EditsInput,
}

#[derive(Clone, Default)]
struct Liar {
    mode: Mode,
    edit: Option<(std::path::PathBuf, &'static str)>,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Liar {
    fn note<T>(&self, method: &str, r: &Request<T>) {
        let header = r
            .metadata()
            .get("x-kiln-test")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        self.calls
            .lock()
            .unwrap()
            .push((method.to_string(), header));
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl Capabilities for Liar {
    async fn get_capabilities(
        &self,
        r: Request<re::GetCapabilitiesRequest>,
    ) -> Reply<re::ServerCapabilities> {
        self.note("GetCapabilities", &r);
        Ok(Response::new(re::ServerCapabilities {
            cache_capabilities: Some(re::CacheCapabilities {
                digest_functions: vec![re::digest_function::Value::Sha256 as i32],
                max_batch_total_size_bytes: 1 << 20,
                ..Default::default()
            }),
            ..Default::default()
        }))
    }
}

#[tonic::async_trait]
impl ActionCache for Liar {
    async fn get_action_result(
        &self,
        r: Request<re::GetActionResultRequest>,
    ) -> Reply<re::ActionResult> {
        self.note("GetActionResult", &r);
        if self.mode == Mode::EditsInput {
            return Err(Status::not_found("no"));
        }
        Ok(Response::new(re::ActionResult {
            output_files: vec![re::OutputFile {
                path: "build/a.out".into(),
                digest: Some(kiln::remote::to_proto(&kiln::cache::Digest::of(RIGHT))),
                ..Default::default()
            }],
            exit_code: if self.mode == Mode::Failed { 1 } else { 0 },
            ..Default::default()
        }))
    }

    async fn update_action_result(
        &self,
        r: Request<re::UpdateActionResultRequest>,
    ) -> Reply<re::ActionResult> {
        self.note("UpdateActionResult", &r);
        Err(Status::permission_denied("read-only"))
    }
}

type Nothing<T> = tokio_stream::Empty<Result<T, Status>>;

#[tonic::async_trait]
impl ContentAddressableStorage for Liar {
    async fn find_missing_blobs(
        &self,
        r: Request<re::FindMissingBlobsRequest>,
    ) -> Reply<re::FindMissingBlobsResponse> {
        self.note("FindMissingBlobs", &r);
        if let Some((path, text)) = &self.edit {
            std::fs::write(path, text).unwrap();
        }
        Ok(Response::new(re::FindMissingBlobsResponse {
            missing_blob_digests: r.into_inner().blob_digests,
        }))
    }

    async fn batch_update_blobs(
        &self,
        r: Request<re::BatchUpdateBlobsRequest>,
    ) -> Reply<re::BatchUpdateBlobsResponse> {
        self.note("BatchUpdateBlobs", &r);
        Err(Status::unimplemented("no"))
    }

    async fn batch_read_blobs(
        &self,
        r: Request<re::BatchReadBlobsRequest>,
    ) -> Reply<re::BatchReadBlobsResponse> {
        self.note("BatchReadBlobs", &r);
        let responses = r
            .into_inner()
            .digests
            .into_iter()
            .map(|d| match self.mode {
                Mode::Evicted => re::batch_read_blobs_response::Response {
                    digest: Some(d),
                    status: Some(bazel_remote_apis::google::rpc::Status {
                        code: tonic::Code::NotFound as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                _ => re::batch_read_blobs_response::Response {
                    digest: Some(d),
                    data: WRONG.to_vec(),
                    ..Default::default()
                },
            })
            .collect();
        Ok(Response::new(re::BatchReadBlobsResponse { responses }))
    }

    type GetTreeStream = Nothing<re::GetTreeResponse>;
    async fn get_tree(&self, _: Request<re::GetTreeRequest>) -> Reply<Self::GetTreeStream> {
        Err(Status::unimplemented("no"))
    }

    async fn split_blob(&self, _: Request<re::SplitBlobRequest>) -> Reply<re::SplitBlobResponse> {
        Err(Status::unimplemented("no"))
    }

    type GetChunkMappingStream = Nothing<re::GetChunkMappingResponse>;
    async fn get_chunk_mapping(
        &self,
        _: Request<re::GetChunkMappingRequest>,
    ) -> Reply<Self::GetChunkMappingStream> {
        Err(Status::unimplemented("no"))
    }

    async fn splice_blob(
        &self,
        _: Request<re::SpliceBlobRequest>,
    ) -> Reply<re::SpliceBlobResponse> {
        Err(Status::unimplemented("no"))
    }

    async fn register_chunk_mapping(
        &self,
        _: Request<tonic::Streaming<re::RegisterChunkMappingRequest>>,
    ) -> Reply<re::RegisterChunkMappingResponse> {
        Err(Status::unimplemented("no"))
    }
}

/// Serves `liar` on a loopback port of its own until the test process ends; its grpc:// URL.
fn serve(liar: Liar) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("grpc://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            tonic::transport::Server::builder()
                .add_service(CapabilitiesServer::new(liar.clone()))
                .add_service(ActionCacheServer::new(liar.clone()))
                .add_service(ContentAddressableStorageServer::new(liar))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
    });
    url
}

#[test]
fn a_remote_cache_lying_about_a_blob_is_one_warning_and_the_task_runs_locally_with_the_headers_sent()
 {
    let liar = Liar::default();
    let url = serve(liar.clone());
    let s = Space::new();
    s.write(
        "build.toml",
        r#"
[[gen]]
name = "a"
run = "cat ${SRC} > ${TGT}"
source = ["a.txt"]
target = "a.out"

[[gen]]
name = "b"
run = "cat ${SRC} > ${TGT}"
source = ["b.txt"]
target = "b.out"
"#,
    )
    .write("a.txt", RIGHT)
    .write("b.txt", "b\n");
    let run = s
        .kiln(&[
            "--remote-cache",
            &url,
            "--remote-header",
            "X-Kiln-Test: yes",
            "build",
            "-j1",
        ])
        .ok()
        .stderr_has("do not match its digest");
    assert_eq!(
        run.stderr.matches("warning: remote").count(),
        1,
        "{}",
        run.stderr
    );
    // Nothing unverified reached the build directory: both tasks ran.
    assert_eq!(s.read("build/a.out"), "right\n");
    assert_eq!(s.read("build/b.out"), "b\n");
    let calls = liar.calls.lock().unwrap().clone();
    assert!(
        calls.iter().any(|(m, _)| m == "BatchReadBlobs"),
        "{calls:?}"
    );
    for (method, header) in &calls {
        assert_eq!(
            header.as_deref(),
            Some("yes"),
            "{method} came without the header"
        );
    }

    // The same through --remote: the engine is not asked to run anything it lied about.
    s.kiln(&["clean"]).ok();
    let run = s.kiln(&["--remote", &url, "build", "-j1"]).ok();
    assert_eq!(
        run.stderr.matches("warning: remote").count(),
        1,
        "{}",
        run.stderr
    );
    assert_eq!(s.read("build/a.out"), "right\n");
}

#[test]
fn a_kept_failure_or_an_evicted_blob_is_a_quiet_miss_and_the_task_runs() {
    for mode in [Mode::Failed, Mode::Evicted] {
        let liar = Liar {
            mode,
            ..Liar::default()
        };
        let url = serve(liar.clone());
        let s = Space::new();
        s.write(
            "build.toml",
            "[[gen]]\nrun = \"cat ${SRC} > ${TGT}\"\nsource = [\"a.txt\"]\ntarget = \"a.out\"\n",
        )
        .write("a.txt", "mine\n");
        let run = s
            .kiln(&[
                "--remote-cache",
                &url,
                "build",
                "--cache-readonly",
                "-d",
                "stats",
            ])
            .ok()
            .stderr_lacks("warning");
        assert_eq!(run.stats_count("remote hits"), 0);
        assert_eq!(s.read("build/a.out"), "mine\n");
        let calls = liar.calls.lock().unwrap().clone();
        assert!(
            calls.iter().any(|(m, _)| m == "GetActionResult"),
            "{calls:?}"
        );
    }
}

#[test]
fn an_input_edited_while_it_is_uploaded_is_never_sent_and_the_task_runs_on_the_new_bytes() {
    let s = Space::new();
    s.write(
        "build.toml",
        "[[gen]]\nrun = \"cat ${SRC} > ${TGT}\"\nsource = [\"a.txt\"]\ntarget = \"a.out\"\n",
    )
    .write("a.txt", "old\n");
    let liar = Liar {
        mode: Mode::EditsInput,
        edit: Some((s.path("a.txt"), "new\n")),
        ..Liar::default()
    };
    let url = serve(liar.clone());
    // Not the engine's trouble: kiln says what it says of any input edited during a build.
    s.kiln(&["--remote", &url, "build"])
        .ok()
        .stderr_lacks("warning: remote")
        .stderr_has("`a.txt` changed while");
    assert_eq!(s.read("build/a.out"), "new\n");
    let calls = liar.calls.lock().unwrap().clone();
    let methods: Vec<&str> = calls.iter().map(|(m, _)| m.as_str()).collect();
    assert!(methods.contains(&"FindMissingBlobs"), "{methods:?}");
    assert!(!methods.contains(&"BatchUpdateBlobs"), "{methods:?}");
}
