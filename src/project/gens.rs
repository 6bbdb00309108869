//! Validation of generators (`[[gen]]`): names (a generator without one is named by its first
//! target), groups, the rule (a named one, or an inline `run` that becomes a rule of its own), the
//! generator's env, its entries as templates, and `use` and `deps` naming other generators.

use super::parts::PartDef;
use super::rules::{Scope, signature_names};
use super::validate::{Builder, template_diagnostic};
use super::{Gen, Project, Rule};
use crate::env::{self, Env};
use crate::error::Error;
use crate::paths;
use crate::manifest::{GenDef, Strings};
use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use toml::Spanned;

impl Builder<'_> {
    /// Every generator of every part, in order (the top file's first, then the parts', depth
    /// first), with `use` and `deps` resolved by name across the project; inline `run`s are added
    /// to `p.rules`.
    pub(super) fn gens(
        &self,
        parts: &[PartDef],
        p: &mut Project,
        scopes: &[Scope],
        known_names: &BTreeSet<String>,
    ) -> Result<Vec<Gen>, Error> {
        let mut gens: Vec<Gen> = Vec::new();
        let mut names: HashMap<String, Range<usize>> = HashMap::new();
        let mut defs: Vec<&Spanned<GenDef>> = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            for g in &part.manifest.gens {
                gens.push(self.generator(g, p, &mut names, &scopes[i], known_names, i)?);
                defs.push(g);
            }
        }
        // `use` refers to generators by name, declared anywhere.
        for (i, g) in defs.iter().enumerate() {
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
        // A `deps` or `order_only` entry that is exactly a generator's name means that generator.
        for i in 0..gens.len() {
            for order in [false, true] {
                let entries = if order {
                    std::mem::take(&mut gens[i].order_only)
                } else {
                    std::mem::take(&mut gens[i].deps)
                };
                for d in entries {
                    match gens.iter().position(|x| x.name == d.text) {
                        Some(j) if j == i => {
                            return Err(self
                                .err(d.span, format!("generator `{}` depends on itself", d.text))
                                .into());
                        }
                        Some(j) if order => gens[i].order_gens.push((j, d.span)),
                        Some(j) => gens[i].dep_gens.push((j, d.span)),
                        None if order => gens[i].order_only.push(d),
                        None => gens[i].deps.push(d),
                    }
                }
            }
        }
        Ok(gens)
    }

    /// One generator; `names` holds where each generator before it was named.
    fn generator(
        &self,
        g: &Spanned<GenDef>,
        p: &mut Project,
        names: &mut HashMap<String, Range<usize>>,
        scope: &Scope,
        known_names: &BTreeSet<String>,
        part: usize,
    ) -> Result<Gen, Error> {
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
            let at = def.name.as_ref().map_or(span.clone(), |n| n.span());
            return Err(self
                .err(at, format!("duplicate generator name `{gname}`"))
                .note(format!(
                    "first defined at {}; generator names are project-wide",
                    self.sources.place(first)
                ))
                .into());
        }
        names.insert(
            gname.clone(),
            def.name.as_ref().map_or(span.clone(), |n| n.span()),
        );

        let group = match &def.group {
            None => 0,
            Some(gr) => p
                .groups
                .iter()
                .position(|x| &x.name == gr.get_ref())
                .ok_or_else(|| {
                    self.err(gr.span(), format!("unknown group `{}`", gr.get_ref()))
                        .note(format!(
                            "expected one of {}",
                            p.groups
                                .iter()
                                .map(|g| format!("`{}`", g.name))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                        .suggest(gr.get_ref(), p.groups.iter().map(|g| g.name.as_str()))
                })?,
        };

        let rule = match (&def.rule, &def.run) {
            (Some(r), Some(_)) => {
                return Err(self
                    .err(r.span(), "a generator has `rule` or `run`, not both")
                    .note("`rule` names a [rule.X]; `run` is a command of the generator's own")
                    .into());
            }
            (Some(r), None) => Some(self.rule_ref(r.get_ref(), r.span(), scope, "rule")?),
            (None, Some(run)) => {
                let commands = self.commands(run, &format!("generator `{gname}`"), known_names)?;
                let signature_names = signature_names(&commands, None, &[]);
                p.rules.push(Rule {
                    name: gname.clone(),
                    commands,
                    ext_in: Vec::new(),
                    ext_out: Vec::new(),
                    depfile: None,
                    before: Vec::new(),
                    color: None,
                    always: false,
                    update_outputs: false,
                    scan: false,
                    compdb: false,
                    nocache: false,
                    remote: true,
                    signature_names,
                    span: run.span(),
                });
                Some(p.rules.len() - 1)
            }
            (None, None) => {
                if let Some(m) = def.map.as_ref().filter(|m| !*m.get_ref()) {
                    return Err(self
                        .err(m.span(), "`map = false` on a generator with neither `rule` nor `run`")
                        .note("such a generator only maps its sources; give it `rule` or `run` to pass them on as they are")
                        .into());
                }
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
                for item in self.templates(Some(v), &format!("in env value `{}`", k.get_ref()))? {
                    env::splice(&item.value, &p.parts[part].env, &p.out, &mut values).map_err(|e| {
                        template_diagnostic(
                            self.sources,
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

        let mut ext_rules = Vec::new();
        for (ext, rname) in def.ext_rules.iter().flatten() {
            if ext.get_ref().is_empty() {
                return Err(self
                    .err(ext.span(), "an empty extension in `ext_rules`")
                    .note("expected a suffix such as \".c\"")
                    .into());
            }
            let r = self.rule_ref(rname.get_ref(), rname.span(), scope, "ext_rules")?;
            if p.rules[r].ext_out.is_empty() {
                return Err(self
                    .err(
                        rname.span(),
                        format!(
                            "rule `{}` maps `{}` in `ext_rules` but has no `ext_out`",
                            rname.get_ref(),
                            ext.get_ref()
                        ),
                    )
                    .note(format!(
                        "generator `{gname}` maps its `{}` sources through it: name the output with ext_out = [\".o\"]",
                        ext.get_ref()
                    ))
                    .into());
            }
            ext_rules.push((ext.get_ref().clone(), r));
        }
        let objdir = match &def.objdir {
            None => None,
            Some(d) => {
                let dir = paths::normalize(d.get_ref());
                if d.get_ref().is_empty() || dir == "." || paths::is_outside_project(&dir) {
                    return Err(self
                        .err(d.span(), format!("`objdir` must be a directory below the build directory, not `{}`", d.get_ref()))
                        .note("a relative path without `..`, such as \"pic\": mapped outputs go to <out>/pic/...")
                        .into());
                }
                Some(dir)
            }
        };

        let install = match &def.install {
            None => None,
            Some(d) => {
                let env = crate::env::Layered {
                    top: &genv,
                    base: &p.parts[part].env,
                };
                Some(self.dest(d, "install", &env, &p.out)?)
            }
        };

        Ok(Gen {
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
            order_only: self.templates(def.order_only.as_ref(), "in `order_only`")?,
            order_gens: Vec::new(),
            env: genv,
            map: def.map.as_ref().is_none_or(|m| *m.get_ref()),
            default: def.default.unwrap_or(true),
            ext_rules,
            objdir,
            install,
            part,
        })
    }
}
