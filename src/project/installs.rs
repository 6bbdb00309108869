//! Validation of what `kiln install` copies: a generator's `install` directory and the
//! `[[install]]` entries (sources as templates, the destination expanded, the mode parsed). A
//! destination is expanded here, with the env values of its part (PREFIX, BINDIR, LIBDIR and
//! INCLUDEDIR have defaults), and must be an absolute directory; DESTDIR is added only when
//! installing.

use super::parts::PartDef;
use super::validate::{Builder, template_diagnostic};
use super::{Install, Project};
use crate::error::{Diagnostic, Error};
use crate::template::Lookup;
use toml::Spanned;

impl Builder<'_> {
    /// The destination directory written at `d` (the value of `key`), expanded with `env`.
    pub(super) fn dest(
        &self,
        d: &Spanned<String>,
        key: &str,
        env: &dyn Lookup,
        out: &str,
    ) -> Result<String, Diagnostic> {
        let text = d.get_ref();
        let what = format!("in `{key}`");
        if text.trim().is_empty() {
            return Err(self
                .err(d.span(), format!("`{key}` is empty"))
                .note("expected a directory such as \"${BINDIR}\" or \"${INCLUDEDIR}/hello\""));
        }
        let located = self.located(text, d.span(), &what)?;
        let dir = located
            .value
            .expand_plain(env, out)
            .map_err(|e| template_diagnostic(self.sources, text, &d.span(), &e, &what))?;
        if !dir.starts_with('/') {
            return Err(self
                .err(
                    d.span(),
                    format!("the install directory `{dir}` in `{key}` is not absolute"),
                )
                .note("expected an absolute directory such as \"${PREFIX}/share\"; give PREFIX as an absolute path"));
        }
        Ok(crate::paths::normalize(&dir))
    }

    /// Every part's `[[install]]` entries, in order.
    pub(super) fn installs(&self, parts: &[PartDef], p: &Project) -> Result<Vec<Install>, Error> {
        let mut installs = Vec::new();
        for (part, def) in parts.iter().enumerate() {
            for entry in &def.manifest.install {
                let e = entry.get_ref();
                let sources = self.templates(Some(&e.source), "in `source` of [[install]]")?;
                if sources.is_empty() {
                    return Err(self
                        .err(e.source.span(), "`source` of [[install]] is empty")
                        .note("expected the files to install, such as [\"include/*.h\"]")
                        .into());
                }
                let dest = self.dest(&e.dest, "dest", &p.parts[part].env, &p.out)?;
                let mode = match &e.mode {
                    None => None,
                    Some(m) => Some(parse_mode(m.get_ref()).ok_or_else(|| {
                        self.err(m.span(), format!("invalid mode `{}`", m.get_ref()))
                            .note("expected permissions in octal, such as \"644\" or \"755\"")
                    })?),
                };
                installs.push(Install {
                    sources,
                    dest,
                    mode,
                    part,
                });
            }
        }
        Ok(installs)
    }
}

/// Permissions written in octal (`"644"`, `"0755"`, `"4755"`), up to `7777`.
fn parse_mode(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 4 || !text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(text, 8).ok()
}

#[cfg(test)]
mod tests {
    use super::parse_mode;

    #[test]
    fn modes_are_octal() {
        assert_eq!(parse_mode("644"), Some(0o644));
        assert_eq!(parse_mode("0755"), Some(0o755));
        assert_eq!(parse_mode("4755"), Some(0o4755));
        for bad in ["", "9x9", "888", "75555", "-644", "64 4"] {
            assert_eq!(parse_mode(bad), None, "{bad}");
        }
    }
}
