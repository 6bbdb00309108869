//! Values on the command line: `-D NAME=VALUE`, `--timeout SECS`, and the DESTDIR of an install.

use crate::error::Error;
use std::path::PathBuf;

/// The DESTDIR an install or uninstall works under: `--destdir`, else `DESTDIR` from the
/// environment (empty: none), made absolute against the current directory.
pub(super) fn destdir(given: &Option<PathBuf>) -> Result<Option<PathBuf>, Error> {
    let dir = match given {
        Some(d) => d.clone(),
        None => match std::env::var_os("DESTDIR") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => return Ok(None),
        },
    };
    let cwd =
        std::env::current_dir().map_err(|e| Error::io("cannot read the current directory", e))?;
    let abs = crate::paths::normalize(&cwd.join(dir).to_string_lossy());
    Ok(Some(PathBuf::from(abs)))
}

pub(super) fn parse_define(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("expected NAME=VALUE, found `{s}`")),
    }
}

pub(super) fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    match s.parse::<f64>() {
        Ok(secs) if secs.is_finite() && (0.001..1e9).contains(&secs) => {
            Ok(std::time::Duration::from_secs_f64(secs))
        }
        _ => Err(format!(
            "expected a number of seconds from 0.001 up, found `{s}`"
        )),
    }
}
