//! Cluster mode on a Redis Cluster of the test's own (3 masters, 1 replica each): a lost
//! master switches off only the buckets it owned, `/health` names it, and once its replica
//! has taken over the cache serves those buckets again, with writes read back. The rest
//! of the suite runs against a cluster too with `CACHEME_TEST_REDIS=cluster` (`cargo xtask
//! test` does both).

use cacheme_api::RedisMode;
use cacheme_testsupport::RedisCluster;
use serde_json::json;

use crate::helpers::{TestApp, TestDatabase, eventually, start, test_config};

async fn start_cluster() -> RedisCluster {
    tokio::task::spawn_blocking(|| RedisCluster::start(3, 1))
        .await
        .expect("cluster start task")
        .expect("a Redis Cluster starts")
}

/// The master holding `key` (the one where it exists).
fn owner(cluster: &RedisCluster, key: &str) -> u16 {
    let masters = cluster.masters().expect("masters");
    masters
        .into_iter()
        .find(|&port| {
            cluster
                .cli(port, &["exists", key])
                .is_ok_and(|out| out.trim() == "1")
        })
        .unwrap_or_else(|| panic!("no master holds {key}"))
}

async fn source(app: &TestApp, id: i32) -> String {
    let answer = app.get(&format!("/products/{id}")).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body["source"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_lost_master_switches_off_only_its_buckets_until_its_replica_takes_over() {
    let mut cluster = start_cluster().await;
    let db = TestDatabase::create().await;
    let mut config = test_config(&db.url, &cluster.urls().join(","));
    config.redis.mode = RedisMode::Cluster;
    // Only Redis: a memory-tier hit would hide which breaker is open.
    config.l1.enabled = false;
    config.redis.breaker_failures = 1;
    config.redis.breaker_failing_ms = 0;
    config.redis.breaker_cooldown_ms = 500;
    let app = start(config, Some(db)).await;

    for id in 1..=15 {
        assert_eq!(source(&app, id).await, "database");
        assert_eq!(source(&app, id).await, "cache");
    }
    let owners: Vec<(i32, u16)> = (1..=15)
        .map(|id| (id, owner(&cluster, &app.product_key(id))))
        .collect();
    let victim = owners[0].1;
    let elsewhere: Vec<i32> = owners
        .iter()
        .filter(|(_, port)| *port != victim)
        .map(|(id, _)| *id)
        .collect();
    assert!(
        !elsewhere.is_empty(),
        "products spread over masters: {owners:?}"
    );

    let stats = app.get("/cache/stats").await;
    assert_eq!(
        stats.body["cache_stats"]["cluster_masters"], 3,
        "{:?}",
        stats.body
    );
    assert_eq!(stats.body["redis"], "connected");

    cluster.kill(victim).expect("kill a master");
    let health = app.get("/health").await;
    assert_eq!(health.body["status"], "degraded", "{:?}", health.body);
    let nodes = health.body["redis_nodes"].as_array().expect("nodes listed");
    let down: Vec<&serde_json::Value> = nodes.iter().filter(|n| n["status"] == "down").collect();
    assert_eq!(down.len(), 1, "{nodes:?}");
    assert_eq!(down[0]["node"], format!("127.0.0.1:{victim}"));

    // The lost master's product comes from PostgreSQL; the others stay cached, before and
    // after its breaker opened.
    for &id in &elsewhere {
        assert_eq!(source(&app, id).await, "cache", "product {id} before");
    }
    assert_eq!(source(&app, 1).await, "database");
    assert_eq!(source(&app, 1).await, "database");
    for &id in &elsewhere {
        assert_eq!(source(&app, id).await, "cache", "product {id} after");
    }

    // The replica takes over (node timeout 2 s): product 1 is cached again, and a write is
    // read back at once.
    eventually("the lost master's buckets are cached again", || async {
        source(&app, 1).await == "cache"
    })
    .await;
    let renamed = app
        .send(
            reqwest::Method::PATCH,
            "/products/1",
            Some(json!({"name": "After failover"})),
        )
        .await;
    assert_eq!(renamed.status, 200, "{:?}", renamed.body);
    assert_eq!(app.get("/products/1").await.body["name"], "After failover");
    // The promoted master has no replica left: each invalidation waits for an
    // acknowledgement that cannot come (at most 100 ms), then is accepted; reads bypass
    // the cache meanwhile.
    eventually("product 1 is cached again after the write", || async {
        source(&app, 1).await == "cache"
    })
    .await;
    assert_eq!(app.get("/products/1").await.body["name"], "After failover");

    eventually("health is back to healthy", || async {
        app.get("/health").await.body["status"] == "healthy"
    })
    .await;
    let cleared = app.delete("/cache/clear").await;
    assert_eq!(cleared.status, 200, "{:?}", cleared.body);
    for (id, _) in &owners {
        assert_eq!(source(&app, *id).await, "database", "product {id} cleared");
    }
}

/// The node id and port of the master serving `slot`, and of another master.
fn source_and_target(cluster: &RedisCluster, slot: u16) -> ((String, u16), (String, u16)) {
    let masters = cluster.masters().expect("masters");
    let mut source = None;
    let mut other = None;
    for port in masters {
        let id = cluster
            .cli(port, &["cluster", "myid"])
            .expect("myid")
            .trim()
            .to_owned();
        let owns = cluster
            .cli(port, &["cluster", "countkeysinslot", &slot.to_string()])
            .is_ok()
            && cluster
                .cli(port, &["cluster", "nodes"])
                .expect("nodes")
                .lines()
                .find(|l| l.contains("myself"))
                .is_some_and(|l| {
                    l.split_whitespace()
                        .skip(8)
                        .any(|r| match r.split_once('-') {
                            Some((a, b)) => {
                                a.parse::<u16>().is_ok_and(|a| a <= slot)
                                    && b.parse::<u16>().is_ok_and(|b| slot <= b)
                            }
                            None => r.parse::<u16>() == Ok(slot),
                        })
                });
        if owns {
            source = Some((id, port));
        } else if other.is_none() {
            other = Some((id, port));
        }
    }
    (
        source.expect("a master owns the slot"),
        other.expect("another master"),
    )
}

#[tokio::test]
async fn while_a_bucket_slot_migrates_other_replicas_do_not_serve_it_from_memory() {
    let cluster = start_cluster().await;
    let db = TestDatabase::create().await;
    let mut config = test_config(&db.url, &cluster.urls().join(","));
    config.redis.mode = RedisMode::Cluster;
    config.l1.ttl_ms = 600_000;
    let writer = start(config.clone(), Some(db)).await;
    let reader = start(config, None).await;
    writer.wait_for_memory_tier(true).await;
    reader.wait_for_memory_tier(true).await;
    // A first write, so every key the invalidation script names exists (a script whose
    // keys are split between the two nodes gets TRYAGAIN, fails, and the id goes
    // pending: also safe, but not what this test is about).
    let first = writer
        .send(
            reqwest::Method::PATCH,
            "/products/5",
            Some(json!({"name": "Before the migration"})),
        )
        .await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    eventually("the reader serves the first write from memory", || async {
        let read = reader.get("/products/5").await;
        read.body["name"] == "Before the migration" && read.body["cache_tier"] == "memory"
    })
    .await;

    // Move every key of product 5's bucket to another master, and leave the slot
    // migrating: the writer's invalidation then runs on the importing node (ASK).
    let key = writer.product_key(5);
    let any = cluster.masters().expect("masters")[0];
    let slot: u16 = cluster
        .cli(any, &["cluster", "keyslot", &key])
        .expect("keyslot")
        .trim()
        .parse()
        .expect("a slot");
    let ((source_id, source), (target_id, target)) = source_and_target(&cluster, slot);
    let slot_text = slot.to_string();
    cluster
        .cli(
            target,
            &["cluster", "setslot", &slot_text, "importing", &source_id],
        )
        .expect("importing");
    cluster
        .cli(
            source,
            &["cluster", "setslot", &slot_text, "migrating", &target_id],
        )
        .expect("migrating");
    loop {
        let keys = cluster
            .cli(source, &["cluster", "getkeysinslot", &slot_text, "10"])
            .expect("keys");
        let keys: Vec<&str> = keys
            .lines()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .collect();
        if keys.is_empty() {
            break;
        }
        let target_port = target.to_string();
        let mut args = vec![
            "migrate",
            "127.0.0.1",
            &target_port,
            "",
            "0",
            "5000",
            "keys",
        ];
        args.extend(keys);
        cluster.cli(source, &args).expect("migrate");
    }
    // No head start for the listeners (issue #22, D8): the write follows the keys'
    // move at once, as under `redis-cli --cluster reshard`.
    let renamed = writer
        .send(
            reqwest::Method::PATCH,
            "/products/5",
            Some(json!({"name": "Renamed mid-migration"})),
        )
        .await;
    assert_eq!(renamed.status, 200, "{:?}", renamed.body);
    let acknowledged = std::time::Instant::now();
    // Other replicas' bound: 1 s after the acknowledgement.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let read = reader.get("/products/5").await;
    assert_eq!(
        read.body["name"],
        "Renamed mid-migration",
        "{:?} after {:?}",
        read.body,
        acknowledged.elapsed()
    );
}

/// A5: the relay stopped at the first invalidation that failed, so with one master down
/// the owed invalidations of every other master waited behind it (and the outbox grew)
/// until the failover. Now only the lost master's ids wait.
#[tokio::test]
async fn a_lost_master_holds_back_only_its_own_owed_invalidations() {
    let mut cluster = start_cluster().await;
    let db = TestDatabase::create().await;
    let mut config = test_config(&db.url, &cluster.urls().join(","));
    config.redis.mode = RedisMode::Cluster;
    config.redis.timeout_ms = 200;
    let app = start(config, Some(db)).await;
    for id in 1..=15 {
        source(&app, id).await;
    }
    let owners: Vec<(i32, u16)> = (1..=15)
        .map(|id| (id, owner(&cluster, &app.product_key(id))))
        .collect();
    let (lost_id, victim) = owners[0];
    let (healthy_id, _) = *owners
        .iter()
        .find(|(_, port)| *port != victim)
        .expect("products spread over masters");
    cluster.kill(victim).expect("kill a master");

    // Owed invalidations, the lost master's first, both past the relay's grace period.
    for id in [lost_id, healthy_id] {
        sqlx::query(
            "INSERT INTO cache_invalidations (product_id, created_at) \
             VALUES ($1, now() - interval '1 minute')",
        )
        .bind(id)
        .execute(&app.pool)
        .await
        .expect("an owed invalidation");
    }
    let owed = |id: i32| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM cache_invalidations WHERE product_id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("count owed rows")
        }
    };
    // Well within the 2 s before the lost master's replica takes over.
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    assert_eq!(
        owed(healthy_id).await,
        0,
        "product {healthy_id} (a healthy master) is still owed behind product {lost_id}"
    );
}

/// D2 of the second consistency review, in cluster mode: a master restarted from its own
/// snapshot brings back an entry, its generation and its bucket's epoch of before a write.
/// Each bucket's epoch is tied to its master's `run_id`, so the entry is never served.
#[tokio::test]
async fn a_master_restarted_from_older_data_does_not_bring_back_an_invalidated_entry() {
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 0))
        .await
        .expect("cluster start task")
        .expect("a Redis Cluster starts");
    let db = TestDatabase::create().await;
    let mut config = test_config(&db.url, &cluster.urls().join(","));
    config.redis.mode = RedisMode::Cluster;
    // So the window below also sees what Redis serves once L1's copies expire.
    config.l1.ttl_ms = 300;
    let a = start(config.clone(), Some(db)).await;
    let b = start(config, None).await;
    let original = a.get("/products/1").await.body["name"].clone();
    for app in [&a, &b] {
        app.get("/products/1").await;
        assert_eq!(source(app, 1).await, "cache");
    }
    let key = a.product_key(1);
    let master = owner(&cluster, &key);
    cluster.cli(master, &["SAVE"]).expect("SAVE");
    let write = a
        .send(
            reqwest::Method::PATCH,
            "/products/1",
            Some(json!({"name": "Restored-away name"})),
        )
        .await;
    assert_eq!(write.status, 200, "{}", write.body);
    // The master dies without saving again and starts from its snapshot; the replicas
    // keep running meanwhile (a blocked test thread would freeze them, as no real
    // process is).
    let cluster = tokio::task::spawn_blocking(move || {
        let mut cluster = cluster;
        cluster.restart(master)?;
        cluster.wait_ok(std::time::Duration::from_secs(20))?;
        anyhow::Ok(cluster)
    })
    .await
    .expect("restart task")
    .expect("the master restarts and the cluster is whole again");
    let restored = cluster.cli(master, &["GET", &key]).expect("GET");
    let restored_name = serde_json::from_str::<serde_json::Value>(restored.trim())
        .map(|entry| entry["name"].clone())
        .unwrap_or_default();
    assert_eq!(
        restored_name, original,
        "the restarted master holds the old entry: {restored}"
    );

    let restarted = std::time::Instant::now();
    let mut stale = Vec::new();
    while restarted.elapsed() < std::time::Duration::from_secs(4) {
        for (replica, app) in [("writer", &a), ("other replica", &b)] {
            let answer = app.get("/products/1").await;
            if answer.status == 200 && answer.body["name"] != "Restored-away name" {
                stale.push(format!(
                    "{replica} at {:?}: {} from {}",
                    restarted.elapsed(),
                    answer.body["name"],
                    answer.body["source"]
                ));
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        stale.is_empty(),
        "invalidated entry served again: {stale:?}"
    );
    eventually("the cache works again", || async {
        a.get("/products/1").await.body["source"] == "cache"
    })
    .await;
}
