//! The build file as written: serde types mirroring `build.toml`, with the spans that diagnostics need,
//! and the translation of the toml crate's errors into located diagnostics with suggestions. No
//! meaning is given to anything here; `project` validates and resolves.

use crate::error::{Diagnostic, SourceText};
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use toml::Spanned;

/// The whole build file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default)]
    pub project: Option<Spanned<ProjectDef>>,
    #[serde(default)]
    pub env: BTreeMap<Spanned<String>, Spanned<Strings>>,
    #[serde(default)]
    pub group: Vec<Spanned<GroupDef>>,
    #[serde(default)]
    pub rule: BTreeMap<Spanned<String>, Spanned<RuleDef>>,
    #[serde(default, rename = "gen")]
    pub gens: Vec<Spanned<GenDef>>,
    /// `[[install]]`: other files `kiln install` copies.
    #[serde(default)]
    pub install: Vec<Spanned<InstallDef>>,
    pub configure: Option<Spanned<ConfigureDef>>,
    #[serde(default)]
    pub variant: BTreeMap<Spanned<String>, Spanned<VariantDef>>,
    /// `[remote]`: what Actions sent to a remote engine ask for.
    pub remote: Option<Spanned<RemoteDef>>,
}

/// `[remote]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteDef {
    /// The platform properties each Action asks for (`OSFamily`, `container-image`, ...).
    pub platform: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
}

/// `[configure]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigureDef {
    pub programs: Option<BTreeMap<Spanned<String>, Spanned<Strings>>>,
    pub packages: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    pub header: Option<Spanned<String>>,
    pub check: Option<Vec<Spanned<CheckDef>>>,
}

/// `[[configure.check]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckDef {
    pub define: Spanned<String>,
    pub compile: Option<Spanned<String>>,
    pub link: Option<Spanned<String>>,
    pub libs: Option<Spanned<Strings>>,
    pub optional: Option<bool>,
}

/// `[project]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectDef {
    pub name: Option<Spanned<String>>,
    pub out: Option<Spanned<String>>,
    pub post: Option<Spanned<PostMode>>,
    /// Directories whose `build.toml` files are parts of this project.
    pub subdirs: Option<Spanned<Strings>>,
}

/// When a group's generators are expanded into tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PostMode {
    /// All groups are expanded before anything runs.
    #[default]
    AtOnce,
    /// A group is expanded after every earlier group finished, so its globs see generated files.
    Lazy,
}

/// `[[group]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupDef {
    pub name: Spanned<String>,
    pub order: Option<Spanned<Order>>,
    pub jobs: Option<Spanned<Jobs>>,
}

/// How the tasks of a group are ordered among themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    #[default]
    Parallel,
    Sequence,
}

/// A positive number of concurrent tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jobs(pub u32);

impl<'de> Deserialize<'de> for Jobs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Jobs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a whole number of at least 1")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Jobs, E> {
                match u32::try_from(v) {
                    Ok(n) if n >= 1 => Ok(Jobs(n)),
                    _ => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `[rule.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    pub run: Spanned<Strings>,
    pub ext_in: Option<Spanned<Strings>>,
    pub ext_out: Option<Spanned<Strings>>,
    pub depfile: Option<Spanned<String>>,
    pub vars: Option<Spanned<Strings>>,
    pub before: Option<Spanned<Strings>>,
    pub after: Option<Spanned<Strings>>,
    pub color: Option<Spanned<String>>,
    pub always: Option<bool>,
    pub update_outputs: Option<bool>,
    /// `"c"`: the C/C++ include scanner finds the headers its inputs include before it runs.
    pub scan: Option<Spanned<String>>,
    /// Whether `kiln compdb` lists its tasks (default: when `ext_in` holds a C/C++ extension).
    pub compdb: Option<bool>,
    /// Never stored in or restored from an output cache (waf's `nocache`).
    pub nocache: Option<bool>,
    /// `false`: its tasks always run locally, never on a remote engine.
    pub remote: Option<bool>,
}

/// `[[gen]]`: a task generator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenDef {
    pub name: Option<Spanned<String>>,
    pub group: Option<Spanned<String>>,
    pub rule: Option<Spanned<String>>,
    pub run: Option<Spanned<Strings>>,
    pub source: Option<Spanned<Strings>>,
    pub exclude: Option<Spanned<Strings>>,
    pub target: Option<Spanned<Strings>>,
    #[serde(rename = "use")]
    pub uses: Option<Spanned<Strings>>,
    pub deps: Option<Spanned<Strings>>,
    pub env: Option<BTreeMap<Spanned<String>, Spanned<Strings>>>,
    /// `false`: the sources enter `${SRC}` as they are, mapped through no rule.
    pub map: Option<Spanned<bool>>,
    /// `false`: built only when named (`kiln build check`), as `make check`.
    pub default: Option<bool>,
    /// Run after these generators (or paths) without their outputs entering the signature.
    pub order_only: Option<Spanned<Strings>>,
    /// For this generator's sources, the rule that maps an extension (`{ ".c" = "cc_pic" }`).
    pub ext_rules: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    /// Its mapped outputs go to `<out>/<objdir>/<source path with ext_out>`.
    pub objdir: Option<Spanned<String>>,
    /// `kiln install` copies its targets to this directory (`"${BINDIR}"`).
    pub install: Option<Spanned<String>>,
}

/// `[[install]]`: files `kiln install` copies besides generators' targets.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallDef {
    /// Globs and paths as in generators; a generator's target means its output.
    pub source: Spanned<Strings>,
    /// The directory they go to.
    pub dest: Spanned<String>,
    /// Their permissions, as an octal string (`"644"`); by default the source's.
    pub mode: Option<Spanned<String>>,
}

/// `[variant.NAME]`: a build of the project into its own build directory with its own env values
/// (`kiln build --variant NAME`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantDef {
    /// Its build directory, relative to the build file (default: `<out>/<NAME>`).
    pub out: Option<Spanned<String>>,
    /// Its env values, over `[env]` (`${NAME}` inside one means the value below it).
    pub env: Option<BTreeMap<Spanned<String>, Spanned<Strings>>>,
}

/// A string or a list of strings, as most values in the build file may be.
#[derive(Debug, Clone)]
pub enum Strings {
    One(String),
    List(Vec<Spanned<String>>),
}

impl Strings {
    /// The items with their spans; a single string carries the span of the whole value.
    pub fn items(this: &Spanned<Strings>) -> Vec<(&str, std::ops::Range<usize>)> {
        match this.get_ref() {
            Strings::One(s) => vec![(s.as_str(), this.span())],
            Strings::List(items) => items
                .iter()
                .map(|i| (i.get_ref().as_str(), i.span()))
                .collect(),
        }
    }

}

impl<'de> Deserialize<'de> for Strings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Strings;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Strings, E> {
                Ok(Strings::One(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Strings, E> {
                Ok(Strings::One(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strings, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<ListItem>>()? {
                    let span = item.span();
                    items.push(Spanned::new(span, item.into_inner().0));
                }
                Ok(Strings::List(items))
            }
        }
        d.deserialize_any(V)
    }
}

/// One string of a list, with a message that names the list's expected type.
struct ListItem(String);

impl<'de> Deserialize<'de> for ListItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ListItem;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string (every item of this list must be a string)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ListItem, E> {
                Ok(ListItem(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Moves every span by `by`: a part's build file is parsed alone, then placed in the project's
/// span space (see [`crate::error::Sources`]).
pub trait Shift {
    fn shift(self, by: usize) -> Self;
}

impl<T: Shift> Shift for Spanned<T> {
    fn shift(self, by: usize) -> Self {
        let r = self.span();
        Spanned::new(r.start + by..r.end + by, self.into_inner().shift(by))
    }
}

impl<T: Shift> Shift for Option<T> {
    fn shift(self, by: usize) -> Self {
        self.map(|v| v.shift(by))
    }
}

impl<T: Shift> Shift for Vec<T> {
    fn shift(self, by: usize) -> Self {
        self.into_iter().map(|v| v.shift(by)).collect()
    }
}

impl<K: Shift + Ord, V: Shift> Shift for BTreeMap<K, V> {
    fn shift(self, by: usize) -> Self {
        self.into_iter().map(|(k, v)| (k.shift(by), v.shift(by))).collect()
    }
}

impl Shift for Strings {
    fn shift(self, by: usize) -> Self {
        match self {
            Strings::One(s) => Strings::One(s),
            Strings::List(items) => Strings::List(items.shift(by)),
        }
    }
}

/// Values without spans of their own.
macro_rules! unshifted {
    ($($t:ty),*) => {$(
        impl Shift for $t {
            fn shift(self, _: usize) -> Self {
                self
            }
        }
    )*};
}
unshifted!(String, bool, PostMode, Order, Jobs);

/// Structs shift field by field, and encode so for the parsed-file cache ([`crate::parsed`]); the
/// literal names every field, so none is forgotten.
macro_rules! shift_fields {
    ($t:ident { $($f:ident),* $(,)? }) => {
        impl Shift for $t {
            fn shift(self, by: usize) -> Self {
                $t { $($f: self.$f.shift(by)),* }
            }
        }
        crate::codec::encode_struct!($t { $($f),* } skip {});
    };
}
shift_fields!(Manifest { project, env, group, rule, gens, configure, install, variant, remote });
shift_fields!(RemoteDef { platform });
shift_fields!(ConfigureDef { programs, packages, header, check });
shift_fields!(CheckDef { define, compile, link, libs, optional });
shift_fields!(ProjectDef { name, out, post, subdirs });
shift_fields!(GroupDef { name, order, jobs });
shift_fields!(RuleDef {
    run, ext_in, ext_out, depfile, vars, before, after, color, always, update_outputs, scan, compdb, nocache,
    remote
});
shift_fields!(GenDef {
    name, group, rule, run, source, exclude, target, uses, deps, env, map, default, order_only,
    ext_rules, objdir, install
});
shift_fields!(InstallDef { source, dest, mode });
shift_fields!(VariantDef { out, env });

/// Parses the build file, turning the toml crate's errors into located diagnostics.
pub fn parse(source: &Arc<SourceText>) -> Result<Manifest, Diagnostic> {
    toml::from_str::<Manifest>(&source.text).map_err(|e| translate(source, &e))
}

/// Rewrites a toml/serde message into "what was found, what was expected, did you mean".
fn translate(source: &Arc<SourceText>, e: &toml::de::Error) -> Diagnostic {
    let message = e.message().trim().to_string();
    let span = e.span().unwrap_or(0..0);
    let found = source
        .text
        .get(span.clone())
        .unwrap_or("")
        .trim()
        .to_string();
    let mut diag;
    if let Some(rest) = message.strip_prefix("unknown field `") {
        // "unknown field `X`, expected one of `a`, `b`" or "..., there are no fields"
        let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let options = backticked(expected);
        diag = Diagnostic::at(source, span, format!("unknown key `{name}`"));
        diag = if options.is_empty() {
            diag.note("this table takes no keys")
        } else {
            diag.note(format!("expected one of {}", quote_list(&options)))
        };
        diag = diag.suggest(name, options.iter().map(String::as_str));
    } else if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let options = backticked(expected);
        diag = Diagnostic::at(source, span, format!("unknown value `{name}`"))
            .note(format!("expected one of {}", quote_list(&options)));
        diag = diag.suggest(name, options.iter().map(String::as_str));
    } else if let Some(rest) = message.strip_prefix("invalid type: ") {
        // "invalid type: integer `3`, expected a string"
        let (what, expected) = rest
            .split_once(", expected ")
            .unwrap_or((rest, "another type"));
        diag = Diagnostic::at(
            source,
            span,
            format!("wrong type: found {what}, expected {expected}"),
        );
    } else if let Some(rest) = message.strip_prefix("invalid value: ") {
        let (what, expected) = rest
            .split_once(", expected ")
            .unwrap_or((rest, "another value"));
        diag = Diagnostic::at(
            source,
            span,
            format!("invalid value: found {what}, expected {expected}"),
        );
    } else if let Some(field) = message.strip_prefix("missing field ") {
        diag = Diagnostic::at(source, span, format!("missing key {field}"))
            .note(format!("this table needs {field}"));
    } else if message == "duplicate key" {
        diag = Diagnostic::at(source, span, format!("duplicate key `{found}`"))
            .note("each key may appear once in a table");
    } else if message.starts_with("a string or a list of strings")
        || message.starts_with("a string (every")
    {
        // our own `expecting` text, raised without a found value
        let kind = value_kind(&found);
        diag = Diagnostic::at(
            source,
            span,
            format!("wrong type: found {kind}, expected {message}"),
        );
    } else if message.starts_with("a whole number") {
        diag = Diagnostic::at(
            source,
            span,
            format!(
                "wrong type: found {}, expected {message}",
                value_kind(&found)
            ),
        );
    } else {
        diag = Diagnostic::at(source, span, format!("invalid TOML: {message}"));
    }
    diag
}

/// A rough name for a TOML value's type, from its text.
fn value_kind(text: &str) -> String {
    let t = text.trim();
    let kind = match t.chars().next() {
        Some('"') | Some('\'') => "a string",
        Some('[') => "an array",
        Some('{') => "an inline table",
        Some('t') | Some('f') if t == "true" || t == "false" => "a boolean",
        Some(c) if c.is_ascii_digit() || c == '-' || c == '+' => {
            if t.contains('.') || t.contains('e') {
                "a float"
            } else {
                "an integer"
            }
        }
        _ => "a value",
    };
    if t.is_empty() || t.len() > 40 {
        kind.to_string()
    } else {
        format!("{kind} `{t}`")
    }
}

fn backticked(s: &str) -> Vec<String> {
    s.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn quote_list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<Manifest, String> {
        let source = Arc::new(SourceText {
            name: "build.toml".into(),
            text: text.into(),
        });
        parse(&source).map_err(|d| d.to_string())
    }

    #[test]
    fn unknown_key_names_expected_keys_and_suggests() {
        let err = parse_text("[[gen]]\nname = 'a'\nsorce = ['x']\n").unwrap_err();
        assert!(
            err.starts_with("build.toml:3:1: error: unknown key `sorce`"),
            "{err}"
        );
        assert!(err.contains("did you mean `source`?"), "{err}");
        assert!(err.contains("expected one of `name`, `group`"), "{err}");
    }

    #[test]
    fn wrong_type_says_found_and_expected() {
        let err = parse_text("[[gen]]\nname = 'a'\nsource = 3\n").unwrap_err();
        assert!(err.contains("build.toml:3:10: error: wrong type: found integer `3`, expected a string or a list of strings"), "{err}");
        let err = parse_text("[rule.cc]\nrun = ['a', 3]\n").unwrap_err();
        assert!(err.contains("build.toml:2:13"), "{err}");
        assert!(err.contains("found integer `3`"), "{err}");
    }

    #[test]
    fn unknown_variant_suggests() {
        let err = parse_text("[[group]]\nname = 'g'\norder = 'sequense'\n").unwrap_err();
        assert!(err.contains("unknown value `sequense`"), "{err}");
        assert!(err.contains("did you mean `sequence`?"), "{err}");
    }

    #[test]
    fn jobs_must_be_positive() {
        let err = parse_text("[[group]]\nname = 'g'\njobs = 0\n").unwrap_err();
        assert!(err.contains("build.toml:3:8"), "{err}");
        assert!(err.contains("a whole number of at least 1"), "{err}");
    }

    #[test]
    fn strings_accept_one_or_many() {
        let m = parse_text("[env]\nA = 'x'\nB = ['y', 'z']\n").unwrap();
        let values: Vec<Vec<String>> = m
            .env
            .values()
            .map(|v| Strings::items(v).into_iter().map(|(s, _)| s.to_string()).collect())
            .collect();
        assert_eq!(
            values,
            vec![
                vec!["x".to_string()],
                vec!["y".to_string(), "z".to_string()]
            ]
        );
    }
}
