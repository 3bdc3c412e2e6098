//! Project tasks, run as `cargo xtask <task>`.
//!
//! `cargo xtask test [ARGS]` is the test command of the README and of CI: it
//! makes sure that what the tests need is on the machine (Debian's headless
//! Chromium for the web UI's browser tests; the stock OpenTelemetry Python
//! SDK with its gRPC and HTTP exporters, from PyPI into a virtualenv under
//! `target/`, for the test that a stock SDK reaches `omegi serve`; Debian's
//! PostgreSQL server programs, from which the store's tests start a
//! throwaway cluster of their own, unless `OMEGI_TEST_DATABASE_URL` names
//! one), installing each once when it is missing, then runs
//! `cargo test --workspace ARGS`. A second run installs nothing.

#![forbid(unsafe_code)]

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

/// The OpenTelemetry Python packages of the stock-SDK test, pinned.
const OTEL_PYTHON_PACKAGES: &[&str] = &[
    "opentelemetry-sdk==1.45.2",
    "opentelemetry-exporter-otlp-proto-grpc==1.45.2",
    "opentelemetry-exporter-otlp-proto-http==1.45.2",
];

/// What the venv's Python must import for the stock-SDK test.
const OTEL_PYTHON_CHECK: &str = "import opentelemetry.sdk.trace, \
    opentelemetry.exporter.otlp.proto.grpc.trace_exporter, \
    opentelemetry.exporter.otlp.proto.http.trace_exporter";

/// What the tests found or installed.
struct Setup {
    chromium: PathBuf,
    otel_python: PathBuf,
}

fn test(args: &[String]) -> Result<(), String> {
    let setup = setup()?;
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["test", "--workspace"])
        .args(args)
        .env("OMEGI_CHROMIUM", &setup.chromium)
        .env("OMEGI_OTEL_PYTHON", &setup.otel_python)
        .status()
        .map_err(|e| format!("could not run cargo test: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        exit(status.code().unwrap_or(1));
    }
}

fn setup() -> Result<Setup, String> {
    postgresql()?;
    Ok(Setup {
        chromium: chromium()?,
        otel_python: otel_python()?,
    })
}

/// PostgreSQL's server programs (`initdb`, `postgres`), which the tests
/// of the PostgreSQL backend run as a throwaway cluster: Debian's
/// `postgresql` package, installed with apt-get when they are missing and
/// no cluster is named by `OMEGI_TEST_DATABASE_URL`. The package's own
/// cluster service is not needed and not used.
fn postgresql() -> Result<(), String> {
    if env::var_os("OMEGI_TEST_DATABASE_URL").is_some() || has_postgresql() {
        return Ok(());
    }
    eprintln!(
        "xtask: PostgreSQL is missing; installing Debian's postgresql package for the \
         PostgreSQL backend's tests"
    );
    apt_install(&["postgresql"])?;
    if has_postgresql() {
        Ok(())
    } else {
        Err("postgresql was installed but initdb is not in /usr/lib/postgresql/*/bin".into())
    }
}

/// Whether `initdb` and `postgres` are in Debian's place or on PATH.
fn has_postgresql() -> bool {
    let both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .any(|version| both(&version.path().join("bin")));
    debian || env::var_os("PATH").is_some_and(|path| env::split_paths(&path).any(|dir| both(&dir)))
}

/// A Python with the OpenTelemetry SDK and its OTLP exporters:
/// `OMEGI_OTEL_PYTHON`, else the virtualenv `target/otel-python`, made and
/// filled from PyPI when it is missing or incomplete (Debian's python3 and
/// python3-venv installed with apt-get first when needed).
fn otel_python() -> Result<PathBuf, String> {
    if let Some(path) = env::var_os("OMEGI_OTEL_PYTHON").map(PathBuf::from) {
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "OMEGI_OTEL_PYTHON={} is not a file",
                path.display()
            ))
        };
    }
    let venv = workspace_root().join("target").join("otel-python");
    let python = venv.join("bin").join("python");
    if imports_otel(&python) {
        return Ok(python);
    }
    eprintln!(
        "xtask: installing the OpenTelemetry Python SDK into {} for the stock-SDK test",
        venv.display()
    );
    if !python.is_file() {
        let made = |command: &mut Command| {
            command
                .args(["-m", "venv"])
                .arg(&venv)
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !made(&mut Command::new("python3")) {
            apt_install(&["python3", "python3-venv"])?;
            if !made(&mut Command::new("python3")) {
                return Err(format!("python3 -m venv {} failed", venv.display()));
            }
        }
    }
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(OTEL_PYTHON_PACKAGES)
        .status()
        .map_err(|e| format!("could not run pip: {e}"))?;
    if !status.success() || !imports_otel(&python) {
        return Err(format!(
            "pip install {} failed ({status}); set OMEGI_OTEL_PYTHON to a Python that has them",
            OTEL_PYTHON_PACKAGES.join(" ")
        ));
    }
    Ok(python)
}

fn imports_otel(python: &Path) -> bool {
    python.is_file()
        && Command::new(python)
            .args(["-c", OTEL_PYTHON_CHECK])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// The workspace root: the parent of this crate's folder.
fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
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
