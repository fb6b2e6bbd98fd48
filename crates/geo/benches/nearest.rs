//! Nearest-nurse queries on the index, and the same question put to Redis GEO.
//!
//! `cargo bench -p yixin-geo` runs the criterion benches (nearest-10 with an
//! always-true and a 1-in-4 predicate, and moves, at 1k / 10k / 100k nurses
//! spread over a 20 km × 20 km box around Jiangjin, at resolutions 8, 9 and
//! 10), then prints a comparison table against a server-side Redis script
//! (`GEOSEARCH … ASC COUNT 10`, radius doubling from 250 m) answering the
//! same queries on the same points. Redis is at `REDIS_URL` (default
//! `redis://127.0.0.1:6379`); when it is unreachable the comparison is
//! skipped with a notice. `GEO_BENCH_QUERIES` sets the query count (2000);
//! `GEO_BENCH_NO_TABLE=1` skips the table (for profiling one bench).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use h3o::Resolution;
use uuid::Uuid;
use yixin_domain::{GeoPoint, NurseId};
use yixin_geo::{GeoIndex, IndexConfig};

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const RESOLUTIONS: [Resolution; 3] = [Resolution::Eight, Resolution::Nine, Resolution::Ten];
const K: usize = 10;
/// Wider than the box's diagonal: "the 10 nearest, wherever they are".
const MAX_RADIUS_M: f64 = 30_000.0;
const REDIS_START_RADIUS_M: f64 = 250.0;

/// A tiny deterministic generator (no `rand` in the workspace).
struct XorShift(u64);

impl XorShift {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in a ~20 km × 20 km box centred near (29.30, 106.25), Jiangjin.
    fn city_point(&mut self) -> GeoPoint {
        GeoPoint::new(
            29.21 + 0.18 * self.next_f64(),
            106.147 + 0.206 * self.next_f64(),
        )
        .unwrap()
    }
}

struct Fleet {
    nurses: Vec<(NurseId, GeoPoint, u64)>,
    queries: Vec<GeoPoint>,
}

fn fleet(n: usize) -> Fleet {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d ^ n as u64);
    let nurses = (0..n)
        .map(|_| {
            let id = NurseId(Uuid::from_u128(
                u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64()),
            ));
            (id, rng.city_point(), rng.next_u64())
        })
        .collect();
    let queries = (0..query_count()).map(|_| rng.city_point()).collect();
    Fleet { nurses, queries }
}

fn query_count() -> usize {
    std::env::var("GEO_BENCH_QUERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

fn build(f: &Fleet, res: Resolution) -> GeoIndex<NurseId> {
    let mut idx = GeoIndex::with_capacity(IndexConfig { resolution: res }, f.nurses.len());
    for &(id, pt, tag) in &f.nurses {
        idx.upsert(id, pt, tag);
    }
    idx
}

fn all(_: &NurseId, _: u64) -> bool {
    true
}

/// One nurse in four (e.g. "has the skill and is free").
fn quarter(_: &NurseId, tag: u64) -> bool {
    tag & 3 == 0
}

/// One nurse in sixteen (a rarer skill).
fn sixteenth(_: &NurseId, tag: u64) -> bool {
    tag & 15 == 0
}

fn bench_nearest(c: &mut Criterion) {
    for &n in &SIZES {
        let f = fleet(n);
        for res in RESOLUTIONS {
            let idx = build(&f, res);
            let name = format!("res{}/{n}", u8::from(res));
            for (group, pred) in [
                ("nearest10_all", all as fn(&NurseId, u64) -> bool),
                ("nearest10_quarter", quarter),
            ] {
                let mut g = c.benchmark_group(group);
                let mut i = 0;
                g.bench_function(BenchmarkId::from_parameter(&name), |b| {
                    b.iter(|| {
                        i = (i + 1) % f.queries.len();
                        black_box(idx.nearest(f.queries[i], K, MAX_RADIUS_M, pred))
                    })
                });
                g.finish();
            }
        }
    }
}

/// Moves of about 100 m, alternating between two spots per nurse so every
/// iteration is a real move (about a third cross a resolution-9 cell edge).
fn bench_upsert(c: &mut Criterion) {
    let mut g = c.benchmark_group("upsert_move");
    for &n in &SIZES {
        let f = fleet(n);
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let moves: Vec<(NurseId, GeoPoint, GeoPoint)> = (0..4096)
            .map(|_| {
                let (id, pt, _) = f.nurses[(rng.next_u64() % n as u64) as usize];
                let step = |r: &mut XorShift| (r.next_f64() - 0.5) * 0.002;
                let a =
                    GeoPoint::new(pt.lat() + step(&mut rng), pt.lng() + step(&mut rng)).unwrap();
                let b =
                    GeoPoint::new(pt.lat() + step(&mut rng), pt.lng() + step(&mut rng)).unwrap();
                (id, a, b)
            })
            .collect();
        let mut idx = build(&f, Resolution::Nine);
        let mut i = 0;
        let mut flip = false;
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                i += 1;
                if i == moves.len() {
                    i = 0;
                    flip = !flip;
                }
                let (id, a, b) = moves[i];
                idx.upsert(id, if flip { b } else { a }, 0);
            })
        });
    }
    g.finish();
}

/// Nanoseconds per query over rounds of every query point: the median round
/// and the best one (the machine is shared; the best round is the one least
/// disturbed by other work).
#[derive(Clone, Copy)]
struct Timing {
    median: f64,
    best: f64,
}

impl std::fmt::Display for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.0} ({:.0})", self.median, self.best)
    }
}

fn time_index(
    idx: &GeoIndex<NurseId>,
    queries: &[GeoPoint],
    pred: fn(&NurseId, u64) -> bool,
) -> Timing {
    let round = || {
        let t = Instant::now();
        for q in queries {
            black_box(idx.nearest(*q, K, MAX_RADIUS_M, pred));
        }
        t.elapsed().as_nanos() as f64 / queries.len() as f64
    };
    round();
    let mut rounds: Vec<f64> = (0..11).map(|_| round()).collect();
    rounds.sort_by(f64::total_cmp);
    Timing {
        median: rounds[rounds.len() / 2],
        best: rounds[0],
    }
}

const SCRIPT: &str = r"
local r = tonumber(ARGV[3])
local k = tonumber(ARGV[4])
local max_r = tonumber(ARGV[5])
while true do
  local found = redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', ARGV[1], ARGV[2],
    'BYRADIUS', r, 'm', 'ASC', 'COUNT', k, 'WITHDIST')
  if #found >= k or r >= max_r then
    return found
  end
  r = math.min(r * 2, max_r)
end
";

struct RedisRun {
    server_us: f64,
    client_us: f64,
    bytes_per_nurse: f64,
    exact: usize,
    same_set: usize,
    near_tie: usize,
    other: usize,
    polluted: bool,
}

fn commandstat(con: &mut redis::Connection, name: &str) -> Option<(u64, f64)> {
    let info: String = redis::cmd("INFO").arg("commandstats").query(con).ok()?;
    let line = info
        .lines()
        .find(|l| l.starts_with(&format!("cmdstat_{name}:")))?;
    let field = |f: &str| {
        line.split([':', ','])
            .find_map(|kv| kv.strip_prefix(&format!("{f}=")))
            .and_then(|v| v.parse::<f64>().ok())
    };
    Some((field("calls")? as u64, field("usec_per_call")?))
}

fn redis_compare(
    con: &mut redis::Connection,
    key: &str,
    f: &Fleet,
    idx: &GeoIndex<NurseId>,
) -> redis::RedisResult<RedisRun> {
    let _: () = redis::cmd("DEL").arg(key).query(con)?;
    // Pipelines of ten GEOADDs of 1000 members each.
    for batch in f.nurses.chunks(10_000) {
        let mut pipe = redis::pipe();
        for chunk in batch.chunks(1000) {
            let mut add = redis::cmd("GEOADD");
            add.arg(key);
            for (id, pt, _) in chunk {
                add.arg(pt.lng()).arg(pt.lat()).arg(id.to_string());
            }
            pipe.add_command(add).ignore();
        }
        pipe.exec(con)?;
    }
    let bytes: Option<u64> = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .arg("SAMPLES")
        .arg(0)
        .query(con)?;
    let sha: String = redis::cmd("SCRIPT").arg("LOAD").arg(SCRIPT).query(con)?;
    let call =
        |con: &mut redis::Connection, q: &GeoPoint| -> redis::RedisResult<Vec<(String, String)>> {
            redis::cmd("EVALSHA")
                .arg(&sha)
                .arg(1)
                .arg(key)
                .arg(q.lng())
                .arg(q.lat())
                .arg(REDIS_START_RADIUS_M)
                .arg(K)
                .arg(MAX_RADIUS_M)
                .query(con)
        };
    // Warm up, then count only the measured calls.
    for q in f.queries.iter().take(200) {
        call(con, q)?;
    }
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(con)?;
    let mut answers = Vec::with_capacity(f.queries.len());
    let t = Instant::now();
    for q in &f.queries {
        answers.push(call(con, q)?);
    }
    let client_us = t.elapsed().as_secs_f64() * 1e6 / f.queries.len() as f64;
    let (calls, server_us) = commandstat(con, "evalsha").unwrap_or((0, f64::NAN));

    // Redis stores 52-bit geohashes (positions move by up to ~0.5 m) and
    // uses its own Earth radius, so near-ties may swap; classify honestly.
    let by_name: HashMap<String, NurseId> = f
        .nurses
        .iter()
        .map(|(id, _, _)| (id.to_string(), *id))
        .collect();
    let (mut exact, mut same_set, mut near_tie, mut other) = (0, 0, 0, 0);
    for (q, answer) in f.queries.iter().zip(&answers) {
        let ours = idx.nearest(*q, K, MAX_RADIUS_M, all);
        let mine: Vec<NurseId> = ours.iter().map(|n| n.key).collect();
        let theirs: Vec<NurseId> = answer
            .iter()
            .filter_map(|(m, _)| by_name.get(m).copied())
            .collect();
        if mine == theirs {
            exact += 1;
            continue;
        }
        let mut a = mine.clone();
        let mut b = theirs.clone();
        a.sort_unstable();
        b.sort_unstable();
        if a == b {
            // Only swaps between entries within 2 m of each other?
            let ds: Vec<f64> = theirs
                .iter()
                .filter_map(|id| ours.iter().find(|n| n.key == *id).map(|n| n.distance_m))
                .collect();
            if ds.windows(2).all(|w| w[0] - w[1] <= 2.0) {
                same_set += 1;
            } else {
                other += 1;
            }
            continue;
        }
        // Differ only in members within 2 m of the 10th distance (quantisation)?
        let kth = ours.last().map_or(0.0, |n| n.distance_m);
        let differing_are_ties = theirs.iter().filter(|id| !mine.contains(id)).all(|id| {
            let pt = f.nurses.iter().find(|(n, _, _)| n == id).map(|x| x.1);
            pt.is_some_and(|pt| (q.distance_m(&pt) - kth).abs() <= 2.0)
        });
        if differing_are_ties && theirs.len() == mine.len() {
            near_tie += 1;
        } else {
            other += 1;
        }
    }
    Ok(RedisRun {
        server_us,
        client_us,
        bytes_per_nurse: bytes.map_or(f64::NAN, |b| b as f64 / f.nurses.len() as f64),
        exact,
        same_set,
        near_tie,
        other,
        polluted: calls != f.queries.len() as u64,
    })
}

fn compare_with_redis(_: &mut Criterion) {
    if std::env::var_os("GEO_BENCH_NO_TABLE").is_some() {
        return;
    }
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let mut con = match redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
    {
        Ok(con) => Some(con),
        Err(e) => {
            println!("\nRedis at {url} unreachable ({e}); skipping the Redis comparison.");
            None
        }
    };
    let default_res = IndexConfig::default().resolution;
    println!(
        "\nnearest-{K}, {} random queries in a 20 km x 20 km box, default resolution {}",
        query_count(),
        u8::from(default_res)
    );
    println!(
        "| nurses | index ns/query, all: median (best) | index ns/query, 1 in 4 | Redis script µs/call (server) | Redis µs/call (client RTT) | Redis server ÷ index (medians) | index bytes/nurse | Redis bytes/nurse | results vs Redis |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut by_res = Vec::new();
    for &n in &SIZES {
        let f = fleet(n);
        for res in RESOLUTIONS {
            let idx = build(&f, res);
            by_res.push((
                n,
                u8::from(res),
                time_index(&idx, &f.queries, all),
                time_index(&idx, &f.queries, quarter),
                time_index(&idx, &f.queries, sixteenth),
                idx.memory_bytes() as f64 / n as f64,
            ));
        }
        let idx = build(&f, default_res);
        let ns_all = time_index(&idx, &f.queries, all);
        let ns_quarter = time_index(&idx, &f.queries, quarter);
        let bytes = idx.memory_bytes() as f64 / n as f64;
        let redis = con.as_mut().map(|con| {
            let key = format!("yixin-geo-bench:{}:{n}", std::process::id());
            let run = redis_compare(con, &key, &f, &idx);
            // Clean up whatever happened.
            let _ = redis::cmd("DEL").arg(&key).exec(con);
            run
        });
        match redis {
            Some(Ok(r)) => println!(
                "| {n} | {ns_all} | {ns_quarter} | {:.2}{} | {:.2} | {:.1}× | {bytes:.1} | {:.1} | {} identical, {} same set but ≤2 m apart entries swapped, {} differ only in ≤2 m ties at the 10th, {} other |",
                r.server_us,
                if r.polluted {
                    " (stats polluted by other clients)"
                } else {
                    ""
                },
                r.client_us,
                r.server_us * 1000.0 / ns_all.median,
                r.bytes_per_nurse,
                r.exact,
                r.same_set,
                r.near_tie,
                r.other,
            ),
            Some(Err(e)) => println!(
                "| {n} | {ns_all} | {ns_quarter} | Redis error: {e} | | | {bytes:.1} | | |"
            ),
            None => {
                println!("| {n} | {ns_all} | {ns_quarter} | skipped | | | {bytes:.1} | | |")
            }
        }
    }
    println!("\nby resolution (index only):");
    println!("| nurses | res | ns/query, all: median (best) | 1 in 4 | 1 in 16 | bytes/nurse |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for (n, res, a, q, s, b) in by_res {
        println!("| {n} | {res} | {a} | {q} | {s} | {b:.1} |");
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = bench_nearest, bench_upsert, compare_with_redis
}
criterion_main!(benches);
