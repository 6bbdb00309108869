//! Expanding the `[env]` table: every `${NAME}` inside a value becomes NAME's value, itself
//! expanded first (`CFLAGS = ["${TARGET_CFLAGS}", "-O2"]`), so that nothing reaches a command
//! unexpanded; values that refer to each other in a loop are an error naming the loop. `-D`
//! values are taken as given.

use super::Located;
use crate::env::{Env, splice};
use crate::template::{Lookup, Template, TemplateError};
use std::collections::BTreeMap;

/// Why the `[env]` values could not be expanded.
#[derive(Debug)]
pub enum ExpandError<'a> {
    /// An item of value `name` does not expand (an undefined `${X}`, `${SRC}`...).
    Template {
        name: String,
        item: &'a Located<Template>,
        error: TemplateError,
    },
    /// Values that refer to each other in a loop, the first repeated at the end; `item` is where
    /// the loop closes.
    Cycle {
        cycle: Vec<String>,
        item: &'a Located<Template>,
    },
}

/// Expands every value of `raw` (the `[env]` table as written) into `env`, which already holds the
/// values that are final as they are (`-D`): each item is spliced against the values it names,
/// themselves expanded first.
pub fn expand_all<'a>(
    raw: &'a BTreeMap<String, Vec<Located<Template>>>,
    env: &mut Env,
    out: &str,
) -> Result<(), ExpandError<'a>> {
    for name in raw.keys() {
        let mut path = Vec::new();
        expand_one(name, raw, env, out, &mut path)?;
    }
    Ok(())
}

/// Expands `name` (and, first, what it names) into `env`; `path` is the chain being expanded.
fn expand_one<'a>(
    name: &str,
    raw: &'a BTreeMap<String, Vec<Located<Template>>>,
    env: &mut Env,
    out: &str,
    path: &mut Vec<String>,
) -> Result<(), ExpandError<'a>> {
    let Some(items) = raw.get(name).filter(|_| env.get(name).is_none()) else {
        return Ok(());
    };
    path.push(name.to_string());
    for item in items {
        for (_, used) in item.value.names() {
            if let Some(at) = path.iter().position(|p| p == used) {
                let mut cycle = path[at..].to_vec();
                cycle.push(used.to_string());
                return Err(ExpandError::Cycle { cycle, item });
            }
            expand_one(used, raw, env, out, path)?;
        }
    }
    path.pop();
    let mut values = Vec::new();
    for item in items {
        splice(&item.value, env, out, &mut values).map_err(|error| ExpandError::Template {
            name: name.to_string(),
            item,
            error,
        })?;
    }
    env.set(name, values);
    Ok(())
}

