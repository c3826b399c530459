//! A private PostgreSQL for `desk demo`, development and the test suite, started from the
//! machine's own server binaries in a data directory that is reused on the next run.
//!
//! PostgreSQL refuses to run as root. When we are root, the server runs as the `postgres`
//! system user (created by Debian's server package) or, failing that, `nobody`; its data
//! directory is given to that user.

use anyhow::{Context, bail};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The database and login role created inside the embedded cluster.
const APP_DB: &str = "desk";
const APP_ROLE: &str = "desk";

/// Options for the embedded cluster.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Where the cluster lives (`<dir>/pgdata`); created on first use, reused afterwards.
    pub dir: PathBuf,
    /// `fsync=off` for throwaway test clusters (much faster DDL); keep it on for anything else.
    pub fsync: bool,
}

/// A running embedded cluster. Stop it with [`EmbeddedPostgres::stop`].
#[derive(Debug)]
pub struct EmbeddedPostgres {
    bindir: PathBuf,
    pgdata: PathBuf,
    port: u16,
    run_as: Option<(u32, u32)>,
    started_here: bool,
}

impl EmbeddedPostgres {
    /// Starts (or reuses) the cluster in `opts.dir`, creating it on first use, and makes sure
    /// the `desk` login role and database exist.
    pub fn start(opts: &EmbeddedOptions) -> anyhow::Result<Self> {
        let bindir = find_bindir()?;
        std::fs::create_dir_all(&opts.dir)
            .with_context(|| format!("creating {}", opts.dir.display()))?;
        let dir = opts
            .dir
            .canonicalize()
            .with_context(|| format!("resolving {}", opts.dir.display()))?;
        let pgdata = dir.join("pgdata");
        let run_as = if running_as_root()? {
            Some(unprivileged_user()?)
        } else {
            None
        };
        let mut me = Self {
            bindir,
            pgdata,
            port: 0,
            run_as,
            started_here: false,
        };
        if !me.pgdata.join("PG_VERSION").exists() {
            me.init(&dir, opts.fsync)?;
        }
        me.port = read_port(&me.pgdata)?;
        if !me.is_running() {
            me.pg_ctl_start()?;
            me.started_here = true;
        }
        me.ensure_app_role()?;
        Ok(me)
    }

    /// `postgres://desk@127.0.0.1:<port>/desk`.
    pub fn database_url(&self) -> String {
        format!("postgres://{APP_ROLE}@127.0.0.1:{}/{APP_DB}", self.port)
    }

    /// The port the cluster listens on (loopback only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether this process started the server (as opposed to finding it running).
    pub fn started_here(&self) -> bool {
        self.started_here
    }

    /// Stops the server (fast shutdown: open sessions are rolled back).
    pub fn stop(self) -> anyhow::Result<()> {
        Self::stop_dir(&self.pgdata, &self.bindir, self.run_as)
    }

    /// Stops the cluster in `dir` if it runs (used by `desk db stop`).
    pub fn stop_at(dir: &Path) -> anyhow::Result<()> {
        let Ok(dir) = dir.canonicalize() else {
            return Ok(());
        };
        let bindir = find_bindir()?;
        let run_as = if running_as_root()? {
            Some(unprivileged_user()?)
        } else {
            None
        };
        Self::stop_dir(&dir.join("pgdata"), &bindir, run_as)
    }

    fn stop_dir(pgdata: &Path, bindir: &Path, run_as: Option<(u32, u32)>) -> anyhow::Result<()> {
        if !pgdata.join("postmaster.pid").exists() {
            return Ok(());
        }
        let out = command(bindir.join("pg_ctl"), run_as)
            .arg("stop")
            .arg("-D")
            .arg(pgdata)
            .args(["-m", "fast", "-w"])
            .output()
            .context("running pg_ctl stop")?;
        let still_running = command(bindir.join("pg_ctl"), run_as)
            .arg("status")
            .arg("-D")
            .arg(pgdata)
            .output()
            .is_ok_and(|o| o.status.success());
        if still_running {
            check(&out, "pg_ctl stop")
        } else {
            Ok(())
        }
    }

    fn init(&self, dir: &Path, fsync: bool) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.pgdata)?;
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(&self.pgdata, Some(uid), Some(gid)).with_context(|| {
                format!("giving {} to the postgres user", self.pgdata.display())
            })?;
            let probe = command(PathBuf::from("test"), self.run_as)
                .arg("-w")
                .arg(&self.pgdata)
                .status()?;
            if !probe.success() {
                bail!(
                    "PostgreSQL cannot run as root, so desk runs it as an unprivileged user (uid {uid}), \
                     but that user cannot reach {dir}. Use a data directory it can reach, e.g. \
                     `--data-dir /tmp/desk`, or run desk as a normal user.",
                    dir = self.pgdata.display()
                );
            }
        }
        let out = command(self.bindir.join("initdb"), self.run_as)
            .arg("-D")
            .arg(&self.pgdata)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ])
            .output()
            .context("running initdb")?;
        check(&out, "initdb")?;
        let port = free_port()?;
        let conf = format!(
            "\n# added by desk\nlisten_addresses = '127.0.0.1'\nport = {port}\n\
             unix_socket_directories = ''\nmax_connections = 200\n\
             max_locks_per_transaction = 1024\nshared_buffers = 256MB\n\
             fsync = {fsync}\nsynchronous_commit = {sync}\nfull_page_writes = {fsync}\n",
            fsync = if fsync { "on" } else { "off" },
            sync = if fsync { "on" } else { "off" },
        );
        let conf_path = self.pgdata.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).context("reading postgresql.conf")?;
        text.push_str(&conf);
        std::fs::write(&conf_path, text).context("writing postgresql.conf")?;
        tracing::info!(dir = %dir.display(), port, "created embedded PostgreSQL cluster");
        Ok(())
    }

    fn is_running(&self) -> bool {
        command(self.bindir.join("pg_ctl"), self.run_as)
            .arg("status")
            .arg("-D")
            .arg(&self.pgdata)
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        use std::os::unix::process::CommandExt;
        let log = self.pgdata.join("server.log");
        // Its own process group: a Ctrl-C in the terminal reaches desk, which then stops the
        // server in order, instead of reaching the server directly.
        let out = command(self.bindir.join("pg_ctl"), self.run_as)
            .process_group(0)
            .arg("start")
            .arg("-D")
            .arg(&self.pgdata)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60"])
            .output()
            .context("running pg_ctl start")?;
        check(&out, "pg_ctl start").with_context(|| {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(10).collect();
            format!(
                "the server log ({}) ends with:\n{}",
                log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
    }

    fn ensure_app_role(&self) -> anyhow::Result<()> {
        // NOINHERIT: the login holds no tenant privileges of its own and must `set role` to the
        // tenant's role, so forgetting the tenant scope fails closed.
        let psql = |db: &str, sql: &str| -> anyhow::Result<String> {
            let out = Command::new(self.bindir.join("psql"))
                .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"])
                .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
                .arg(self.port.to_string())
                .args(["-d", db, "-c", sql])
                .output()
                .context("running psql")?;
            check(&out, "psql")?;
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        };
        psql(
            "postgres",
            &format!(
                "do $$ begin
                   if not exists (select from pg_roles where rolname = '{APP_ROLE}') then
                     create role {APP_ROLE} login noinherit createrole createdb;
                   end if;
                 end $$;
                 grant pg_signal_backend to {APP_ROLE}"
            ),
        )?;
        let exists = psql(
            "postgres",
            &format!("select 1 from pg_database where datname = '{APP_DB}'"),
        )?;
        if exists.is_empty() {
            psql(
                "postgres",
                &format!("create database {APP_DB} owner {APP_ROLE}"),
            )?;
        }
        Ok(())
    }
}

/// Finds `initdb`/`pg_ctl`: on PATH, via `pg_config --bindir`, or under Debian's
/// `/usr/lib/postgresql/<version>/bin` (newest version first).
pub fn find_bindir() -> anyhow::Result<PathBuf> {
    let has_tools = |dir: &Path| {
        ["initdb", "pg_ctl", "psql"]
            .iter()
            .all(|t| dir.join(t).is_file())
    };
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_tools(&dir) {
                // Follow symlinks (Debian links /usr/local/bin/initdb to the versioned dir).
                let real = dir.join("initdb").canonicalize().ok();
                let real_dir = real
                    .as_deref()
                    .and_then(Path::parent)
                    .map(Path::to_path_buf);
                return Ok(real_dir.filter(|d| has_tools(d)).unwrap_or(dir));
            }
        }
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_tools(&dir) {
            return Ok(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, dir)| has_tools(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Ok(dir);
    }
    bail!(
        "no PostgreSQL server binaries (initdb, pg_ctl) found on PATH, via pg_config or under \
         /usr/lib/postgresql. Install the server package (Debian/Ubuntu: \
         `apt-get install postgresql`; Fedora: `dnf install postgresql-server`; macOS: \
         `brew install postgresql@15`), or set DATABASE_URL to use an existing server."
    )
}

fn command(program: PathBuf, run_as: Option<(u32, u32)>) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(program);
    cmd.current_dir("/");
    if let Some((uid, gid)) = run_as {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

fn check(out: &Output, what: &str) -> anyhow::Result<()> {
    if out.status.success() {
        return Ok(());
    }
    bail!(
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim(),
        String::from_utf8_lossy(&out.stdout).trim()
    )
}

fn running_as_root() -> anyhow::Result<bool> {
    Ok(std::fs::metadata("/proc/self")
        .context("reading /proc/self to learn our uid")?
        .uid()
        == 0)
}

/// `postgres` if the system has it (Debian's server package creates it), else `nobody`.
fn unprivileged_user() -> anyhow::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    for wanted in ["postgres", "nobody"] {
        for line in passwd.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() > 3 && fields[0] == wanted {
                let uid = fields[2].parse()?;
                let gid = fields[3].parse()?;
                return Ok((uid, gid));
            }
        }
    }
    bail!(
        "PostgreSQL refuses to run as root and this system has neither a `postgres` nor a \
         `nobody` user. Run desk as a normal user, or set DATABASE_URL to an existing server."
    )
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn read_port(pgdata: &Path) -> anyhow::Result<u16> {
    let conf = std::fs::read_to_string(pgdata.join("postgresql.conf"))
        .context("reading postgresql.conf of the embedded cluster")?;
    conf.lines()
        .rev()
        .filter_map(|l| l.trim().strip_prefix("port = "))
        .find_map(|v| v.trim().parse().ok())
        .context("the embedded cluster's postgresql.conf has no `port = N` line")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_this_machines_binaries_or_explains() {
        match find_bindir() {
            Ok(dir) => assert!(dir.join("initdb").is_file()),
            Err(e) => assert!(e.to_string().contains("apt-get install postgresql")),
        }
    }

    #[test]
    fn reads_the_last_port_line() {
        let dir = std::env::temp_dir().join(format!("desk-port-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("postgresql.conf"),
            "#port = 5432\nport = 5432\nport = 61000\n",
        )
        .unwrap();
        assert_eq!(read_port(&dir).unwrap(), 61000);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
