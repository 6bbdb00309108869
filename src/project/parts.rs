//! Several build files (`[project] subdirs`, waf's `recurse`, ninja's `subninja`): each part's
//! `build.toml` read in the order the entries name them (depth first), parsed alone, then placed in
//! the project's span space ([`Sources`]) so that every later error names the right file. Only
//! `subdirs` of `[project]` may appear in a part, and groups are declared in the top file.

use crate::error::{Diagnostic, Error, SourceText, Sources};
use crate::manifest::{Manifest, Shift, Strings};
use crate::parsed::Parsed;
use crate::paths;
use std::path::Path;
use std::sync::Arc;

/// The top build file or one a `subdirs` entry named, as parsed.
pub(super) struct PartDef {
    /// Its directory, a kiln path (`.` for the top file).
    pub(super) dir: String,
    /// The part whose `subdirs` named it.
    pub(super) parent: Option<usize>,
    pub(super) manifest: Manifest,
}

/// The top file's manifest and every part it names, recursively, in depth-first order; each
/// part's text is added to `sources`. `top_display` is the top file's name as the user sees it.
pub(super) fn read(
    sources: &mut Sources,
    top: Manifest,
    root: &Path,
    top_display: &str,
    parsed: &mut Parsed,
) -> Result<Vec<PartDef>, Error> {
    let mut parts = vec![PartDef {
        dir: ".".to_string(),
        parent: None,
        manifest: top,
    }];
    let shown_dir = Path::new(top_display)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    visit(sources, &mut parts, 0, root, &shown_dir, parsed)?;
    Ok(parts)
}

/// Reads the parts that part `i` names, each followed by the parts it names.
fn visit(
    sources: &mut Sources,
    parts: &mut Vec<PartDef>,
    i: usize,
    root: &Path,
    shown_dir: &str,
    parsed: &mut Parsed,
) -> Result<(), Error> {
    let entries: Vec<(String, std::ops::Range<usize>)> = match parts[i].manifest.project.as_ref() {
        Some(p) => match &p.get_ref().subdirs {
            Some(s) => Strings::items(s)
                .into_iter()
                .map(|(t, span)| (t.to_string(), span))
                .collect(),
            None => Vec::new(),
        },
        None => Vec::new(),
    };
    for (text, span) in entries {
        let dir = paths::join(&parts[i].dir, text.trim());
        if text.trim().is_empty()
            || text.starts_with('/')
            || dir == "."
            || paths::is_outside_project(&dir)
        {
            return Err(sources
                .at(span, format!("`{text}` in `subdirs` is not a directory below this one"))
                .note("expected a relative path inside the project, such as \"lib\"")
                .into());
        }
        if let Some(other) = parts.iter().find(|p| p.dir == dir) {
            let what = if other.parent.is_none() {
                "the top build file's directory".to_string()
            } else {
                format!("`{dir}`, already a part")
            };
            return Err(sources
                .at(span, format!("`{text}` in `subdirs` names {what}"))
                .note("each directory is read once")
                .into());
        }
        let file = paths::absolute(root, &dir).join("build.toml");
        let shown = if shown_dir.is_empty() {
            format!("{dir}/build.toml")
        } else {
            format!("{shown_dir}/{dir}/build.toml")
        };
        let bytes = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) => {
                let message = match e.kind() {
                    std::io::ErrorKind::NotFound => {
                        format!("no build file `{shown}` for the `subdirs` entry `{text}`")
                    }
                    _ => format!("cannot read `{shown}` for the `subdirs` entry `{text}`: {e}"),
                };
                return Err(sources
                    .at(span, message)
                    .note("each directory in `subdirs` holds a build.toml of its own")
                    .into());
            }
        };
        let source = Arc::new(SourceText {
            name: shown,
            text: String::from_utf8(bytes).map_err(|e| {
                let at = e.utf8_error().valid_up_to();
                let source = Arc::new(SourceText {
                    name: file.to_string_lossy().into_owned(),
                    text: String::from_utf8_lossy(e.as_bytes()).into_owned(),
                });
                Error::from(Diagnostic::at(
                    &source,
                    at..at + 1,
                    "the build file is not valid UTF-8",
                ))
            })?,
        });
        let manifest = parsed.manifest(&source)?;
        let base = sources.add(source);
        let manifest = manifest.shift(base);
        check_part(sources, &manifest)?;
        parts.push(PartDef {
            dir,
            parent: Some(i),
            manifest,
        });
        let j = parts.len() - 1;
        visit(sources, parts, j, root, shown_dir, parsed)?;
    }
    Ok(())
}

/// What a part may not say: the project's name, build directory and expansion mode, and its
/// groups, belong to the top build file.
fn check_part(sources: &Sources, m: &Manifest) -> Result<(), Error> {
    if let Some(p) = &m.project {
        let p = p.get_ref();
        let top_only = [
            ("name", p.name.as_ref().map(|v| v.span())),
            ("out", p.out.as_ref().map(|v| v.span())),
            ("post", p.post.as_ref().map(|v| v.span())),
        ];
        if let Some((key, Some(span))) = top_only.into_iter().find(|(_, s)| s.is_some()) {
            return Err(sources
                .at(span, format!("`{key}` of [project] belongs to the top build file"))
                .note("a part shares the project's; it may only name more parts with `subdirs`")
                .into());
        }
    }
    if let Some(c) = &m.configure {
        return Err(sources
            .at(c.span(), "[configure] belongs to the top build file")
            .note("its results are env values every part sees")
            .into());
    }
    if let Some(g) = m.group.first() {
        return Err(sources
            .at(g.get_ref().name.span(), "groups are declared in the top build file")
            .note("a part's generators name them with `group = \"...\"`")
            .into());
    }
    Ok(())
}
