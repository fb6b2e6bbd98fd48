//! A private Redis Cluster for tests: three masters, no replicas, started
//! from `redis-server --cluster-enabled yes` on free ports (44000–44899,
//! with their bus ports 10000 above) and joined with
//! `redis-cli --cluster create`. Without persistence; killed by PID when
//! dropped. Each test binary that needs one starts its own.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support: a panic is a test failure with a clear location"
)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MASTERS: usize = 3;
const FIRST_PORT: u16 = 44000;
const LAST_PORT: u16 = 44899;
/// How long a node may be silent before the others mark it failed; short,
/// so the restart test sees the cluster fail and recover quickly.
const NODE_TIMEOUT_MS: u32 = 1000;

pub struct PrivateCluster {
    ports: Vec<u16>,
    dir: PathBuf,
    children: Vec<Option<Child>>,
}

impl PrivateCluster {
    /// Starts the nodes, creates the cluster and waits for `cluster_state:ok`.
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("yixin-cluster-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let ports = free_ports(MASTERS);
        let mut cluster = Self {
            children: ports.iter().map(|_| None).collect(),
            ports,
            dir,
        };
        for i in 0..MASTERS {
            cluster.launch(i).await;
        }
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli must be installed for the cluster tests");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        cluster.wait_ok(Duration::from_secs(20)).await;
        cluster
    }

    /// `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Node `i`'s own URL (a plain single-node connection).
    pub fn node_url(&self, i: usize) -> String {
        format!("redis://127.0.0.1:{}", self.ports[i])
    }

    /// The node whose slots hold `key` (the others answer `MOVED`).
    pub async fn owner_of(&self, key: &str) -> usize {
        for i in 0..MASTERS {
            let mut conn = self.node(i).await;
            let answer: redis::RedisResult<redis::Value> =
                redis::cmd("TYPE").arg(key).query_async(&mut conn).await;
            if answer.is_ok() {
                return i;
            }
        }
        panic!("no node owns {key}");
    }

    async fn node(&self, i: usize) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.node_url(i))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    async fn launch(&mut self, i: usize) {
        let port = self.ports[i];
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .arg("--cluster-config-file")
            .arg(self.dir.join(format!("nodes-{port}.conf")))
            .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", "", "--appendonly", "no"])
            .arg("--logfile")
            .arg(self.dir.join(format!("redis-{port}.log")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for the cluster tests");
        self.children[i] = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(client) = redis::Client::open(self.node_url(i))
                && let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server :{port} never answered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills node `i` (SIGKILL: its data is gone; its cluster config file
    /// stays, so a relaunch rejoins with the same slots).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i` again after [`kill`](Self::kill) and waits until the
    /// cluster is whole.
    pub async fn relaunch(&mut self, i: usize) {
        self.launch(i).await;
        self.wait_ok(Duration::from_secs(30)).await;
    }

    /// Waits until every node reports `cluster_state:ok`.
    pub async fn wait_ok(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        'retry: loop {
            assert!(Instant::now() < deadline, "the cluster never became ok");
            for i in 0..MASTERS {
                let info: redis::RedisResult<String> = async {
                    let mut conn = redis::Client::open(self.node_url(i))?
                        .get_multiplexed_async_connection()
                        .await?;
                    redis::cmd("CLUSTER")
                        .arg("INFO")
                        .query_async(&mut conn)
                        .await
                }
                .await;
                if !info.is_ok_and(|info| info.contains("cluster_state:ok")) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue 'retry;
                }
            }
            return;
        }
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `n` ports in our range that, with their cluster bus ports, are free now.
fn free_ports(n: usize) -> Vec<u16> {
    let span = u32::from(LAST_PORT - FIRST_PORT);
    let start = u16::try_from(uuid::Uuid::new_v4().as_u128() % u128::from(span)).unwrap();
    let mut ports = Vec::new();
    for offset in 0..LAST_PORT - FIRST_PORT {
        let port = FIRST_PORT + (start + offset) % (LAST_PORT - FIRST_PORT);
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10000) {
            ports.push(port);
            if ports.len() == n {
                return ports;
            }
        }
    }
    panic!("no {n} free ports in {FIRST_PORT}..{LAST_PORT}");
}
