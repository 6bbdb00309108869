//! Remote execution and the Remote Execution API's cache, for one build: a job the driver gave
//! a [`Spec`] is looked up in the ActionCache by its Action digest; on a miss, with `--remote`,
//! its inputs the engine lacks are uploaded (re-hashed as they are sent: a file edited meanwhile
//! is never trusted) and the Action runs on the engine; outputs come back verified against their
//! digests and are written into the build directory. With only `--remote-cache grpc://...`, a
//! miss runs locally and a successful run's result is stored under the same Action digest.
//!
//! An engine in trouble (unreachable, timing out, failing a call, lying about a digest) is
//! warned about once; from then on every job of the build runs locally. A command that fails
//! remotely while naming a project file its task does not declare is reported as a missing
//! dependency.

pub mod action;
pub mod client;

use crate::cache::Digest;
pub use action::{FileDigests, Spec};
use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use client::{Blob, Client};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A remote engine or cache as a build uses it.
pub struct Remote {
    pub client: Client,
    /// The project root: the Actions' working directory and where outputs are written.
    pub root: PathBuf,
    /// Run Actions on the engine (`--remote`); otherwise only look results up and store them.
    pub execute: bool,
    /// Store no results (`--cache-readonly`).
    pub readonly: bool,
    pub digests: FileDigests,
    /// How long an execution may take once the engine has it (`--timeout`); past it, trouble.
    pub limit: Option<std::time::Duration>,
    /// Set at the first trouble: nothing more is asked of the engine in this build.
    gone: Mutex<bool>,
    /// Set when the build is interrupted: executions in flight are given up.
    cancelled: std::sync::atomic::AtomicBool,
    pub counts: Counts,
}

/// What a build did remotely.
#[derive(Default, Debug)]
pub struct Counts {
    /// Results found in the ActionCache (or answered from the engine's cache).
    pub hits: AtomicU64,
    /// Actions the engine ran.
    pub executed: AtomicU64,
    /// Results of local runs stored in the ActionCache.
    pub stored: AtomicU64,
    /// Blob bytes sent (inputs, Actions, outputs of local runs) and received (outputs).
    pub uploaded: AtomicU64,
    pub downloaded: AtomicU64,
    /// Blobs named by Actions, and those the engine lacked.
    pub blobs_named: AtomicU64,
    pub blobs_missing: AtomicU64,
}

/// How a job went remotely.
pub enum Outcome {
    /// Done without running locally: the exit code, what the command printed (stdout then
    /// stderr), and whether the result came from a cache.
    Done {
        exit_code: i32,
        output: Vec<u8>,
        cached: bool,
    },
    /// Run it locally. `warning`: the trouble that made this build give the engine up, said
    /// once. `action`: the Action to store the local run's result under.
    Local {
        warning: Option<String>,
        action: Option<action::Action>,
    },
    /// The build was interrupted while the engine ran it.
    Interrupted,
}

/// Why a result was not taken.
enum Refusal {
    /// Not a result kiln can restore (an output that is not a file, one missing, a blob the
    /// CAS no longer has): the task runs, and the engine is still asked about others.
    Unusable,
    /// The engine misbehaved (a lying digest, a failed call).
    Trouble(String),
}

/// Whether `url` names a Remote Execution API endpoint (`grpc://`, `grpcs://`).
pub fn is_grpc(url: &str) -> bool {
    url.starts_with("grpc://") || url.starts_with("grpcs://")
}

impl Remote {
    pub fn new(client: Client, root: &Path, execute: bool, readonly: bool) -> Remote {
        Remote {
            client,
            root: root.to_path_buf(),
            execute,
            readonly,
            digests: FileDigests::default(),
            limit: None,
            gone: Mutex::new(false),
            cancelled: std::sync::atomic::AtomicBool::new(false),
            counts: Counts::default(),
        }
    }

    /// Gives up the executions in flight: the build is stopping.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// Whether the engine has been given up in this build.
    pub fn gone(&self) -> bool {
        *self.gone.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives the engine up; returns the warning to show if this was the first trouble.
    fn trouble(&self, why: String) -> Option<String> {
        let mut gone = self.gone.lock().unwrap_or_else(|e| e.into_inner());
        if *gone {
            return None;
        }
        *gone = true;
        let rest = if self.execute {
            "the rest of the build runs locally"
        } else {
            "building without it"
        };
        Some(format!("warning: remote {why}; {rest}"))
    }

    fn local(&self, why: Option<String>, action: Option<action::Action>) -> Outcome {
        Outcome::Local {
            warning: why.and_then(|w| self.trouble(w)),
            action,
        }
    }

    /// Runs (or finds) a job's commands remotely.
    pub fn run(&self, commands: &[String], spec: &Spec) -> Outcome {
        if self.gone() {
            return self.local(None, None);
        }
        let action = match action::build(&self.root, commands, spec, &self.digests) {
            Ok(a) => a,
            // An input that cannot be read: the local run will say what is wrong.
            Err(_) => return self.local(None, None),
        };
        if !spec.do_not_cache {
            match self.client.action_result(&action.digest) {
                // A failure kept by a cache is not trusted: the command runs again.
                Ok(Some(result)) if result.exit_code == 0 => match self.take(&result, spec) {
                    Ok(output) => {
                        self.counts.hits.fetch_add(1, Ordering::Relaxed);
                        return Outcome::Done {
                            exit_code: 0,
                            output,
                            cached: true,
                        };
                    }
                    Err(Refusal::Unusable) => {}
                    Err(Refusal::Trouble(why)) => return self.local(Some(why), None),
                },
                Ok(_) => {}
                Err(why) => return self.local(Some(why), None),
            }
        }
        if !self.execute {
            return self.local(None, Some(action));
        }
        if let Err(why) = self.upload_missing(&action) {
            return match why.contains(client::EDITED) {
                // An input edited as it was sent: the Action names bytes that are no longer
                // there. The local run sees the file as it is now.
                true => self.local(None, None),
                false => self.local(Some(why), None),
            };
        }
        let url = self.client.url();
        let response = match self.client.execute(&action.digest, false, self.limit, &self.cancelled) {
            Ok(r) => r,
            Err(why) if self.cancelled.load(Ordering::SeqCst) && why.contains(client::CANCELLED) => {
                return Outcome::Interrupted;
            }
            Err(why) => return self.local(Some(why), None),
        };
        if let Some(status) = response.status.as_ref().filter(|s| s.code != 0) {
            let why = format!(
                "{url}: the engine could not run an Action: code {}: {}",
                status.code, status.message
            );
            return self.local(Some(why), None);
        }
        let Some(result) = response.result else {
            return self.local(Some(format!("{url}: an execution without a result")), None);
        };
        // A command that failed with headers from an older run's depfile may only lack a
        // header added since: locally, the compiler finds it.
        if result.exit_code != 0 && spec.retry_locally {
            return self.local(None, None);
        }
        match self.take(&result, spec) {
            Ok(mut output) => {
                if response.cached_result {
                    self.counts.hits.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.counts.executed.fetch_add(1, Ordering::Relaxed);
                }
                if result.exit_code != 0 {
                    output.extend(self.undeclared(commands, spec, &output));
                }
                Outcome::Done {
                    exit_code: result.exit_code,
                    output,
                    cached: response.cached_result,
                }
            }
            // Outputs kiln cannot take (a symlink, a directory, one missing): it runs here.
            Err(Refusal::Unusable) => self.local(None, None),
            Err(Refusal::Trouble(why)) => self.local(Some(why), None),
        }
    }

    /// Uploads the blobs of `action` that the engine lacks, counting what it named and lacked.
    fn upload_missing(&self, action: &action::Action) -> Result<(), String> {
        let missing = self.send_missing(&action.blobs)?;
        let named = action.blobs.len() as u64;
        self.counts.blobs_named.fetch_add(named, Ordering::Relaxed);
        self.counts.blobs_missing.fetch_add(missing, Ordering::Relaxed);
        Ok(())
    }

    /// Sends each of `blobs` the CAS lacks, once; returns how many it lacked.
    fn send_missing(&self, blobs: &[(Digest, Blob)]) -> Result<u64, String> {
        let digests: Vec<Digest> = blobs.iter().map(|(d, _)| *d).collect();
        let missing = self.client.find_missing(&digests)?;
        let lacked = missing.len() as u64;
        let missing: std::collections::HashSet<Digest> = missing.into_iter().collect();
        let mut sent = std::collections::HashSet::new();
        let wanted: Vec<(Digest, &Blob)> = blobs
            .iter()
            .filter(|(d, _)| missing.contains(d) && sent.insert(*d))
            .map(|(d, b)| (*d, b))
            .collect();
        let bytes = self.client.upload(&wanted)?;
        self.counts.uploaded.fetch_add(bytes, Ordering::Relaxed);
        Ok(lacked)
    }

    /// Takes a result whole or not at all: it must name every declared output as a file and
    /// nothing else, and every blob must come back verified before any is written. Returns what
    /// the command printed.
    // The symlink lists older engines fill are looked at too.
    #[allow(deprecated)]
    fn take(&self, result: &re::ActionResult, spec: &Spec) -> Result<Vec<u8>, Refusal> {
        if !result.output_directories.is_empty()
            || !result.output_file_symlinks.is_empty()
            || !result.output_symlinks.is_empty()
            || !result.output_directory_symlinks.is_empty()
            || result.output_files.len() != spec.outputs.len()
        {
            return Err(Refusal::Unusable);
        }
        let mut files = Vec::new();
        for path in &spec.outputs {
            let file = result
                .output_files
                .iter()
                .find(|f| &f.path == path)
                .ok_or(Refusal::Unusable)?;
            let digest = file.digest.as_ref().and_then(from_proto).ok_or_else(|| {
                Refusal::Trouble(format!("{}: a result with a malformed digest", self.client.url()))
            })?;
            let data = if !file.contents.is_empty() && digest.verifies(&file.contents) {
                file.contents.clone()
            } else {
                self.fetch(&digest)?
            };
            files.push((path, data, file.is_executable));
        }
        let mut output = self.printed(&result.stdout_raw, result.stdout_digest.as_ref())?;
        output.extend(self.printed(&result.stderr_raw, result.stderr_digest.as_ref())?);
        for (path, data, executable) in files {
            self.counts
                .downloaded
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            crate::cache::write_output(&self.root.join(path), &data, executable).map_err(|e| {
                Refusal::Trouble(format!("cannot write `{path}`: {e}"))
            })?;
        }
        Ok(output)
    }

    /// A blob from the CAS: missing is a result kiln cannot use, anything else trouble.
    fn fetch(&self, digest: &Digest) -> Result<Vec<u8>, Refusal> {
        match self.client.read(digest) {
            Ok(Some(data)) => Ok(data),
            Ok(None) => Err(Refusal::Unusable),
            Err(why) => Err(Refusal::Trouble(why)),
        }
    }

    fn printed(&self, raw: &[u8], digest: Option<&re::Digest>) -> Result<Vec<u8>, Refusal> {
        match digest.and_then(from_proto) {
            Some(d) if raw.is_empty() && d.size > 0 => self.fetch(&d),
            _ => Ok(raw.to_vec()),
        }
    }

    /// After a failed remote run: the project files its output names that the Action did not
    /// hold, said as a missing dependency.
    fn undeclared(&self, commands: &[String], spec: &Spec, output: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(output);
        // Where a name may be relative to: the root, and each -I directory of the commands.
        let mut dirs = vec![String::new()];
        for c in commands {
            let words: Vec<&str> = c.split_whitespace().collect();
            for (i, w) in words.iter().enumerate() {
                let dir = match w.strip_prefix("-I") {
                    Some("") => words.get(i + 1).copied().unwrap_or(""),
                    Some(d) => d,
                    None => continue,
                };
                if action::portable(dir) {
                    dirs.push(format!("{dir}/"));
                }
            }
        }
        let mut named: Vec<String> = Vec::new();
        let separators = |c: char| c.is_whitespace() || "'\"`:,;()<>[]{}".contains(c);
        for word in text.split(separators) {
            let word = word.trim_start_matches("./");
            if word.is_empty() || !action::portable(word) {
                continue;
            }
            for dir in &dirs {
                let path = format!("{dir}{word}");
                if !spec.inputs.contains(&path)
                    && !spec.outputs.contains(&path)
                    && !named.contains(&path)
                    && self.root.join(&path).is_file()
                {
                    named.push(path);
                }
            }
        }
        named
            .iter()
            .map(|p| {
                format!(
                    "kiln: the command failed remotely, where it saw only what its task declares; \
                     it names `{p}`, which the task does not declare: a missing dependency, not a \
                     flake (add it to the generator's `deps`, or give the rule `remote = false`)\n"
                )
            })
            .collect::<String>()
            .into_bytes()
    }

    /// After a successful local run of a job looked up and missed: stores its result under
    /// its Action, unless an input changed meanwhile (the Action is taken again from the files
    /// as they are now) or the cache is read-only.
    /// Returns the warning to show if the store was this build's first trouble.
    pub fn store(
        &self,
        action: &action::Action,
        commands: &[String],
        spec: &Spec,
        printed: &[u8],
    ) -> Option<String> {
        if self.readonly || spec.do_not_cache || self.gone() {
            return None;
        }
        let now = action::build(&self.root, commands, spec, &FileDigests::default()).ok()?;
        if now.digest != action.digest {
            return None;
        }
        let mut result = re::ActionResult::default();
        let mut blobs = Vec::new();
        let mut outputs: Vec<&String> = spec.outputs.iter().collect();
        outputs.sort_unstable();
        for path in outputs {
            let (data, exec) = crate::cache::read_output(&self.root.join(path)).ok()?;
            let digest = Digest::of(&data);
            result.output_files.push(re::OutputFile {
                path: path.clone(),
                digest: Some(to_proto(&digest)),
                is_executable: exec,
                ..Default::default()
            });
            blobs.push((digest, Blob::Bytes(data)));
        }
        if !printed.is_empty() {
            let digest = Digest::of(printed);
            result.stdout_digest = Some(to_proto(&digest));
            blobs.push((digest, Blob::Bytes(printed.to_vec())));
        }
        let stored = self
            .send_missing(&blobs)
            .and_then(|_| self.client.update_action_result(&action.digest, result));
        match stored {
            Ok(()) => {
                self.counts.stored.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(why) => self.trouble(why),
        }
    }
}

/// The API's form of a digest.
pub fn to_proto(d: &Digest) -> re::Digest {
    re::Digest {
        hash: d.hex(),
        size_bytes: d.size as i64,
    }
}

/// A digest from the API's form, if well formed.
pub fn from_proto(d: &re::Digest) -> Option<Digest> {
    Some(Digest {
        sha256: crate::cache::unhex(d.hash.as_bytes())?,
        size: u64::try_from(d.size_bytes).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_travel_as_hex_and_size() {
        let d = Digest::of(b"abc");
        let p = to_proto(&d);
        assert_eq!(p.size_bytes, 3);
        assert_eq!(from_proto(&p), Some(d));
        assert_eq!(
            from_proto(&re::Digest {
                hash: "zz".into(),
                size_bytes: 1
            }),
            None
        );
    }
}
