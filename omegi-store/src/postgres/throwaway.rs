//! A throwaway PostgreSQL cluster: for tests and benchmarks that need a
//! real database and must not depend on one set up by hand.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use r2d2_postgres::postgres::{Client, NoTls};

/// The environment variable that names an existing cluster for
/// [`Throwaway::shared`] to use instead of starting one: a URL whose user
/// may create databases (`postgres://postgres@127.0.0.1:5432/postgres`).
pub const DATABASE_URL_VAR: &str = "OMEGI_TEST_DATABASE_URL";

/// Why a throwaway cluster could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ThrowawayError {
    /// PostgreSQL's server programs are not installed.
    #[error(
        "PostgreSQL is not installed (no initdb and postgres in /usr/lib/postgresql/*/bin or \
         on PATH): install Debian's `postgresql` package (`cargo xtask setup` does), or set \
         {DATABASE_URL_VAR} to a cluster to use"
    )]
    NotInstalled,
    /// A step failed; the message says which and what PostgreSQL printed.
    #[error("{0}")]
    Failed(String),
    /// Connecting to the cluster failed.
    #[error("cannot connect to the throwaway cluster")]
    Connect(#[source] r2d2_postgres::postgres::Error),
}

/// A PostgreSQL cluster in a temporary directory, listening on 127.0.0.1
/// at a free port, that stops and is deleted when it is dropped or when
/// the process that started it ends, however it ends: a small supervising
/// shell waits for its standard input to close, which the operating system
/// does when this process exits.
///
/// When this process runs as root, the cluster runs as the `postgres` user
/// (or `nobody`), since PostgreSQL refuses to run as root.
pub struct Throwaway {
    admin_url: String,
    port: u16,
    host: String,
    supervisor: Mutex<Option<(Child, ChildStdin)>>,
}

impl std::fmt::Debug for Throwaway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throwaway")
            .field("admin_url", &self.admin_url)
            .finish_non_exhaustive()
    }
}

impl Throwaway {
    /// Starts a cluster, with fsync off (fast, for tests): a crash of the
    /// machine loses it, which a throwaway cluster may.
    pub fn start() -> Result<Self, ThrowawayError> {
        Self::start_with(false)
    }

    /// Starts a cluster; `durable` keeps PostgreSQL's defaults (fsync on),
    /// as a benchmark comparing stores needs.
    pub fn start_with(durable: bool) -> Result<Self, ThrowawayError> {
        Self::start_inner(durable, None)
    }

    /// Starts a cluster (fsync off) that also accepts TLS, with this
    /// certificate chain and key (PEM); connections without TLS are still
    /// accepted.
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> Result<Self, ThrowawayError> {
        Self::start_inner(false, Some((cert_pem, key_pem)))
    }

    fn start_inner(durable: bool, tls: Option<(&str, &str)>) -> Result<Self, ThrowawayError> {
        let bin = server_programs().ok_or(ThrowawayError::NotInstalled)?;
        let (uid, gid) = run_as();
        let dir = std::env::temp_dir().join(format!(
            "omegi-pg-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir(&dir).map_err(|e| failed(&format!("cannot create {dir:?}"), e))?;
        if let Some(uid) = uid {
            std::os::unix::fs::chown(&dir, Some(uid), gid)
                .map_err(|e| failed(&format!("cannot give {dir:?} to uid {uid}"), e))?;
        }
        let data = dir.join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync")
            .stdin(Stdio::null());
        as_user(&mut initdb, uid, gid);
        let out = initdb
            .output()
            .map_err(|e| failed("cannot run initdb", e))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(ThrowawayError::Failed(format!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let mut settings = if durable {
            "-c max_connections=300".to_owned()
        } else {
            "-c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                .to_owned()
        };
        if let Some((cert, key)) = tls {
            let (cert_file, key_file) = (dir.join("server.crt"), dir.join("server.key"));
            for (file, pem) in [(&cert_file, cert), (&key_file, key)] {
                std::fs::write(file, pem).map_err(|e| failed("cannot write the TLS files", e))?;
                std::fs::set_permissions(file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                    .map_err(|e| failed("cannot protect the TLS files", e))?;
                if let Some(uid) = uid {
                    std::os::unix::fs::chown(file, Some(uid), gid)
                        .map_err(|e| failed("cannot give the TLS files away", e))?;
                }
            }
            settings.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                cert_file.display(),
                key_file.display()
            ));
        }
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port().map_err(|e| failed("no free port on 127.0.0.1", e))?;
            match start_server(&bin, &dir, port, &settings, uid, gid) {
                Ok(cluster) => return Ok(cluster),
                Err(why) => last = why,
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Err(ThrowawayError::Failed(format!(
            "PostgreSQL did not start: {last}"
        )))
    }

    /// One cluster for the whole process, started on first use; or the
    /// cluster `OMEGI_TEST_DATABASE_URL` names. Tests call this, then
    /// [`Throwaway::create_database`] for a database of their own.
    pub fn shared() -> Result<&'static Throwaway, String> {
        static SHARED: OnceLock<Result<Throwaway, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| match std::env::var(DATABASE_URL_VAR) {
                Ok(url) => Throwaway::existing(&url),
                Err(_) => Throwaway::start().map_err(|e| omegi_core::ErrorChain(&e).to_string()),
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn existing(url: &str) -> Result<Throwaway, String> {
        let config: r2d2_postgres::postgres::Config = url
            .parse()
            .map_err(|e| format!("{DATABASE_URL_VAR} is not a PostgreSQL URL: {e}"))?;
        let host = match config.get_hosts().first() {
            Some(r2d2_postgres::postgres::config::Host::Tcp(h)) => h.clone(),
            _ => return Err(format!("{DATABASE_URL_VAR} must name a TCP host")),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        Ok(Throwaway {
            admin_url: url.to_owned(),
            port,
            host,
            supervisor: Mutex::new(None),
        })
    }

    /// The URL of the cluster's `postgres` database, as its superuser.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// Creates a new, empty database with a unique name; returns its URL.
    pub fn create_database(&self) -> Result<String, ThrowawayError> {
        let name = format!("omegi_{}", uuid::Uuid::new_v4().simple());
        let mut client =
            Client::connect(&self.admin_url, NoTls).map_err(ThrowawayError::Connect)?;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .map_err(ThrowawayError::Connect)?;
        Ok(self.url_of(&name))
    }

    /// The URL of the database `name` in this cluster.
    pub fn url_of(&self, name: &str) -> String {
        let user = self
            .admin_url
            .parse::<r2d2_postgres::postgres::Config>()
            .ok()
            .and_then(|c| c.get_user().map(str::to_owned))
            .unwrap_or_else(|| "postgres".to_owned());
        format!("postgres://{user}@{}:{}/{name}", self.host, self.port)
    }

    /// Stops the cluster and deletes its directory (also done on drop).
    pub fn stop(&self) {
        let taken = self
            .supervisor
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some((mut child, stdin)) = taken {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the server on `port` under a supervising shell; returns once it
/// accepts connections, or why it did not.
fn start_server(
    bin: &Path,
    dir: &Path,
    port: u16,
    settings: &str,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<Throwaway, String> {
    // $1 programs, $2 directory, $3 port, $4 extra settings. A background
    // job of a shell without job control reads /dev/null, so the watcher
    // reads the shell's standard input through fd 3. Once PostgreSQL ends,
    // for whatever reason, the directory is deleted and the end of the
    // server's log goes to standard output.
    const SCRIPT: &str = r#"
exec 3<&0
"$1/postgres" -D "$2/data" -p "$3" -h 127.0.0.1 -k "$2" $4 >"$2/log" 2>&1 3<&- &
pg=$!
( cat <&3 >/dev/null; kill -INT "$pg" 2>/dev/null ) &
wait "$pg"
log=$(tail -n 20 "$2/log")
rm -rf "$2"
printf '%s\n' "$log"
"#;
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(SCRIPT)
        .arg("sh")
        .arg(bin)
        .arg(dir)
        .arg(port.to_string())
        .arg(settings)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    as_user(&mut sh, uid, gid);
    let mut child = sh.spawn().map_err(|e| format!("cannot run sh: {e}"))?;
    let stdin = child.stdin.take().ok_or("no stdin")?;
    let admin_url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            let mut log = String::new();
            if let Some(mut out) = child.stdout.take() {
                let _ = out.read_to_string(&mut log);
            }
            return Err(log.trim().to_owned());
        }
        if Client::connect(&admin_url, NoTls).is_ok() {
            return Ok(Throwaway {
                admin_url,
                port,
                host: "127.0.0.1".to_owned(),
                supervisor: Mutex::new(Some((child, stdin))),
            });
        }
        if Instant::now() > deadline {
            drop(stdin);
            let _ = child.wait();
            return Err("it did not accept connections within 60 s".to_owned());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn failed(what: &str, e: std::io::Error) -> ThrowawayError {
    ThrowawayError::Failed(format!("{what}: {e}"))
}

/// The directory of `initdb` and `postgres`: Debian's newest version, or
/// the one on PATH.
fn server_programs() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("postgres").is_file() && dir.join("initdb").is_file())
    })
}

/// Who the cluster runs as: this process's user, unless that is root.
fn run_as() -> (Option<u32>, Option<u32>) {
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if !root {
        return (None, None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    for name in ["postgres", "nobody"] {
        for line in passwd.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() > 3 && fields[0] == name {
                if let (Ok(uid), Ok(gid)) = (fields[2].parse(), fields[3].parse()) {
                    return (Some(uid), Some(gid));
                }
            }
        }
    }
    (None, None)
}

fn as_user(command: &mut Command, uid: Option<u32>, gid: Option<u32>) {
    if let Some(gid) = gid {
        command.gid(gid);
    }
    if let Some(uid) = uid {
        command.uid(uid);
    }
}

fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
