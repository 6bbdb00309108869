//! A task as a Remote Execution API Action: its Command (`/bin/sh -c` with its commands, the
//! environment it is given, its outputs), an input root built as a Merkle tree of `Directory`
//! messages holding exactly its declared inputs, manual dependencies and known implicit
//! dependencies (paths from the project root, which is the Action's working directory), and the
//! platform properties of `[remote] platform`. Files are named by SHA-256 digests taken once a
//! build ([`FileDigests`]); the blobs an Action needs are listed for upload.

use super::client::Blob;
use crate::cache::Digest;
use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use prost::Message;
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The PATH an Action runs with when the task's environment names none: the platform's tools
/// are found where a Debian or Ubuntu system keeps them.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// What a job needs to run remotely, in the runner's terms (paths and strings, no graph).
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// Files the command may read, relative to the project root.
    pub inputs: Vec<String>,
    /// Files the command writes (its depfile among them), relative to the project root.
    pub outputs: Vec<String>,
    /// The Action's whole environment.
    pub env: Vec<(String, String)>,
    /// `[remote] platform`.
    pub platform: Vec<(String, String)>,
    /// Results never go to the ActionCache (`always`, `nocache`).
    pub do_not_cache: bool,
    /// The implicit dependencies are an older run's (a depfile, no scanner): a remote failure
    /// may only mean a header added since, and the task runs again locally.
    pub retry_locally: bool,
}

/// An Action ready to send.
pub struct Action {
    pub digest: Digest,
    /// Every blob the Action names (itself, its Command, the input root's directories and
    /// files).
    pub blobs: Vec<(Digest, Blob)>,
}

/// Content digests of the project's files, taken once a build, and whether each is executable.
#[derive(Default)]
pub struct FileDigests {
    known: Mutex<HashMap<PathBuf, (Digest, bool)>>,
}

impl FileDigests {
    fn get(&self, path: &Path) -> Result<(Digest, bool), String> {
        if let Some(d) = self.known.lock().unwrap_or_else(|e| e.into_inner()).get(path) {
            return Ok(*d);
        }
        let meta = std::fs::metadata(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!("`{}` is not a file", path.display()));
        }
        let data = std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        let d = (Digest::of(&data), meta.permissions().mode() & 0o111 != 0);
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_path_buf(), d);
        Ok(d)
    }
}

/// Whether a path can name a file inside an input root: relative, and never leaving it.
pub fn portable(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

/// The shell script that runs a command chain as the local runner does: each in order, all
/// must succeed.
pub fn script(commands: &[String]) -> String {
    match commands {
        [one] => one.clone(),
        many => many
            .iter()
            .map(|c| format!("(\n{c}\n)"))
            .collect::<Vec<_>>()
            .join(" &&\n"),
    }
}

/// Builds the Action of `commands` under `spec`, the inputs read from under `root`.
pub fn build(root: &Path, commands: &[String], spec: &Spec, digests: &FileDigests) -> Result<Action, String> {
    let mut blobs = Vec::new();
    // The input root, directory by directory: files and subdirectories by name.
    #[derive(Default)]
    struct Dir {
        files: BTreeMap<String, (Digest, bool)>,
        dirs: BTreeMap<String, Dir>,
    }
    let mut top = Dir::default();
    let mut inputs: Vec<&String> = spec.inputs.iter().collect();
    inputs.sort_unstable();
    inputs.dedup();
    for path in inputs {
        if !portable(path) {
            return Err(format!("`{path}` is outside the project"));
        }
        let abs = root.join(path);
        let (digest, exec) = digests.get(&abs)?;
        let mut parts: Vec<&str> = path.split('/').collect();
        let name = parts.pop().expect("a path has a last part");
        let mut dir = &mut top;
        for p in parts {
            dir = dir.dirs.entry(p.to_string()).or_default();
        }
        if dir.files.insert(name.to_string(), (digest, exec)).is_none() {
            blobs.push((digest, Blob::File(abs)));
        }
    }
    fn encode(dir: &Dir, blobs: &mut Vec<(Digest, Blob)>) -> Digest {
        let mut message = re::Directory::default();
        for (name, (digest, exec)) in &dir.files {
            message.files.push(re::FileNode {
                name: name.clone(),
                digest: Some(super::to_proto(digest)),
                is_executable: *exec,
                node_properties: None,
            });
        }
        for (name, sub) in &dir.dirs {
            let digest = encode(sub, blobs);
            message.directories.push(re::DirectoryNode {
                name: name.clone(),
                digest: Some(super::to_proto(&digest)),
            });
        }
        let bytes = message.encode_to_vec();
        let digest = Digest::of(&bytes);
        blobs.push((digest, Blob::Bytes(bytes)));
        digest
    }
    let input_root = encode(&top, &mut blobs);

    let mut env: Vec<(String, String)> = spec.env.clone();
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".to_string(), DEFAULT_PATH.to_string()));
    }
    env.sort();
    env.dedup_by(|a, b| a.0 == b.0);
    let mut outputs: Vec<String> = spec.outputs.clone();
    for o in &outputs {
        if !portable(o) {
            return Err(format!("the output `{o}` is outside the project"));
        }
    }
    outputs.sort_unstable();
    outputs.dedup();
    let mut platform: Vec<(String, String)> = spec.platform.clone();
    platform.sort();
    let platform = (!platform.is_empty()).then(|| re::Platform {
        properties: platform
            .into_iter()
            .map(|(name, value)| re::platform::Property { name, value })
            .collect(),
    });
    // Outputs and the platform are named both where v2.0 engines look (output_files, the
    // Command's platform) and where later ones do (output_paths, the Action's platform).
    #[allow(deprecated)]
    let command = re::Command {
        arguments: vec!["/bin/sh".into(), "-c".into(), script(commands)],
        environment_variables: env
            .into_iter()
            .map(|(name, value)| re::command::EnvironmentVariable { name, value })
            .collect(),
        output_files: outputs.clone(),
        output_paths: outputs,
        platform: platform.clone(),
        ..Default::default()
    };
    let command_bytes = command.encode_to_vec();
    let command_digest = Digest::of(&command_bytes);
    blobs.push((command_digest, Blob::Bytes(command_bytes)));
    let action = re::Action {
        command_digest: Some(super::to_proto(&command_digest)),
        input_root_digest: Some(super::to_proto(&input_root)),
        do_not_cache: spec.do_not_cache,
        platform,
        ..Default::default()
    };
    let action_bytes = action.encode_to_vec();
    let digest = Digest::of(&action_bytes);
    blobs.push((digest, Blob::Bytes(action_bytes)));
    Ok(Action { digest, blobs })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (p, text) in files {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn spec(inputs: &[&str]) -> Spec {
        Spec {
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec!["build/a.o".into()],
            env: vec![("CC".into(), "cc".into())],
            ..Spec::default()
        }
    }

    #[test]
    fn the_same_task_in_two_checkouts_is_one_action() {
        let files = [("src/a.c", "int a;\n"), ("include/a.h", "#pragma once\n"), ("notes.txt", "x")];
        let (one, two) = (project(&files), project(&files));
        let cmd = vec!["cc -c src/a.c -o build/a.o".to_string()];
        let s = spec(&["src/a.c", "include/a.h"]);
        let a = build(one.path(), &cmd, &s, &FileDigests::default()).unwrap();
        let b = build(two.path(), &cmd, &s, &FileDigests::default()).unwrap();
        assert_eq!(a.digest, b.digest);
        // A file the task does not read changes nothing; one it reads changes the Action.
        std::fs::write(two.path().join("notes.txt"), "y").unwrap();
        let c = build(two.path(), &cmd, &s, &FileDigests::default()).unwrap();
        assert_eq!(a.digest, c.digest);
        std::fs::write(two.path().join("include/a.h"), "#pragma once\nint b;\n").unwrap();
        let d = build(two.path(), &cmd, &s, &FileDigests::default()).unwrap();
        assert_ne!(a.digest, d.digest);
        // Action, Command, the root, src/ and include/ directories, and the two files.
        assert_eq!(a.blobs.len(), 7);
    }

    #[test]
    fn paths_leaving_the_root_are_refused() {
        let p = project(&[("a.c", "")]);
        let cmd = vec!["true".to_string()];
        assert!(build(p.path(), &cmd, &spec(&["../a.c"]), &FileDigests::default()).is_err());
        assert!(build(p.path(), &cmd, &spec(&["/usr/include/stdio.h"]), &FileDigests::default()).is_err());
        assert!(portable("build/a.o") && !portable("./a") && !portable("a//b"));
    }

    #[test]
    fn a_chain_runs_each_command_in_order_and_stops_at_a_failure() {
        let s = script(&["echo a # note".to_string(), "false".to_string(), "echo c".to_string()]);
        let out = std::process::Command::new("/bin/sh").arg("-c").arg(&s).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a\n");
        assert!(!out.status.success());
    }
}
