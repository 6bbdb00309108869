//! Validation of the parsed build file ([`Manifest`]) into a [`Project`]: the build directory, env
//! values with `-D` applied, groups, then the rules ([`super::rules`]) and the generators
//! ([`super::gens`]). A [`Builder`] carries the build file's text, so that every error it returns
//! points into it; the first error found is the one reported.

use super::parts::{self, PartDef};
use super::rules::Scope;
use super::{Group, Located, Overrides, Part, Project};
use super::values;
use crate::env::Env;
use crate::error::{Diagnostic, Error, SourceText, Sources};
use crate::configure::{self, Results};
use crate::manifest::{Manifest, Order, ProjectDef, Strings, VariantDef};
use crate::parsed::Parsed;
use crate::paths::{self, absolute};
use crate::template::{RESERVED, Template, TemplateError};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml::Spanned;

/// Validates `m`, parsed from `source` (shown as `display`), and the parts it names, into the
/// project rooted at `root`.
pub(super) fn project(
    source: Arc<SourceText>,
    m: Manifest,
    root: PathBuf,
    display: &str,
    overrides: &Overrides,
    parsed: &mut Parsed,
    configure: &mut configure::Mode,
) -> Result<Project, Error> {
    let mut sources = Sources::single(source);
    let parts = parts::read(&mut sources, m, &root, display, parsed)?;
    crate::stats::mark("parse: toml");
    Builder { sources: &sources }.project(parts, root, overrides, configure)
}

/// The diagnostic for the template error `err` in `text`, written at `span`.
pub(super) fn template_diagnostic(
    sources: &Sources,
    text: &str,
    span: &Range<usize>,
    err: &TemplateError,
    what: &str,
) -> Diagnostic {
    // Point at the `${...}` itself: find its text inside the value as written.
    let snippet_end = text[err.offset..]
        .find('}')
        .map_or(text.len(), |i| err.offset + i + 1);
    let snippet = &text[err.offset..snippet_end];
    let raw = sources.text(span).unwrap_or("");
    let at = match raw.find(snippet) {
        Some(i) if !snippet.is_empty() => span.start + i..span.start + i + snippet.len(),
        _ => span.clone(),
    };
    let d = sources.at(at, format!("{what}: {}", err.kind));
    match err.kind {
        crate::template::ErrorKind::Undefined(_) => {
            d.note("define it in [env], in the generator's env, or with -D NAME=VALUE")
        }
        _ => d,
    }
}

/// Validation under way: the build files' texts, that every error points into.
pub(super) struct Builder<'a> {
    pub(super) sources: &'a Sources,
}

/// The env values `kiln install`'s destinations use, with their defaults (as make's GNU
/// conventions have them).
const INSTALL_DIRS: [(&str, &str); 4] = [
    ("PREFIX", "/usr/local"),
    ("BINDIR", "${PREFIX}/bin"),
    ("LIBDIR", "${PREFIX}/lib"),
    ("INCLUDEDIR", "${PREFIX}/include"),
];

pub(super) fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Builder<'_> {
    pub(super) fn err(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        self.sources.at(span, message)
    }

    pub(super) fn located(
        &self,
        text: &str,
        span: Range<usize>,
        what: &str,
    ) -> Result<Located<Template>, Diagnostic> {
        match Template::parse(text) {
            Ok(value) => Ok(Located {
                value,
                text: text.to_string(),
                span,
            }),
            Err(e) => Err(template_diagnostic(self.sources, text, &span, &e, what)),
        }
    }

    pub(super) fn templates(
        &self,
        value: Option<&Spanned<Strings>>,
        what: &str,
    ) -> Result<Vec<Located<Template>>, Diagnostic> {
        let Some(value) = value else {
            return Ok(Vec::new());
        };
        Strings::items(value)
            .into_iter()
            .map(|(text, span)| self.located(text, span, what))
            .collect()
    }

    pub(super) fn env_name(&self, name: &Spanned<String>) -> Result<(), Diagnostic> {
        let n = name.get_ref();
        if RESERVED.contains(&n.as_str()) {
            return Err(self
                .err(name.span(), format!("`{n}` is a reserved name"))
                .note("SRC, TGT and OUT are provided by kiln for every task"));
        }
        if !is_name(n) {
            return Err(self.err(name.span(), format!("invalid env name `{n}`"))
                .note("expected letters, digits and `_`, not starting with a digit, so that `${NAME}` can use it"));
        }
        Ok(())
    }

    fn project(
        &self,
        parts: Vec<PartDef>,
        root: PathBuf,
        overrides: &Overrides,
        configure: &mut configure::Mode,
    ) -> Result<Project, Error> {
        let m = &parts[0].manifest;
        let project_def = m.project.as_ref().map(|p| p.get_ref());
        let name = project_def
            .and_then(|p| p.name.as_ref())
            .map(|n| n.get_ref().clone());
        let post = project_def
            .and_then(|p| p.post.as_ref())
            .map(|p| *p.get_ref())
            .unwrap_or_default();

        let variant = self.variant(m, overrides)?;
        let out = self.build_dir(project_def, variant, &root, overrides)?;

        // The project-level values, lowest first: `[env]` (with the install directories'
        // defaults below it), `[configure]`'s results, the variant's env, `-D`. `[configure]`'s
        // checks compile with the values as they are without the results (a value naming a
        // result sees it empty); then everything is expanded again over the results, so that a
        // value such as `LIBS = ["${ZLIB_LIBS}", "-lm"]` gets them.
        let variant_def = variant.map(|(_, v)| v);
        let configure_def = match &m.configure {
            Some(def) => Some(self.configure(def)?),
            None => None,
        };
        let env = match &configure_def {
            None => self.env(m, variant_def, overrides, (&root, &out), None)?,
            Some(def) => {
                let unset: Results = def
                    .names()
                    .into_iter()
                    .filter(|n| !m.env.keys().any(|k| k.get_ref() == n))
                    .map(|n| (n, Vec::new()))
                    .collect();
                let first = self.env(m, variant_def, overrides, (&root, &out), Some(&unset))?;
                let results = configure.results(def, &first, &root, &out)?;
                // A program named in the process environment (`CC=clang kiln build`) lies over
                // the variant's env too, below `-D` alone.
                let mut over = overrides.clone();
                for (name, _) in &def.programs {
                    if let Ok(v) = std::env::var(name)
                        && !over.defines.iter().any(|(d, _)| d == name)
                    {
                        over.defines.insert(0, (name.clone(), v));
                    }
                }
                self.env(m, variant_def, &over, (&root, &out), Some(&results))?
            }
        };

        // Groups.
        let mut groups = Vec::new();
        for g in &m.group {
            let def = g.get_ref();
            let gname = def.name.get_ref();
            if groups.iter().any(|x: &Group| &x.name == gname) {
                return Err(self
                    .err(def.name.span(), format!("duplicate group `{gname}`"))
                    .note("group names must be unique")
                    .into());
            }
            groups.push(Group {
                name: gname.clone(),
                order: def.order.as_ref().map(|o| *o.get_ref()).unwrap_or_default(),
                jobs: def.jobs.as_ref().map(|j| j.get_ref().0 as usize),
            });
        }
        if groups.is_empty() {
            groups.push(Group {
                name: "default".into(),
                order: Order::Parallel,
                jobs: None,
            });
        }

        // Each part's env: its parent's, with its own values over them (`${NAME}` inside one
        // means the parent's value, as in a generator's env); `-D` still wins.
        let mut envs = vec![env];
        for part in &parts[1..] {
            let below = &envs[part.parent.unwrap_or(0)];
            let mut env = below.clone();
            for (k, v) in &part.manifest.env {
                self.env_name(k)?;
                if overrides.defines.iter().any(|(d, _)| d == k.get_ref()) {
                    continue;
                }
                let what = format!("in env value `{}`", k.get_ref());
                let mut values = Vec::new();
                for item in self.templates(Some(v), &what)? {
                    crate::env::splice(&item.value, below, &out, &mut values).map_err(|e| {
                        template_diagnostic(self.sources, &item.text, &item.span, &e, &what)
                    })?;
                }
                env.set(k.get_ref().clone(), values);
            }
            envs.push(env);
        }

        // Every env name that any task could see, for checking rules before expansion.
        let mut known_names: BTreeSet<String> = BTreeSet::new();
        if let Some(def) = &configure_def {
            known_names.extend(def.names());
        }
        for (part, env) in parts.iter().zip(&envs) {
            known_names.extend(env.names().map(str::to_string));
            for g in &part.manifest.gens {
                if let Some(genv) = &g.get_ref().env {
                    known_names.extend(genv.keys().map(|k| k.get_ref().clone()));
                }
            }
        }

        // Each part's rules, over those it inherits.
        let mut rules = Vec::new();
        let mut scopes: Vec<Scope> = Vec::new();
        for part in &parts {
            let inherited = part.parent.map(|q| scopes[q].clone()).unwrap_or_default();
            let scope = self.rules(&part.manifest, &known_names, &inherited, &mut rules)?;
            scopes.push(scope);
        }
        let project_parts = parts
            .iter()
            .zip(envs)
            .zip(&scopes)
            .map(|((part, env), scope)| Part {
                dir: part.dir.clone(),
                parent: part.parent,
                env,
                rules: scope.ids.clone(),
            })
            .collect();
        let mut project = Project {
            sources: self.sources.clone(),
            root,
            out,
            post,
            name,
            parts: project_parts,
            groups,
            rules,
            gens: Vec::new(),
            configure: configure_def,
            installs: Vec::new(),
            remote_platform: super::remote_platform(m),
        };
        project.gens = self.gens(&parts, &mut project, &scopes, &known_names)?;
        project.installs = self.installs(&parts, &project)?;
        Ok(project)
    }

    /// The project-level values: the `[env]` values, the variant's over them, `-D` (one string
    /// each, as given) in place of those it names; then every `${NAME}` inside a value expanded,
    /// recursively (inside the variant's value of NAME, `${NAME}` is the value below it).
    fn env(
        &self,
        m: &Manifest,
        variant: Option<&VariantDef>,
        overrides: &Overrides,
        (root, out): (&Path, &str),
        results: Option<&Results>,
    ) -> Result<Env, Error> {
        let mut raw = values::Raw::new();
        let layer = |raw: &mut values::Raw,
                     table: &BTreeMap<Spanned<String>, Spanned<Strings>>,
                     over: bool|
         -> Result<(), Error> {
            for (k, v) in table {
                self.env_name(k)?;
                let what = format!("in env value `{}`", k.get_ref());
                let items = self.templates(Some(v), &what)?;
                let layers = raw.entry(k.get_ref().clone()).or_default();
                layers.push(values::Layer { items, over });
            }
            Ok(())
        };
        layer(&mut raw, &m.env, false)?;
        // The install directories' defaults, where `[env]` gives none.
        for (name, default) in INSTALL_DIRS {
            if !raw.contains_key(name) {
                let value = Template::parse(default).expect("a valid default");
                let text = default.to_string();
                let items = vec![Located { value, text, span: 0..0 }];
                raw.insert(name.to_string(), vec![values::Layer { items, over: false }]);
            }
        }
        // `${ROOT}`: the project's absolute path (left out of cache keys, for
        // `-fdebug-prefix-map=${ROOT}=.`), unless `[env]` says otherwise.
        if !raw.contains_key("ROOT") {
            let text = root.to_string_lossy().replace("${", "$${");
            let value = Template::parse(&text).expect("an escaped literal");
            let items = vec![Located { value, text, span: 0..0 }];
            raw.insert("ROOT".to_string(), vec![values::Layer { items, over: false }]);
        }
        // `[configure]`'s results, as they are, over `[env]` and below the variant's env.
        for (k, v) in results.into_iter().flatten() {
            let items = v
                .iter()
                .map(|item| {
                    let text = item.replace("${", "$${");
                    let value = Template::parse(&text).expect("an escaped literal");
                    Located { value, text, span: 0..0 }
                })
                .collect();
            raw.entry(k.clone())
                .or_default()
                .push(values::Layer { items, over: true });
        }
        if let Some(table) = variant.and_then(|v| v.env.as_ref()) {
            layer(&mut raw, table, true)?;
        }
        let mut env = Env::default();
        for (k, v) in &overrides.defines {
            if !is_name(k) || RESERVED.contains(&k.as_str()) {
                return Err(Error::Usage(format!(
                    "-D {k}={v}: `{k}` is not a name an env value can have"
                )));
            }
            raw.remove(k);
            env.set(k.clone(), vec![v.clone()]);
        }
        values::expand_all(&raw, &mut env, out).map_err(|e| match e {
            values::ExpandError::Template { name, item, error } => {
                let what = format!("in env value `{name}`");
                template_diagnostic(self.sources, &item.text, &item.span, &error, &what)
            }
            values::ExpandError::Cycle { cycle, item } => self
                .err(
                    item.span.clone(),
                    format!("env values refer to each other in a cycle: {}", cycle.join(" -> ")),
                )
                .note("a value may use another's `${NAME}`, but not, through others, its own"),
        })?;
        Ok(env)
    }

    /// The variant `--variant` names, with its name as written: an error listing the known ones
    /// when the build file has no such variant.
    fn variant<'m>(
        &self,
        m: &'m Manifest,
        overrides: &Overrides,
    ) -> Result<Option<(&'m Spanned<String>, &'m VariantDef)>, Error> {
        for k in m.variant.keys() {
            let n = k.get_ref();
            let ok = !n.is_empty()
                && !n.starts_with('.')
                && n.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
            if !ok {
                return Err(self
                    .err(k.span(), format!("invalid variant name `{n}`"))
                    .note("expected letters, digits, `_`, `-` and `.`, not starting with `.`: it names a directory")
                    .into());
            }
        }
        let Some(name) = &overrides.variant else {
            return Ok(None);
        };
        if let Some((k, v)) = m.variant.iter().find(|(k, _)| k.get_ref() == name) {
            return Ok(Some((k, v.get_ref())));
        }
        let known: Vec<String> = m.variant.keys().map(|k| format!("`{}`", k.get_ref())).collect();
        Err(Error::Usage(if known.is_empty() {
            format!(
                "--variant {name}: {} declares no variants (add a [variant.{name}] table)",
                self.sources.top().name
            )
        } else {
            format!(
                "--variant {name}: no such variant; {} declares {}",
                self.sources.top().name,
                known.join(", ")
            )
        }))
    }

    /// The build directory as a kiln path: `--out`, else `out` of `[project]`, else "build". It may
    /// not be the project root or hold it. A variant's: `--out`, else the variant's `out`, else
    /// `<out>/<variant name>`.
    fn build_dir(
        &self,
        project_def: Option<&ProjectDef>,
        variant: Option<(&Spanned<String>, &VariantDef)>,
        root: &Path,
        overrides: &Overrides,
    ) -> Result<String, Error> {
        let variant_out = variant.and_then(|(_, v)| v.out.as_ref());
        let written = match (variant, variant_out) {
            (_, Some(out)) => Some(out),
            (None, None) => project_def.and_then(|p| p.out.as_ref()),
            (Some(_), None) => None,
        };
        let out = match (&overrides.out, written) {
            (Some(abs), _) => {
                let abs = PathBuf::from(paths::normalize(&abs.to_string_lossy()));
                paths::relative(root, &canonical_prefix(&abs))
            }
            (None, Some(out)) => {
                let text = out.get_ref().trim();
                if text.is_empty() {
                    return Err(self
                        .err(out.span(), "`out` is empty")
                        .note("expected a directory such as \"build\"")
                        .into());
                }
                if text.starts_with('/') {
                    paths::relative(root, &canonical_prefix(Path::new(&paths::normalize(text))))
                } else {
                    paths::normalize(text)
                }
            }
            (None, None) => match variant {
                Some((name, _)) => {
                    let project_out = self.build_dir(project_def, None, root, overrides)?;
                    paths::join(&project_out, name.get_ref())
                }
                None => "build".to_string(),
            },
        };
        // Resolved through symlinks and `..`, the build directory may not be the project or hold it.
        let out_canonical = canonical_prefix(&absolute(root, &out));
        if out == "." || root.starts_with(&out_canonical) {
            let span = written.map(|o| o.span());
            let msg = format!(
                "the build directory `{out}` would contain the project: kiln writes and cleans there"
            );
            let d = match span {
                Some(span) => self.err(span, msg),
                None => Diagnostic::in_file(self.sources.top(), msg),
            };
            return Err(d
                .note("expected a directory of its own, such as \"build\" or \"../build-debug\"")
                .into());
        }
        Ok(out)
    }
}

/// `abs` with its longest existing prefix resolved through symlinks, so that relative paths from
/// the canonical project root reach it.
fn canonical_prefix(abs: &Path) -> PathBuf {
    let mut existing = abs.to_path_buf();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return abs.to_path_buf(),
        }
    }
    let mut result = existing.canonicalize().unwrap_or(existing);
    for name in rest.into_iter().rev() {
        result.push(name);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Project, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("build.toml");
        std::fs::write(&path, text).unwrap();
        Project::load(&path, "build.toml", &Overrides::default()).map_err(|e| e.to_string())
    }

    #[test]
    fn resolves_rules_groups_and_generators() {
        let p = load(
            r#"
[env]
CC = "cc"
[[group]]
name = "gen"
[[group]]
name = "main"
order = "sequence"
jobs = 2
[rule.cc]
run = "${CC} -c ${SRC} -o ${TGT}"
ext_in = [".c"]
ext_out = [".o"]
before = ["link"]
[rule.link]
run = "${CC} ${SRC} -o ${TGT}"
after = ["cc"]
[[gen]]
target = "hello"
rule = "link"
group = "main"
source = ["a.c"]
env = { CC = "clang" }
[[gen]]
name = "v"
run = "echo > ${TGT}"
target = "v.h"
"#,
        )
        .unwrap();
        assert_eq!(p.out, "build");
        assert_eq!(p.groups.len(), 2);
        assert_eq!(p.groups[1].jobs, Some(2));
        assert_eq!(p.gens[0].name, "hello");
        assert_eq!(p.gens[0].group, 1);
        assert_eq!(p.rules[0].name, "cc");
        assert_eq!(p.rules[0].before, vec![1]);
        assert_eq!(p.rules[2].name, "v");
        assert_eq!(p.gens[1].rule, Some(2));
        assert_eq!(p.rules[0].signature_names, vec!["CC".to_string()]);
    }

    #[test]
    fn located_errors() {
        let err = load("[rule.cc]\nrun = \"${CC} ${CFALGS}\"\n[env]\nCC='cc'\nCFLAGS='-O2'\n")
            .unwrap_err();
        assert!(
            err.starts_with("build.toml:2:14: error: rule `cc`: undefined variable `${CFALGS}`"),
            "{err}"
        );
        assert!(err.contains("did you mean `CFLAGS`?"), "{err}");

        let err = load("[rule.cc]\nrun = 'x'\n[[gen]]\ntarget = 'a'\nrule = 'c'\n").unwrap_err();
        assert!(
            err.contains("build.toml:5:8: error: unknown rule `c` in `rule`"),
            "{err}"
        );
        assert!(err.contains("did you mean `cc`?"), "{err}");

        let err = load("[rule.a]\nrun='x'\next_in=['.c']\n[rule.b]\nrun='y'\next_in=['.c']\n")
            .unwrap_err();
        assert!(
            err.contains("build.toml:6:9: error: rules `a` and `b` both claim the extension `.c`"),
            "{err}"
        );

        let err = load("[[gen]]\nrun = 'x'\n").unwrap_err();
        assert!(
            err.contains("build.toml:1:1: error: a generator without a target needs a `name`"),
            "{err}"
        );

        let err = load("[[gen]]\nname='a'\ngroup='mian'\n[[group]]\nname='main'\n").unwrap_err();
        assert!(err.contains("did you mean `main`?"), "{err}");

        let err = load("[rule.a]\nrun='x'\nbefore=['b']\n").unwrap_err();
        assert!(err.contains("unknown rule `b` in `before`"), "{err}");

        let err = load("[project]\nout='.'\n").unwrap_err();
        assert!(err.contains("would contain the project"), "{err}");

        let err = load("[env]\nSRC='x'\n").unwrap_err();
        assert!(err.contains("reserved"), "{err}");
    }
}
