//! Constraints between the tasks of one group, as a plan for the scheduler: file constraints (the
//! producer of a file a task reads runs first), precedence (`before`/`after` between rules, and a
//! rule whose `ext_out` names an extension another rule's `ext_in` takes runs first), and the order
//! of a `sequence` group. Precedence between rules is one barrier node per rule rather than an edge
//! per pair of tasks. A cycle is an error that prints the cycle. Group barriers are the build loop's:
//! a group starts when every earlier group has finished.
//!
//! Implicit dependencies a task's depfile reported last time order their producers first, unless
//! that would close a cycle (stale information): then they are left out, and the signature still
//! catches any change.

use crate::error::{Diagnostic, Error};
use crate::graph::Graph;
use crate::ids::{FileId, GroupId, RuleId, TaskId};
use crate::manifest::Order;
use crate::project::Project;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A node of a group's plan, by its index in the plan.
pub type NodeId = usize;

/// How a successor depends on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// Through a file or precedence: a failure upstream means the successor does not run.
    Hard,
    /// Order only (a sequence group): the successor waits, then runs whatever happened upstream.
    Order,
}

/// One node of a group's plan.
#[derive(Debug, Clone)]
pub struct PlanNode {
    /// The task, or `None` for a barrier.
    pub task: Option<TaskId>,
    pub succs: Vec<(NodeId, Edge)>,
    /// Larger runs first.
    pub priority: u64,
    /// Declared order, to break ties.
    pub order: u32,
    /// Depends on a failure in an earlier group: never runs.
    pub blocked: bool,
}

/// What the build knows about each task when planning a group.
pub struct TaskFacts<'a> {
    /// Files the task's depfile reported last time.
    pub implicit: &'a dyn Fn(TaskId) -> Vec<FileId>,
    /// The expected duration, for priorities.
    pub weight: &'a dyn Fn(TaskId) -> u64,
    /// Whether the task depends on a failure in an earlier group.
    pub blocked: &'a dyn Fn(TaskId) -> bool,
}

/// Whether rule `a`'s tasks run before rule `b`'s in a group.
pub fn precedes(project: &Project, a: RuleId, b: RuleId) -> bool {
    let (ra, rb) = (&project.rules[a], &project.rules[b]);
    a != b && (ra.before.contains(&b) || ra.ext_out.iter().any(|e| rb.ext_in.contains(e)))
}

/// The scheduler plan for `tasks` (the selected tasks of `group`, in creation order).
pub fn plan_group(
    project: &Project,
    graph: &Graph,
    group: GroupId,
    tasks: &[TaskId],
    facts: &TaskFacts,
) -> Result<Vec<PlanNode>, Error> {
    let node_of: HashMap<TaskId, NodeId> = tasks.iter().enumerate().map(|(i, &t)| (t, i)).collect();
    let mut nodes: Vec<PlanNode> = tasks
        .iter()
        .map(|&t| PlanNode {
            task: Some(t),
            succs: Vec::new(),
            priority: 0,
            order: t.0,
            blocked: (facts.blocked)(t),
        })
        .collect();

    // File constraints.
    let mut file_edges: BTreeSet<(NodeId, NodeId)> = BTreeSet::new();
    for (i, &t) in tasks.iter().enumerate() {
        for p in graph.producers_of(t) {
            if let Some(&j) = node_of.get(&p)
                && j != i
            {
                file_edges.insert((j, i));
            }
        }
    }
    for &(j, i) in &file_edges {
        nodes[j].succs.push((i, Edge::Hard));
    }

    // Precedence: a barrier per rule that has rules to precede.
    let mut by_rule: BTreeMap<RuleId, Vec<NodeId>> = BTreeMap::new();
    for (i, &t) in tasks.iter().enumerate() {
        by_rule.entry(graph.task(t).rule).or_default().push(i);
    }
    let rules: Vec<RuleId> = by_rule.keys().copied().collect();
    for &a in &rules {
        let later: Vec<RuleId> = rules
            .iter()
            .copied()
            .filter(|&b| precedes(project, a, b))
            .collect();
        if later.is_empty() {
            continue;
        }
        let barrier = nodes.len();
        let succs = later
            .iter()
            .flat_map(|b| by_rule[b].iter().map(|&n| (n, Edge::Hard)))
            .collect();
        nodes.push(PlanNode {
            task: None,
            succs,
            priority: 0,
            order: u32::MAX,
            blocked: false,
        });
        for &n in &by_rule[&a] {
            nodes[n].succs.push((barrier, Edge::Hard));
        }
    }

    // A sequence group runs in declared order, one at a time.
    if project.groups[group].order == Order::Sequence {
        let mut seq: Vec<NodeId> = (0..tasks.len()).collect();
        seq.sort_by_key(|&i| (graph.task(tasks[i]).generator, tasks[i]));
        let position: HashMap<NodeId, usize> =
            seq.iter().enumerate().map(|(p, &n)| (n, p)).collect();
        for &(j, i) in &file_edges {
            if position[&j] > position[&i] {
                let (a, b) = (graph.task(tasks[i]), graph.task(tasks[j]));
                let (ga, gb) = (&project.gens[a.generator], &project.gens[b.generator]);
                return Err(project
                    .error_at(
                        ga.span.clone(),
                        format!(
                            "in sequence group `{}`, generator `{}` comes before generator `{}` but reads its output",
                            project.groups[group].name, ga.name, gb.name
                        ),
                    )
                    .note("a sequence group runs in declared order: declare the producer first")
                    .into());
            }
        }
        for w in seq.windows(2) {
            nodes[w[0]].succs.push((w[1], Edge::Order));
        }
    }

    if let Some(cycle) = find_cycle(&nodes) {
        let names: Vec<String> = cycle
            .iter()
            .map(|&n| match nodes[n].task {
                Some(t) => graph.describe(t, &project.rules[graph.task(t).rule].name),
                None => "(precedence)".to_string(),
            })
            .collect();
        // Located at the generator of a task on the cycle.
        let at = cycle
            .iter()
            .find_map(|&n| nodes[n].task)
            .map(|t| project.gens[graph.task(t).generator].span.clone());
        let message = format!("dependency cycle: {}", names.join(" -> "));
        let diagnostic = match at {
            Some(span) => project.error_at(span, message),
            None => Diagnostic::in_file(project.sources.top(), message),
        };
        return Err(diagnostic
            .note("each task must be able to run after the ones it depends on; break the cycle in sources, use, deps or before/after")
            .into());
    }

    // Implicit dependencies from last time, where they keep the plan acyclic (in a sequence
    // group, where they agree with the declared order).
    for (i, &t) in tasks.iter().enumerate() {
        for f in (facts.implicit)(t) {
            let Some(p) = graph.producer(f) else { continue };
            let Some(&j) = node_of.get(&p) else { continue };
            if j != i && !nodes[j].succs.contains(&(i, Edge::Hard)) && !reaches(&nodes, i, j) {
                nodes[j].succs.push((i, Edge::Hard));
            }
        }
    }

    // Priorities: the longest remaining path, weighted by expected durations.
    let order = topological(&nodes);
    for &n in order.iter().rev() {
        let own = nodes[n].task.map_or(0, |t| (facts.weight)(t));
        let after = nodes[n]
            .succs
            .iter()
            .map(|&(s, _)| nodes[s].priority)
            .max()
            .unwrap_or(0);
        nodes[n].priority = own + after;
    }
    Ok(nodes)
}

/// Whether `to` can be reached from `from` along successor edges.
fn reaches(nodes: &[PlanNode], from: NodeId, to: NodeId) -> bool {
    let mut seen = vec![false; nodes.len()];
    let mut stack = vec![from];
    while let Some(n) = stack.pop() {
        if n == to {
            return true;
        }
        if std::mem::replace(&mut seen[n], true) {
            continue;
        }
        stack.extend(nodes[n].succs.iter().map(|&(s, _)| s));
    }
    false
}

/// Nodes in an order where every node precedes its successors (the plan is acyclic).
fn topological(nodes: &[PlanNode]) -> Vec<NodeId> {
    let mut pending = vec![0u32; nodes.len()];
    for n in nodes {
        for &(s, _) in &n.succs {
            pending[s] += 1;
        }
    }
    let mut ready: Vec<NodeId> = (0..nodes.len()).filter(|&n| pending[n] == 0).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(n) = ready.pop() {
        order.push(n);
        for &(s, _) in &nodes[n].succs {
            pending[s] -= 1;
            if pending[s] == 0 {
                ready.push(s);
            }
        }
    }
    order
}

/// A cycle, as the nodes along it with the first repeated at the end, if there is one.
fn find_cycle(nodes: &[PlanNode]) -> Option<Vec<NodeId>> {
    let mut color = vec![0u8; nodes.len()]; // 0 new, 1 on the path, 2 done
    for start in 0..nodes.len() {
        if color[start] != 0 {
            continue;
        }
        let mut path: Vec<(NodeId, usize)> = vec![(start, 0)];
        color[start] = 1;
        while let Some(&mut (n, ref mut next)) = path.last_mut() {
            if let Some(&(s, _)) = nodes[n].succs.get(*next) {
                *next += 1;
                match color[s] {
                    0 => {
                        color[s] = 1;
                        path.push((s, 0));
                    }
                    1 => {
                        let from = path.iter().position(|&(x, _)| x == s).unwrap_or(0);
                        let mut cycle: Vec<NodeId> = path[from..].iter().map(|&(x, _)| x).collect();
                        cycle.push(s);
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                color[n] = 2;
                path.pop();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(succs: &[NodeId]) -> PlanNode {
        PlanNode {
            task: None,
            succs: succs.iter().map(|&s| (s, Edge::Hard)).collect(),
            priority: 0,
            order: 0,
            blocked: false,
        }
    }

    #[test]
    fn finds_and_names_cycles() {
        let acyclic = vec![node(&[1, 2]), node(&[2]), node(&[])];
        assert_eq!(find_cycle(&acyclic), None);
        assert_eq!(topological(&acyclic), vec![0, 1, 2]);
        let cyclic = vec![node(&[1]), node(&[2]), node(&[1])];
        assert_eq!(find_cycle(&cyclic), Some(vec![1, 2, 1]));
        assert!(reaches(&acyclic, 0, 2));
        assert!(!reaches(&acyclic, 2, 0));
    }
}
