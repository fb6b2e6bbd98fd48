//! The bootstrap commands' library functions against real databases:
//! PostgreSQL (a database per test, `TEST_DATABASE_URL`) and SQLite.

// Test code: a failed unwrap is a failed test, reported where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use yixin::bootstrap::{self, BootstrapError, Outcome};
use yixin_domain::{OrgId, Verification};
use yixin_store::{AuditQuery, Store, audit_action};

fn example(name: &str) -> String {
    let path = format!(
        "{}/../../deploy/examples/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn outcomes<T>(results: &[T], outcome: impl Fn(&T) -> Outcome) -> [usize; 3] {
    let n = |o| results.iter().filter(|r| outcome(r) == o).count();
    [
        n(Outcome::Created),
        n(Outcome::Updated),
        n(Outcome::Unchanged),
    ]
}

async fn bootstrap_from_nothing(store: &Store) {
    let org = OrgId::from("shuangfu");

    // Imports before the organisation exists say how to create it.
    let err = bootstrap::import_areas(store, &org, &example("areas.geojson"), false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, BootstrapError::UnknownOrganization(_)),
        "{err}"
    );
    assert!(err.to_string().contains("yixin org create"), "{err}");

    assert_eq!(
        bootstrap::create_org(store, "shuangfu", "双福街道社区卫生服务中心")
            .await
            .unwrap(),
        Outcome::Created
    );
    assert_eq!(
        bootstrap::create_org(store, "shuangfu", "another name")
            .await
            .unwrap(),
        Outcome::Unchanged
    );
    let err = bootstrap::create_org(store, "bad id", "x")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--id"), "{err}");

    // Areas: three from the example (a Polygon and a two-part MultiPolygon).
    let areas = bootstrap::import_areas(store, &org, &example("areas.geojson"), false)
        .await
        .unwrap();
    assert_eq!(outcomes(&areas, |a| a.outcome), [3, 0, 0]);
    let stored = store.service_areas(&org).await.unwrap();
    let mut names: Vec<&str> = stored.iter().map(|a| a.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "几江街道 Jijiang #1",
            "几江街道 Jijiang #2",
            "双福街道 Shuangfu"
        ]
    );
    // A point in Shuangfu is served, as an order would check it.
    let inside = yixin_domain::GeoPoint::new(29.39, 106.32).unwrap();
    assert!(stored.iter().any(|a| a.contains(&inside)));
    // Again: nothing changes, the ids stay.
    let again = bootstrap::import_areas(store, &org, &example("areas.geojson"), false)
        .await
        .unwrap();
    assert_eq!(outcomes(&again, |a| a.outcome), [0, 0, 3]);
    assert_eq!(store.service_areas(&org).await.unwrap().len(), 3);
    assert_eq!(
        again.iter().map(|a| a.id).collect::<Vec<_>>(),
        areas.iter().map(|a| a.id).collect::<Vec<_>>()
    );
    // A moved boundary replaces the polygon under the same id.
    let moved = example("areas.geojson").replace("106.36, 29.43", "106.37, 29.43");
    let moved = bootstrap::import_areas(store, &org, &moved, false)
        .await
        .unwrap();
    assert_eq!(outcomes(&moved, |a| a.outcome), [0, 1, 2]);
    assert_eq!(store.service_areas(&org).await.unwrap().len(), 3);

    // Nurses: four, two verified by the file.
    let nurses = bootstrap::import_nurses(store, &org, &example("nurses.csv"), "ops-li", false)
        .await
        .unwrap();
    assert_eq!(outcomes(&nurses, |n| n.outcome), [4, 0, 0]);
    let roster = store.nurses(&org).await.unwrap();
    assert_eq!(roster.len(), 4);
    let by_phone = |p: &str| roster.iter().find(|n| n.phone.as_str() == p).unwrap();
    let li = by_phone("13900001111");
    assert_eq!(li.name, "李晓梅");
    let c = li.credentials.as_ref().unwrap();
    assert_eq!(c.verification, Verification::Verified);
    assert_eq!(c.reviewed_by.as_deref(), Some("ops-li"));
    assert_eq!(c.certificates[0].code, "wound_stoma");
    let zhang = by_phone("13900003333");
    assert_eq!(
        zhang.credentials.as_ref().unwrap().verification,
        Verification::Pending
    );
    let zhao = by_phone("13900004444");
    assert_eq!(zhao.name, "赵静, 实习");
    assert!(zhao.credentials.is_none());
    // The audit trail names the operator: three entered, two verified.
    let trail = store
        .audit_trail(
            &org,
            &AuditQuery {
                limit: 100,
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    let count = |action: &str| {
        trail
            .iter()
            .filter(|r| r.entry.action == action && r.entry.actor_sub == "ops-li")
            .count()
    };
    assert_eq!(count(audit_action::CREDENTIALS_CHANGED), 3);
    assert_eq!(count(audit_action::CREDENTIALS_VERIFIED), 2);

    // Again: nothing changes, nothing more in the trail.
    let again = bootstrap::import_nurses(store, &org, &example("nurses.csv"), "ops-li", false)
        .await
        .unwrap();
    assert_eq!(outcomes(&again, |n| n.outcome), [0, 0, 4]);
    assert_eq!(store.nurses(&org).await.unwrap().len(), 4);
    let trail_after = store
        .audit_trail(
            &org,
            &AuditQuery {
                limit: 100,
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(trail_after.len(), trail.len());

    // 张丽 now verified, 王芳 with a new skill; the rest as before.
    let changed = example("nurses.csv")
        .replace("2021-01-20,no,", "2021-01-20,yes,")
        .replace(
            "catheter;venipuncture;gastric_tube",
            "catheter;venipuncture",
        );
    let changed = bootstrap::import_nurses(store, &org, &changed, "ops-li", false)
        .await
        .unwrap();
    assert_eq!(outcomes(&changed, |n| n.outcome), [0, 2, 2]);
    let roster = store.nurses(&org).await.unwrap();
    let zhang = roster
        .iter()
        .find(|n| n.phone.as_str() == "13900003333")
        .unwrap();
    assert_eq!(
        zhang.credentials.as_ref().unwrap().verification,
        Verification::Verified
    );
    let wang = roster
        .iter()
        .find(|n| n.phone.as_str() == "13900002222")
        .unwrap();
    assert_eq!(wang.skills.len(), 2);
    assert_eq!(
        wang.credentials.as_ref().unwrap().verification,
        Verification::Verified,
        "unchanged credentials keep their verification"
    );

    // A bad file: every problem reported, nothing written.
    let bad = "name,phone,skills\n新护士,13900005555,rehab\n坏号码,12345,rehab\n";
    let err = bootstrap::import_nurses(store, &org, bad, "ops-li", false)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("line 3: phone:"), "{message}");
    assert!(message.contains("nothing written"), "{message}");
    assert_eq!(store.nurses(&org).await.unwrap().len(), 4);

    // A dry run checks and reports but writes nothing.
    let dry = bootstrap::import_nurses(
        store,
        &org,
        "name,phone,skills\n新护士,13900005555,rehab\n",
        "ops-li",
        true,
    )
    .await
    .unwrap();
    assert_eq!(outcomes(&dry, |n| n.outcome), [1, 0, 0]);
    assert_eq!(store.nurses(&org).await.unwrap().len(), 4);
}

#[tokio::test]
async fn bootstrap_on_postgres() {
    let (store, _db) = yixin_store::testing::fresh_postgres().await;
    bootstrap_from_nothing(&store).await;
}

#[tokio::test]
async fn bootstrap_on_sqlite() {
    let store = yixin_store::testing::fresh_sqlite().await;
    bootstrap_from_nothing(&store).await;
}
