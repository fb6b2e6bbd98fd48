//! One behavioural suite, run against both implementations: every test in
//! `behaviour_tests!` runs once on `MemoryQueue` and once on `RedisQueue`
//! (a real Redis at `TEST_REDIS_URL`, default `redis://127.0.0.1:6379`, with a
//! fresh key prefix per test; if Redis is unreachable those tests fail),
//! and all of them once more, in one test (`on_cluster::behaviour_suite`),
//! on `RedisQueue` against a private 3-master Redis Cluster that the test
//! starts (`support::PrivateCluster`; needs `redis-server` and `redis-cli`
//! 7.0 or later).
//!
//! "Another instance" is a clone of the same `MemoryQueue`, or a second
//! `RedisQueue` connected with the same prefix.

// clippy's `allow-*-in-tests` covers `#[test]` functions only, not the shared
// test bodies and helpers here; a panic there is a test failure too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test bodies and helpers: a panic is a test failure with a clear location"
)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

mod support;

use yixin_queue::{MemoryQueue, Queue, QueueConfig, QueueError, RedisQueue, Subscription};

const MIN_IDLE: Duration = Duration::from_millis(80);
/// Comfortably longer than `MIN_IDLE`.
const IDLE_WAIT: Duration = Duration::from_millis(130);
const NO_WAIT: Duration = Duration::ZERO;

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

#[derive(Clone, Debug)]
enum Backend {
    Memory,
    Redis,
    /// A Redis Cluster at this `redis+cluster://` URL.
    Cluster(Arc<str>),
}

#[derive(Clone)]
struct Harness {
    backend: Backend,
    config: QueueConfig,
    memory: MemoryQueue,
}

impl Harness {
    fn new(backend: Backend) -> Self {
        let config = QueueConfig::with_prefix(format!("test:{}:", uuid::Uuid::new_v4()));
        Self {
            backend,
            memory: MemoryQueue::new(config.clone()),
            config,
        }
    }

    /// The same harness with a changed configuration (and fresh memory state).
    fn with(&self, change: impl FnOnce(&mut QueueConfig)) -> Self {
        let mut config = self.config.clone();
        change(&mut config);
        Self {
            backend: self.backend.clone(),
            memory: MemoryQueue::new(config.clone()),
            config,
        }
    }

    /// Another instance on the same backing state.
    async fn instance(&self) -> Arc<dyn Queue> {
        match self.backend {
            Backend::Memory => Arc::new(self.memory.clone()),
            Backend::Redis => Arc::new(
                RedisQueue::connect(&redis_url(), self.config.clone())
                    .await
                    .expect("Redis must be reachable at TEST_REDIS_URL for the Redis tests"),
            ),
            Backend::Cluster(ref url) => Arc::new(
                RedisQueue::connect(url, self.config.clone())
                    .await
                    .expect("the private cluster must be reachable"),
            ),
        }
    }

    /// Deletes the test's Redis keys.
    async fn cleanup(&self) {
        if let Backend::Redis = self.backend {
            let client = redis::Client::open(redis_url()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}*", self.config.key_prefix))
                .query_async(&mut conn)
                .await
                .unwrap();
            if !keys.is_empty() {
                let _: () = redis::cmd("DEL")
                    .arg(keys)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }
}

macro_rules! behaviour_tests {
    ($($name:ident),* $(,)?) => {
        mod on_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Harness::new(super::Backend::Memory)).await;
                }
            )*
        }
        mod on_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let harness = super::Harness::new(super::Backend::Redis);
                    super::$name(harness.clone()).await;
                    harness.cleanup().await;
                }
            )*
        }
        mod on_cluster {
            /// Every behaviour on one private cluster (starting one per
            /// test would cost a few seconds each), one after the other,
            /// each with its own key prefix. The cluster is thrown away.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn behaviour_suite() {
                let cluster = super::support::PrivateCluster::start().await;
                let url: std::sync::Arc<str> = cluster.url().into();
                $(
                    eprintln!("on the cluster: {}", stringify!($name));
                    super::$name(super::Harness::new(super::Backend::Cluster(url.clone()))).await;
                )*
                drop(cluster);
            }
        }
    };
}

behaviour_tests!(
    publish_read_ack_leaves_nothing_pending,
    ids_are_increasing_stream_ids,
    late_group_sees_earlier_entries,
    missing_group_is_reported,
    invalid_ids_are_rejected,
    consumers_in_one_group_split_entries,
    every_group_gets_every_entry,
    blocking_read_wakes_on_publish,
    blocking_read_times_out_empty,
    blocking_read_does_not_stall_other_commands,
    killed_consumer_entry_is_reclaimed,
    reclaim_leaves_young_entries,
    poison_entry_is_dead_lettered_after_max_deliveries,
    racing_reclaimers_dead_letter_once,
    publish_trims_streams,
    broadcast_reaches_every_subscriber,
    dropped_subscription_can_resubscribe,
    subscription_outlives_its_queue_handle,
    ping_works,
);

fn ids(deliveries: &[yixin_queue::Delivery]) -> Vec<String> {
    deliveries.iter().map(|d| d.id.clone()).collect()
}

async fn next_message(subscription: &mut Subscription) -> Vec<u8> {
    tokio::time::timeout(Duration::from_secs(3), subscription.next())
        .await
        .expect("no message within 3 s")
        .expect("subscription ended")
}

async fn publish_read_ack_leaves_nothing_pending(h: Harness) {
    let q = h.instance().await;
    q.ensure_group("orders", "dispatch").await.unwrap();
    let payloads: [&[u8]; 3] = [b"first", &[0, 159, 146, 150, 255, 0], b""];
    let mut published = Vec::new();
    for payload in payloads {
        published.push(q.publish("orders", payload).await.unwrap());
    }

    let got = q
        .read("orders", "dispatch", "c1", 10, NO_WAIT)
        .await
        .unwrap();
    assert_eq!(ids(&got), published);
    for (delivery, payload) in got.iter().zip(payloads) {
        assert_eq!(delivery.payload, payload);
        assert_eq!(delivery.deliveries, 1);
    }
    assert_eq!(q.pending_count("orders", "dispatch").await.unwrap(), 3);

    q.ack("orders", "dispatch", &published[..1]).await.unwrap();
    assert_eq!(q.pending_count("orders", "dispatch").await.unwrap(), 2);
    q.ack("orders", "dispatch", &published).await.unwrap();
    q.ack("orders", "dispatch", &published).await.unwrap(); // twice is harmless
    q.ack("orders", "dispatch", &[]).await.unwrap();
    assert_eq!(q.pending_count("orders", "dispatch").await.unwrap(), 0);
    assert!(
        q.read("orders", "dispatch", "c1", 10, NO_WAIT)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        q.read("orders", "dispatch", "c1", 0, NO_WAIT)
            .await
            .unwrap()
            .is_empty()
    );
    // Acked entries are not reclaimed either.
    tokio::time::sleep(IDLE_WAIT).await;
    let reclaimed = q
        .reclaim("orders", "dispatch", "c2", MIN_IDLE, 10)
        .await
        .unwrap();
    assert_eq!(reclaimed, Default::default());
}

async fn ids_are_increasing_stream_ids(h: Harness) {
    let q = h.instance().await;
    let mut last = (0u64, 0u64);
    for _ in 0..50 {
        let id = q.publish("s", b"x").await.unwrap();
        let (ms, seq) = id.split_once('-').expect("ms-seq");
        let parsed = (ms.parse::<u64>().unwrap(), seq.parse::<u64>().unwrap());
        assert!(parsed > last, "{id} after {last:?}");
        last = parsed;
    }
}

async fn late_group_sees_earlier_entries(h: Harness) {
    let q = h.instance().await;
    let a = q.publish("orders", b"a").await.unwrap();
    let b = q.publish("orders", b"b").await.unwrap();
    q.ensure_group("orders", "late").await.unwrap();
    let got = q.read("orders", "late", "c", 10, NO_WAIT).await.unwrap();
    assert_eq!(ids(&got), [a, b]);
    // Ensuring again leaves the group where it was.
    q.ensure_group("orders", "late").await.unwrap();
    assert!(
        q.read("orders", "late", "c", 10, NO_WAIT)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(q.pending_count("orders", "late").await.unwrap(), 2);
    // A group on a stream that does not exist yet creates it.
    q.ensure_group("fresh", "g").await.unwrap();
    assert!(
        q.read("fresh", "g", "c", 10, NO_WAIT)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn missing_group_is_reported(h: Harness) {
    let q = h.instance().await;
    let no_group = |stream: &str| QueueError::NoGroup {
        stream: stream.to_owned(),
        group: "nobody".to_owned(),
    };
    q.publish("s", b"x").await.unwrap();
    for stream in ["s", "never-published"] {
        let read = q.read(stream, "nobody", "c", 1, NO_WAIT).await;
        assert_eq!(read, Err(no_group(stream)));
        let blocking = q
            .read(stream, "nobody", "c", 1, Duration::from_millis(50))
            .await;
        assert_eq!(blocking, Err(no_group(stream)));
        assert_eq!(
            q.pending_count(stream, "nobody").await,
            Err(no_group(stream))
        );
        assert_eq!(
            q.reclaim(stream, "nobody", "c", MIN_IDLE, 5).await,
            Err(no_group(stream))
        );
        q.ack(stream, "nobody", &["1-1".to_owned()]).await.unwrap();
        assert!(q.dead_letters(stream, 10).await.unwrap().is_empty());
    }
}

async fn invalid_ids_are_rejected(h: Harness) {
    let q = h.instance().await;
    q.ensure_group("s", "g").await.unwrap();
    let id = q.publish("s", b"x").await.unwrap();
    q.read("s", "g", "c", 1, NO_WAIT).await.unwrap();
    let bad = vec![id, "not-an-id".to_owned()];
    assert_eq!(
        q.ack("s", "g", &bad).await,
        Err(QueueError::InvalidId("not-an-id".to_owned()))
    );
    // Nothing was acked.
    assert_eq!(q.pending_count("s", "g").await.unwrap(), 1);
}

async fn consumers_in_one_group_split_entries(h: Harness) {
    let (q1, q2) = (h.instance().await, h.instance().await);
    q1.ensure_group("orders", "dispatch").await.unwrap();
    let mut published = BTreeSet::new();
    for i in 0..20u8 {
        published.insert(q1.publish("orders", &[i]).await.unwrap());
    }
    let (mut seen1, mut seen2) = (Vec::new(), Vec::new());
    loop {
        let got1 = q1
            .read("orders", "dispatch", "c1", 3, NO_WAIT)
            .await
            .unwrap();
        let got2 = q2
            .read("orders", "dispatch", "c2", 3, NO_WAIT)
            .await
            .unwrap();
        if got1.is_empty() && got2.is_empty() {
            break;
        }
        seen1.extend(ids(&got1));
        seen2.extend(ids(&got2));
    }
    assert!(!seen1.is_empty() && !seen2.is_empty());
    let (set1, set2): (BTreeSet<_>, BTreeSet<_>) = (
        seen1.iter().cloned().collect(),
        seen2.iter().cloned().collect(),
    );
    assert_eq!(set1.len(), seen1.len(), "no entry twice to one consumer");
    assert!(set1.is_disjoint(&set2), "no entry to both consumers");
    assert_eq!(&set1 | &set2, published);
    assert_eq!(q1.pending_count("orders", "dispatch").await.unwrap(), 20);
}

async fn every_group_gets_every_entry(h: Harness) {
    let q = h.instance().await;
    q.ensure_group("events", "timeline").await.unwrap();
    q.ensure_group("events", "notify").await.unwrap();
    let mut published = Vec::new();
    for i in 0..5u8 {
        published.push(q.publish("events", &[i]).await.unwrap());
    }
    for group in ["timeline", "notify"] {
        let got = q.read("events", group, "c", 10, NO_WAIT).await.unwrap();
        assert_eq!(ids(&got), published, "group {group}");
        q.ack("events", group, &ids(&got)).await.unwrap();
    }
    assert_eq!(q.pending_count("events", "timeline").await.unwrap(), 0);
    assert_eq!(q.pending_count("events", "notify").await.unwrap(), 0);
}

async fn blocking_read_wakes_on_publish(h: Harness) {
    let (q1, q2) = (h.instance().await, h.instance().await);
    q1.ensure_group("orders", "dispatch").await.unwrap();
    let reader = Arc::clone(&q1);
    let started = Instant::now();
    let read = tokio::spawn(async move {
        reader
            .read("orders", "dispatch", "c1", 10, Duration::from_secs(10))
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !read.is_finished(),
        "the read returned before anything was published"
    );
    let id = q2.publish("orders", b"wake up").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(3), read)
        .await
        .expect("blocked read did not wake")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(ids(&got), [id]);
    assert_eq!(got[0].payload, b"wake up");
}

async fn blocking_read_times_out_empty(h: Harness) {
    let q = h.instance().await;
    q.ensure_group("quiet", "g").await.unwrap();
    let started = Instant::now();
    let got = q
        .read("quiet", "g", "c", 10, Duration::from_millis(300))
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(got.is_empty());
    assert!(
        waited >= Duration::from_millis(250),
        "waited only {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");

    let started = Instant::now();
    assert!(
        q.read("quiet", "g", "c", 10, NO_WAIT)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    // Entries already there are returned at once, without waiting.
    let id = q.publish("quiet", b"x").await.unwrap();
    let started = Instant::now();
    let got = q
        .read("quiet", "g", "c", 10, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(ids(&got), [id]);
    assert!(started.elapsed() < Duration::from_secs(1));
}

async fn blocking_read_does_not_stall_other_commands(h: Harness) {
    let q = h.instance().await;
    q.ensure_group("slow", "g").await.unwrap();
    q.ensure_group("other", "g").await.unwrap();
    let reader = Arc::clone(&q);
    let read = tokio::spawn(async move {
        reader
            .read("slow", "g", "c", 1, Duration::from_secs(3))
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    // The same instance keeps serving other commands meanwhile.
    let started = Instant::now();
    q.ping().await.unwrap();
    let id = q.publish("other", b"x").await.unwrap();
    let got = q.read("other", "g", "c", 1, NO_WAIT).await.unwrap();
    assert_eq!(ids(&got), [id]);
    assert_eq!(q.pending_count("other", "g").await.unwrap(), 1);
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1000), "commands took {took:?}");
    assert!(!read.is_finished());

    q.publish("slow", b"y").await.unwrap();
    let got = read.await.unwrap().unwrap();
    assert_eq!(got.len(), 1);
}

async fn killed_consumer_entry_is_reclaimed(h: Harness) {
    let survivor = h.instance().await;
    survivor.ensure_group("orders", "dispatch").await.unwrap();
    let id = survivor.publish("orders", b"order 42").await.unwrap();

    {
        // A consumer on another instance reads the entry and dies unacked.
        let doomed = h.instance().await;
        let got = doomed
            .read("orders", "dispatch", "doomed", 10, NO_WAIT)
            .await
            .unwrap();
        assert_eq!(ids(&got), std::slice::from_ref(&id));
    }
    assert_eq!(
        survivor.pending_count("orders", "dispatch").await.unwrap(),
        1
    );
    // Not idle long enough yet.
    let early = survivor
        .reclaim("orders", "dispatch", "rescuer", MIN_IDLE, 10)
        .await
        .unwrap();
    assert_eq!(early, Default::default());

    tokio::time::sleep(IDLE_WAIT).await;
    let reclaimed = survivor
        .reclaim("orders", "dispatch", "rescuer", MIN_IDLE, 10)
        .await
        .unwrap();
    assert!(reclaimed.dead_lettered.is_empty());
    assert_eq!(reclaimed.deliveries.len(), 1);
    let delivery = &reclaimed.deliveries[0];
    assert_eq!(delivery.id, id);
    assert_eq!(delivery.payload, b"order 42");
    assert_eq!(delivery.deliveries, 2);
    // Reclaiming reset its idle time: nobody else takes it right away.
    let again = survivor
        .reclaim("orders", "dispatch", "other", MIN_IDLE, 10)
        .await
        .unwrap();
    assert_eq!(again, Default::default());
    // New reads do not see it again.
    assert!(
        survivor
            .read("orders", "dispatch", "x", 10, NO_WAIT)
            .await
            .unwrap()
            .is_empty()
    );

    survivor.ack("orders", "dispatch", &[id]).await.unwrap();
    assert_eq!(
        survivor.pending_count("orders", "dispatch").await.unwrap(),
        0
    );
    tokio::time::sleep(IDLE_WAIT).await;
    let after = survivor
        .reclaim("orders", "dispatch", "rescuer", MIN_IDLE, 10)
        .await
        .unwrap();
    assert_eq!(after, Default::default());
}

async fn reclaim_leaves_young_entries(h: Harness) {
    let q = h.instance().await;
    q.ensure_group("orders", "dispatch").await.unwrap();
    let old = q.publish("orders", b"old").await.unwrap();
    q.read("orders", "dispatch", "c1", 10, NO_WAIT)
        .await
        .unwrap();
    tokio::time::sleep(IDLE_WAIT).await;
    let young = q.publish("orders", b"young").await.unwrap();
    q.read("orders", "dispatch", "c1", 10, NO_WAIT)
        .await
        .unwrap();

    let reclaimed = q
        .reclaim("orders", "dispatch", "c2", MIN_IDLE, 10)
        .await
        .unwrap();
    assert_eq!(ids(&reclaimed.deliveries), [old]);
    assert_eq!(q.pending_count("orders", "dispatch").await.unwrap(), 2);

    tokio::time::sleep(IDLE_WAIT).await;
    let reclaimed = q
        .reclaim("orders", "dispatch", "c2", MIN_IDLE, 1)
        .await
        .unwrap();
    assert_eq!(reclaimed.deliveries.len(), 1, "max is respected");
    let reclaimed = q
        .reclaim("orders", "dispatch", "c2", MIN_IDLE, 0)
        .await
        .unwrap();
    assert_eq!(reclaimed, Default::default());
    let reclaimed = q
        .reclaim("orders", "dispatch", "c2", MIN_IDLE, 10)
        .await
        .unwrap();
    assert_eq!(ids(&reclaimed.deliveries), [young]);
}

async fn poison_entry_is_dead_lettered_after_max_deliveries(h: Harness) {
    let h = h.with(|config| config.max_deliveries = 3);
    let q = h.instance().await;
    q.ensure_group("orders", "dispatch").await.unwrap();
    let poison = q.publish("orders", b"poison").await.unwrap();
    let fine = q.publish("orders", b"fine").await.unwrap();
    let got = q
        .read("orders", "dispatch", "c", 10, NO_WAIT)
        .await
        .unwrap();
    assert_eq!(got[0].deliveries, 1);
    q.ack("orders", "dispatch", &[fine]).await.unwrap();

    for expected in 2..=3 {
        tokio::time::sleep(IDLE_WAIT).await;
        let reclaimed = q
            .reclaim("orders", "dispatch", "c", MIN_IDLE, 10)
            .await
            .unwrap();
        assert!(reclaimed.dead_lettered.is_empty());
        assert_eq!(ids(&reclaimed.deliveries), std::slice::from_ref(&poison));
        assert_eq!(reclaimed.deliveries[0].deliveries, expected);
    }
    tokio::time::sleep(IDLE_WAIT).await;
    let reclaimed = q
        .reclaim("orders", "dispatch", "c", MIN_IDLE, 10)
        .await
        .unwrap();
    assert!(reclaimed.deliveries.is_empty());
    assert_eq!(reclaimed.dead_lettered, std::slice::from_ref(&poison));
    assert_eq!(q.pending_count("orders", "dispatch").await.unwrap(), 0);

    tokio::time::sleep(IDLE_WAIT).await;
    let after = q
        .reclaim("orders", "dispatch", "c", MIN_IDLE, 10)
        .await
        .unwrap();
    assert_eq!(after, Default::default());

    let dead = q.dead_letters("orders", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].original_id, poison);
    assert_eq!(dead[0].payload, b"poison");
    assert_eq!(dead[0].deliveries, 3);
    assert_eq!(dead[0].group, "dispatch");
    assert_ne!(
        dead[0].id, poison,
        "the record has its own id in the dead stream"
    );
    assert!(dead[0].id.split_once('-').is_some());
    assert!(q.dead_letters("orders", 0).await.unwrap().is_empty());
    assert!(q.dead_letters("elsewhere", 10).await.unwrap().is_empty());
    // The dead-letter stream is not a work stream of its own.
    q.ensure_group("orders", "late").await.unwrap();
    let late = q.read("orders", "late", "c", 10, NO_WAIT).await.unwrap();
    assert_eq!(
        late.len(),
        2,
        "the original entries stay in the stream for other groups"
    );
}

async fn racing_reclaimers_dead_letter_once(h: Harness) {
    let h = h.with(|config| config.max_deliveries = 2);
    let (q1, q2) = (h.instance().await, h.instance().await);
    q1.ensure_group("orders", "dispatch").await.unwrap();
    let mut published = BTreeSet::new();
    for i in 0..10u8 {
        published.insert(q1.publish("orders", &[i]).await.unwrap());
    }
    assert_eq!(
        q1.read("orders", "dispatch", "c", 100, NO_WAIT)
            .await
            .unwrap()
            .len(),
        10
    );

    // Two reclaimers hammer the same group, never acking; min_idle zero makes
    // them fight over every entry.
    let reclaimer = |q: Arc<dyn Queue>, name: &'static str| async move {
        let mut dead = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while q.pending_count("orders", "dispatch").await.unwrap() > 0 {
            assert!(Instant::now() < deadline, "entries never got dead-lettered");
            let reclaimed = q
                .reclaim("orders", "dispatch", name, Duration::ZERO, 3)
                .await
                .unwrap();
            for delivery in &reclaimed.deliveries {
                assert!(delivery.deliveries <= 2, "{delivery:?}");
            }
            dead.extend(reclaimed.dead_lettered);
        }
        dead
    };
    let (dead1, dead2) = tokio::join!(
        tokio::spawn(reclaimer(Arc::clone(&q1), "r1")),
        tokio::spawn(reclaimer(Arc::clone(&q2), "r2")),
    );
    let mut all_dead = dead1.unwrap();
    all_dead.extend(dead2.unwrap());
    all_dead.sort();
    let expected: Vec<String> = published.iter().cloned().collect();
    assert_eq!(all_dead, expected, "each entry dead-lettered exactly once");

    let records = q1.dead_letters("orders", 100).await.unwrap();
    let mut originals: Vec<String> = records.iter().map(|r| r.original_id.clone()).collect();
    originals.sort();
    assert_eq!(
        originals, expected,
        "each entry in the dead stream exactly once"
    );
    assert!(
        records
            .iter()
            .all(|r| r.deliveries == 2 && r.group == "dispatch")
    );
    assert_eq!(q2.pending_count("orders", "dispatch").await.unwrap(), 0);
}

async fn publish_trims_streams(h: Harness) {
    let h = h.with(|config| config.max_stream_len = Some(10));
    let q = h.instance().await;
    for _ in 0..300 {
        q.publish("busy", b"x").await.unwrap();
    }
    q.ensure_group("busy", "g").await.unwrap();
    let kept = q.read("busy", "g", "c", 1000, NO_WAIT).await.unwrap().len();
    // Redis trims approximately (whole nodes), the in-process queue exactly.
    assert!((10..300).contains(&kept), "kept {kept}");
}

async fn broadcast_reaches_every_subscriber(h: Harness) {
    let (q1, q2) = (h.instance().await, h.instance().await);
    let mut on_q1 = q1.subscribe("nurse:7").await.unwrap();
    let mut also_on_q1 = q1.subscribe("nurse:7").await.unwrap();
    let mut on_q2 = q2.subscribe("nurse:7").await.unwrap();
    let mut elsewhere = q1.subscribe("nurse:8").await.unwrap();

    q2.broadcast("nurse:7", b"hello").await.unwrap();
    q1.broadcast("nurse:7", &[0, 255]).await.unwrap();
    for subscription in [&mut on_q1, &mut also_on_q1, &mut on_q2] {
        assert_eq!(next_message(subscription).await, b"hello");
        assert_eq!(next_message(subscription).await, [0, 255]);
    }
    let nothing = tokio::time::timeout(Duration::from_millis(200), elsewhere.next()).await;
    assert!(nothing.is_err(), "message leaked to another channel");
    // Nobody listening is fine.
    q1.broadcast("nobody", b"x").await.unwrap();
}

async fn dropped_subscription_can_resubscribe(h: Harness) {
    let (q1, q2) = (h.instance().await, h.instance().await);
    let first = q1.subscribe("ch").await.unwrap();
    let mut kept = q1.subscribe("ch").await.unwrap();
    drop(first);
    q2.broadcast("ch", b"one").await.unwrap();
    assert_eq!(next_message(&mut kept).await, b"one");
    drop(kept);
    // Let the release reach the backend before subscribing again.
    tokio::time::sleep(Duration::from_millis(50)).await;
    q2.broadcast("ch", b"lost").await.unwrap();
    let mut again = q1.subscribe("ch").await.unwrap();
    q2.broadcast("ch", b"two").await.unwrap();
    assert_eq!(next_message(&mut again).await, b"two");
}

async fn subscription_outlives_its_queue_handle(h: Harness) {
    let sender = h.instance().await;
    let mut subscription = {
        let receiver = h.instance().await;
        receiver.subscribe("ch").await.unwrap()
    };
    sender.broadcast("ch", b"still here").await.unwrap();
    assert_eq!(next_message(&mut subscription).await, b"still here");
}

async fn ping_works(h: Harness) {
    h.instance().await.ping().await.unwrap();
}

/// Redis-only: what is observable only from Redis itself, and connection
/// loss (through a proxy the test can cut).
mod redis_only {
    use super::*;
    use tokio::io::copy_bidirectional;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinHandle;

    async fn raw() -> redis::aio::MultiplexedConnection {
        redis::Client::open(redis_url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn keys_are_prefixed_with_the_stream_as_hash_tag() {
        let h = Harness::new(Backend::Redis).with(|c| c.max_deliveries = 1);
        let q = h.instance().await;
        q.ensure_group("orders", "g").await.unwrap();
        q.publish("orders", b"payload").await.unwrap();
        q.read("orders", "g", "c", 1, NO_WAIT).await.unwrap();
        tokio::time::sleep(IDLE_WAIT).await;
        let reclaimed = q.reclaim("orders", "g", "c", MIN_IDLE, 1).await.unwrap();
        assert_eq!(reclaimed.dead_lettered.len(), 1);

        let mut conn = raw().await;
        let prefix = &h.config.key_prefix;
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.sort();
        assert_eq!(
            keys,
            [
                format!("{prefix}{{orders}}"),
                format!("{prefix}{{orders}}:dead")
            ]
        );
        let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(format!("{prefix}{{orders}}"))
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(entries.ids[0].get::<Vec<u8>>("p").unwrap(), b"payload");
        h.cleanup().await;
    }

    #[tokio::test]
    async fn prefixes_isolate_queues() {
        let (a, b) = (Harness::new(Backend::Redis), Harness::new(Backend::Redis));
        let (qa, qb) = (a.instance().await, b.instance().await);
        qa.ensure_group("s", "g").await.unwrap();
        qb.ensure_group("s", "g").await.unwrap();
        qa.publish("s", b"a").await.unwrap();
        assert!(
            qb.read("s", "g", "c", 10, NO_WAIT)
                .await
                .unwrap()
                .is_empty()
        );
        let mut sub_b = qb.subscribe("ch").await.unwrap();
        qa.broadcast("ch", b"a").await.unwrap();
        let nothing = tokio::time::timeout(Duration::from_millis(200), sub_b.next()).await;
        assert!(nothing.is_err());
        a.cleanup().await;
        b.cleanup().await;
    }

    #[tokio::test]
    async fn unreachable_redis_is_unavailable() {
        // Nothing listens on port 1.
        let result = RedisQueue::connect("redis://127.0.0.1:1", QueueConfig::default()).await;
        assert!(
            matches!(result, Err(QueueError::Unavailable(_))),
            "{result:?}"
        );
        let result = RedisQueue::connect("not a url", QueueConfig::default()).await;
        assert!(matches!(result, Err(QueueError::Config(_))), "{result:?}");
    }

    /// A TCP proxy to Redis whose connections can be cut.
    struct Proxy {
        url: String,
        connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
        accept: JoinHandle<()>,
    }

    impl Proxy {
        async fn start() -> Self {
            let url = redis_url();
            let client = redis::Client::open(url.as_str()).unwrap();
            let redis::ConnectionAddr::Tcp(host, port) =
                client.get_connection_info().addr().clone()
            else {
                panic!("TEST_REDIS_URL must be a plain TCP address");
            };
            let target = format!("{host}:{port}");
            assert!(
                url.contains(&target),
                "TEST_REDIS_URL must spell out host:port"
            );
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let proxied = url.replace(&target, &listener.local_addr().unwrap().to_string());
            let connections = Arc::new(Mutex::new(Vec::new()));
            let tracked = Arc::clone(&connections);
            let accept = tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let target = target.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(&target).await {
                            let _ = copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    tracked.lock().unwrap().push(task);
                }
            });
            Self {
                url: proxied,
                connections,
                accept,
            }
        }

        /// Drops every open connection; new ones are still accepted.
        fn cut(&self) {
            for task in self.connections.lock().unwrap().drain(..) {
                task.abort();
            }
        }
    }

    impl Drop for Proxy {
        fn drop(&mut self) {
            self.cut();
            self.accept.abort();
        }
    }

    /// A private `redis-server` on a free port without persistence (never
    /// the shared one): a restart loses every stream and group.
    struct PrivateRedis {
        port: u16,
        dir: std::path::PathBuf,
    }

    impl PrivateRedis {
        async fn start() -> Self {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let dir = std::env::temp_dir().join(format!("yixin-redis-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).unwrap();
            let redis = Self { port, dir };
            redis.launch().await;
            redis
        }

        fn url(&self) -> String {
            format!("redis://127.0.0.1:{}", self.port)
        }

        async fn launch(&self) {
            let status = std::process::Command::new("redis-server")
                .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "yes"])
                .arg("--dir")
                .arg(&self.dir)
                .arg("--logfile")
                .arg(self.dir.join("redis.log"))
                .status()
                .expect("redis-server must be installed");
            assert!(status.success());
            let deadline = Instant::now() + Duration::from_secs(10);
            while redis::Client::open(self.url())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .is_err()
            {
                assert!(Instant::now() < deadline, "redis-server never answered");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        async fn kill(&self) {
            if let Ok(mut c) = redis::Client::open(self.url())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
            {
                let _: Result<(), _> = redis::cmd("SHUTDOWN")
                    .arg("NOSAVE")
                    .query_async(&mut c)
                    .await;
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                assert!(Instant::now() < deadline, "redis-server did not stop");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    impl Drop for PrivateRedis {
        fn drop(&mut self) {
            if let Ok(mut c) = redis::Client::open(self.url()).and_then(|c| c.get_connection()) {
                let _: Result<(), _> = redis::cmd("SHUTDOWN").arg("NOSAVE").query(&mut c);
            }
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// A Redis restarted without its data: the subscription is still there
    /// (never given up), the status says it was down and came back (so
    /// subscribers re-read), and the lost consumer group is reported as
    /// `NoGroup`, for the consumer to create again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn survives_a_redis_restart_without_its_data() {
        let redis = PrivateRedis::start().await;
        let q = RedisQueue::connect(&redis.url(), QueueConfig::with_prefix("t:"))
            .await
            .unwrap();
        q.ensure_group("s", "g").await.unwrap();
        let mut subscription = q.subscribe("ch").await.unwrap();
        let mut status = q.pubsub_status();
        let mut seen = 0;
        assert_eq!(
            *status.borrow(),
            yixin_queue::PubSubStatus {
                connected: true,
                generation: 0
            }
        );
        assert_eq!(q.broadcast_counted("ch", b"one").await.unwrap(), 1);
        assert_eq!(q.broadcast_counted("nobody", b"x").await.unwrap(), 0);
        assert_eq!(next_message(&mut subscription).await, b"one");

        redis.kill().await;
        tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| !s.connected))
            .await
            .expect("the loss is reported")
            .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        redis.launch().await;
        let back = tokio::time::timeout(
            Duration::from_secs(15),
            yixin_queue::recovered(&mut status, &mut seen),
        )
        .await
        .expect("the recovery is reported");
        assert!(back.connected && back.generation == 1, "{back:?}");

        // The subscription never ended and hears new messages.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let heard = q.broadcast_counted("ch", b"after").await.unwrap_or(0);
            if heard == 1 {
                break;
            }
            assert!(Instant::now() < deadline, "never resubscribed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(next_message(&mut subscription).await, b"after");

        // The group went with the data: reported, and made again.
        let lost = q.read("s", "g", "c", 1, NO_WAIT).await;
        assert!(matches!(lost, Err(QueueError::NoGroup { .. })), "{lost:?}");
        q.ensure_group("s", "g").await.unwrap();
        let id = q.publish("s", b"x").await.unwrap();
        assert_eq!(ids(&q.read("s", "g", "c", 1, NO_WAIT).await.unwrap()), [id]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn recovers_from_connection_loss() {
        let h = Harness::new(Backend::Redis);
        let proxy = Proxy::start().await;
        let q = RedisQueue::connect(&proxy.url, h.config.clone())
            .await
            .unwrap();
        let direct = h.instance().await;
        q.ensure_group("s", "g").await.unwrap();
        let mut subscription = q.subscribe("ch").await.unwrap();
        direct.broadcast("ch", b"before").await.unwrap();
        assert_eq!(next_message(&mut subscription).await, b"before");
        // Leave a connection in the blocking-read pool.
        q.read("s", "g", "c", 1, Duration::from_millis(20))
            .await
            .unwrap();

        proxy.cut();

        // The subscription comes back by itself (messages sent while it is
        // down are lost, so keep sending until one arrives).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            direct.broadcast("ch", b"after").await.unwrap();
            match tokio::time::timeout(Duration::from_millis(200), subscription.next()).await {
                Ok(Some(message)) if message == b"after" => break,
                Ok(Some(_)) => {}
                Ok(None) => panic!("subscription ended on a transient loss"),
                Err(_) => assert!(Instant::now() < deadline, "subscription never recovered"),
            }
        }

        // A blocking read on the stale pooled connection retries on a new one.
        let id = direct.publish("s", b"x").await.unwrap();
        let got = q
            .read("s", "g", "c", 1, Duration::from_millis(200))
            .await
            .unwrap();
        assert_eq!(ids(&got), [id]);

        // Commands recover once the manager has reconnected.
        let deadline = Instant::now() + Duration::from_secs(10);
        while q.ping().await.is_err() {
            assert!(Instant::now() < deadline, "commands never recovered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        q.publish("s", b"y").await.unwrap();
        h.cleanup().await;
    }
}

/// What only a Redis Cluster has: nodes that come and go on their own.
mod cluster_only {
    use super::*;
    use support::PrivateCluster;

    /// The node holding a stream (and the channel next to it in the same
    /// slot) restarts without its data: `/readyz` (`ping`) says not ready
    /// while it is down, the pub/sub status reports the loss and the
    /// recovery, the subscription hears new messages, the same queue handle
    /// recreates the lost group and works again, blocking reads included.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn survives_a_node_restart() {
        let mut cluster = PrivateCluster::start().await;
        let q = RedisQueue::connect(&cluster.url(), QueueConfig::with_prefix("t:"))
            .await
            .unwrap();
        assert!(q.is_cluster());
        q.ping().await.unwrap();
        q.ensure_group("s", "g").await.unwrap();
        // `t:{s}:ch` hashes on `s`: the same slot as the stream `t:{s}`.
        let mut subscription = q.subscribe("{s}:ch").await.unwrap();
        let mut status = q.pubsub_status();
        let mut seen = 0;
        assert_eq!(q.broadcast_counted("{s}:ch", b"one").await.unwrap(), 1);
        assert_eq!(next_message(&mut subscription).await, b"one");
        let id = q.publish("s", b"before").await.unwrap();
        assert_eq!(
            ids(&q
                .read("s", "g", "c", 1, Duration::from_millis(50))
                .await
                .unwrap()),
            [id]
        );

        let owner = cluster.owner_of("t:{s}").await;
        cluster.kill(owner);
        tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| !s.connected))
            .await
            .expect("the loss is reported")
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while q.ping().await.is_ok() {
            assert!(
                Instant::now() < deadline,
                "ping still fine with a node down"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        cluster.relaunch(owner).await;
        let back = tokio::time::timeout(
            Duration::from_secs(20),
            yixin_queue::recovered(&mut status, &mut seen),
        )
        .await
        .expect("the recovery is reported");
        assert!(back.connected && back.generation >= 1, "{back:?}");
        let deadline = Instant::now() + Duration::from_secs(15);
        while q.ping().await.is_err() {
            assert!(Instant::now() < deadline, "never ready again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let heard = q.broadcast_counted("{s}:ch", b"after").await.unwrap_or(0);
            if heard == 1 {
                break;
            }
            assert!(Instant::now() < deadline, "never resubscribed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(next_message(&mut subscription).await, b"after");

        let lost = q.read("s", "g", "c", 1, NO_WAIT).await;
        assert!(matches!(lost, Err(QueueError::NoGroup { .. })), "{lost:?}");
        q.ensure_group("s", "g").await.unwrap();
        let id = q.publish("s", b"x").await.unwrap();
        // A blocking read: its pooled connection knew the old node.
        let got = q
            .read("s", "g", "c", 1, Duration::from_millis(200))
            .await
            .unwrap();
        assert_eq!(ids(&got), [id]);
    }
}
