//! Why a task runs, in words: the first difference kiln found between the task as the build file
//! and the files are now and the record of its last successful run. `kiln build --explain` prints
//! one for every task that runs; `kiln explain TARGET` for every task a target needs.

use std::fmt;

/// The first reason a task must run.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// No record of an earlier run.
    New,
    /// The rule says `always = true`.
    Always,
    /// The last run was not trusted: an input changed while it ran.
    Untrusted,
    /// The last run failed.
    Failed,
    /// (Dry runs) a task making this input runs first, so its content is not known yet.
    DependencyRebuilt(String),
    OutputMissing(String),
    OutputChanged(String),
    /// The build file declares other outputs than the task had.
    OutputsChanged,
    CommandChanged {
        old: Vec<String>,
        new: Vec<String>,
    },
    EnvChanged {
        name: String,
        old: Option<String>,
        new: String,
    },
    InputChanged(String),
    /// Inputs or manual dependencies were added, removed or reordered.
    InputsChanged,
    ImplicitChanged(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::New => write!(f, "new task: no record of an earlier run"),
            Reason::Always => write!(f, "forced: its rule has always = true"),
            Reason::Untrusted => write!(
                f,
                "its last run is not trusted: an input changed while it ran"
            ),
            Reason::Failed => write!(f, "its last run failed"),
            Reason::DependencyRebuilt(p) => write!(f, "input `{p}` is rebuilt first"),
            Reason::OutputMissing(p) => write!(f, "output `{p}` is missing"),
            Reason::OutputChanged(p) => write!(f, "output `{p}` was altered since kiln made it"),
            Reason::OutputsChanged => write!(f, "its declared outputs changed"),
            Reason::CommandChanged { old, new } => {
                if old.len() != new.len() {
                    return write!(
                        f,
                        "its command chain changed from {} to {} commands",
                        old.len(),
                        new.len()
                    );
                }
                let Some(i) = (0..old.len()).find(|&i| old[i] != new[i]) else {
                    return write!(f, "command changed");
                };
                let which = if old.len() > 1 {
                    format!("command {}", i + 1)
                } else {
                    "command".to_string()
                };
                write!(f, "{which} changed: {}", word_diff(&old[i], &new[i]))
            }
            Reason::EnvChanged { name, old, new } => match old {
                Some(old) => write!(f, "env value changed: {name}: {old:?} -> {new:?}"),
                None => write!(f, "env value is new: {name} = {new:?}"),
            },
            Reason::InputChanged(p) => write!(f, "input `{p}` changed"),
            Reason::InputsChanged => write!(
                f,
                "its inputs changed: files were added, removed or reordered"
            ),
            Reason::ImplicitChanged(p) => {
                write!(f, "implicit dependency `{p}` (from its depfile) changed")
            }
        }
    }
}

/// What differs between two commands, in words: the words between their common beginning and
/// end, old then new (a long command differs in a flag, not in its 1 KB).
fn word_diff(old: &str, new: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (
        old.split_whitespace().collect(),
        new.split_whitespace().collect(),
    );
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (gone, came) = (
        a[prefix..a.len() - suffix].join(" "),
        b[prefix..b.len() - suffix].join(" "),
    );
    match (gone.is_empty(), came.is_empty()) {
        (true, true) => "only in spacing".to_string(),
        (false, true) => format!("removed `{gone}`"),
        (true, false) => format!("added `{came}`"),
        (false, false) => format!("`{gone}` -> `{came}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_changes_show_the_differing_words() {
        let long = "x.c ".repeat(300);
        let r = Reason::CommandChanged {
            old: vec![format!("cc -O2 -c {long} -o a.o")],
            new: vec![format!("cc -O0 -c {long} -o a.o")],
        };
        assert_eq!(r.to_string(), "command changed: `-O2` -> `-O0`");
        let r = Reason::CommandChanged {
            old: vec!["gen".into(), "cc a.c".into()],
            new: vec!["gen".into(), "cc -g a.c".into()],
        };
        assert_eq!(r.to_string(), "command 2 changed: added `-g`");
        let r = Reason::CommandChanged {
            old: vec!["cc -g -Wall a.c".into()],
            new: vec!["cc a.c".into()],
        };
        assert_eq!(r.to_string(), "command changed: removed `-g -Wall`");
        let r = Reason::CommandChanged {
            old: vec!["a".into()],
            new: vec!["a".into(), "b".into()],
        };
        assert_eq!(
            r.to_string(),
            "its command chain changed from 1 to 2 commands"
        );
    }

    #[test]
    fn env_changes_name_the_value_and_both_sides() {
        let r = Reason::EnvChanged {
            name: "CFLAGS".into(),
            old: Some("-O2".into()),
            new: "-O0".into(),
        };
        assert_eq!(
            r.to_string(),
            "env value changed: CFLAGS: \"-O2\" -> \"-O0\""
        );
    }
}
