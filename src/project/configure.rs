//! Validation of `[configure]`: env names for its programs and packages, each check a name and
//! one snippet, `config.h` a path below the build directory. Running it is [`crate::configure`].

use super::validate::{Builder, is_name};
use crate::configure::{Check, Configure};
use crate::error::Error;
use crate::manifest::{ConfigureDef, Strings};
use crate::paths;
use toml::Spanned;

impl Builder<'_> {
    /// `[configure]`, checked: env names for programs and packages, each check a name and one
    /// snippet, `config.h` a path below the build directory.
    pub(super) fn configure(&self, def: &Spanned<ConfigureDef>) -> Result<Configure, Error> {
        let d = def.get_ref();
        let mut c = Configure::default();
        for (name, candidates) in d.programs.iter().flatten() {
            self.env_name(name)?;
            let list: Vec<String> = Strings::items(candidates)
                .into_iter()
                .map(|(t, _)| t.trim().to_string())
                .collect();
            if list.is_empty() || list.iter().any(String::is_empty) {
                return Err(self
                    .err(candidates.span(), format!("no program to look for in `{}`", name.get_ref()))
                    .note("expected names such as [\"cc\", \"gcc\"], looked for on PATH in order")
                    .into());
            }
            c.programs.push((name.get_ref().clone(), list));
        }
        for (name, query) in d.packages.iter().flatten() {
            self.env_name(name)?;
            if query.get_ref().trim().is_empty() {
                return Err(self
                    .err(query.span(), format!("no pkg-config package for `{}`", name.get_ref()))
                    .note("expected a query such as \"zlib >= 1.2\"")
                    .into());
            }
            c.packages
                .push((name.get_ref().clone(), query.get_ref().trim().to_string()));
        }
        if let Some(h) = &d.header {
            let path = paths::normalize(h.get_ref());
            if h.get_ref().trim().is_empty() || h.get_ref().starts_with('/') || path.starts_with("..") {
                return Err(self
                    .err(h.span(), format!("`header` must be a file below the build directory, not `{}`", h.get_ref()))
                    .note("such as \"config.h\", written to <out>/config.h")
                    .into());
            }
            c.header = Some(path);
        }
        for check in d.check.iter().flatten() {
            let ch = check.get_ref();
            let define = ch.define.get_ref();
            if !is_name(define) {
                return Err(self
                    .err(ch.define.span(), format!("`{define}` is not a name a check can define"))
                    .note("expected letters, digits and `_`, not starting with a digit, such as HAVE_STDINT_H")
                    .into());
            }
            if c.checks.iter().any(|x: &Check| &x.define == define) {
                return Err(self
                    .err(ch.define.span(), format!("two checks define `{define}`"))
                    .into());
            }
            let (link, code) = match (&ch.compile, &ch.link) {
                (Some(code), None) => (false, code.get_ref().clone()),
                (None, Some(code)) => (true, code.get_ref().clone()),
                (Some(_), Some(l)) => {
                    return Err(self
                        .err(l.span(), format!("check `{define}` has both `compile` and `link`"))
                        .note("`compile` only compiles the snippet; `link` also links it (with `libs`): give one")
                        .into());
                }
                (None, None) => {
                    return Err(self
                        .err(check.span(), format!("check `{define}` has no snippet"))
                        .note("give it `compile = \"...\"` or `link = \"...\"`: a C program that must build")
                        .into());
                }
            };
            if let (false, Some(libs)) = (link, &ch.libs) {
                return Err(self
                    .err(libs.span(), format!("`libs` of check `{define}` needs a `link` check"))
                    .note("a `compile` check does not link")
                    .into());
            }
            c.checks.push(Check {
                define: define.clone(),
                link,
                code,
                libs: ch
                    .libs
                    .as_ref()
                    .map(Strings::items)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(t, _)| t.to_string())
                    .collect(),
                optional: ch.optional.unwrap_or(false),
            });
        }
        Ok(c)
    }
}
