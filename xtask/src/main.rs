//! Project tasks, run as `cargo xtask <task>`.
//!
//! `cargo xtask test [ARGS]` is the test command of the README and of CI: it
//! makes sure that what the tests need is on the machine (Debian's headless
//! Chromium for the web UI's browser tests), installing it once when it is
//! missing, then runs `cargo test --workspace ARGS`. A second run installs
//! nothing.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{exit, Command, Stdio};

/// Where Debian and other distributions put Chromium.
const CHROMIUM_PATHS: &[&str] = &[
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/lib/chromium/chromium",
];

fn main() {
    let mut args = env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    let result = match task.as_deref() {
        Some("test") => test(&rest),
        Some("setup") => setup().map(|_| ()),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  \
                 test [ARGS]   install what the tests need (once), then cargo test --workspace ARGS\n  \
                 setup         only the installs"
            );
            exit(2);
        }
    };
    if let Err(message) = result {
        eprintln!("xtask: {message}");
        exit(1);
    }
}

/// What the tests found or installed.
struct Setup {
    chromium: PathBuf,
}

fn test(args: &[String]) -> Result<(), String> {
    let setup = setup()?;
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["test", "--workspace"])
        .args(args)
        .env("OMEGI_CHROMIUM", &setup.chromium)
        .status()
        .map_err(|e| format!("could not run cargo test: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        exit(status.code().unwrap_or(1));
    }
}

fn setup() -> Result<Setup, String> {
    Ok(Setup {
        chromium: chromium()?,
    })
}

/// Headless Chromium for the browser tests: `OMEGI_CHROMIUM`, else a
/// known path, else Debian's `chromium` package installed with apt-get.
fn chromium() -> Result<PathBuf, String> {
    if let Some(path) = env::var_os("OMEGI_CHROMIUM").map(PathBuf::from) {
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("OMEGI_CHROMIUM={} is not a file", path.display()))
        };
    }
    if let Some(found) = find_chromium() {
        return Ok(found);
    }
    eprintln!(
        "xtask: Chromium is missing; installing Debian's chromium package for the browser tests"
    );
    apt_install(&["chromium"])?;
    find_chromium().ok_or_else(|| "chromium was installed but is not in a known place".into())
}

fn find_chromium() -> Option<PathBuf> {
    CHROMIUM_PATHS
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .map(Path::to_path_buf)
}

/// Installs Debian packages, as root or through sudo.
fn apt_install(packages: &[&str]) -> Result<(), String> {
    if !Path::new("/usr/bin/apt-get").exists() {
        return Err(format!(
            "cannot install {}: no apt-get on this machine; install it by hand",
            packages.join(" ")
        ));
    }
    let as_root = is_root();
    let run = |args: &[&str]| -> Result<(), String> {
        let mut command = if as_root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.args(["-n", "apt-get"]);
            sudo
        };
        let status = command
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("could not run apt-get: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "apt-get {} failed ({status}); install {} by hand",
                args.join(" "),
                packages.join(" ")
            ))
        }
    };
    run(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
    install.extend_from_slice(packages);
    run(&install)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
