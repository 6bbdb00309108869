//! Validation of rules (`[rule.X]`): their commands and depfile as templates naming only env
//! values some task could see, the extensions they take (one rule per extension), `vars`,
//! `before` and `after` as rule ids, and their colour. Also what a rule's signature covers.

use super::validate::{Builder, template_diagnostic};
use super::{Located, Rule};
use crate::error::{Diagnostic, Error};
use crate::ids::RuleId;
use crate::manifest::{self, Manifest, Strings};
use crate::progress::Color;
use crate::template::{Template, TemplateError};
use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use toml::Spanned;

/// The rules a part's generators see by name: the top file's, overridden by each enclosing part's
/// and then by the part's own.
#[derive(Debug, Clone, Default)]
pub(super) struct Scope {
    pub(super) names: Vec<String>,
    pub(super) ids: Vec<RuleId>,
}

impl Scope {
    fn get(&self, name: &str) -> Option<RuleId> {
        self.names.iter().position(|n| n == name).map(|i| self.ids[i])
    }
}

impl Builder<'_> {
    /// A part's named rules, added to `all` (a rule's id is its index there), over the rules it
    /// `inherited`; returns the rules its generators see. `after` becomes `before` of the rule it
    /// names; a rule that overrides an inherited one takes over its place in `before` and
    /// `after`. `known_names` holds every env name a task could see.
    pub(super) fn rules(
        &self,
        m: &Manifest,
        known_names: &BTreeSet<String>,
        inherited: &Scope,
        all: &mut Vec<Rule>,
    ) -> Result<Scope, Error> {
        let first = all.len();
        let mut scope = inherited.clone();
        let mut replaced = Vec::new();
        for (i, name) in m.rule.keys().enumerate() {
            let name = name.get_ref();
            match scope.names.iter().position(|n| n == name) {
                Some(at) => {
                    replaced.push((scope.ids[at], first + i));
                    scope.ids[at] = first + i;
                }
                None => {
                    scope.names.push(name.clone());
                    scope.ids.push(first + i);
                }
            }
        }
        // Extensions claimed by the inherited rules that stay in sight.
        let mut claims: HashMap<String, (String, Range<usize>)> = HashMap::new();
        for (name, &id) in inherited.names.iter().zip(&inherited.ids) {
            if scope.get(name) == Some(id) {
                for ext in &all[id].ext_in {
                    claims.insert(ext.clone(), (name.clone(), all[id].span.clone()));
                }
            }
        }
        for (rname, def) in &m.rule {
            let rule = self.rule(rname, def, &scope, known_names, &mut claims)?;
            all.push(rule);
        }
        for &(old, new) in &replaced {
            let before = all[old].before.clone();
            all[new].before.extend(before);
            for r in all.iter_mut() {
                if r.before.contains(&old) && !r.before.contains(&new) {
                    r.before.push(new);
                }
            }
        }
        // `after` of a rule is `before` of the named one.
        for (i, def) in m.rule.values().enumerate() {
            if let Some(after) = &def.get_ref().after {
                for (name, span) in Strings::items(after) {
                    let j = self.rule_ref(name, span, &scope, "after")?;
                    if !all[j].before.contains(&(first + i)) {
                        all[j].before.push(first + i);
                    }
                }
            }
        }
        Ok(scope)
    }

    pub(super) fn rule_ref(
        &self,
        name: &str,
        span: Range<usize>,
        scope: &Scope,
        key: &str,
    ) -> Result<RuleId, Diagnostic> {
        let rule_names = &scope.names;
        scope.get(name).ok_or_else(|| {
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

    pub(super) fn commands(
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
                    template_diagnostic(self.sources, &t.text, &t.span, &err, owner)
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
        scope: &Scope,
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
                        "a source maps through one rule: remove the extension from one of them (a generator picks another rule for its sources with `ext_rules`)",
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
            before.push(self.rule_ref(b, span, scope, "before")?);
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
        let scan = match &d.scan {
            None => false,
            Some(s) if s.get_ref() == "c" => true,
            Some(s) => {
                return Err(self
                    .err(s.span(), format!("unknown scanner `{}`", s.get_ref()))
                    .note("expected \"c\", the C/C++ include scanner")
                    .into());
            }
        };
        let signature_names = signature_names(&commands, depfile.as_ref(), &vars);
        let compdb = d
            .compdb
            .unwrap_or_else(|| ext_in.iter().any(|e| crate::compdb::is_c_source(e)));
        Ok(Rule {
            name,
            commands,
            ext_in,
            ext_out,
            depfile,
            before,
            color,
            always: d.always.unwrap_or(false),
            update_outputs: d.update_outputs.unwrap_or(false),
            scan,
            compdb,
            nocache: d.nocache.unwrap_or(false),
            remote: d.remote.unwrap_or(true),
            signature_names,
            span: def.span(),
        })
    }
}

fn opt_items(v: &Option<Spanned<Strings>>) -> Vec<(&str, Range<usize>)> {
    v.as_ref().map(Strings::items).unwrap_or_default()
}

/// The env names a rule's signature covers: those its commands and depfile use, and `vars`.
pub(super) fn signature_names(
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
