//! The library's public face: load a project, build it with options and a progress sink, list its
//! generators, explain why targets are or are not up to date. The `kiln` command is a thin layer
//! over these (and [`crate::cli::main`] is that layer).

use crate::driver::{self, BuildOptions};
use crate::error::Error;
use crate::generator::Expansion;
use crate::load::{Location, Workspace};
use crate::progress::Progress;

/// A build file found and ready to be read, with what the caller adds to it (`-D`, `--out`).
pub struct Project {
    workspace: Workspace,
}

/// A generator of a project: its name and its outputs, as kiln prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generator {
    pub name: String,
    pub outputs: Vec<String>,
}

impl Project {
    /// Finds the build file: `location.file`, or `build.toml` in `location.dir` (or the current
    /// directory) or its nearest parent.
    pub fn locate(location: &Location) -> Result<Project, Error> {
        Ok(Project {
            workspace: Workspace::locate(location)?,
        })
    }

    /// Builds, as `kiln build` does; the exit status (0 success, 1 a task failed). What the build
    /// prints goes to `progress`. It cannot be interrupted from outside.
    pub fn build(&self, options: &BuildOptions, progress: &mut dyn Progress) -> Result<i32, Error> {
        driver::build(
            &self.workspace,
            options,
            progress,
            &crossbeam_channel::never(),
        )
    }

    /// Every generator with its outputs, in declared order, as `kiln list` prints them.
    pub fn generators(&self) -> Result<Vec<Generator>, Error> {
        let project = self.workspace.load()?;
        let expansion = Expansion::expand_all(&project)?;
        let list = project
            .gens
            .iter()
            .zip(&expansion.gen_outputs)
            .map(|(g, outputs)| Generator {
                name: g.name.clone(),
                outputs: outputs
                    .iter()
                    .map(|&f| expansion.graph.path(f).to_string())
                    .collect(),
            })
            .collect();
        crate::drop_in_background((project, expansion));
        Ok(list)
    }

    /// Says on `progress` (as reports) why each task `targets` need would run or is up to date,
    /// running nothing, as `kiln explain` does; the exit status.
    pub fn explain(&self, targets: &[String], progress: &mut dyn Progress) -> Result<i32, Error> {
        let options = BuildOptions {
            targets: targets.to_vec(),
            dry_run: true,
            explain: true,
            explain_targets: true,
            ..BuildOptions::default()
        };
        self.build(&options, progress)
    }
}
