//! Determinism: replaying the same log (commands, leader timestamps, seeds) from empty
//! gives the same logical keyspace on every storage engine, and the same replies.

mod common;

use bytes::Bytes;
use keel_engine::{ApplyCtx, Engine, Op, Reply};
use keel_storage::{EngineKind, OpenOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A mixed log over every type, with colliding keys, expiries and random commands.
fn make_log(seed: u64, n: usize) -> Vec<(ApplyCtx, Op)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut now = 1_700_000_000_000u64;
    let mut log = Vec::with_capacity(n);
    let keys = ["a", "b", "c", "{t}1", "{t}2"];
    for i in 0..n {
        now += rng.gen_range(0..400);
        let k = keys[rng.gen_range(0..keys.len())];
        let k2 = keys[rng.gen_range(0..keys.len())];
        let m = format!("m{}", rng.gen_range(0..8));
        let v = format!("{}", rng.gen_range(-5..50));
        let cmd: Vec<String> = match rng.gen_range(0..29) {
            0 => vec!["SET".into(), k.into(), v.clone()],
            1 => vec!["SET".into(), k.into(), v.clone(), "PX".into(), "700".into()],
            2 => vec!["INCRBY".into(), k.into(), v.clone()],
            3 => vec!["APPEND".into(), k.into(), m.clone()],
            4 => vec!["DEL".into(), k.into()],
            5 => vec!["LPUSH".into(), k.into(), m.clone(), v.clone()],
            6 => vec!["RPOP".into(), k.into()],
            7 => vec!["LSET".into(), k.into(), "0".into(), v.clone()],
            8 => vec!["HSET".into(), k.into(), m.clone(), v.clone()],
            9 => vec!["HDEL".into(), k.into(), m.clone()],
            10 => vec!["HINCRBYFLOAT".into(), k.into(), m.clone(), "1.5".into()],
            11 => vec!["SADD".into(), k.into(), m.clone(), v.clone()],
            12 => vec!["SPOP".into(), k.into()],
            13 => vec!["SREM".into(), k.into(), m.clone()],
            14 => vec!["ZADD".into(), k.into(), v.clone(), m.clone()],
            15 => vec!["ZINCRBY".into(), k.into(), "2".into(), m.clone()],
            16 => vec!["ZPOPMIN".into(), k.into()],
            17 => vec!["EXPIRE".into(), k.into(), "1".into()],
            18 => vec!["PERSIST".into(), k.into()],
            19 => vec!["RENAME".into(), k.into(), k2.into()],
            20 => vec!["COPY".into(), k.into(), k2.into(), "REPLACE".into()],
            21 => vec!["SUNIONSTORE".into(), k.into(), k.into(), k2.into()],
            22 => vec![
                "ZUNIONSTORE".into(),
                k.into(),
                "2".into(),
                k.into(),
                k2.into(),
            ],
            23 => vec![
                "LMOVE".into(),
                k.into(),
                k2.into(),
                "LEFT".into(),
                "RIGHT".into(),
            ],
            24 => vec!["SRANDMEMBER".into(), k.into(), "-3".into()],
            // A script's draws come from the entry's seed: a replay draws the same.
            25 => vec![
                "EVAL".into(),
                "redis.pcall('SADD', KEYS[1], math.random(1000)) return redis.pcall('SRANDMEMBER', KEYS[1])".into(),
                "1".into(),
                k.into(),
            ],
            // A stream's `*` IDs come from the entry's time.
            26 => vec!["XADD".into(), k.into(), "MAXLEN".into(), "~".into(), "3".into(), "*".into(), m.clone(), v.clone()],
            27 => vec!["XTRIM".into(), k.into(), "MAXLEN".into(), "2".into()],
            _ => vec!["HRANDFIELD".into(), k.into(), "2".into()],
        };
        let args: Vec<Bytes> = cmd.into_iter().map(Bytes::from).collect();
        let ctx = ApplyCtx {
            seq: i as u64 + 1,
            now_ms: now,
            seed: rng.gen(),
        };
        let op = if i % 50 == 49 {
            Op::ExpireCycle { max: 100 }
        } else if i % 7 == 3 {
            Op::Multi {
                cmds: vec![(0, args.clone()), (1, args)],
            }
        } else {
            Op::Command { db: 0, args }
        };
        log.push((ctx, op));
    }
    log
}

fn replay(kind: EngineKind, log: &[(ApplyCtx, Op)]) -> (u64, Vec<Reply>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = keel_storage::open(dir.path(), &OpenOptions::new(kind)).expect("open");
    let engine = Engine::new(store).expect("engine");
    let mut replies = Vec::new();
    for (ctx, op) in log {
        replies.extend(engine.apply(ctx, op).expect("apply").replies);
    }
    let last = log.last().map_or(0, |(c, _)| c.now_ms);
    (engine.digest(last).expect("digest"), replies)
}

#[test]
fn same_log_same_state_and_replies_on_every_engine() {
    for seed in [1u64, 2, 3] {
        let log = make_log(seed, 1500);
        let (d0, r0) = replay(EngineKind::Memory, &log);
        let (d0b, r0b) = replay(EngineKind::Memory, &log);
        assert_eq!(d0, d0b, "memory twice, seed {seed}");
        assert_eq!(r0, r0b);
        for kind in common::DURABLE_ENGINES {
            let (d, r) = replay(*kind, &log);
            assert_eq!(r0, r, "replies differ on {kind}, seed {seed}");
            assert_eq!(d0, d, "digest differs on {kind}, seed {seed}");
        }
    }
}

/// Replays `log` in groups of `size` entries (one storage batch per group), checking
/// after each group that storage is at the group's last entry.
fn replay_grouped(kind: EngineKind, log: &[(ApplyCtx, Op)], size: usize) -> (u64, Vec<Reply>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = keel_storage::open(dir.path(), &OpenOptions::new(kind)).expect("open");
    let engine = Engine::new(store).expect("engine");
    let mut replies = Vec::new();
    for chunk in log.chunks(size) {
        let mut group = engine.group();
        for (ctx, op) in chunk {
            replies.extend(engine.apply_in(&mut group, ctx, op).expect("apply").replies);
        }
        let last = chunk.last().map(|(c, _)| c.seq);
        assert_eq!(group.last_seq(), last);
        engine.write_group(group).expect("write group");
        assert_eq!(engine.applied_index(), last.unwrap_or(0));
    }
    let last = log.last().map_or(0, |(c, _)| c.now_ms);
    (engine.digest(last).expect("digest"), replies)
}

/// The apply loop writes a round's entries as one storage batch: entries later in a
/// group must read the earlier ones' writes exactly as if each had been written alone.
#[test]
fn grouped_apply_equals_entry_by_entry() {
    for seed in [4u64, 5] {
        let log = make_log(seed, 1200);
        let (d0, r0) = replay(EngineKind::Memory, &log);
        for size in [2usize, 7, 64, 1200] {
            let (d, r) = replay_grouped(EngineKind::Memory, &log, size);
            assert_eq!(r0, r, "replies differ in groups of {size}, seed {seed}");
            assert_eq!(d0, d, "state differs in groups of {size}, seed {seed}");
        }
        let (d, r) = replay_grouped(EngineKind::Bitcask, &log, 64);
        assert_eq!((d0, r0), (d, r), "bitcask in groups of 64, seed {seed}");
    }
}

#[test]
fn digest_tells_states_apart() {
    let mut t = common::T::new(EngineKind::Memory);
    let empty = t.engine.digest(t.now).expect("digest");
    t.w(&["SET", "k", "v1"]);
    let one = t.engine.digest(t.now).expect("digest");
    t.w(&["SET", "k", "v2"]);
    let two = t.engine.digest(t.now).expect("digest");
    t.w(&["SET", "k", "v1"]);
    let back = t.engine.digest(t.now).expect("digest");
    t.w(&["SET", "k", "v1", "PX", "10"]);
    let with_ttl = t.engine.digest(t.now).expect("digest");
    assert_ne!(with_ttl, one, "expiry time is part of the state");
    assert_ne!(empty, one);
    assert_ne!(one, two);
    assert_eq!(one, back, "same content, same digest, whatever the history");
    t.now += 11;
    assert_eq!(
        t.engine.digest(t.now).expect("digest"),
        empty,
        "expired keys do not count"
    );
}

/// A log of pushes and pops on lists and of HSETs on hashes, over keys that change type,
/// mixed with the commands that must see their metadata written out first (it is held
/// between the pushes, pops and HSETs of a group: see `WriteTx::hold`), with MULTIs
/// whose failing commands roll back their own part only.
fn make_list_log(seed: u64, n: usize) -> Vec<(ApplyCtx, Op)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut now = 1_700_000_000_000u64;
    let mut log = Vec::with_capacity(n);
    let keys = ["l1", "l2", "h1"];
    let command = |rng: &mut StdRng| -> Vec<String> {
        let k = keys[rng.gen_range(0..keys.len())].to_string();
        let k2 = keys[rng.gen_range(0..keys.len())].to_string();
        let v = format!("v{}", rng.gen_range(0..100));
        let f = format!("f{}", rng.gen_range(0..8));
        match rng.gen_range(0..27) {
            20..=21 => vec!["HSET".into(), k, f, v],
            22 => vec!["HMSET".into(), k, f, v.clone(), "f9".into(), v],
            23 => vec!["HSETNX".into(), k, f, v],
            24 => vec!["HDEL".into(), k, f],
            25 => vec!["HINCRBY".into(), k, "n".into(), "1".into()],
            26 => vec!["HLEN".into(), k],
            0..=3 => vec!["LPUSH".into(), k, v.clone(), v],
            4..=6 => vec!["RPUSH".into(), k, v],
            7 => vec!["LPUSHX".into(), k, v],
            8..=10 => vec!["RPOP".into(), k],
            11 => vec!["LPOP".into(), k, rng.gen_range(0..4).to_string()],
            12 => vec!["LSET".into(), k, rng.gen_range(-3..3).to_string(), v],
            13 => vec!["LTRIM".into(), k, "1".into(), "-2".into()],
            14 => vec!["DEL".into(), k],
            15 => vec!["EXPIRE".into(), k, "1".into()],
            16 => vec!["PERSIST".into(), k],
            17 => vec!["RENAME".into(), k, k2],
            18 => vec!["LMOVE".into(), k, k2, "LEFT".into(), "RIGHT".into()],
            _ => vec!["SET".into(), k, v],
        }
    };
    for i in 0..n {
        now += rng.gen_range(0..300);
        let args = |rng: &mut StdRng| -> Vec<Bytes> {
            command(rng).into_iter().map(Bytes::from).collect()
        };
        let op = if i % 40 == 39 {
            Op::ExpireCycle { max: 100 }
        } else if i % 5 == 2 {
            Op::Multi {
                cmds: (0..rng.gen_range(2..5))
                    .map(|_| (0, args(&mut rng)))
                    .collect(),
            }
        } else {
            Op::Command {
                db: 0,
                args: args(&mut rng),
            }
        };
        let ctx = ApplyCtx {
            seq: i as u64 + 1,
            now_ms: now,
            seed: rng.gen(),
        };
        log.push((ctx, op));
    }
    log
}

#[test]
fn held_metadata_reads_as_if_written_after_every_command() {
    for seed in [6u64, 7, 8] {
        let log = make_list_log(seed, 1500);
        let (d0, r0) = replay(EngineKind::Memory, &log);
        for size in [3usize, 16, 1500] {
            let (d, r) = replay_grouped(EngineKind::Memory, &log, size);
            assert_eq!(r0, r, "replies differ in groups of {size}, seed {seed}");
            assert_eq!(d0, d, "state differs in groups of {size}, seed {seed}");
        }
    }
}

/// A log over collections large enough that random picks are found by position in
/// storage (memory, bitcask) rather than walked to (lsm): SPOP, SRANDMEMBER, HRANDFIELD
/// and ZRANDMEMBER beside writes to the same keys, alone and in transactions; and the
/// sorted-set ranks, counts and windows that storage's counts answer (ZRANK, ZREVRANK,
/// ZCOUNT, ZLEXCOUNT, ZRANGE by index, score and lex with long offsets,
/// ZREMRANGEBYRANK), and ZPOPMIN/ZPOPMAX, which find their member by position.
fn large_collections_log(seed: u64, n: usize) -> Vec<(ApplyCtx, Op)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut log = Vec::new();
    let fill = |args: Vec<String>| Op::Command {
        db: 0,
        args: args.into_iter().map(Bytes::from).collect(),
    };
    let mut sadd = vec!["SADD".to_string(), "s".into()];
    let mut hset = vec!["HSET".to_string(), "h".into()];
    let mut zadd = vec!["ZADD".to_string(), "z".into()];
    for i in 0..3000 {
        sadd.push(format!("m{i}"));
        hset.extend([format!("f{i}"), format!("v{i}")]);
        zadd.extend([format!("{}", i % 97), format!("e{i}")]);
    }
    for op in [fill(sadd), fill(hset), fill(zadd)] {
        log.push(op);
    }
    for _ in 0..n {
        let i = rng.gen_range(0..3500);
        // Positions past the point where ranges find their first member by position.
        let at_n: u64 = rng.gen_range(250..3200);
        let at = at_n.to_string();
        if rng.gen_range(0..12) == 0 {
            // Pops from both ends in one entry: later pops pass over the members the
            // earlier ones removed, still in the entry's overlay.
            let pop =
                |end: &'static [u8]| (0, vec![Bytes::from_static(end), Bytes::from_static(b"z")]);
            let cmds = vec![
                pop(b"ZPOPMIN"),
                pop(b"ZPOPMIN"),
                pop(b"ZPOPMAX"),
                pop(b"ZPOPMIN"),
                pop(b"ZPOPMAX"),
            ];
            log.push(Op::Multi { cmds });
            continue;
        }
        let cmd: Vec<String> = match rng.gen_range(0..21) {
            0 => vec!["SPOP".into(), "s".into()],
            1 => vec!["SPOP".into(), "s".into(), "3".into()],
            2 => vec!["SRANDMEMBER".into(), "s".into()],
            3 => vec!["SRANDMEMBER".into(), "s".into(), "-4".into()],
            4 => vec!["SREM".into(), "s".into(), format!("m{i}")],
            5 => vec!["SADD".into(), "s".into(), format!("m{i}"), format!("n{i}")],
            6 => vec![
                "HRANDFIELD".into(),
                "h".into(),
                "3".into(),
                "WITHVALUES".into(),
            ],
            7 => vec!["HDEL".into(), "h".into(), format!("f{i}")],
            8 => vec!["HSET".into(), "h".into(), format!("g{i}"), "x".into()],
            9 => vec![
                "ZRANDMEMBER".into(),
                "z".into(),
                "-2".into(),
                "WITHSCORES".into(),
            ],
            10 => vec!["ZREM".into(), "z".into(), format!("e{i}")],
            11 => vec![
                "ZRANK".into(),
                "z".into(),
                format!("e{i}"),
                "WITHSCORE".into(),
            ],
            12 => vec!["ZREVRANK".into(), "z".into(), format!("e{i}")],
            13 => {
                let lo = i % 97;
                let spec = [format!("({lo}"), format!("{}", lo + 20)];
                let lex = [format!("[e{lo}"), format!("(e{}", i % 1000)];
                if rng.gen_range(0..2) == 0 {
                    vec![
                        "ZCOUNT".into(),
                        "z".into(),
                        spec[0].clone(),
                        spec[1].clone(),
                    ]
                } else {
                    vec![
                        "ZLEXCOUNT".into(),
                        "z".into(),
                        lex[0].clone(),
                        lex[1].clone(),
                    ]
                }
            }
            14 => vec![
                "ZRANGE".into(),
                "z".into(),
                at.clone(),
                format!("{}", i % 3300),
            ],
            15 => vec![
                "ZRANGE".into(),
                "z".into(),
                at.clone(),
                "-2990".into(),
                "REV".into(),
                "WITHSCORES".into(),
            ],
            16 => vec![
                "ZRANGEBYSCORE".into(),
                "z".into(),
                format!("{}", i % 40),
                "+inf".into(),
                "LIMIT".into(),
                at.clone(),
                "3".into(),
            ],
            17 => vec![
                "ZRANGE".into(),
                "z".into(),
                "(90".into(),
                "-inf".into(),
                "BYSCORE".into(),
                "REV".into(),
                "LIMIT".into(),
                at.clone(),
                "2".into(),
            ],
            18 => {
                let by = if rng.gen_range(0..2) == 0 {
                    "BYLEX"
                } else {
                    "REV"
                };
                let (min, max) = if by == "BYLEX" {
                    (format!("(e{}", i % 100), "+".to_string())
                } else {
                    ("+".to_string(), format!("[e{}", i % 100))
                };
                let mut cmd = vec!["ZRANGE".into(), "z".into(), min, max, "BYLEX".into()];
                if by == "REV" {
                    cmd.push("REV".into());
                }
                cmd.extend(["LIMIT".into(), at.clone(), "2".into()]);
                cmd
            }
            19 => vec![
                "ZREMRANGEBYRANK".into(),
                "z".into(),
                at.clone(),
                format!("{}", at_n + rng.gen_range(0..3)),
            ],
            _ => vec!["ZADD".into(), "z".into(), "5".into(), format!("d{i}")],
        };
        let args: Vec<Bytes> = cmd.into_iter().map(Bytes::from).collect();
        log.push(if rng.gen_range(0..5) == 0 {
            // A write and a pick of the same collection in one entry: the pick's
            // position is corrected for the write still in the group's overlay.
            let pick = vec![Bytes::from_static(b"SPOP"), Bytes::from_static(b"s")];
            Op::Multi {
                cmds: vec![(0, args), (0, pick)],
            }
        } else {
            Op::Command { db: 0, args }
        });
    }
    log.into_iter()
        .enumerate()
        .map(|(i, op)| {
            let ctx = ApplyCtx {
                seq: i as u64 + 1,
                now_ms: 1_700_000_000_000 + i as u64,
                seed: rng.gen(),
            };
            (ctx, op)
        })
        .collect()
}

#[test]
fn random_picks_by_position_are_the_walks_picks() {
    let log = large_collections_log(11, 600);
    // lsm keeps no order statistics: every pick there walks to its position.
    let (d_walk, r_walk) = replay(EngineKind::Lsm, &log);
    for kind in [EngineKind::Memory, EngineKind::Bitcask] {
        let (d, r) = replay(kind, &log);
        assert_eq!(r_walk, r, "replies differ on {kind}");
        assert_eq!(d_walk, d, "digest differs on {kind}");
        // In groups, earlier entries' writes wait in the overlay while later ones pick.
        let (d, r) = replay_grouped(kind, &log, 16);
        assert_eq!(r_walk, r, "replies differ on {kind} in groups");
        assert_eq!(d_walk, d, "digest differs on {kind} in groups");
    }
}
