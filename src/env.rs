//! Env values: the `[env]` table with `-D` overrides applied and every `${NAME}` inside a value
//! expanded (recursively: `CFLAGS = ["${TARGET_CFLAGS}", "-O2"]`; a cycle is an error), a
//! generator's own values layered over it, and splicing (`CFLAGS = ["${CFLAGS}", "-DX"]`: an item
//! that is exactly `${NAME}` inserts that list; other `${NAME}`s in an item expand to the value
//! joined by spaces).

use crate::template::{Lookup, Template, TemplateError};
use std::collections::BTreeMap;

/// Named values; a string value is a list of one item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Env {
    vars: BTreeMap<String, Vec<String>>,
}

impl Env {
    pub fn set(&mut self, name: impl Into<String>, value: Vec<String>) {
        self.vars.insert(name.into(), value);
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(String::as_str)
    }


}

impl Lookup for Env {
    fn get(&self, name: &str) -> Option<&[String]> {
        self.vars.get(name).map(Vec::as_slice)
    }
}

/// A generator's values over the project's.
pub struct Layered<'a> {
    pub top: &'a Env,
    pub base: &'a Env,
}

impl Lookup for Layered<'_> {
    fn get(&self, name: &str) -> Option<&[String]> {
        self.top.get(name).or_else(|| self.base.get(name))
    }
}

/// Resolves one item of a generator's env value against the project-level values: an item that is
/// exactly `${NAME}` splices NAME's items; any other item expands its `${NAME}`s textually.
pub fn splice(
    item: &Template,
    base: &dyn Lookup,
    out: &str,
    into: &mut Vec<String>,
) -> Result<(), TemplateError> {
    if let Some(name) = item.sole_var()
        && let Some(values) = base.get(name)
    {
        into.extend(values.iter().cloned());
        return Ok(());
    }
    into.push(item.expand_plain(base, out)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splices_lists_and_expands_text() {
        let mut base = Env::default();
        base.set("CFLAGS", vec!["-O2".into(), "-Wall".into()]);
        let mut out = Vec::new();
        for item in ["${CFLAGS}", "-DX", "-I${OUT}/x", "${CFLAGS}-y"] {
            splice(&Template::parse(item).unwrap(), &base, "build", &mut out).unwrap();
        }
        assert_eq!(out, vec!["-O2", "-Wall", "-DX", "-Ibuild/x", "-O2 -Wall-y"]);
        let mut top = Env::default();
        top.set("CFLAGS", out);
        let layered = Layered {
            top: &top,
            base: &base,
        };
        assert_eq!(layered.get("CFLAGS").unwrap().len(), 5);
        assert!(
            splice(
                &Template::parse("${NOPE}").unwrap(),
                &base,
                "build",
                &mut Vec::new()
            )
            .is_err()
        );
    }
}
