//! Where the Redis adapters connect: one Redis server, or a Redis Cluster.
//!
//! The URL says which. `redis://…` (also `rediss://`, `unix://`,
//! `redis+unix://`) is one server, as always. `redis+cluster://` (or
//! `rediss+cluster://` with TLS) lists seed nodes of a cluster, separated by
//! commas, with one optional `user:password@` for all of them:
//! `redis+cluster://:secret@10.0.0.1:7000,10.0.0.2:7000`. The client finds
//! the other nodes and the slot map from the seeds.
//!
//! Everything above this module sends commands through [`Conn`], which is
//! either kind; what differs on a cluster is handled where it matters:
//! pipelines are split by hash tag (see [`Pipes`]), pub/sub is sharded
//! (`SPUBLISH`/`SSUBSCRIBE`, see `redis_pubsub`), and `/readyz` also asks the
//! cluster for its state.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Client, Cmd, Pipeline, RedisFuture, RedisResult, Value};

use crate::QueueError;

/// URL schemes of a Redis Cluster (seed list).
const CLUSTER_SCHEMES: [(&str, &str); 2] = [
    ("redis+cluster://", "redis://"),
    ("rediss+cluster://", "rediss://"),
];

/// Retries of a cluster command (redirections, reconnections) before it
/// fails; the command timeout bounds them too.
const CLUSTER_RETRIES: u32 = 3;

/// A parsed Redis URL: one server, or the seed nodes of a cluster.
#[derive(Clone)]
pub(crate) enum Target {
    Single(Client),
    /// Node URLs in the ordinary `redis://host:port` form.
    Cluster(Vec<String>),
}

impl Target {
    /// Parses `url`; see the module docs for the forms.
    pub(crate) fn parse(url: &str) -> Result<Self, QueueError> {
        let Some((scheme, rest)) = CLUSTER_SCHEMES
            .iter()
            .find_map(|(cluster, plain)| url.strip_prefix(cluster).map(|rest| (*plain, rest)))
        else {
            return Client::open(url)
                .map(Target::Single)
                .map_err(|e| QueueError::Config(e.to_string()));
        };
        Ok(Target::Cluster(cluster_nodes(scheme, rest)?))
    }

    /// A cluster client; `response_timeout` `None` for blocking reads, and
    /// a RESP3 push sender for pub/sub.
    pub(crate) fn cluster_client(
        nodes: &[String],
        connect_timeout: Duration,
        response_timeout: Option<Duration>,
        push: Option<tokio::sync::mpsc::UnboundedSender<redis::PushInfo>>,
    ) -> RedisResult<ClusterClient> {
        let mut builder = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
            .connection_timeout(connect_timeout)
            .retries(CLUSTER_RETRIES);
        if let Some(timeout) = response_timeout {
            builder = builder.response_timeout(timeout);
        } else {
            builder = builder.overall_response_timeout(None);
        }
        if let Some(push) = push {
            builder = builder
                .use_protocol(redis::ProtocolVersion::RESP3)
                .push_sender(push);
        }
        builder.build()
    }
}

/// Splits `[user:password@]host:port,host:port[/db][?query]` into node URLs.
fn cluster_nodes(scheme: &str, rest: &str) -> Result<Vec<String>, QueueError> {
    let (authority, suffix) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let (credentials, hosts) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|host| format!("{scheme}{credentials}{host}{suffix}"))
        .collect();
    if nodes.is_empty() {
        return Err(QueueError::Config(
            "a redis+cluster:// URL needs at least one host:port".to_owned(),
        ));
    }
    for node in &nodes {
        // Checks each node's form without connecting (and never echoes the
        // URL, which may hold a password).
        Client::open(node.as_str())
            .map_err(|e| QueueError::Config(format!("cluster node address: {:?}", e.kind())))?;
    }
    Ok(nodes)
}

/// A command connection to one server or to a cluster. Clones share the
/// underlying connections.
#[derive(Clone)]
pub(crate) enum Conn {
    /// One server, reconnecting on its own (commands).
    Managed(ConnectionManager),
    /// One server, one plain connection (blocking reads).
    Plain(MultiplexedConnection),
    /// A cluster: routes each command to its slot's node, follows
    /// redirections and reconnects to nodes that went away.
    Cluster(ClusterConnection),
}

impl Conn {
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Managed(c) => c.req_packed_command(cmd),
            Conn::Plain(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Managed(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Plain(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Managed(c) => c.get_db(),
            Conn::Plain(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Commands to run in as few round trips as the backend allows: one
/// pipeline on a single server; on a cluster, one pipeline per hash tag
/// (a pipeline's keys must share a slot there), run concurrently.
pub(crate) struct Pipes {
    cluster: bool,
    pipes: BTreeMap<&'static str, Pipeline>,
}

impl Pipes {
    pub(crate) fn new(cluster: bool) -> Self {
        Self {
            cluster,
            pipes: BTreeMap::new(),
        }
    }

    /// The pipeline for keys tagged `tag` (the text between the braces).
    pub(crate) fn tagged(&mut self, tag: &'static str) -> &mut Pipeline {
        let tag = if self.cluster { tag } else { "" };
        self.pipes.entry(tag).or_insert_with(redis::pipe)
    }

    /// Runs every pipeline, ignoring replies; fails if any failed.
    pub(crate) async fn run(self, conn: &Conn) -> RedisResult<()> {
        let runs = self.pipes.into_values().map(|pipe| {
            let mut conn = conn.clone();
            async move { pipe.query_async::<()>(&mut conn).await }
        });
        futures_util::future::try_join_all(runs).await.map(|_| ())
    }
}

/// For `/readyz` on a cluster: every primary answers `PING` (the client
/// sends it to all of them) and the cluster says its state is `ok` (all
/// slots served).
pub(crate) async fn cluster_ready(conn: &mut Conn) -> RedisResult<Result<(), String>> {
    let _pong: Value = redis::cmd("PING").query_async(conn).await?;
    let info: String = redis::cmd("CLUSTER").arg("INFO").query_async(conn).await?;
    let state = info
        .lines()
        .find_map(|line| line.trim().strip_prefix("cluster_state:"))
        .unwrap_or("unknown");
    Ok(if state == "ok" {
        Ok(())
    } else {
        Err(format!("cluster_state:{state}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(url: &str) -> Vec<String> {
        match Target::parse(url) {
            Ok(Target::Cluster(nodes)) => nodes,
            Ok(Target::Single(_)) => panic!("{url} parsed as a single server"),
            Err(e) => panic!("{url}: {e}"),
        }
    }

    #[test]
    fn cluster_urls_list_every_seed_with_the_shared_credentials() {
        assert_eq!(
            nodes("redis+cluster://127.0.0.1:7000,127.0.0.1:7001"),
            vec!["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]
        );
        assert_eq!(
            nodes("redis+cluster://u:p@a:1, b:2/0?protocol=2"),
            vec![
                "redis://u:p@a:1/0?protocol=2",
                "redis://u:p@b:2/0?protocol=2"
            ]
        );
    }

    #[test]
    fn single_server_urls_stay_single() {
        assert!(matches!(
            Target::parse("redis://127.0.0.1:6379/2"),
            Ok(Target::Single(_))
        ));
    }

    #[test]
    fn bad_cluster_urls_are_configuration_errors() {
        for url in [
            "redis+cluster://",
            "redis+cluster://,",
            "redis+cluster://a:b:c",
        ] {
            assert!(
                matches!(Target::parse(url), Err(QueueError::Config(_))),
                "{url}"
            );
        }
    }

    #[test]
    fn pipes_split_by_tag_only_on_a_cluster() {
        for (cluster, expected) in [(false, 1), (true, 2)] {
            let mut pipes = Pipes::new(cluster);
            pipes.tagged("pos").hset("{pos}", "a", "1");
            pipes.tagged("trail").xadd("{trail}", "*", &[("n", "a")]);
            pipes.tagged("pos").hset("{pos}", "b", "2");
            assert_eq!(pipes.pipes.len(), expected);
        }
    }
}
