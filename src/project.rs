//! The project as the build file defines it, validated: the build directory, env values (with `-D`
//! applied), groups, rules (named and inline) with parsed templates, and generators with their
//! references resolved. Everything that can be checked without looking at the file system is
//! checked here, each error located in the build file.

use crate::env::{self, Env};
use crate::error::{Diagnostic, Error, SourceText};
use crate::ids::{GenId, GroupId, RuleId};
use crate::manifest::{self, Manifest, Order, PostMode, Strings};
use crate::outdir::STATE_DIR;
use crate::paths::{self, absolute};
use crate::progress::Color;
use crate::template::{RESERVED, Template, TemplateError};
use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml::Spanned;

/// What the command line adds to the build file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `-D NAME=VALUE`, in order.
    pub defines: Vec<(String, String)>,
    /// `--out DIR`, already absolute.
    pub out: Option<PathBuf>,
}

#[derive(Debug)]
pub struct Project {
    pub source: Arc<SourceText>,
    /// The build file's directory, canonical: commands run here and paths are relative to it.
    pub root: PathBuf,
    /// The build directory as a kiln path (relative to `root`, may start with `../`).
    pub out: String,
    pub post: PostMode,
    pub name: Option<String>,
    pub env: Env,
    pub groups: Vec<Group>,
    pub rules: Vec<Rule>,
    pub gens: Vec<Gen>,
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
    pub vars: Vec<String>,
    /// Rules whose tasks must run after this rule's tasks in a group (from `before` of this rule and
    /// `after` of the others).
    pub before: Vec<RuleId>,
    pub color: Option<Color>,
    pub always: bool,
    pub update_outputs: bool,
    /// The env names the signature covers: those the commands and depfile use, and `vars`.
    pub signature_names: Vec<String>,
    pub span: Range<usize>,
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
    /// The generator's own env values, spliced over the project's.
    pub env: Env,
}

impl Project {
    /// Reads and validates the build file at `path` (already known to exist).
    pub fn load(path: &Path, display_name: &str, overrides: &Overrides) -> Result<Project, Error> {
        let bytes =
            std::fs::read(path).map_err(|e| Error::io(format!("cannot read {display_name}"), e))?;
        Project::from_bytes(bytes, path, display_name, overrides)
    }

    /// Validates the build file's content, read from `path`.
    pub fn from_bytes(
        bytes: Vec<u8>,
        path: &Path,
        display_name: &str,
        overrides: &Overrides,
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
        let manifest = manifest::parse(&source)?;
        Builder { source: &source }.project(manifest, root, overrides)
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
        Diagnostic::at(&self.source, span, message)
    }

    /// The diagnostic for a template error in `located`, pointing at the offending `${...}`.
    pub fn template_error(
        &self,
        located: &Located<Template>,
        err: &TemplateError,
        what: &str,
    ) -> Diagnostic {
        template_diagnostic(&self.source, &located.text, &located.span, err, what)
    }

    /// The generators `g` must follow: those it `use`s and those its `deps` name.
    pub fn needs(&self, g: GenId) -> impl Iterator<Item = &(GenId, Range<usize>)> {
        self.gens[g].uses.iter().chain(&self.gens[g].dep_gens)
    }

    /// The generator whose name is `name`.
    pub fn gen_named(&self, name: &str) -> Option<GenId> {
        self.gens.iter().position(|g| g.name == name)
    }
}

fn template_diagnostic(
    source: &Arc<SourceText>,
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
    let raw = source.text.get(span.clone()).unwrap_or("");
    let at = match raw.find(snippet) {
        Some(i) if !snippet.is_empty() => span.start + i..span.start + i + snippet.len(),
        _ => span.clone(),
    };
    let d = Diagnostic::at(source, at, format!("{what}: {}", err.kind));
    match err.kind {
        crate::template::ErrorKind::Undefined(_) => {
            d.note("define it in [env], in the generator's env, or with -D NAME=VALUE")
        }
        _ => d,
    }
}

struct Builder<'a> {
    source: &'a Arc<SourceText>,
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Builder<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        Diagnostic::at(self.source, span, message)
    }

    fn located(
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
            Err(e) => Err(template_diagnostic(self.source, text, &span, &e, what)),
        }
    }

    fn templates(
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

    fn env_name(&self, name: &Spanned<String>) -> Result<(), Diagnostic> {
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

    fn project(&self, m: Manifest, root: PathBuf, overrides: &Overrides) -> Result<Project, Error> {
        let project_def = m.project.as_ref().map(|p| p.get_ref());
        let name = project_def
            .and_then(|p| p.name.as_ref())
            .map(|n| n.get_ref().clone());
        let post = project_def
            .and_then(|p| p.post.as_ref())
            .map(|p| *p.get_ref())
            .unwrap_or_default();

        // The build directory.
        let out = match (&overrides.out, project_def.and_then(|p| p.out.as_ref())) {
            (Some(abs), _) => {
                let abs = PathBuf::from(paths::normalize(&abs.to_string_lossy()));
                paths::relative(&root, &canonical_prefix(&abs))
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
                    paths::relative(&root, &canonical_prefix(Path::new(&paths::normalize(text))))
                } else {
                    paths::normalize(text)
                }
            }
            (None, None) => "build".to_string(),
        };
        // Resolved through symlinks and `..`, the build directory may not be the project or hold it.
        let out_canonical = canonical_prefix(&absolute(&root, &out));
        if out == "." || root.starts_with(&out_canonical) {
            let span = project_def.and_then(|p| p.out.as_ref()).map(|o| o.span());
            let msg = format!(
                "the build directory `{out}` would contain the project: kiln writes and cleans there"
            );
            let d = match span {
                Some(span) => self.err(span, msg),
                None => Diagnostic::in_file(self.source, msg),
            };
            return Err(d
                .note("expected a directory of its own, such as \"build\" or \"../build-debug\"")
                .into());
        }

        // Env values, then -D.
        let mut env = Env::default();
        for (k, v) in &m.env {
            self.env_name(k)?;
            env.set(k.get_ref().clone(), v.get_ref().values());
        }
        for (k, v) in &overrides.defines {
            if !is_name(k) || RESERVED.contains(&k.as_str()) {
                return Err(Error::Usage(format!(
                    "-D {k}={v}: `{k}` is not a name an env value can have"
                )));
            }
            env.set(k.clone(), vec![v.clone()]);
        }

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

        // Every env name that any task could see, for checking rules before expansion.
        let mut known_names: BTreeSet<String> = env.names().map(str::to_string).collect();
        for g in &m.gens {
            if let Some(genv) = &g.get_ref().env {
                known_names.extend(genv.keys().map(|k| k.get_ref().clone()));
            }
        }

        // Named rules.
        let rule_names: Vec<String> = m.rule.keys().map(|k| k.get_ref().clone()).collect();
        let mut rules = Vec::new();
        let mut claims: HashMap<String, (String, Range<usize>)> = HashMap::new();
        for (rname, def) in &m.rule {
            let rule = self.rule(rname, def, &rule_names, &known_names, &mut claims)?;
            rules.push(rule);
        }
        // `after` of a rule is `before` of the named one.
        for (i, def) in m.rule.values().enumerate() {
            if let Some(after) = &def.get_ref().after {
                for (name, span) in Strings::items(after) {
                    let j = self.rule_ref(name, span, &rule_names, "after")?;
                    if !rules[j].before.contains(&i) {
                        rules[j].before.push(i);
                    }
                }
            }
        }

        // Generators.
        let mut gens: Vec<Gen> = Vec::new();
        let mut names: HashMap<String, Range<usize>> = HashMap::new();
        for g in &m.gens {
            let def = g.get_ref();
            let span = g.span();
            let targets = self.templates(def.target.as_ref(), "in `target`")?;
            let gname = match (&def.name, targets.first()) {
                (Some(n), _) => n.get_ref().clone(),
                (None, Some(t)) => t.text.clone(),
                (None, None) => {
                    return Err(self
                        .err(span, "a generator without a target needs a `name`")
                        .into());
                }
            };
            if gname.is_empty() {
                return Err(self
                    .err(
                        def.name.as_ref().map_or(span.clone(), |n| n.span()),
                        "a generator's name cannot be empty",
                    )
                    .into());
            }
            if let Some(first) = names.get(&gname) {
                let (line, _) = self.source.line_col(first.start);
                let at = def.name.as_ref().map_or(span.clone(), |n| n.span());
                return Err(self
                    .err(at, format!("duplicate generator name `{gname}`"))
                    .note(format!("first defined at {}:{line}", self.source.name))
                    .into());
            }
            names.insert(
                gname.clone(),
                def.name.as_ref().map_or(span.clone(), |n| n.span()),
            );

            let group = match &def.group {
                None => 0,
                Some(gr) => groups
                    .iter()
                    .position(|x| &x.name == gr.get_ref())
                    .ok_or_else(|| {
                        self.err(gr.span(), format!("unknown group `{}`", gr.get_ref()))
                            .note(format!(
                                "expected one of {}",
                                groups
                                    .iter()
                                    .map(|g| format!("`{}`", g.name))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ))
                            .suggest(gr.get_ref(), groups.iter().map(|g| g.name.as_str()))
                    })?,
            };

            let rule = match (&def.rule, &def.run) {
                (Some(r), Some(_)) => {
                    return Err(self
                        .err(r.span(), "a generator has `rule` or `run`, not both")
                        .note("`rule` names a [rule.X]; `run` is a command of the generator's own")
                        .into());
                }
                (Some(r), None) => {
                    Some(self.rule_ref(r.get_ref(), r.span(), &rule_names, "rule")?)
                }
                (None, Some(run)) => {
                    let commands =
                        self.commands(run, &format!("generator `{gname}`"), &known_names)?;
                    let signature_names = signature_names(&commands, None, &[]);
                    rules.push(Rule {
                        name: gname.clone(),
                        commands,
                        ext_in: Vec::new(),
                        ext_out: Vec::new(),
                        depfile: None,
                        vars: Vec::new(),
                        before: Vec::new(),
                        color: None,
                        always: false,
                        update_outputs: false,
                        signature_names,
                        span: run.span(),
                    });
                    Some(rules.len() - 1)
                }
                (None, None) => {
                    if let Some(t) = &def.target {
                        return Err(self
                            .err(t.span(), "a generator with neither `rule` nor `run` cannot have a `target`")
                            .note("its outputs are what its sources are mapped to; add `rule` or `run` to make the target")
                            .into());
                    }
                    None
                }
            };

            let mut genv = Env::default();
            if let Some(table) = &def.env {
                for (k, v) in table {
                    self.env_name(k)?;
                    let mut values = Vec::new();
                    for item in
                        self.templates(Some(v), &format!("in env value `{}`", k.get_ref()))?
                    {
                        env::splice(&item.value, &env, &out, &mut values).map_err(|e| {
                            template_diagnostic(
                                self.source,
                                &item.text,
                                &item.span,
                                &e,
                                &format!("in env value `{}`", k.get_ref()),
                            )
                        })?;
                    }
                    genv.set(k.get_ref().clone(), values);
                }
            }

            gens.push(Gen {
                name: gname,
                span,
                group,
                rule,
                sources: self.templates(def.source.as_ref(), "in `source`")?,
                exclude: self.templates(def.exclude.as_ref(), "in `exclude`")?,
                targets,
                uses: Vec::new(),
                deps: self.templates(def.deps.as_ref(), "in `deps`")?,
                dep_gens: Vec::new(),
                env: genv,
            });
        }
        // `use` refers to generators by name, declared anywhere.
        for (i, g) in m.gens.iter().enumerate() {
            if let Some(uses) = &g.get_ref().uses {
                for (name, span) in Strings::items(uses) {
                    let j = gens.iter().position(|x| x.name == name).ok_or_else(|| {
                        self.err(span.clone(), format!("unknown generator `{name}` in `use`"))
                            .suggest(name, gens.iter().map(|x| x.name.as_str()))
                    })?;
                    if j == i {
                        return Err(self
                            .err(span, format!("generator `{name}` uses itself"))
                            .into());
                    }
                    gens[i].uses.push((j, span));
                }
            }
        }
        // A `deps` entry that is exactly a generator's name means that generator.
        for i in 0..gens.len() {
            let deps = std::mem::take(&mut gens[i].deps);
            for d in deps {
                match gens.iter().position(|x| x.name == d.text) {
                    Some(j) if j == i => {
                        return Err(self
                            .err(d.span, format!("generator `{}` depends on itself", d.text))
                            .into());
                    }
                    Some(j) => gens[i].dep_gens.push((j, d.span)),
                    None => gens[i].deps.push(d),
                }
            }
        }

        Ok(Project {
            source: self.source.clone(),
            root,
            out,
            post,
            name,
            env,
            groups,
            rules,
            gens,
        })
    }

    fn rule_ref(
        &self,
        name: &str,
        span: Range<usize>,
        rule_names: &[String],
        key: &str,
    ) -> Result<RuleId, Diagnostic> {
        rule_names.iter().position(|r| r == name).ok_or_else(|| {
            let d = self.err(span, format!("unknown rule `{name}` in `{key}`"));
            let d = if rule_names.is_empty() {
                d.note("the build file defines no [rule.X]")
            } else {
                d.note(format!(
                    "expected one of {}",
                    rule_names
                        .iter()
                        .map(|r| format!("`{r}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            };
            d.suggest(name, rule_names.iter().map(String::as_str))
        })
    }

    fn commands(
        &self,
        run: &Spanned<Strings>,
        owner: &str,
        known: &BTreeSet<String>,
    ) -> Result<Vec<Located<Template>>, Diagnostic> {
        let commands = self.templates(Some(run), &format!("in `run` of {owner}"))?;
        if commands.is_empty() || commands.iter().all(|c| c.text.trim().is_empty()) {
            return Err(self
                .err(run.span(), format!("`run` of {owner} is empty"))
                .note("expected a command or a list of commands"));
        }
        for c in &commands {
            self.check_names(c, owner, known)?;
        }
        Ok(commands)
    }

    fn check_names(
        &self,
        t: &Located<Template>,
        owner: &str,
        known: &BTreeSet<String>,
    ) -> Result<(), Diagnostic> {
        for (offset, name) in t.value.names() {
            if !known.contains(name) {
                let err = TemplateError {
                    offset,
                    kind: crate::template::ErrorKind::Undefined(name.to_string()),
                };
                return Err(
                    template_diagnostic(self.source, &t.text, &t.span, &err, owner)
                        .suggest(name, known.iter().map(String::as_str)),
                );
            }
        }
        Ok(())
    }

    fn rule(
        &self,
        rname: &Spanned<String>,
        def: &Spanned<manifest::RuleDef>,
        rule_names: &[String],
        known: &BTreeSet<String>,
        claims: &mut HashMap<String, (String, Range<usize>)>,
    ) -> Result<Rule, Error> {
        let name = rname.get_ref().clone();
        let owner = format!("rule `{name}`");
        let d = def.get_ref();
        let commands = self.commands(&d.run, &owner, known)?;
        let depfile = match &d.depfile {
            Some(df) => {
                let t =
                    self.located(df.get_ref(), df.span(), &format!("in `depfile` of {owner}"))?;
                self.check_names(&t, &owner, known)?;
                Some(t)
            }
            None => None,
        };
        let mut ext_in = Vec::new();
        for (ext, span) in opt_items(&d.ext_in) {
            if ext.is_empty() {
                return Err(self
                    .err(span, "an empty extension")
                    .note("expected a suffix such as \".c\"")
                    .into());
            }
            if let Some((other, _)) = claims.get(ext) {
                return Err(self
                    .err(
                        span,
                        format!("rules `{other}` and `{name}` both claim the extension `{ext}`"),
                    )
                    .note(
                        "a source must map through one rule: remove the extension from one of them",
                    )
                    .into());
            }
            claims.insert(ext.to_string(), (name.clone(), span));
            ext_in.push(ext.to_string());
        }
        let ext_out: Vec<String> = opt_items(&d.ext_out)
            .into_iter()
            .map(|(e, _)| e.to_string())
            .collect();
        let mut vars = Vec::new();
        for (v, span) in opt_items(&d.vars) {
            if !known.contains(v) {
                return Err(self
                    .err(span, format!("unknown env name `{v}` in `vars` of {owner}"))
                    .suggest(v, known.iter().map(String::as_str))
                    .into());
            }
            vars.push(v.to_string());
        }
        let mut before = Vec::new();
        for (b, span) in opt_items(&d.before) {
            before.push(self.rule_ref(b, span, rule_names, "before")?);
        }
        let color = match &d.color {
            None => None,
            Some(c) => {
                let text = c.get_ref().to_lowercase();
                Some(
                    Color::NAMES
                        .iter()
                        .find(|(n, _)| *n == text)
                        .map(|(_, c)| *c)
                        .ok_or_else(|| {
                            self.err(c.span(), format!("unknown color `{}`", c.get_ref()))
                                .note(format!(
                                    "expected one of {}",
                                    Color::NAMES
                                        .iter()
                                        .map(|(n, _)| format!("`{n}`"))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ))
                                .suggest(&text, Color::NAMES.iter().map(|(n, _)| *n))
                        })?,
                )
            }
        };
        let signature_names = signature_names(&commands, depfile.as_ref(), &vars);
        Ok(Rule {
            name,
            commands,
            ext_in,
            ext_out,
            depfile,
            vars,
            before,
            color,
            always: d.always.unwrap_or(false),
            update_outputs: d.update_outputs.unwrap_or(false),
            signature_names,
            span: def.span(),
        })
    }
}

fn opt_items(v: &Option<Spanned<Strings>>) -> Vec<(&str, Range<usize>)> {
    v.as_ref().map(Strings::items).unwrap_or_default()
}

fn signature_names(
    commands: &[Located<Template>],
    depfile: Option<&Located<Template>>,
    vars: &[String],
) -> Vec<String> {
    let mut names: BTreeSet<String> = vars.iter().cloned().collect();
    for t in commands.iter().chain(depfile) {
        names.extend(t.value.names().map(|(_, n)| n.to_string()));
    }
    names.into_iter().collect()
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
