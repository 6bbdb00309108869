//! Expanding the `[env]` table: every `${NAME}` inside a value becomes NAME's value, itself
//! expanded first (`CFLAGS = ["${TARGET_CFLAGS}", "-O2"]`), so that nothing reaches a command
//! unexpanded; values that refer to each other in a loop are an error naming the loop. `-D`
//! values are taken as given. A name may have values in several layers (`[env]`, then a variant's
//! env over it): the top one is its value, and a `${NAME}` inside a layer over another means
//! NAME's value in the layer below, as in a generator's env.

use super::Located;
use crate::env::{Env, splice};
use crate::template::{Lookup, Template, TemplateError};
use std::collections::BTreeMap;

/// One layer of a name's value, as written.
#[derive(Debug)]
pub struct Layer {
    pub items: Vec<Located<Template>>,
    /// Whether it lies over `[env]` (a variant's value): its own `${NAME}` then means the value
    /// below it rather than a loop.
    pub over: bool,
}

/// Every name's layers, lowest first.
pub type Raw = BTreeMap<String, Vec<Layer>>;

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

/// Expands every value of `raw` (the values as written) into `env`, which already holds the
/// values that are final as they are (`-D`): each item is spliced against the values it names,
/// themselves expanded first.
pub fn expand_all<'a>(raw: &'a Raw, env: &mut Env, out: &str) -> Result<(), ExpandError<'a>> {
    let mut lower = BTreeMap::new();
    for (name, layers) in raw {
        let mut path = Vec::new();
        let mut x = Expansion {
            raw,
            env: &mut *env,
            lower: &mut lower,
            out,
        };
        x.one(name, layers.len() - 1, &mut path)?;
    }
    Ok(())
}

/// Expansion under way.
struct Expansion<'a, 'e> {
    raw: &'a Raw,
    /// The final values (the top layers).
    env: &'e mut Env,
    /// The values of the layers below the top ones, by name and layer.
    lower: &'e mut BTreeMap<(String, usize), Vec<String>>,
    out: &'e str,
}

impl<'a> Expansion<'a, '_> {
    fn done(&self, name: &str, layer: usize) -> bool {
        match self.raw.get(name) {
            Some(layers) if layer + 1 < layers.len() => {
                self.lower.contains_key(&(name.to_string(), layer))
            }
            _ => self.env.get(name).is_some(),
        }
    }

    /// Expands layer `layer` of `name` (and, first, what it names); `path` is the chain being
    /// expanded.
    fn one(
        &mut self,
        name: &str,
        layer: usize,
        path: &mut Vec<(String, usize)>,
    ) -> Result<(), ExpandError<'a>> {
        let raw = self.raw;
        let Some(layers) = raw.get(name) else {
            return Ok(());
        };
        if self.done(name, layer) {
            return Ok(());
        }
        let this = &layers[layer];
        path.push((name.to_string(), layer));
        for item in &this.items {
            for (_, used) in item.value.names() {
                let target = match raw.get(used) {
                    _ if used == name && this.over => layer.checked_sub(1),
                    Some(l) => Some(l.len() - 1),
                    None => None,
                };
                let Some(target) = target else { continue };
                if let Some(at) = path.iter().position(|(p, l)| p == used && *l == target) {
                    let mut cycle: Vec<String> = path[at..].iter().map(|(p, _)| p.clone()).collect();
                    cycle.push(used.to_string());
                    return Err(ExpandError::Cycle { cycle, item });
                }
                self.one(used, target, path)?;
            }
        }
        path.pop();
        let mut values = Vec::new();
        for item in &this.items {
            let spliced = if this.over {
                let below = Below {
                    name,
                    value: layer
                        .checked_sub(1)
                        .and_then(|l| self.lower.get(&(name.to_string(), l)))
                        .map(Vec::as_slice),
                    rest: self.env,
                };
                splice(&item.value, &below, self.out, &mut values)
            } else {
                splice(&item.value, self.env, self.out, &mut values)
            };
            spliced.map_err(|error| ExpandError::Template {
                name: name.to_string(),
                item,
                error,
            })?;
        }
        if layer + 1 < layers.len() {
            self.lower.insert((name.to_string(), layer), values);
        } else {
            self.env.set(name, values);
        }
        Ok(())
    }
}

/// The values a layer over another sees: its own name's value below it, the others' final ones.
struct Below<'a> {
    name: &'a str,
    value: Option<&'a [String]>,
    rest: &'a Env,
}

impl Lookup for Below<'_> {
    fn get(&self, name: &str) -> Option<&[String]> {
        if name == self.name {
            self.value
        } else {
            self.rest.get(name)
        }
    }
}
