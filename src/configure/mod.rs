//! `[configure]` (waf's configure, autoconf's checks): programs found on `PATH`, pkg-config
//! packages, compile and link checks and an optional `config.h`, run before the build and cached
//! in `<out>/.kiln/configure`. The results become env values above `[env]` and below a variant's
//! env, the process environment (for the names `programs` lists) and `-D`.
//!
//! They are computed again exactly when something they depend on changed: the `[configure]` table
//! itself, a found program (its path, or its content), the env values the checks compile with
//! (`CC`, `CFLAGS`, `LDFLAGS`, after `-D` and the process environment), `PKG_CONFIG_PATH`, or a
//! `.pc` file pkg-config read. All of it is folded into one digest, kept with the results; the
//! graph cache keeps the digest too, and a build whose programs or `.pc` files changed since
//! ([`cache::still_holds`]) loads the project again, which configures again.
//!
//! The cache file is [`cache`]'s.

mod cache;

pub use cache::{cached_digest, still_holds};
use cache::{Cached, FILE, cached_results, read, write};
use crate::codec::replace_file;
use crate::env::Env;
use crate::error::{Diagnostic, Error};
use crate::filestate::{self, Hash, Stat};
use crate::template::Lookup;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `[configure]` table, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Configure {
    /// Env name, and the programs to look for, in order.
    pub programs: Vec<(String, Vec<String>)>,
    /// Env name prefix, and the pkg-config query (`zlib >= 1.2`).
    pub packages: Vec<(String, String)>,
    /// `config.h`, relative to the build directory.
    pub header: Option<String>,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub define: String,
    /// Link the snippet (with `libs`), rather than only compile it.
    pub link: bool,
    pub code: String,
    pub libs: Vec<String>,
    pub optional: bool,
}

impl Configure {
    /// Every env name the results set.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.programs.iter().map(|(n, _)| n.clone()).collect();
        for (n, _) in &self.packages {
            for suffix in ["_CFLAGS", "_LIBS", "_VERSION"] {
                names.push(format!("{n}{suffix}"));
            }
        }
        names.extend(self.checks.iter().map(|c| c.define.clone()));
        names
    }

    /// A text of everything in the table, for the digest (spans and key order left out).
    fn canonical(&self) -> String {
        format!("{self:?}")
    }
}

/// Results: env values, in the order the table gives them.
pub type Results = Vec<(String, Vec<String>)>;

/// How a load of the project gets the results.
pub enum Mode<'a> {
    /// Every result name empty: validating alone (tests, fuzzing), no file system, no programs.
    #[cfg_attr(not(any(test, feature = "internals")), allow(dead_code))]
    Skip,
    /// What the cache holds, else empty (commands that do not build, and dry runs, which change
    /// nothing).
    Cached,
    /// Computed when needed (`kiln build`), or always (`kiln configure`).
    Run(Context<'a>),
}

impl Mode<'_> {
    /// The results for `def` over `env` (`[env]` with `-D`), for the project at `root` whose
    /// build directory is `out` (a kiln path).
    pub fn results(
        &mut self,
        def: &Configure,
        env: &Env,
        root: &Path,
        out: &str,
    ) -> Result<Results, Error> {
        let empty = || def.names().into_iter().map(|n| (n, Vec::new())).collect();
        let place = Place {
            root,
            out,
            out_dir: crate::paths::absolute(root, out),
        };
        match self {
            Mode::Skip => Ok(empty()),
            Mode::Cached => Ok(cached_results(&place.state_dir()).unwrap_or_else(empty)),
            Mode::Run(cx) => results(def, env, &place, cx),
        }
    }
}

/// Where the project is.
struct Place<'a> {
    /// The project root: checks run there.
    root: &'a Path,
    /// The build directory, as a kiln path and absolute; `header` goes there.
    out: &'a str,
    out_dir: PathBuf,
}

impl Place<'_> {
    /// `<out>/.kiln`, where the cache is (and the checks' scratch files).
    fn state_dir(&self) -> PathBuf {
        self.out_dir.join(crate::outdir::STATE_DIR)
    }
}

/// What configuring may do and say.
pub struct Context<'a> {
    /// Names `-D` set: they win over the results and the process environment.
    pub defines: &'a [(String, String)],
    /// Run the checks even if the cache holds.
    pub force: bool,
    /// Lines for the user (`configure: ...`).
    pub say: &'a mut dyn FnMut(String),
}

/// A program as found.
#[derive(Debug, Clone, PartialEq)]
struct Found {
    name: String,
    /// The process environment's value for the name, if it had one.
    from_env: Option<String>,
    candidates: Vec<String>,
    /// Where the first candidate was found on PATH (none when the value came from elsewhere).
    path: Option<PathBuf>,
    hash: Hash,
    /// Its stat when it was hashed: a program whose stat is the same is not hashed again.
    stat: Option<Stat>,
}

/// The results for `def` given the env values below them (`[env]` with `-D`): from the cache
/// when everything they depend on is as it was, else computed now (and `config.h` written).
fn results(def: &Configure, env: &Env, place: &Place, cx: &mut Context) -> Result<Results, Error> {
    let programs = find_programs(def, cx.defines)?;
    let check_env = with_programs(env, &programs, cx.defines);
    let pkg_config_path = std::env::var("PKG_CONFIG_PATH").unwrap_or_default();
    let state_dir = place.state_dir();
    let cache_path = state_dir.join(FILE);
    let cached = read(&cache_path);
    if let Some(c) = &cached
        && !cx.force
    {
        let pc_now = rehash(&c.pc_files);
        let d = digest(def, &check_env, &programs, &pc_now, &pkg_config_path);
        if d == c.digest {
            return Ok(c.results.clone());
        }
    }
    // Nothing is written into a directory kiln did not make.
    crate::outdir::prepare(&place.out_dir, place.out, false)?;
    let mut results: Results = Vec::new();
    for p in &programs {
        let value = program_value(p, env, cx.defines);
        (cx.say)(format!("configure: {} = {}", p.name, value.join(" ")));
        results.push((p.name.clone(), value));
    }
    let mut pc_files = Vec::new();
    for (name, query) in &def.packages {
        let (cflags, libs, version, files) = package(name, query, &pkg_config_path)?;
        (cx.say)(format!("configure: {name} = {query}: found {version}"));
        results.push((format!("{name}_CFLAGS"), cflags));
        results.push((format!("{name}_LIBS"), libs));
        results.push((format!("{name}_VERSION"), vec![version]));
        pc_files.extend(files);
    }
    let scratch = state_dir.join("configure.d");
    std::fs::create_dir_all(&scratch)
        .map_err(|e| Error::io(format!("cannot create {}", scratch.display()), e))?;
    let mut passed = Vec::new();
    for check in &def.checks {
        let ok = run_check(check, &check_env, place.root, &scratch)?;
        (cx.say)(format!(
            "configure: {}: {}",
            check.define,
            if ok { "yes" } else { "no" }
        ));
        results.push((
            check.define.clone(),
            vec![if ok { "1" } else { "" }.to_string()],
        ));
        passed.push((check.define.as_str(), ok));
    }
    if let Some(header) = &def.header {
        write_header(&place.out_dir.join(header), &passed)?;
        (cx.say)(format!(
            "configure: wrote {}",
            crate::paths::join(place.out, header)
        ));
    }
    let pc_files = rehash_paths(pc_files);
    let d = digest(def, &check_env, &programs, &pc_files, &pkg_config_path);
    let cached = Cached {
        digest: d,
        programs,
        pc_files,
        pkg_config_path,
        results: results.clone(),
    };
    write(&cache_path, &cached)
        .map_err(|e| Error::io(format!("cannot write {}", cache_path.display()), e))?;
    Ok(results)
}

/// Each program: the process environment's value (unless `-D` sets it), else the first
/// candidate found on PATH.
fn find_programs(def: &Configure, defines: &[(String, String)]) -> Result<Vec<Found>, Error> {
    let mut found = Vec::new();
    for (name, candidates) in &def.programs {
        let defined = defines.iter().any(|(d, _)| d == name);
        let from_env = std::env::var(name).ok().filter(|_| !defined);
        let (path, hash) = if defined || from_env.is_some() {
            (None, [0; 32])
        } else {
            match search(candidates) {
                Some((p, h)) => (Some(p), h),
                None => {
                    let path = std::env::var("PATH").unwrap_or_default();
                    return Err(Diagnostic::plain(format!(
                        "configure: no program for {name}: looked for {} in PATH ({path})",
                        candidates
                            .iter()
                            .map(|c| format!("`{c}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .note(format!(
                        "install one, or name it: {name}=/path/to/program kiln build, or -D {name}=..."
                    ))
                    .into());
                }
            }
        };
        let stat = path.as_deref().and_then(filestate::stat);
        found.push(Found {
            name: name.clone(),
            from_env,
            candidates: candidates.clone(),
            path,
            hash,
            stat,
        });
    }
    Ok(found)
}

/// A program's env value: `-D`'s, the process environment's, or the path found.
fn program_value(p: &Found, env: &Env, defines: &[(String, String)]) -> Vec<String> {
    if defines.iter().any(|(d, _)| d == &p.name) {
        return env.get(&p.name).map(<[String]>::to_vec).unwrap_or_default();
    }
    match (&p.from_env, &p.path) {
        (Some(v), _) => vec![v.clone()],
        (None, Some(path)) => vec![path.to_string_lossy().into_owned()],
        (None, None) => Vec::new(),
    }
}

/// `env` with the programs' values over it (`-D` still wins), as the checks see it.
fn with_programs(env: &Env, programs: &[Found], defines: &[(String, String)]) -> Env {
    let mut e = env.clone();
    for p in programs {
        e.set(p.name.clone(), program_value(p, env, defines));
    }
    e
}

/// The first of `candidates` found: an absolute or relative path as it is, a name on PATH.
fn locate(candidates: &[String]) -> Option<PathBuf> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    for c in candidates {
        let word = c.split_whitespace().next().unwrap_or("");
        let hits: Vec<PathBuf> = if word.contains('/') {
            vec![PathBuf::from(word)]
        } else {
            std::env::split_paths(&path_var)
                .map(|d| d.join(word))
                .collect()
        };
        if let Some(p) = hits.into_iter().find(|p| is_executable(p)) {
            return Some(p);
        }
    }
    None
}

/// [`locate`], with the hash of the program's content.
fn search(candidates: &[String]) -> Option<(PathBuf, Hash)> {
    let p = locate(candidates)?;
    let content = std::fs::read(&p).ok()?;
    Some((p, *blake3::hash(&content).as_bytes()))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What pkg-config says of a package: CFLAGS, LIBS, the version and the `.pc` files it read.
type Package = (Vec<String>, Vec<String>, String, Vec<PathBuf>);

/// pkg-config's answers for `query`.
fn package(name: &str, query: &str, pkg_config_path: &str) -> Result<Package, Error> {
    let module = query.split_whitespace().next().unwrap_or(query).to_string();
    let run = |args: &[&str]| -> Result<std::process::Output, Error> {
        Command::new("pkg-config")
            .args(args)
            .output()
            .map_err(|e| {
                Error::from(
                    Diagnostic::plain(format!(
                        "configure: cannot run pkg-config for {name} (`{query}`): {e}"
                    ))
                    .note("install pkg-config (Debian: pkg-config)"),
                )
            })
    };
    let exists = run(&["--exists", "--print-errors", query])?;
    if !exists.status.success() {
        let why = String::from_utf8_lossy(&exists.stderr).trim().to_string();
        return Err(Diagnostic::plain(format!(
            "configure: no package for {name}: pkg-config found no `{query}`"
        ))
        .note(if why.is_empty() {
            "pkg-config said nothing more".to_string()
        } else {
            format!("pkg-config: {}", why.replace('\n', "\n    "))
        })
        .note(format!(
            "looked in pkg-config's default directories and PKG_CONFIG_PATH ({})",
            if pkg_config_path.is_empty() {
                "unset"
            } else {
                pkg_config_path
            }
        ))
        .into());
    }
    let words = |o: std::process::Output| -> Vec<String> {
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let cflags = words(run(&["--cflags", &module])?);
    let libs = words(run(&["--libs", &module])?);
    let version = words(run(&["--modversion", &module])?).join(" ");
    let files = words(run(&["--path", &module])?)
        .into_iter()
        .map(PathBuf::from)
        .collect();
    Ok((cflags, libs, version, files))
}

/// Compiles (or links) a check's snippet with the env's CC and CFLAGS (and LDFLAGS and the
/// check's libs to link); whether it succeeded. A check that is not optional and fails stops
/// configuring with what the compiler said.
fn run_check(check: &Check, env: &Env, root: &Path, scratch: &Path) -> Result<bool, Error> {
    let source = scratch.join(format!("{}.c", check.define));
    std::fs::write(&source, &check.code)
        .map_err(|e| Error::io(format!("cannot write {}", source.display()), e))?;
    let words = |n: &str| env.get(n).map(|v| v.join(" ")).unwrap_or_default();
    let (cc, cflags, ldflags) = (words("CC"), words("CFLAGS"), words("LDFLAGS"));
    let cc = if cc.is_empty() { "cc".to_string() } else { cc };
    let quote = |p: &Path| crate::paths::shell_quote(&p.to_string_lossy());
    let command = if check.link {
        format!(
            "{cc} {cflags} {} -o {} {ldflags} {}",
            quote(&source),
            quote(&scratch.join(format!("{}.out", check.define))),
            check.libs.join(" ")
        )
    } else {
        format!(
            "{cc} {cflags} -c {} -o {}",
            quote(&source),
            quote(&scratch.join(format!("{}.o", check.define)))
        )
    };
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(&command)
        .current_dir(root)
        .output()
        .map_err(|e| Error::io("cannot run /bin/sh for a configure check", e))?;
    if out.status.success() {
        return Ok(true);
    }
    if check.optional {
        return Ok(false);
    }
    let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(Diagnostic::plain(format!(
        "configure: check {} failed: the snippet does not {}",
        check.define,
        if check.link { "link" } else { "compile" }
    ))
    .note(format!("command: {command}"))
    .note(format!("it said: {}", said.replace('\n', "\n    ")))
    .note("make the check `optional = true` if the build can do without it")
    .into())
}

/// `config.h`: one `#define NAME 1` per passing check, a comment for each failing one; written
/// only when its text changes.
fn write_header(path: &Path, checks: &[(&str, bool)]) -> Result<(), Error> {
    let mut text = String::from("/* Written by kiln configure. */\n");
    for (define, ok) in checks {
        if *ok {
            text.push_str(&format!("#define {define} 1\n"));
        } else {
            text.push_str(&format!("/* #undef {define} */\n"));
        }
    }
    if std::fs::read_to_string(path).ok().as_deref() == Some(text.as_str()) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    }
    replace_file(path, text.as_bytes())
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

fn rehash(files: &[(PathBuf, Hash)]) -> Vec<(PathBuf, Hash)> {
    rehash_paths(files.iter().map(|(p, _)| p.clone()).collect())
}

fn rehash_paths(paths: Vec<PathBuf>) -> Vec<(PathBuf, Hash)> {
    paths
        .into_iter()
        .map(|p| {
            let h = std::fs::read(&p).map_or([0; 32], |b| *blake3::hash(&b).as_bytes());
            (p, h)
        })
        .collect()
}

/// Everything the results depend on, as one hash.
fn digest(
    def: &Configure,
    check_env: &Env,
    programs: &[Found],
    pc_files: &[(PathBuf, Hash)],
    pkg_config_path: &str,
) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(b"kiln configure v1\0");
    h.update(def.canonical().as_bytes());
    for name in ["CC", "CFLAGS", "LDFLAGS"] {
        h.update(format!("\0{name}={:?}", check_env.get(name)).as_bytes());
    }
    for p in programs {
        h.update(format!("\0{:?}{:?}{:?}", p.name, p.from_env, p.path).as_bytes());
        h.update(&p.hash);
    }
    for (p, hash) in pc_files {
        h.update(p.as_os_str().as_encoded_bytes());
        h.update(hash);
    }
    h.update(pkg_config_path.as_bytes());
    *h.finalize().as_bytes()
}
