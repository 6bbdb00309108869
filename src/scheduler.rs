//! The scheduling state machine for one group: which task may start next, and what a finished or
//! failed task releases. It has no threads and runs no commands; the build loop asks [`Scheduler::next_task`]
//! for work, starts it however it likes (or skips it), and reports back with
//! [`Scheduler::finish`], so that tests can drive it with a fake runner.
//!
//! Approach: every node (a task, or a barrier standing for "all tasks of a rule" in precedence)
//! counts its unfinished predecessors. A node whose count reaches zero is ready, and ready tasks
//! start in priority order (the longest remaining path first, then declared order), no more than
//! `cap` at once. A failure marks every node that depends on it through a hard edge (files,
//! precedence) as not run; order-only edges (a sequence group) wait but do not inherit failure.
//! Without keep-going the first failure stops all starting; running tasks are left to finish.

use crate::constraints::{Edge, NodeId, PlanNode};
use crate::ids::TaskId;
use crate::state::TaskState;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

#[derive(Debug)]
pub struct Scheduler {
    nodes: Vec<PlanNode>,
    pending: Vec<u32>,
    state: Vec<TaskState>,
    ready: BinaryHeap<(u64, Reverse<u32>, NodeId)>,
    running: usize,
    cap: usize,
    keep_going: bool,
    stopped: bool,
    /// What the trace is told, when one is kept: drained by [`Scheduler::take_notes`].
    notes: Option<Vec<Note>>,
}

/// A decision for the scheduler trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// Everything it follows has finished.
    Ready(TaskId),
    /// It waits for `by` (a dependency found late), or will not run because `by` failed or did
    /// not run.
    Blocked { task: TaskId, by: TaskId },
}

impl Scheduler {
    /// A scheduler over `nodes`, starting at most `cap` tasks at once, keeping no notes.
    #[cfg(test)]
    pub fn new(nodes: Vec<PlanNode>, cap: usize, keep_going: bool) -> Scheduler {
        Scheduler::noting(nodes, cap, keep_going, false)
    }

    /// A scheduler that also keeps [`Note`]s of its decisions when `notes`.
    pub fn noting(nodes: Vec<PlanNode>, cap: usize, keep_going: bool, notes: bool) -> Scheduler {
        let mut pending = vec![0u32; nodes.len()];
        for n in &nodes {
            for &(s, _) in &n.succs {
                pending[s] += 1;
            }
        }
        let mut s = Scheduler {
            state: vec![TaskState::Waiting; nodes.len()],
            nodes,
            pending,
            ready: BinaryHeap::new(),
            running: 0,
            cap: cap.max(1),
            keep_going,
            stopped: false,
            notes: notes.then(Vec::new),
        };
        let blocked: Vec<NodeId> = (0..s.nodes.len()).filter(|&i| s.nodes[i].blocked).collect();
        for n in blocked {
            s.settle(n, TaskState::NotRun);
        }
        // A task blocked from the start is not noted here: the caller knows why.
        for n in 0..s.nodes.len() {
            if s.state[n] == TaskState::Waiting && s.pending[n] == 0 {
                s.make_ready(n);
            }
        }
        s
    }

    /// The next task to start, if one is ready and fewer than `cap` are running. The task counts as
    /// running until [`finish`](Self::finish) is called for it, even if the caller skips it.
    pub fn next_task(&mut self) -> Option<(NodeId, TaskId)> {
        if self.stopped || self.running >= self.cap {
            return None;
        }
        let (_, _, n) = self.ready.pop()?;
        self.state[n] = TaskState::Running;
        self.running += 1;
        Some((
            n,
            self.nodes[n]
                .task
                .expect("barriers never reach the ready queue"),
        ))
    }

    /// Reports a started task as ended in `state` (a final one): up to date or made, or failed.
    pub fn finish(&mut self, node: NodeId, state: TaskState) {
        debug_assert_eq!(self.state[node], TaskState::Running);
        debug_assert!(state.is_final());
        self.running -= 1;
        if !state.is_ok() && !self.keep_going {
            self.stopped = true;
        }
        self.settle(node, state);
    }

    /// Puts `node`, just handed out by [`next_task`](Self::next_task) and not started, back to
    /// wait for `preds` (a dependency found late, as a scan of a header made since the plan
    /// finds). Preds already final, and those that would close a cycle, are not waited for;
    /// returns false when none is left (the caller starts the task).
    pub fn wait_for(&mut self, node: NodeId, preds: &[NodeId]) -> bool {
        let waits: Vec<NodeId> = preds
            .iter()
            .copied()
            .filter(|&p| p != node && !self.state[p].is_final() && !self.reaches(node, p))
            .collect();
        if waits.is_empty() {
            return false;
        }
        for p in waits {
            if let (Some(notes), Some(task), Some(by)) =
                (self.notes.as_mut(), self.nodes[node].task, self.nodes[p].task)
            {
                notes.push(Note::Blocked { task, by });
            }
            if !self.nodes[p].succs.contains(&(node, Edge::Hard)) {
                self.nodes[p].succs.push((node, Edge::Hard));
                self.pending[node] += 1;
            }
        }
        self.running -= 1;
        self.state[node] = TaskState::Waiting;
        if self.pending[node] == 0 {
            self.make_ready(node);
        }
        true
    }

    /// Whether `to` can be reached from `from` along successor edges.
    fn reaches(&self, from: NodeId, to: NodeId) -> bool {
        let mut seen = vec![false; self.nodes.len()];
        let mut stack = vec![from];
        while let Some(n) = stack.pop() {
            if n == to {
                return true;
            }
            if !std::mem::replace(&mut seen[n], true) {
                stack.extend(self.nodes[n].succs.iter().map(|&(s, _)| s));
            }
        }
        false
    }

    /// How many tasks are running.
    pub fn running(&self) -> usize {
        self.running
    }

    /// Whether a task would start but for the limit.
    pub fn held_back(&self) -> bool {
        !self.stopped && self.running >= self.cap && !self.ready.is_empty()
    }

    /// Changes how many tasks may run at once (job slots come and go with a jobserver); tasks
    /// running beyond a lowered limit finish as usual.
    pub fn set_cap(&mut self, cap: usize) {
        self.cap = cap.max(1);
    }

    /// The notes taken since the last call, in order.
    pub fn take_notes(&mut self) -> Vec<Note> {
        self.notes.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Starts nothing more (an interrupt); running tasks may still finish.
    pub fn stop(&mut self) {
        self.stopped = true;
    }


    /// Whether nothing is running and nothing more will start.
    pub fn is_done(&self) -> bool {
        self.running == 0 && (self.stopped || self.ready.is_empty())
    }

    #[cfg(test)]
    pub fn state(&self, node: NodeId) -> TaskState {
        self.state[node]
    }

    /// Tasks that did not run: blocked by a failure, or never started because the build stopped.
    pub fn not_run(&self) -> impl Iterator<Item = TaskId> + '_ {
        self.nodes
            .iter()
            .zip(&self.state)
            .filter_map(|(n, s)| match s {
                TaskState::Waiting | TaskState::Ready | TaskState::NotRun => n.task,
                _ => None,
            })
    }

    fn make_ready(&mut self, n: NodeId) {
        if let Some(task) = self.nodes[n].task {
            if let Some(notes) = self.notes.as_mut() {
                notes.push(Note::Ready(task));
            }
            self.state[n] = TaskState::Ready;
            self.ready
                .push((self.nodes[n].priority, Reverse(self.nodes[n].order), n));
        } else {
            // A barrier completes as soon as its predecessors have.
            self.settle(n, TaskState::Success);
        }
    }

    /// Records a final state for `first` and releases or blocks its successors, iteratively.
    /// A node blocked by a failure carries the task that failed (or did not run) first.
    fn settle(&mut self, first: NodeId, first_state: TaskState) {
        let mut work = vec![(first, first_state, None)];
        while let Some((n, state, cause)) = work.pop() {
            if self.state[n].is_final() {
                continue;
            }
            self.state[n] = state;
            let ok = state.is_ok();
            let cause = cause.or(self.nodes[n].task);
            for i in 0..self.nodes[n].succs.len() {
                let (s, edge) = self.nodes[n].succs[i];
                if self.state[s].is_final() || self.state[s] == TaskState::Running {
                    continue;
                }
                if !ok && edge == Edge::Hard {
                    if let (Some(notes), Some(task), Some(by)) =
                        (self.notes.as_mut(), self.nodes[s].task, cause)
                    {
                        notes.push(Note::Blocked { task, by });
                    }
                    work.push((s, TaskState::NotRun, cause));
                    continue;
                }
                self.pending[s] -= 1;
                if self.pending[s] == 0 && self.state[s] == TaskState::Waiting {
                    if self.nodes[s].task.is_some() {
                        self.make_ready(s);
                    } else {
                        work.push((s, TaskState::Success, None));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs commands that take simulated time, as a real runner would: `start` and `wait`, with the
    /// order of starts and the highest concurrency seen recorded.
    struct FakeRunner {
        now: u64,
        running: Vec<(u64, NodeId, TaskId)>,
        started: Vec<u32>,
        highest: usize,
        duration: fn(TaskId) -> u64,
        fails: fn(TaskId) -> bool,
    }

    impl FakeRunner {
        fn new(duration: fn(TaskId) -> u64, fails: fn(TaskId) -> bool) -> Self {
            FakeRunner {
                now: 0,
                running: Vec::new(),
                started: Vec::new(),
                highest: 0,
                duration,
                fails,
            }
        }

        fn start(&mut self, node: NodeId, task: TaskId) {
            self.started.push(task.0);
            self.running
                .push((self.now + (self.duration)(task), node, task));
            self.highest = self.highest.max(self.running.len());
        }

        /// The task that finishes first, and whether it succeeded.
        fn wait(&mut self) -> (NodeId, bool) {
            let i = (0..self.running.len())
                .min_by_key(|&i| (self.running[i].0, self.running[i].2))
                .unwrap();
            let (end, node, task) = self.running.remove(i);
            self.now = end;
            (node, !(self.fails)(task))
        }

        /// Drives `s` to the end, as the build loop does.
        fn drive(&mut self, s: &mut Scheduler) {
            loop {
                while let Some((n, t)) = s.next_task() {
                    self.start(n, t);
                }
                if s.is_done() {
                    break;
                }
                let (n, ok) = self.wait();
                s.finish(n, ended(ok));
            }
        }
    }

    /// How a fake task ended.
    fn ended(ok: bool) -> TaskState {
        if ok {
            TaskState::Success
        } else {
            TaskState::Crashed
        }
    }

    fn task(i: u32, succs: &[(NodeId, Edge)], priority: u64) -> PlanNode {
        PlanNode {
            task: Some(TaskId(i)),
            succs: succs.to_vec(),
            priority,
            order: i,
            blocked: false,
        }
    }

    fn barrier(succs: &[(NodeId, Edge)]) -> PlanNode {
        PlanNode {
            task: None,
            succs: succs.to_vec(),
            priority: 0,
            order: u32::MAX,
            blocked: false,
        }
    }

    const H: Edge = Edge::Hard;
    const O: Edge = Edge::Order;

    #[test]
    fn respects_dependencies_and_the_cap() {
        // 0..4 independent compiles feed 5 (link).
        let mut nodes: Vec<PlanNode> = (0..5).map(|i| task(i, &[(5, H)], 2)).collect();
        nodes.push(task(5, &[], 1));
        let mut s = Scheduler::new(nodes, 2, false);
        let mut r = FakeRunner::new(|_| 10, |_| false);
        r.drive(&mut s);
        assert_eq!(r.started, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(r.highest, 2);
        assert!(s.not_run().next().is_none());
    }

    #[test]
    fn longest_remaining_path_starts_first() {
        // 0 -> 1 -> 2 is a chain; 3 and 4 are leaves. Priorities are remaining path lengths.
        let nodes = vec![
            task(0, &[(1, H)], 30),
            task(1, &[(2, H)], 20),
            task(2, &[], 10),
            task(3, &[], 10),
            task(4, &[], 10),
        ];
        let mut s = Scheduler::new(nodes, 1, false);
        let mut r = FakeRunner::new(|_| 10, |_| false);
        r.drive(&mut s);
        assert_eq!(r.started, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn without_keep_going_the_first_failure_stops_starting() {
        let nodes = vec![
            task(0, &[], 5),
            task(1, &[], 5),
            task(2, &[], 5),
            task(3, &[], 5),
        ];
        let mut s = Scheduler::new(nodes, 2, false);
        let mut r = FakeRunner::new(|t| if t.0 == 0 { 1 } else { 10 }, |t| t.0 == 0);
        r.drive(&mut s);
        // 0 fails first while 1 runs; 1 is let finish; 2 and 3 never start.
        assert_eq!(r.started, vec![0, 1]);
        let mut not_run: Vec<u32> = s.not_run().map(|t| t.0).collect();
        not_run.sort();
        assert_eq!(not_run, vec![2, 3]);
        assert_eq!(s.state(1), TaskState::Success);
    }

    #[test]
    fn at_any_cap_nothing_starts_once_a_failure_is_reported() {
        // Eight independent tasks; the third to start fails quickly.
        for cap in 1..=4 {
            let nodes: Vec<PlanNode> = (0..8).map(|i| task(i, &[], 5)).collect();
            let mut s = Scheduler::new(nodes, cap, false);
            let mut r = FakeRunner::new(|t| if t.0 == 2 { 1 } else { 10 }, |t| t.0 == 2);
            let mut started_after_failure = Vec::new();
            let mut failed = false;
            loop {
                while let Some((n, t)) = s.next_task() {
                    if failed {
                        started_after_failure.push(t.0);
                    }
                    r.start(n, t);
                }
                if s.is_done() {
                    break;
                }
                let (n, ok) = r.wait();
                failed |= !ok;
                s.finish(n, ended(ok));
            }
            assert!(failed, "cap {cap}: the failing task ran");
            assert_eq!(started_after_failure, Vec::<u32>::new(), "cap {cap}");
            assert!(r.highest <= cap, "cap {cap}");
            // Everything that had not started by then is not run.
            assert_eq!(s.not_run().count(), 8 - r.started.len(), "cap {cap}");
        }
    }

    #[test]
    fn keep_going_runs_everything_independent_of_the_failure() {
        // 0 fails; 1 depends on it (file); 2 follows 1; 3 and 4 are independent.
        let nodes = vec![
            task(0, &[(1, H)], 9),
            task(1, &[(2, H)], 8),
            task(2, &[], 7),
            task(3, &[], 1),
            task(4, &[], 1),
        ];
        let mut s = Scheduler::new(nodes, 2, true);
        let mut r = FakeRunner::new(|_| 10, |t| t.0 == 0);
        r.drive(&mut s);
        assert_eq!(r.started, vec![0, 3, 4]);
        let mut not_run: Vec<u32> = s.not_run().map(|t| t.0).collect();
        not_run.sort();
        assert_eq!(not_run, vec![1, 2]);
    }

    #[test]
    fn precedence_barrier_orders_rules_and_passes_failure_on() {
        // tasks 0,1 (rule A) -> barrier 4 -> tasks 2,3 (rule B).
        let nodes = vec![
            task(0, &[(4, H)], 1),
            task(1, &[(4, H)], 1),
            task(2, &[], 9),
            task(3, &[], 9),
            barrier(&[(2, H), (3, H)]),
        ];
        let mut s = Scheduler::new(nodes.clone(), 4, false);
        let mut r = FakeRunner::new(|_| 10, |_| false);
        r.drive(&mut s);
        assert_eq!(r.started, vec![0, 1, 2, 3]);
        assert_eq!(r.highest, 2);

        let mut s = Scheduler::new(nodes, 4, true);
        let mut r = FakeRunner::new(|_| 10, |t| t.0 == 1);
        r.drive(&mut s);
        assert_eq!(r.started, vec![0, 1]);
        assert_eq!(s.state(2), TaskState::NotRun);
    }

    #[test]
    fn order_edges_wait_but_do_not_inherit_failure() {
        // A sequence: 0 then 1 then 2, order-only; 1 fails; with keep-going 2 still runs.
        let nodes = vec![
            task(0, &[(1, O)], 1),
            task(1, &[(2, O)], 1),
            task(2, &[], 1),
        ];
        let mut s = Scheduler::new(nodes, 4, true);
        let mut r = FakeRunner::new(|_| 10, |t| t.0 == 1);
        r.drive(&mut s);
        assert_eq!(r.started, vec![0, 1, 2]);
        assert_eq!(r.highest, 1);
    }

    #[test]
    fn blocked_nodes_and_their_dependents_never_run() {
        let mut nodes = vec![task(0, &[(1, H)], 1), task(1, &[], 1), task(2, &[], 1)];
        nodes[0].blocked = true;
        let mut s = Scheduler::new(nodes, 4, true);
        let mut r = FakeRunner::new(|_| 10, |_| false);
        r.drive(&mut s);
        assert_eq!(r.started, vec![2]);
        assert_eq!(s.not_run().count(), 2);
    }

    #[test]
    fn diamond_runs_the_join_once_after_both_sides() {
        let nodes = vec![
            task(0, &[(1, H), (2, H)], 3),
            task(1, &[(3, H)], 2),
            task(2, &[(3, H)], 2),
            task(3, &[], 1),
        ];
        let mut s = Scheduler::new(nodes, 8, false);
        let mut r = FakeRunner::new(|t| if t.0 == 1 { 50 } else { 10 }, |_| false);
        r.drive(&mut s);
        assert_eq!(r.started, vec![0, 1, 2, 3]);
        assert_eq!(r.highest, 2);
    }

    #[test]
    fn stop_lets_running_tasks_finish_and_starts_nothing() {
        let nodes = vec![task(0, &[], 1), task(1, &[], 1), task(2, &[], 1)];
        let mut s = Scheduler::new(nodes, 2, true);
        let a = s.next_task().unwrap();
        let b = s.next_task().unwrap();
        s.stop();
        assert!(s.next_task().is_none());
        assert!(!s.is_done());
        s.finish(a.0, TaskState::Success);
        s.finish(b.0, TaskState::Success);
        assert!(s.is_done());
        assert_eq!(s.not_run().map(|t| t.0).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn a_task_handed_out_can_wait_for_a_dependency_found_late() {
        // 0 (a header's producer, slow) and 1 (an object that turns out to include it), 2 after 1.
        let nodes = vec![task(0, &[], 1), task(1, &[(2, H)], 5), task(2, &[], 1)];
        let mut s = Scheduler::new(nodes, 2, false);
        let first = s.next_task().unwrap();
        assert_eq!(first, (1, TaskId(1)));
        // Not started: it waits for 0, which is still to run; a cycle (2 before 1) is refused.
        assert!(!s.wait_for(1, &[2]));
        assert!(s.wait_for(1, &[0]));
        let next = s.next_task().unwrap();
        assert_eq!(next, (0, TaskId(0)));
        assert!(s.next_task().is_none(), "1 waits for 0");
        s.finish(0, TaskState::Success);
        assert_eq!(s.next_task().unwrap(), (1, TaskId(1)));
        // Already final: nothing to wait for.
        assert!(!s.wait_for(1, &[0]));
        s.finish(1, TaskState::Success);
        assert_eq!(s.next_task().unwrap(), (2, TaskId(2)));
        s.finish(2, TaskState::Success);
        assert!(s.is_done());
        // A failure of what it waits for passes on.
        let nodes = vec![task(0, &[], 1), task(1, &[], 5)];
        let mut s = Scheduler::new(nodes, 2, true);
        let _ = s.next_task().unwrap();
        assert!(s.wait_for(1, &[0]));
        let _ = s.next_task().unwrap();
        s.finish(0, TaskState::Crashed);
        assert!(s.next_task().is_none());
        assert!(s.is_done());
        assert_eq!(s.not_run().map(|t| t.0).collect::<Vec<_>>(), vec![1]);
    }
}
