//! The commands that print what kiln knows on stdout and change nothing in the build: `list`,
//! `graph` and `compdb`.

use crate::error::Error;
use crate::generator::Expansion;
use crate::load::Workspace;
use crate::progress::Progress;
use std::io::Write;

/// Writes `text` to stdout; a closed stdout (`| head -1`) is not an error worth a message.
fn print(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// `kiln compdb`: compile_commands.json on stdout. `[configure]` runs first when its results are
/// missing or stale, as for a build, since the commands use them.
pub(super) fn compdb(ws: &Workspace, progress: &mut dyn Progress) -> Result<i32, Error> {
    let project = ws.load_configured(&mut |line| progress.message(&line))?;
    let expansion = Expansion::expand_all(&project)?;
    let (entries, warnings) = crate::compdb::entries(&project, &expansion);
    for w in warnings {
        progress.message(&format!("warning: {w}"));
    }
    print(&crate::compdb::render(&entries));
    crate::drop_in_background((project, expansion));
    Ok(0)
}

/// `kiln graph`: the task graph in DOT, on stdout.
pub(super) fn graph(ws: &Workspace, targets: &[String]) -> Result<i32, Error> {
    let project = ws.load()?;
    let expansion = Expansion::expand_all(&project)?;
    let text = crate::dot::render(&project, &expansion, targets)?;
    print(&text);
    crate::drop_in_background((project, expansion));
    Ok(0)
}

/// `kiln list`: one line per generator, its name then its outputs, on stdout.
pub(super) fn list(ws: &Workspace) -> Result<i32, Error> {
    let project = ws.load()?;
    let expansion = Expansion::expand_all(&project)?;
    let mut text = String::new();
    for (g, gn) in project.gens.iter().enumerate() {
        text.push_str(&gn.name);
        for &f in &expansion.gen_outputs[g] {
            text.push(' ');
            text.push_str(expansion.graph.path(f));
        }
        text.push('\n');
    }
    print(&text);
    crate::drop_in_background((project, expansion));
    Ok(0)
}
