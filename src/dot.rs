//! `kiln graph [TARGET...]`: the task graph in Graphviz DOT, every task and file, or the part that
//! the targets (generator names or output paths) need: a box per task, labelled with its rule and
//! outputs, an ellipse per file, an edge from each file a task reads to it and from it to each file
//! it makes; an order-only dependency is a dashed edge.

use crate::error::Error;
use crate::generator::Expansion;
use crate::ids::{FileId, TaskId};
use crate::project::Project;
use std::collections::BTreeSet;
use std::fmt::Write;

/// The DOT text of the tasks `targets` need (every task without targets).
pub fn render(project: &Project, expansion: &Expansion, targets: &[String]) -> Result<String, Error> {
    let graph = &expansion.graph;
    let mut chosen: BTreeSet<TaskId> = BTreeSet::new();
    if targets.is_empty() {
        chosen.extend(graph.task_ids());
    } else {
        let mut stack = Vec::new();
        for t in targets {
            if let Some(g) = project.gens.iter().position(|gn| &gn.name == t) {
                stack.extend(expansion.gen_tasks[g].iter().copied());
            } else if let Some(task) = graph.lookup(t).and_then(|f| graph.producer(f)) {
                stack.push(task);
            } else {
                return Err(Error::Usage(format!(
                    "`{t}` is neither a generator nor an output of this build (`kiln list` shows both)"
                )));
            }
        }
        while let Some(t) = stack.pop() {
            if chosen.insert(t) {
                stack.extend(graph.producers_of(t));
            }
        }
    }
    let mut files: BTreeSet<FileId> = BTreeSet::new();
    let mut out = String::from("digraph kiln {\n  rankdir=LR;\n  node [fontname=\"monospace\"];\n");
    for &t in &chosen {
        let task = graph.task(t);
        let label = graph.describe(t, &project.rules[task.rule].name);
        let _ = writeln!(out, "  t{} [shape=box, label={}];", t.0, quote(&label));
        for f in task.reads() {
            files.insert(f);
            let _ = writeln!(out, "  f{} -> t{};", f.0, t.0);
        }
        for &f in task.order_only.iter() {
            files.insert(f);
            let _ = writeln!(out, "  f{} -> t{} [style=dashed];", f.0, t.0);
        }
        for &f in &task.outputs {
            files.insert(f);
            let _ = writeln!(out, "  t{} -> f{};", t.0, f.0);
        }
    }
    for f in files {
        let _ = writeln!(out, "  f{} [shape=ellipse, label={}];", f.0, quote(graph.path(f)));
    }
    out.push_str("}\n");
    Ok(out)
}

/// A DOT string: in double quotes, with `"` and `\` escaped.
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn strings_are_quoted_for_dot() {
        assert_eq!(quote(r#"a "b" \c"#), r#""a \"b\" \\c""#);
    }
}
