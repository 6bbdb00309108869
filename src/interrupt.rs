//! Interrupts: SIGINT, SIGTERM and SIGHUP delivered as messages on a channel, so that the build's
//! main loop can select over finished tasks and signals and stop cleanly: start nothing new, pass
//! the signal to running commands, record what finished, and exit with 128 + the signal.

use crossbeam_channel::{Receiver, unbounded};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The exit status for a signal, as shells report it.
pub fn exit_status(signal: i32) -> i32 {
    128 + signal
}

/// SIGPIPE's number, for a closed output stream, which stops a build as that signal would.
pub const SIGPIPE: i32 = 13;

/// Starts listening for interrupting signals; they arrive on the returned channel.
pub fn listen() -> std::io::Result<Receiver<i32>> {
    let (tx, rx) = unbounded();
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::spawn(move || {
        for sig in signals.forever() {
            if tx.send(sig).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}
