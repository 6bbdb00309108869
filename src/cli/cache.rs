//! `kiln cache ...` and the cache options a build takes from the global ones.

use super::Args;
use crate::driver::BuildOptions;
use crate::error::Error;
use clap::Subcommand;

/// What `kiln cache` does.
#[derive(Debug, Clone, Subcommand)]
pub(super) enum CacheAction {
    /// Print its entries, size, and the hits, misses and stores builds recorded
    Stats,
    /// Evict least recently used entries down to SIZE (e.g. 5G) [default: $KILN_CACHE_MAX, else 10G]
    Gc {
        #[arg(long = "max-size", value_name = "SIZE", value_parser = parse_size)]
        max_size: Option<u64>,
    },
    /// Empty it
    Clear,
}

fn parse_size(s: &str) -> Result<u64, String> {
    crate::driver::parse_size(s)
        .ok_or_else(|| format!("expected a size such as 500M or 5G, found `{s}`"))
}

impl Args {
    /// The defaults of a build with the caches the global options name.
    pub(super) fn cache_options(&self) -> BuildOptions {
        BuildOptions {
            cache: self.cache.clone(),
            remote_cache: self.remote_cache.clone(),
            remote_headers: self.remote_header.clone(),
            remote: self.remote.clone(),
            remote_instance: self.remote_instance.clone().unwrap_or_default(),
            remote_timeout: self
                .remote_timeout
                .unwrap_or(std::time::Duration::from_secs(10)),
            ..BuildOptions::default()
        }
    }
}

/// `kiln cache ...`: what it prints.
pub(super) fn cache_command(dir: &std::path::Path, action: &CacheAction) -> Result<Vec<u8>, Error> {
    let cache = crate::cache::local::LocalCache::open(dir).map_err(Error::Usage)?;
    let text = match action {
        CacheAction::Stats => {
            let s = cache.stats();
            let lookups = s.hits + s.misses;
            let rate = if lookups == 0 {
                0.0
            } else {
                100.0 * s.hits as f64 / lookups as f64
            };
            format!(
                "cache {}
entries: {}
blobs: {}
size: {} bytes
hits: {}
misses: {}
hit rate: {rate:.1}%
stores: {}
",
                dir.display(),
                s.entries,
                s.blobs,
                s.bytes,
                s.hits,
                s.misses,
                s.stores
            )
        }
        CacheAction::Gc { max_size } => {
            let max = max_size.unwrap_or_else(crate::driver::max_size);
            let (evicted, size) = cache.gc(max);
            format!(
                "cache {}: {evicted} entries evicted; {size} bytes left\n",
                dir.display()
            )
        }
        CacheAction::Clear => {
            cache.clear().map_err(Error::Usage)?;
            format!("cache {}: emptied\n", dir.display())
        }
    };
    Ok(text.into_bytes())
}
