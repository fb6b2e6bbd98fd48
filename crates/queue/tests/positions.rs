//! The position board, on both implementations (Redis as one server and
//! as a private 3-master cluster, where a batch is split by hash tag):
//! latest fixes, H3 cell membership as nurses move, forgetting a nurse, the
//! bounded trail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use yixin_queue::{MemoryPositions, PositionBoard, PositionRecord, QueueConfig, RedisQueue};

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The boards, and the private cluster to keep until the test ends.
async fn boards(
    trail_max: usize,
) -> (
    Vec<(&'static str, Arc<dyn PositionBoard>)>,
    support::PrivateCluster,
) {
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let redis = RedisQueue::connect(&redis_url(), QueueConfig::with_prefix(prefix.clone()))
        .await
        .expect("Redis must be reachable at TEST_REDIS_URL");
    let cluster = support::PrivateCluster::start().await;
    let on_cluster = RedisQueue::connect(&cluster.url(), QueueConfig::with_prefix(prefix))
        .await
        .unwrap();
    (
        vec![
            ("memory", Arc::new(MemoryPositions::new(trail_max))),
            ("redis", Arc::new(redis.positions(trail_max))),
            ("cluster", Arc::new(on_cluster.positions(trail_max))),
        ],
        cluster,
    )
}

fn rec(nurse: &str, cell: u64, previous: Option<u64>, changed: bool, ts: i64) -> PositionRecord {
    PositionRecord {
        nurse_id: nurse.to_owned(),
        org_id: "demo".to_owned(),
        lat: 29.39,
        lng: 106.32,
        accuracy_m: 7.5,
        recorded_at_unix_ms: ts,
        cell,
        previous_cell: previous,
        cell_changed: changed,
    }
}

#[tokio::test]
async fn latest_positions_and_cell_membership_follow_the_nurses() {
    let (boards, _cluster) = boards(1_000).await;
    for (name, board) in boards {
        board
            .record(
                &[rec("a", 1, None, true, 10), rec("b", 1, None, true, 11)],
                &[],
            )
            .await
            .unwrap();
        assert_eq!(
            board.nurses_in_cell(1).await.unwrap(),
            vec!["a", "b"],
            "{name}"
        );
        // A moves to cell 2.
        board
            .record(&[rec("a", 2, Some(1), true, 12)], &[])
            .await
            .unwrap();
        assert_eq!(board.nurses_in_cell(1).await.unwrap(), vec!["b"], "{name}");
        assert_eq!(board.nurses_in_cell(2).await.unwrap(), vec!["a"], "{name}");
        let latest = board
            .latest(&["a".to_owned(), "b".to_owned(), "nobody".to_owned()])
            .await
            .unwrap();
        assert_eq!(
            latest[0].as_ref().unwrap().recorded_at_unix_ms,
            12,
            "{name}"
        );
        assert_eq!(latest[0].as_ref().unwrap().cell, 2, "{name}");
        assert!(
            (latest[0].as_ref().unwrap().accuracy_m - 7.5).abs() < 1e-9,
            "{name}"
        );
        assert!(latest[2].is_none(), "{name}");
        board.forget("a", "demo", Some(2)).await.unwrap();
        assert!(
            board.latest(&["a".to_owned()]).await.unwrap()[0].is_none(),
            "{name}"
        );
        assert!(board.nurses_in_cell(2).await.unwrap().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn the_trail_is_bounded_and_newest_first() {
    let (boards, _cluster) = boards(50).await;
    for (name, board) in boards {
        for batch in 0..10 {
            let trail: Vec<_> = (0..100)
                .map(|i| rec("a", 1, None, false, batch * 100 + i))
                .collect();
            board.record(&[], &trail).await.unwrap();
        }
        let newest = board.trail(5).await.unwrap();
        assert_eq!(newest[0].recorded_at_unix_ms, 999, "{name}");
        assert_eq!(newest.len(), 5, "{name}");
        // Trimmed to about the bound (Redis trims approximately).
        let all = board.trail(10_000).await.unwrap();
        assert!(all.len() >= 50 && all.len() <= 200, "{name}: {}", all.len());
    }
}
