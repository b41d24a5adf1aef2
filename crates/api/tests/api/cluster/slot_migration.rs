//! While a bucket's slot migrates between masters, other replicas do not serve it from
//! memory.

use cacheme_api::RedisMode;
use cacheme_testsupport::RedisCluster;
use serde_json::json;

use super::*;
use crate::helpers::{TestDatabase, eventually, start, test_config};

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
