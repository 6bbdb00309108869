//! A workspace: the build file (given with `-f`, or `build.toml` in the current directory or its
//! nearest parent), the project loaded from it, and where kiln keeps its state (`<out>/.kiln/`).

use crate::error::Error;
use crate::project::{Overrides, Project};
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
}

pub struct Workspace {
    pub project: Project,
    pub build_file: PathBuf,
}

impl Workspace {
    /// Finds and loads the build file.
    pub fn load(location: &Location) -> Result<Workspace, Error> {
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
        let overrides = Overrides {
            defines: location.defines.clone(),
            out: location.out.as_ref().map(|o| cwd.join(o)),
        };
        let project = Project::load(&path, &display, &overrides)?;
        Ok(Workspace {
            project,
            build_file: path,
        })
    }

    /// The build directory.
    pub fn out_dir(&self) -> PathBuf {
        self.project.out_dir()
    }

    /// kiln's state directory inside the build directory.
    pub fn state_dir(&self) -> PathBuf {
        self.out_dir().join(".kiln")
    }
}

/// `build.toml` in `cwd` or its nearest parent, with the name to show for it.
fn find(cwd: &Path) -> Result<(PathBuf, String), Error> {
    let mut dir = cwd;
    let mut ups = 0;
    loop {
        let candidate = dir.join(BUILD_FILE);
        if candidate.is_file() {
            let display = format!("{}{BUILD_FILE}", "../".repeat(ups));
            return Ok((candidate, display));
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
