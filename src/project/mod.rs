//! The project as the build file defines it, validated: the build directory, env values (with `-D`
//! applied), groups, rules (named and inline) with parsed templates, and generators with their
//! references resolved. Everything that can be checked without looking at the file system is
//! checked when the project is made (`validate.rs`, with `parts.rs`, `rules.rs`, `gens.rs` and
//! `configure.rs`), each error
//! located in the build file; this module holds what the rest of kiln sees of it.

mod configure;
mod gens;
mod installs;
mod parts;
mod rules;
mod validate;
mod values;

use crate::env::Env;
use crate::error::{Diagnostic, Error, SourceText, Sources};
use crate::ids::{GenId, GroupId, RuleId};
use crate::manifest::{Order, PostMode};
use crate::parsed::Parsed;
use crate::outdir::STATE_DIR;
use crate::paths::absolute;
use crate::progress::Color;
use crate::template::{Template, TemplateError};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the command line adds to the build file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `-D NAME=VALUE`, in order.
    pub defines: Vec<(String, String)>,
    /// `--out DIR`, already absolute.
    pub out: Option<PathBuf>,
    /// `--variant NAME`: build the `[variant.NAME]` variant.
    pub variant: Option<String>,
}

#[derive(Debug)]
pub struct Project {
    /// The build files, the top one first, in one span space.
    pub sources: Sources,
    /// The build file's directory, canonical: commands run here and paths are relative to it.
    pub root: PathBuf,
    /// The build directory as a kiln path (relative to `root`, may start with `../`).
    pub out: String,
    pub post: PostMode,
    pub name: Option<String>,
    /// The top build file's part first, then those `subdirs` name, depth first.
    pub parts: Vec<Part>,
    pub groups: Vec<Group>,
    pub rules: Vec<Rule>,
    pub gens: Vec<Gen>,
    /// `[configure]`, whose results are among `parts[0].env`.
    pub configure: Option<crate::configure::Configure>,
    /// `[[install]]` entries, every part's, in order.
    pub installs: Vec<Install>,
    /// `[remote] platform`: the properties each remote Action asks for, by name.
    pub remote_platform: Vec<(String, String)>,
}

/// An `[[install]]` entry.
#[derive(Debug)]
pub struct Install {
    /// Globs and paths as in generators (relative to its part's directory).
    pub sources: Vec<Located<Template>>,
    /// The directory they go to, expanded (absolute, without DESTDIR).
    pub dest: String,
    /// The permissions its files get; `None`: the source's.
    pub mode: Option<u32>,
    /// The part of the project it was declared in.
    pub part: usize,
}

/// A part of the project: the top build file, or one that a `subdirs` entry names.
#[derive(Debug)]
pub struct Part {
    /// Its directory, a kiln path (`.` for the top file): its generators' paths are relative to it.
    pub dir: String,
    /// The part whose `subdirs` named it.
    pub parent: Option<usize>,
    /// The env values its generators see: its parent's, with its own `[env]` over them (`-D`
    /// still wins).
    pub env: Env,
    /// The rules its generators see by name (ids): its parent's, with its own over them.
    pub rules: Vec<RuleId>,
}

#[derive(Debug)]
pub struct Group {
    pub name: String,
    pub order: Order,
    pub jobs: Option<usize>,
}

#[derive(Debug)]
pub struct Rule {
    pub name: String,
    /// A command chain: every command must succeed, in order.
    pub commands: Vec<Located<Template>>,
    pub ext_in: Vec<String>,
    pub ext_out: Vec<String>,
    pub depfile: Option<Located<Template>>,
    /// Rules whose tasks must run after this rule's tasks in a group (from `before` of this rule and
    /// `after` of the others).
    pub before: Vec<RuleId>,
    pub color: Option<Color>,
    pub always: bool,
    pub update_outputs: bool,
    /// `scan = "c"`: the headers its inputs include are found before it runs.
    pub scan: bool,
    /// Its tasks are in `kiln compdb` (`compdb`, by default when `ext_in` holds a C/C++ source
    /// extension).
    pub compdb: bool,
    /// `nocache`: its tasks are never stored in or restored from an output cache.
    pub nocache: bool,
    /// `remote = false` makes it false: its tasks never run on a remote engine.
    pub remote: bool,
    /// The env names the signature covers: those the commands and depfile use, and `vars`.
    pub signature_names: Vec<String>,
    pub span: Range<usize>,
}

/// `[remote] platform` of a build file, by name.
fn remote_platform(m: &crate::manifest::Manifest) -> Vec<(String, String)> {
    let platform = m.remote.iter().flat_map(|r| r.get_ref().platform.iter().flatten());
    platform
        .map(|(k, v)| (k.get_ref().clone(), v.get_ref().clone()))
        .collect()
}

/// A template with where it was written.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub value: T,
    pub text: String,
    pub span: Range<usize>,
}

#[derive(Debug)]
pub struct Gen {
    pub name: String,
    /// The `[[gen]]` header.
    pub span: Range<usize>,
    pub group: GroupId,
    /// The rule of the generator's own task: a named rule or its inline `run`.
    pub rule: Option<RuleId>,
    pub sources: Vec<Located<Template>>,
    pub exclude: Vec<Located<Template>>,
    pub targets: Vec<Located<Template>>,
    pub uses: Vec<(GenId, Range<usize>)>,
    /// `deps` entries that are paths (or globs).
    pub deps: Vec<Located<Template>>,
    /// `deps` entries that name a generator: every task of this one runs after that one's outputs,
    /// which are in its signature but not in `${SRC}`.
    pub dep_gens: Vec<(GenId, Range<usize>)>,
    /// `order_only` entries that are paths: every task of this generator runs after them, which
    /// are in neither its signature nor `${SRC}` (ninja's `||`).
    pub order_only: Vec<Located<Template>>,
    /// `order_only` entries that name a generator.
    pub order_gens: Vec<(GenId, Range<usize>)>,
    /// The generator's own env values, spliced over the project's.
    pub env: Env,
    /// Whether its sources are mapped through the rules whose `ext_in` take them (`map = false`:
    /// they enter `${SRC}` as they are, as a code generator reading `.c` files wants).
    pub map: bool,
    /// The part of the project it was declared in.
    pub part: usize,
    /// Whether a build that names no target builds it (`default = false`: only when named, or
    /// when a generator that is built needs it).
    pub default: bool,
    /// `ext_rules`: for this generator's sources, the rule that maps an extension, over the rule
    /// whose `ext_in` claims it.
    pub ext_rules: Vec<(String, RuleId)>,
    /// `objdir`: its mapped outputs go to `<out>/<objdir>/...`, so that two generators can map
    /// one source list with different rules or flags.
    pub objdir: Option<String>,
    /// `install`: the directory `kiln install` copies its targets to, expanded (absolute, without
    /// DESTDIR).
    pub install: Option<String>,
}

impl Project {
    /// Reads and validates the build file at `path` (already known to exist), without running
    /// `[configure]` (its results are empty).
    #[cfg(any(test, feature = "internals"))]
    pub fn load(path: &Path, display_name: &str, overrides: &Overrides) -> Result<Project, Error> {
        let bytes =
            std::fs::read(path).map_err(|e| Error::io(format!("cannot read {display_name}"), e))?;
        Project::from_bytes(bytes, path, display_name, overrides)
    }

    /// Validates the build file's content, read from `path`, without running `[configure]` (its
    /// results are empty).
    #[cfg(any(test, feature = "internals"))]
    pub fn from_bytes(
        bytes: Vec<u8>,
        path: &Path,
        display_name: &str,
        overrides: &Overrides,
    ) -> Result<Project, Error> {
        Project::from_bytes_with(
            bytes,
            path,
            display_name,
            overrides,
            &mut Parsed::default(),
            &mut crate::configure::Mode::Skip,
        )
    }

    /// [`Project::from_bytes`], with build files whose text `parsed` knows decoded, not parsed,
    /// and `[configure]`'s results got as `configure` says.
    pub fn from_bytes_with(
        bytes: Vec<u8>,
        path: &Path,
        display_name: &str,
        overrides: &Overrides,
        parsed: &mut Parsed,
        configure: &mut crate::configure::Mode,
    ) -> Result<Project, Error> {
        let text = String::from_utf8(bytes).map_err(|e| {
            let source = Arc::new(SourceText {
                name: display_name.to_string(),
                text: String::from_utf8_lossy(e.as_bytes()).into_owned(),
            });
            let at = e.utf8_error().valid_up_to();
            Error::from(Diagnostic::at(
                &source,
                at..at + 1,
                "the build file is not valid UTF-8",
            ))
        })?;
        let source = Arc::new(SourceText {
            name: display_name.to_string(),
            text,
        });
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let root = dir
            .canonicalize()
            .map_err(|e| Error::io(format!("cannot resolve {}", dir.display()), e))?;
        let manifest = parsed.manifest(&source)?;
        validate::project(source, manifest, root, display_name, overrides, parsed, configure)
    }

    /// The env values generator `g` sees below its own: those of its part.
    pub fn env_of(&self, g: GenId) -> &Env {
        &self.parts[self.gens[g].part].env
    }

    /// The directory generator `g`'s paths are relative to.
    pub fn dir_of(&self, g: GenId) -> &str {
        &self.parts[self.gens[g].part].dir
    }

    /// The build directory as a path relative to generator `g`'s directory (what `${OUT}` is in
    /// its sources and targets).
    pub fn out_from(&self, g: GenId) -> String {
        self.out_from_part(self.gens[g].part)
    }

    /// The build directory as a path relative to part `part`'s directory.
    pub fn out_from_part(&self, part: usize) -> String {
        let dir = &self.parts[part].dir;
        if dir == "." || self.out.starts_with('/') {
            return self.out.clone();
        }
        let ups = dir.split('/').count();
        format!("{}{}", "../".repeat(ups), self.out)
    }

    /// Whether the build file declares nothing to build.
    pub fn is_empty(&self) -> bool {
        self.gens.is_empty()
    }

    /// The absolute build directory (lexical).
    pub fn out_dir(&self) -> PathBuf {
        absolute(&self.root, &self.out)
    }

    /// kiln's state directory inside the build directory.
    pub fn state_dir(&self) -> PathBuf {
        self.out_dir().join(STATE_DIR)
    }

    /// A diagnostic pointing into the build file.
    pub fn error_at(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        self.sources.at(span, message)
    }

    /// The diagnostic for a template error in `located`, pointing at the offending `${...}`.
    pub fn template_error(
        &self,
        located: &Located<Template>,
        err: &TemplateError,
        what: &str,
    ) -> Diagnostic {
        validate::template_diagnostic(&self.sources, &located.text, &located.span, err, what)
    }

    /// The generators `g` must follow: those it `use`s and those its `deps` and `order_only`
    /// name.
    pub fn needs(&self, g: GenId) -> impl Iterator<Item = &(GenId, Range<usize>)> {
        let gn = &self.gens[g];
        gn.uses.iter().chain(&gn.dep_gens).chain(&gn.order_gens)
    }

    /// The generator whose name is `name`.
    pub fn gen_named(&self, name: &str) -> Option<GenId> {
        self.gens.iter().position(|g| g.name == name)
    }
}
