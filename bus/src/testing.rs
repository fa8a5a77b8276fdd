//! Throw-away Redis servers for tests (cargo feature `testing`): real
//! `redis-server` processes on free ports of 127.0.0.1, each in a temporary
//! directory, killed and removed when dropped. Never the Redis on 6379.
//!
//! ```no_run
//! use chat_bus::testing::{RedisCluster, RedisServer, ServerOptions};
//!
//! # async fn example() -> chat_bus::Result<()> {
//! let mut redis = RedisServer::start_with(ServerOptions { aof: true });
//! let bus = chat_bus::redis::connect(redis.config()).await?;
//! // ... use the bus; then simulate a Redis crash and restart:
//! redis.restart(); // same port, same data directory, AOF reloaded
//!
//! let cluster = RedisCluster::start(3);
//! let clustered = chat_bus::redis::connect(cluster.config()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! The calls block (they start processes and wait for them to answer);
//! from async code that is fine in tests, or use `spawn_blocking`. They
//! panic with a clear message when something cannot be done, as a test
//! should. `redis-server` and `redis-cli` are looked up on `PATH` (and in
//! `/usr/bin`, `/usr/local/bin`); when missing and running as root with
//! apt, they are installed once with `apt-get install redis-server`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use crate::redis::RedisConfig;

/// How long a server may take to answer after starting (loading an AOF
/// included).
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a new cluster may take to agree on its slots.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);

/// How to run a [`RedisServer`].
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// Append-only file on, fsynced on every write (`appendfsync always`),
    /// so that a server killed with SIGKILL and started again has every
    /// acknowledged write. Off, nothing is persisted (no RDB either).
    pub aof: bool,
}

/// One `redis-server` process owned by a test.
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    options: ServerOptions,
    cluster: bool,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server without persistence.
    pub fn start() -> RedisServer {
        RedisServer::start_with(ServerOptions::default())
    }

    /// Starts a server with these options.
    pub fn start_with(options: ServerOptions) -> RedisServer {
        RedisServer::launch(options, false)
    }

    fn launch(options: ServerOptions, cluster: bool) -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("chat-redis-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a directory for redis-server: {e}"));
        // A port can be taken between the check and the start: try others.
        for _ in 0..10 {
            let port = free_port(cluster);
            match spawn(port, dir.path(), &options, cluster) {
                Ok(child) => {
                    return RedisServer {
                        port,
                        dir,
                        options,
                        cluster,
                        child: Some(child),
                    };
                }
                Err(Startup::PortTaken) => continue,
                Err(Startup::Failed(why)) => panic!("{why}"),
            }
        }
        panic!("redis-server found no free port after 10 tries");
    }

    /// The URL to give the bus: `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A bus configuration for this server (defaults otherwise).
    pub fn config(&self) -> RedisConfig {
        RedisConfig {
            url: self.url(),
            ..RedisConfig::default()
        }
    }

    /// The port it listens on (127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its data directory (AOF, log file `redis.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the process is running (not killed, not exited).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Kills the server with SIGKILL, like a crash; its data directory
    /// stays. Harmless when it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the killed server again on the same port with the same data
    /// directory (with AOF on, with the same data), and waits until it
    /// answers. Panics if the port was taken meanwhile.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "redis-server is still running");
        match spawn(self.port, self.dir.path(), &self.options, self.cluster) {
            Ok(child) => self.child = Some(child),
            Err(Startup::PortTaken) => panic!(
                "redis-server cannot start again: port {} was taken meanwhile",
                self.port
            ),
            Err(Startup::Failed(why)) => panic!("{why}"),
        }
    }

    /// [`kill`](Self::kill), then [`start_again`](Self::start_again).
    pub fn restart(&mut self) {
        self.kill();
        self.start_again();
    }

    /// Runs `redis-cli -p PORT ARGS…` and answers its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args)
    }
}

/// Starts redis-server on `port` with its data in `dir` and waits until it
/// answers PING.
fn spawn(port: u16, dir: &Path, options: &ServerOptions, cluster: bool) -> Result<Child, Startup> {
    let log = dir.join("redis.log");
    let mut command = Command::new(binaries().server.clone());
    command
        .arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--protected-mode", "no"])
        .args(["--daemonize", "no", "--save", ""])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(&log)
        .args(["--appendonly", if options.aof { "yes" } else { "no" }])
        .args(["--appendfsync", "always"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if cluster {
        command
            .args(["--cluster-enabled", "yes"])
            .arg("--cluster-config-file")
            .arg(dir.join("nodes.conf"))
            .args(["--cluster-node-timeout", "2000"]);
    }
    let mut child = command
        .spawn()
        .map_err(|e| Startup::Failed(format!("cannot run {}: {e}", binaries().server.display())))?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            if log.contains("Address already in use") {
                return Err(Startup::PortTaken);
            }
            return Err(Startup::Failed(format!(
                "redis-server on port {} exited with {status}; its log:\n{log}",
                port
            )));
        }
        if ping(port) {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(Startup::Failed(format!(
                "redis-server on port {} did not answer within {READY_TIMEOUT:?}; its log:\n{log}",
                port
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

enum Startup {
    PortTaken,
    Failed(String),
}

/// A Redis Cluster of masters without replicas, owned by a test.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `masters` cluster-enabled servers (at least 3, as Redis
    /// requires), joins them with `redis-cli --cluster create`, and waits
    /// until every node reports `cluster_state:ok` and knows every other.
    pub fn start(masters: usize) -> RedisCluster {
        assert!(masters >= 3, "a Redis Cluster needs at least 3 masters");
        let nodes: Vec<RedisServer> = (0..masters)
            .map(|_| RedisServer::launch(ServerOptions::default(), true))
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let output = Command::new(binaries().cli.clone())
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli --cluster create: {e}"));
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_until_ok();
        cluster
    }

    fn wait_until_ok(&self) {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        let known = format!("cluster_known_nodes:{}", self.nodes.len());
        loop {
            let infos: Vec<String> = self
                .nodes
                .iter()
                .map(|n| n.cli(&["cluster", "info"]))
                .collect();
            if infos
                .iter()
                .all(|i| i.contains("cluster_state:ok") && i.contains(&known))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Redis Cluster did not become ok within {CLUSTER_TIMEOUT:?}:\n{}",
                infos.join("\n---\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The URL to give the bus:
    /// `redis-cluster://127.0.0.1:P1?node=127.0.0.1:P2&node=…`, the form
    /// fred reads as a cluster with several seed nodes.
    pub fn url(&self) -> String {
        let mut ports = self.nodes.iter().map(|n| n.port);
        let first = ports.next().unwrap_or_default();
        let others: Vec<String> = ports.map(|p| format!("node=127.0.0.1:{p}")).collect();
        if others.is_empty() {
            format!("redis-cluster://127.0.0.1:{first}")
        } else {
            format!("redis-cluster://127.0.0.1:{first}?{}", others.join("&"))
        }
    }

    /// A bus configuration for this cluster (defaults otherwise).
    pub fn config(&self) -> RedisConfig {
        RedisConfig {
            url: self.url(),
            cluster: true,
            ..RedisConfig::default()
        }
    }

    /// The nodes' ports.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// The nodes, to inspect one (e.g. with [`RedisServer::cli`]).
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The nodes, to kill or restart one.
    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    /// Runs `redis-cli -c -p PORT ARGS…` (following redirections) against
    /// the first node and answers its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut all = vec!["-c"];
        all.extend_from_slice(args);
        cli(self.nodes[0].port, &all)
    }
}

/// The programs this harness runs.
struct Binaries {
    server: PathBuf,
    cli: PathBuf,
}

fn binaries() -> &'static Binaries {
    static BINARIES: OnceLock<Binaries> = OnceLock::new();
    BINARIES.get_or_init(|| {
        if let (Some(server), Some(cli)) = (find("redis-server"), find("redis-cli")) {
            return Binaries { server, cli };
        }
        install_with_apt();
        match (find("redis-server"), find("redis-cli")) {
            (Some(server), Some(cli)) => Binaries { server, cli },
            _ => panic!(
                "redis-server and redis-cli are needed by these tests and were not found on PATH; \
                 install them, e.g. `sudo apt-get update && sudo apt-get install -y redis-server`"
            ),
        }
    })
}

fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/local/bin", "/usr/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Installs redis-server (which brings redis-cli) when running as root on
/// a system with apt; otherwise leaves it to the caller's panic message.
fn install_with_apt() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root || find("apt-get").is_none() {
        return;
    }
    eprintln!("redis-server not found: installing it with apt-get");
    let run = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !run(&["update", "-qq"]) || !run(&["install", "-y", "-qq", "redis-server"]) {
        eprintln!("apt-get could not install redis-server");
    }
}

/// A port whose neighbour 10000 up (a cluster node's bus port) is free
/// too, different for each call in this process.
fn free_port(cluster: bool) -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Start somewhere random, so that test binaries running at the same
    // time rarely probe the same ports; stay below the ephemeral range so
    // that the bus port (+10000) is not in it either.
    let _ = NEXT.compare_exchange(
        0,
        rand::random_range(0..8000),
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..8000 {
        let port = 20_000 + NEXT.fetch_add(1, Ordering::Relaxed) % 8000;
        let bindable = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if port != 6379 && bindable(port) && (!cluster || bindable(port + 10_000)) {
            return port;
        }
    }
    panic!("no free port for redis-server in 20000..28000");
}

/// Whether a server on `port` answers PING with PONG (not LOADING).
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut answer = [0u8; 64];
    match stream.read(&mut answer) {
        Ok(n) => answer[..n].starts_with(b"+PONG"),
        Err(_) => false,
    }
}

fn cli(port: u16, args: &[&str]) -> String {
    let output = Command::new(binaries().cli.clone())
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run redis-cli: {e}"));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}
