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
            Reason::DependencyRebuilt(p) => write!(f, "input `{p}` is rebuilt first"),
            Reason::OutputMissing(p) => write!(f, "output `{p}` is missing"),
            Reason::OutputChanged(p) => write!(f, "output `{p}` was altered since kiln made it"),
            Reason::OutputsChanged => write!(f, "its declared outputs changed"),
            Reason::CommandChanged { old, new } => {
                write!(f, "command changed")?;
                for (i, (o, n)) in old.iter().zip(new).enumerate().filter(|(_, (o, n))| o != n) {
                    let which = if old.len() > 1 {
                        format!(" {}", i + 1)
                    } else {
                        String::new()
                    };
                    write!(f, "\n  old{which}: {o}\n  new{which}: {n}")?;
                }
                if old.len() != new.len() {
                    write!(
                        f,
                        "\n  old: {}\n  new: {}",
                        old.join(" && "),
                        new.join(" && ")
                    )?;
                }
                Ok(())
            }
            Reason::EnvChanged { name, old, new } => match old {
                Some(old) => write!(f, "env value `{name}` changed from `{old}` to `{new}`"),
                None => write!(f, "env value `{name}` is new (`{new}`)"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_changes_show_old_and_new() {
        let r = Reason::CommandChanged {
            old: vec!["cc -O2 a.c".into()],
            new: vec!["cc -O0 a.c".into()],
        };
        assert_eq!(
            r.to_string(),
            "command changed\n  old: cc -O2 a.c\n  new: cc -O0 a.c"
        );
        let r = Reason::EnvChanged {
            name: "CFLAGS".into(),
            old: Some("-O2".into()),
            new: "-O0".into(),
        };
        assert_eq!(
            r.to_string(),
            "env value `CFLAGS` changed from `-O2` to `-O0`"
        );
    }
}
