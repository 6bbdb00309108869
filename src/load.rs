//! Loading the build file. A [`Workspace`] is the build file (given with `-f`, or `build.toml` in
//! the current directory or its nearest parent) and what the command line adds to it (`-D`,
//! `--out`). From it kiln reads and hashes the build file, finds its state before parsing anything
//! (from a hint of where the build directory is), and loads a project: from the graph cache when
//! that is still valid, else by parsing, validating and expanding.

use crate::graph_cache::{self, GraphId, Key};
use crate::error::Error;
use crate::filestate::FsClock;
use crate::filestate::Hash;
use crate::generator::Expansion;
use crate::manifest::PostMode;
use crate::outdir::STATE_DIR;
use crate::configure;
use crate::parsed::Parsed;
use crate::paths::{self, absolute};
use crate::project::{Overrides, Project};
use crate::stats;
use std::path::{Path, PathBuf};

/// The name of the build file kiln looks for.
pub const BUILD_FILE: &str = "build.toml";

/// Where to find the project and what the command line adds to it.
#[derive(Debug, Clone, Default)]
pub struct Location {
    /// `-C DIR`: act as if started there.
    pub dir: Option<PathBuf>,
    /// `-f FILE`.
    pub file: Option<PathBuf>,
    /// `--out DIR`, relative to the current directory.
    pub out: Option<PathBuf>,
    /// `-D NAME=VALUE`.
    pub defines: Vec<(String, String)>,
    /// `--variant NAME`.
    pub variant: Option<String>,
}

pub struct Workspace {
    /// The build file, canonical.
    pub build_file: PathBuf,
    /// Its name as the user would type it.
    pub display: String,
    pub overrides: Overrides,
}

/// A project ready to build: its tasks for every group expanded so far.
pub struct Loaded {
    pub project: Project,
    pub expansion: Expansion,
    /// Read from the graph cache with this id rather than parsed.
    pub from_cache: Option<GraphId>,
    /// What to record in the graph cache once the expansion is known to be good.
    pub cache_key: Option<Key>,
    /// Lines for the user from loading (`[configure]`'s).
    pub messages: Vec<String>,
}

/// The build file as read for a build.
pub struct BuildFile {
    bytes: Vec<u8>,
    hash: Hash,
    overrides: Hash,
    /// `<out>/.kiln`, where the graph cache is.
    pub state_dir: PathBuf,
}

impl Workspace {
    /// Finds the build file.
    pub fn locate(location: &Location) -> Result<Workspace, Error> {
        let cwd = std::env::current_dir()
            .map_err(|e| Error::io("cannot read the current directory", e))?;
        let cwd = match &location.dir {
            Some(d) => {
                let d = cwd.join(d);
                if !d.is_dir() {
                    return Err(Error::Usage(format!(
                        "-C {}: no such directory",
                        d.display()
                    )));
                }
                d.canonicalize()
                    .map_err(|e| Error::io(format!("cannot resolve {}", d.display()), e))?
            }
            None => cwd,
        };
        let (path, display) = match &location.file {
            Some(f) => {
                let path = cwd.join(f);
                if !path.is_file() {
                    return Err(Error::Usage(format!(
                        "-f {}: no such build file",
                        f.display()
                    )));
                }
                (path, f.display().to_string())
            }
            None => find(&cwd)?,
        };
        let build_file = path
            .canonicalize()
            .map_err(|e| Error::io(format!("cannot resolve {display}"), e))?;
        let overrides = Overrides {
            defines: location.defines.clone(),
            out: location.out.as_ref().map(|o| cwd.join(o)),
            variant: location.variant.clone(),
        };
        Ok(Workspace {
            build_file,
            display,
            overrides,
        })
    }

    /// Parses and validates the build file, with `[configure]`'s results as last cached.
    pub fn load(&self) -> Result<Project, Error> {
        self.load_with(&mut configure::Mode::Cached)
    }

    /// Parses the build file with `[configure]`'s results, running its checks first when their
    /// cache is missing or stale (as a build does); each line it prints goes to `say`.
    pub fn load_configured(&self, say: &mut dyn FnMut(String)) -> Result<Project, Error> {
        self.run_configure(false, say)
    }

    /// `kiln configure`: parses the build file and runs `[configure]` now, whatever its cache
    /// says; each line it prints goes to `say`.
    pub fn configure(&self, say: &mut dyn FnMut(String)) -> Result<Project, Error> {
        self.run_configure(true, say)
    }

    fn run_configure(&self, force: bool, say: &mut dyn FnMut(String)) -> Result<Project, Error> {
        let defines = self.overrides.defines.clone();
        self.load_with(&mut configure::Mode::Run(configure::Context {
            defines: &defines,
            force,
            say,
        }))
    }

    /// Reads, parses and validates the build file, getting `[configure]`'s results as `mode`
    /// says.
    fn load_with(&self, mode: &mut configure::Mode) -> Result<Project, Error> {
        let bytes = std::fs::read(&self.build_file)
            .map_err(|e| Error::io(format!("cannot read {}", self.display), e))?;
        Project::from_bytes_with(
            bytes,
            &self.build_file,
            &self.display,
            &self.overrides,
            &mut Parsed::default(),
            mode,
        )
    }

    /// Reads the build file and finds where its state would be, without parsing it.
    pub fn read_build_file(&self) -> Result<BuildFile, Error> {
        let bytes = std::fs::read(&self.build_file)
            .map_err(|e| Error::io(format!("cannot read {}", self.display), e))?;
        let hash = *blake3::hash(&bytes).as_bytes();
        let overrides = graph_cache::overrides_digest(&self.overrides);
        let root = self.build_file.parent().unwrap_or(Path::new("/"));
        let out_dir = match &self.overrides.out {
            Some(o) => PathBuf::from(paths::normalize(&o.to_string_lossy())),
            None => absolute(
                root,
                &paths::normalize(&out_hint(
                    &String::from_utf8_lossy(&bytes),
                    self.overrides.variant.as_deref(),
                )),
            ),
        };
        stats::mark("read build file");
        Ok(BuildFile {
            bytes,
            hash,
            overrides,
            state_dir: out_dir.join(STATE_DIR),
        })
    }

    /// The graph cache's head, if the cache is valid for this build file.
    pub fn open_cache(&self, file: &BuildFile) -> Option<graph_cache::Opened> {
        let opened = graph_cache::open(
            &file.state_dir.join("graph"),
            &self.build_file,
            &file.hash,
            &file.overrides,
        );
        stats::mark("open cache");
        // The cache must be the one of the build directory it was found in.
        opened.filter(|o| absolute(&o.root, &o.out).join(STATE_DIR) == file.state_dir)
    }

    /// Loads the project for a build: from the graph cache when it is valid (`cached`), else by
    /// parsing the build file and expanding the groups that expand before anything runs (all of
    /// them, or the first of a lazy project).
    pub fn load_for_build(
        &self,
        file: BuildFile,
        cached: Option<graph_cache::Opened>,
        dry_run: bool,
    ) -> Result<Loaded, Error> {
        if let Some(opened) = cached {
            let id = opened.id;
            if let Some((project, expansion, key)) = opened.load() {
                stats::mark("load cache");
                return Ok(Loaded {
                    project,
                    expansion,
                    from_cache: Some(id),
                    cache_key: Some(key),
                    messages: Vec::new(),
                });
            }
        }
        let BuildFile {
            bytes,
            hash: file_hash,
            overrides,
            ..
        } = file;
        let mut parsed = Parsed::open(&file.state_dir.join("parsed"));
        // `[configure]` runs when what it depends on changed; a dry run changes nothing and takes
        // what the cache holds.
        let mut messages = Vec::new();
        let defines = self.overrides.defines.clone();
        let mut say = |line: String| messages.push(line);
        let mut mode = if dry_run {
            configure::Mode::Cached
        } else {
            configure::Mode::Run(configure::Context {
                defines: &defines,
                force: false,
                say: &mut say,
            })
        };
        let project = Project::from_bytes_with(
            bytes,
            &self.build_file,
            &self.display,
            &self.overrides,
            &mut parsed,
            &mut mode,
        )?;
        stats::mark("parse");
        let mut expansion = Expansion::new(&project)?;
        // A clock reading before the globs run, for the cache; only where kiln's state already
        // exists, so that a first build with a bad build file creates nothing.
        let state_dir = project.state_dir();
        let recorded_at = (!dry_run && project.post == PostMode::AtOnce && state_dir.is_dir())
            .then(|| {
                FsClock::open(&state_dir.join("clock"))
                    .ok()
                    .map(|c| c.fresh())
            })
            .flatten();
        let first_lazy = match project.post {
            PostMode::AtOnce => project.groups.len(),
            PostMode::Lazy => 1,
        };
        for g in 0..first_lazy.min(project.groups.len()) {
            expansion.expand_group(&project, g)?;
        }
        stats::mark("expand");
        // Where kiln's state exists, the parsed build files are kept for the next load.
        if !dry_run && state_dir.is_dir() {
            let _ = parsed.save(&state_dir.join("parsed"));
        }
        let cache_key = recorded_at.map(|recorded_at| Key {
            build_file: self.build_file.clone(),
            file_hash,
            overrides,
            recorded_at,
            dirs: expansion.glob_dirs.clone(),
            parts: part_hashes(&project),
            configure: project
                .configure
                .as_ref()
                .and_then(|_| configure::cached_digest(&state_dir)),
        });
        Ok(Loaded {
            project,
            expansion,
            from_cache: None,
            cache_key,
            messages,
        })
    }
}

/// The parts' build files (all but the top one) as kiln paths, with the hashes of their texts.
fn part_hashes(project: &Project) -> Vec<(String, Hash)> {
    project
        .parts
        .iter()
        .zip(project.sources.files())
        .skip(1)
        .map(|(part, (_, source))| {
            (
                paths::join(&part.dir, BUILD_FILE),
                *blake3::hash(source.text.as_bytes()).as_bytes(),
            )
        })
        .collect()
}

/// `build.toml` in `cwd` or its nearest parent, with the name to show for it. When that file is a
/// part of a bigger project (a `subdirs` entry of the build file above it, and so on up), the top
/// build file of that project, as waf finds its top wscript from a subdirectory.
fn find(cwd: &Path) -> Result<(PathBuf, String), Error> {
    let (mut dir, mut ups) = nearest(cwd)?;
    while let Some(parent) = dir.parent() {
        let Ok((above, more)) = nearest(parent) else {
            break;
        };
        let Ok(rel) = dir.strip_prefix(&above) else {
            break;
        };
        if !names_part(&above.join(BUILD_FILE), &rel.to_string_lossy()) {
            break;
        }
        dir = above;
        ups += 1 + more;
    }
    Ok((
        dir.join(BUILD_FILE),
        format!("{}{BUILD_FILE}", "../".repeat(ups)),
    ))
}

/// Whether the build file at `file` names `rel` (a directory below its own) in `[project] subdirs`.
/// Read as plain TOML: a file that does not parse names nothing here (its errors come later).
fn names_part(file: &Path, rel: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(file) else {
        return false;
    };
    let Ok(table) = text.parse::<toml::Table>() else {
        return false;
    };
    let subdirs = table.get("project").and_then(|p| p.get("subdirs"));
    let entries: Vec<&str> = match subdirs {
        Some(toml::Value::String(s)) => vec![s.as_str()],
        Some(toml::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    };
    entries.iter().any(|e| paths::normalize(e) == paths::normalize(rel))
}

/// The directory of the build file in `cwd` or its nearest parent, and how many levels up it is.
fn nearest(cwd: &Path) -> Result<(PathBuf, usize), Error> {
    let mut dir = cwd;
    let mut ups = 0;
    loop {
        let candidate = dir.join(BUILD_FILE);
        if candidate.is_file() {
            return Ok((dir.to_path_buf(), ups));
        }
        match dir.parent() {
            Some(p) => {
                dir = p;
                ups += 1;
            }
            None => {
                return Err(Error::Usage(format!(
                    "no {BUILD_FILE} in {} or any parent directory (use -f FILE to name one)",
                    cwd.display()
                )));
            }
        }
    }
}

/// Where the build file puts the build directory, read without parsing it: `out` in `[project]`
/// (or `project.out`), else "build"; for `variant`, `out` in `[variant.NAME]`, else
/// `<that>/<NAME>`. Only a hint for finding kiln's state before parsing; the state itself proves
/// it belongs to this build file (and variant).
pub fn out_hint(text: &str, variant: Option<&str>) -> String {
    let value = |line: &str, key: &str| -> Option<String> {
        let rest = line
            .trim_start()
            .strip_prefix(key)?
            .trim_start()
            .strip_prefix('=')?
            .trim();
        let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
        let inner = &rest[1..];
        let end = inner.find(quote)?;
        let v = &inner[..end];
        (!v.contains('\\')).then(|| v.to_string())
    };
    let variant_table = variant.map(|v| format!("variant.{v}"));
    let mut project_out = None;
    let mut variant_out = None;
    let mut table = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            table = t
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            continue;
        }
        if project_out.is_none() {
            project_out = match table.as_str() {
                "project" => value(t, "out"),
                "" => value(t, "project.out"),
                _ => None,
            };
        }
        if variant_out.is_none() && variant_table.as_deref() == Some(table.as_str()) {
            variant_out = value(t, "out");
        }
    }
    let project_out = project_out.unwrap_or_else(|| "build".to_string());
    match (variant, variant_out) {
        (_, Some(out)) => out,
        (Some(name), None) => format!("{project_out}/{name}"),
        (None, None) => project_out,
    }
}

#[cfg(test)]
mod tests {
    use super::out_hint;

    #[test]
    fn the_hint_follows_project_out_and_the_variant() {
        let text = "[project]\nout = \"obj\"\n[variant.debug]\nenv = { A = \"1\" }\n[variant.rel]\nout = 'build-rel'\n";
        assert_eq!(out_hint(text, None), "obj");
        assert_eq!(out_hint(text, Some("debug")), "obj/debug");
        assert_eq!(out_hint(text, Some("rel")), "build-rel");
        assert_eq!(out_hint("[variant.x]\n", Some("x")), "build/x");
        assert_eq!(out_hint("", None), "build");
    }
}
