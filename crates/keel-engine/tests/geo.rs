//! GEO commands on every storage engine: stored scores, positions, hashes, distances,
//! searches by radius and by box, STORE and STOREDIST with their events, Redis's error
//! texts; plus a property test of searches against every member's distance.
//!
//! Expected figures are redis-server's own answers to the same commands (the Sicily
//! example of Redis's documentation).

mod common;

use common::{b, cmd, touched, T};
use keel_engine::geohash;
use keel_engine::{Op, Reply};
use keel_storage::EngineKind;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn bulks(items: &[&str]) -> Reply {
    Reply::Array(items.iter().map(|s| Reply::Bulk(b(s))).collect())
}

fn sicily(t: &mut T) {
    assert_eq!(
        t.w(&[
            "GEOADD",
            "Sicily",
            "13.361389",
            "38.115556",
            "Palermo",
            "15.087269",
            "37.502669",
            "Catania",
        ]),
        Reply::Int(2)
    );
}

/// A reply's coordinates as redis-server prints them.
fn coords(r: &Reply) -> Vec<String> {
    match r {
        Reply::HumanDouble(v) => vec![keel_engine::args::format_human_ld(*v)],
        Reply::Array(items) => items.iter().flat_map(coords).collect(),
        _ => Vec::new(),
    }
}

fn add_and_read(kind: EngineKind) {
    let mut t = T::new(kind);
    sicily(&mut t);
    assert_eq!(
        t.r(&["ZSCORE", "Sicily", "Palermo"]),
        Reply::Double(3_479_099_956_230_698.0)
    );
    assert_eq!(
        t.r(&["ZSCORE", "Sicily", "Catania"]),
        Reply::Double(3_479_447_370_796_909.0)
    );
    let pos = t.r(&["GEOPOS", "Sicily", "Palermo", "nowhere", "Catania"]);
    let Reply::Array(items) = &pos else {
        panic!("GEOPOS answered {pos:?}");
    };
    assert_eq!(items[1], Reply::NilArray);
    assert_eq!(
        coords(&pos),
        [
            "13.36138933897018433",
            "38.11555639549629859",
            "15.08726745843887329",
            "37.50266842333162032"
        ]
    );
    assert_eq!(
        t.r(&["GEOHASH", "Sicily", "Palermo", "Catania", "nowhere"]),
        Reply::Array(vec![
            Reply::Bulk(b("sqc8b49rny0")),
            Reply::Bulk(b("sqdtr74hyu0")),
            Reply::Nil
        ])
    );
    for (unit, want) in [
        ("m", "166274.1516"),
        ("km", "166.2742"),
        ("mi", "103.3182"),
        ("FT", "545518.8700"),
    ] {
        assert_eq!(
            t.r(&["GEODIST", "Sicily", "Palermo", "Catania", unit]),
            Reply::Bulk(b(want)),
            "{unit}"
        );
    }
    assert_eq!(
        t.r(&["GEODIST", "Sicily", "Palermo", "nowhere"]),
        Reply::Nil
    );
    assert_eq!(t.r(&["GEODIST", "nokey", "a", "b"]), Reply::Nil);
    // NX, XX and CH are ZADD's.
    assert_eq!(
        t.w(&["GEOADD", "Sicily", "XX", "CH", "13.5", "38.1", "Palermo", "1", "1", "Rome"]),
        Reply::Int(1)
    );
    assert_eq!(
        t.w(&["GEOADD", "Sicily", "NX", "13.6", "38.1", "Palermo", "1", "1", "Rome"]),
        Reply::Int(1)
    );
    assert_eq!(t.r(&["ZCARD", "Sicily"]), Reply::Int(3));
    assert_eq!(
        coords(&t.r(&["GEOPOS", "Sicily", "Palermo"]))[0],
        "13.50000053644180298"
    );
}

fn searches(kind: EngineKind) {
    let mut t = T::new(kind);
    sicily(&mut t);
    let near = Reply::Array(vec![
        Reply::Array(vec![Reply::Bulk(b("Catania")), Reply::Bulk(b("56.4413"))]),
        Reply::Array(vec![Reply::Bulk(b("Palermo")), Reply::Bulk(b("190.4424"))]),
    ]);
    assert_eq!(
        t.w(&[
            "GEORADIUS",
            "Sicily",
            "15",
            "37",
            "200",
            "km",
            "WITHDIST",
            "ASC"
        ]),
        near
    );
    assert_eq!(
        t.r(&[
            "GEORADIUS_RO",
            "Sicily",
            "15",
            "37",
            "200",
            "km",
            "WITHDIST",
            "ASC"
        ]),
        near
    );
    assert_eq!(
        t.r(&[
            "GEOSEARCH",
            "Sicily",
            "FROMLONLAT",
            "15",
            "37",
            "BYRADIUS",
            "200",
            "km",
            "ASC",
            "WITHDIST"
        ]),
        near
    );
    assert_eq!(
        t.r(&["GEORADIUS_RO", "Sicily", "15", "37", "100", "km"]),
        bulks(&["Catania"])
    );
    assert_eq!(
        t.r(&[
            "GEORADIUS_RO",
            "Sicily",
            "15",
            "37",
            "200",
            "km",
            "DESC",
            "COUNT",
            "1"
        ]),
        bulks(&["Palermo"])
    );
    // A box 400 km wide and 150 km high holds both; 100 km wide, one.
    assert_eq!(
        t.r(&[
            "GEOSEARCH",
            "Sicily",
            "FROMLONLAT",
            "14",
            "38",
            "BYBOX",
            "400",
            "150",
            "km",
            "ASC"
        ]),
        bulks(&["Palermo", "Catania"])
    );
    assert_eq!(
        t.r(&[
            "GEOSEARCH",
            "Sicily",
            "FROMMEMBER",
            "Palermo",
            "BYBOX",
            "100",
            "100",
            "km"
        ]),
        bulks(&["Palermo"])
    );
    let hashed = t.r(&[
        "GEORADIUSBYMEMBER_RO",
        "Sicily",
        "Palermo",
        "1",
        "km",
        "WITHHASH",
        "WITHCOORD",
    ]);
    let Reply::Array(items) = &hashed else {
        panic!("{hashed:?}");
    };
    let Reply::Array(first) = &items[0] else {
        panic!("{hashed:?}");
    };
    assert_eq!(first[0], Reply::Bulk(b("Palermo")));
    assert_eq!(first[1], Reply::Int(3_479_099_956_230_698));
    assert_eq!(
        coords(&first[2]),
        ["13.36138933897018433", "38.11555639549629859"]
    );
    // ANY stops at COUNT matches, in the order the cells are scanned.
    let any = t.r(&[
        "GEOSEARCH",
        "Sicily",
        "FROMLONLAT",
        "15",
        "37",
        "BYRADIUS",
        "500",
        "km",
        "COUNT",
        "1",
        "ANY",
    ]);
    let Reply::Array(found) = &any else {
        panic!("{any:?}");
    };
    assert_eq!(found.len(), 1);
    assert_eq!(
        t.r(&["GEORADIUS_RO", "nokey", "1", "1", "1", "km"]),
        bulks(&[])
    );
    assert_eq!(
        t.r(&[
            "GEOSEARCH",
            "nokey",
            "FROMMEMBER",
            "x",
            "BYRADIUS",
            "1",
            "km"
        ]),
        bulks(&[])
    );
}

fn store(kind: EngineKind) {
    let mut t = T::new(kind);
    sicily(&mut t);
    t.w(&["SET", "dst", "old", "EX", "100"]);
    let applied = t.apply(Op::Command {
        db: 0,
        args: cmd(&[
            "GEOSEARCHSTORE",
            "dst",
            "Sicily",
            "FROMLONLAT",
            "15",
            "37",
            "BYRADIUS",
            "200",
            "km",
            "STOREDIST",
        ]),
    });
    assert_eq!(applied.replies[0], Reply::Int(2));
    // A replaced key raises no "new" (Redis overwrites it).
    let events: Vec<(&str, &[u8])> = applied
        .events
        .iter()
        .map(|e| (e.event, &e.key[..]))
        .collect();
    assert_eq!(events, vec![("geosearchstore", &b"dst"[..])]);
    assert_eq!(t.r(&["TTL", "dst"]), Reply::Int(-1));
    let Reply::Double(d) = t.r(&["ZSCORE", "dst", "Palermo"]) else {
        panic!("no distance stored");
    };
    assert!((d - 190.4424).abs() < 0.0001, "{d}");
    // STORE keeps the cells, so the destination is a geo set itself.
    let applied = t.apply(Op::Command {
        db: 0,
        args: cmd(&[
            "GEORADIUS",
            "Sicily",
            "15",
            "37",
            "100",
            "km",
            "STORE",
            "dst2",
        ]),
    });
    assert_eq!(applied.replies[0], Reply::Int(1));
    assert_eq!(
        applied.events.last().map(|e| e.event),
        Some("georadiusstore")
    );
    assert_eq!(
        t.r(&["GEOHASH", "dst2", "Catania"]),
        bulks(&["sqdtr74hyu0"])
    );
    // Nothing found deletes the destination, with DEL's event; a missing source too.
    let applied = t.apply(Op::Command {
        db: 0,
        args: cmd(&["GEORADIUS", "Sicily", "0", "0", "1", "km", "STORE", "dst2"]),
    });
    assert_eq!(applied.replies[0], Reply::Int(0));
    let events: Vec<&str> = applied.events.iter().map(|e| e.event).collect();
    assert_eq!(events, vec!["del"]);
    assert_eq!(t.r(&["EXISTS", "dst2"]), Reply::Int(0));
    let applied = t.apply(Op::Command {
        db: 0,
        args: cmd(&[
            "GEOSEARCHSTORE",
            "dst",
            "nokey",
            "FROMMEMBER",
            "x",
            "BYRADIUS",
            "1",
            "km",
        ]),
    });
    assert_eq!(applied.replies[0], Reply::Int(0));
    assert_eq!(applied.events[0].event, "del");
    assert!(touched(&applied).iter().any(|(_, k)| &k[..] == b"dst"));
    assert_eq!(t.r(&["EXISTS", "dst"]), Reply::Int(0));
}

fn errors(kind: EngineKind) {
    let mut t = T::new(kind);
    sicily(&mut t);
    t.w(&["SET", "str", "x"]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["GEOADD", "k", "200", "1", "m"],
            "ERR invalid longitude,latitude pair 200.000000,1.000000",
        ),
        (
            &["GEOADD", "k", "1", "85.06", "m"],
            "ERR invalid longitude,latitude pair 1.000000,85.060000",
        ),
        (&["GEOADD", "k", "x", "1", "m"], "ERR value is not a valid float"),
        (&["GEOADD", "k", "NX", "XX", "1", "1", "m"], "ERR syntax error"),
        (&["GEOADD", "k", "1", "1", "m", "2"], "ERR syntax error"),
        (
            &["GEOADD", "str", "1", "1", "m"],
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
        (
            &["GEODIST", "Sicily", "Palermo", "Catania", "parsec"],
            "ERR unsupported unit provided. please use M, KM, FT, MI",
        ),
        (
            &["GEODIST", "Sicily", "Palermo", "Catania", "km", "x"],
            "ERR syntax error",
        ),
        (
            &["GEOPOS", "str", "a"],
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
        (
            &["GEORADIUS", "Sicily", "1", "1", "-1", "km"],
            "ERR radius cannot be negative",
        ),
        (
            &["GEORADIUS", "Sicily", "1", "1", "x", "km"],
            "ERR need numeric radius",
        ),
        (
            &["GEORADIUS", "Sicily", "1", "1", "1", "km", "COUNT", "0"],
            "ERR COUNT must be > 0",
        ),
        (
            &["GEORADIUS", "Sicily", "1", "1", "1", "km", "COUNT"],
            "ERR syntax error",
        ),
        (
            &["GEORADIUS", "Sicily", "1", "1", "1", "km", "ANY"],
            "ERR the ANY argument requires COUNT argument",
        ),
        (
            &["GEORADIUS", "Sicily", "1", "1", "1", "km", "STORE", "d", "WITHDIST"],
            "ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options",
        ),
        (
            &["GEORADIUS_RO", "Sicily", "1", "1", "1", "km", "STORE", "d"],
            "ERR syntax error",
        ),
        (
            &["GEORADIUSBYMEMBER", "Sicily", "nobody", "1", "km"],
            "ERR could not decode requested zset member",
        ),
        (
            &["geosearch", "Sicily", "BYRADIUS", "1", "km", "ASC", "WITHDIST"],
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for geosearch",
        ),
        (
            &["GEOSEARCH", "Sicily", "FROMLONLAT", "1", "1", "ASC", "WITHDIST"],
            "ERR exactly one of BYRADIUS and BYBOX can be specified for GEOSEARCH",
        ),
        (
            &["GEOSEARCH", "Sicily", "FROMLONLAT", "1", "1", "FROMMEMBER", "Palermo"],
            "ERR syntax error",
        ),
        (
            &["GEOSEARCH", "Sicily", "FROMLONLAT", "1", "1", "BYBOX", "1", "-1", "km"],
            "ERR height or width cannot be negative",
        ),
        (
            &["GEOSEARCH", "Sicily", "FROMLONLAT", "1", "1", "BYBOX", "w", "1", "km"],
            "ERR need numeric width",
        ),
        (
            &["GEOSEARCH", "Sicily", "FROMLONLAT", "1", "1", "BYRADIUS", "1", "km", "STORE", "d"],
            "ERR syntax error",
        ),
        (
            &[
                "GEOSEARCHSTORE", "d", "Sicily", "FROMLONLAT", "1", "1", "BYRADIUS", "1", "km",
                "WITHCOORD",
            ],
            "ERR GEOSEARCHSTORE is not compatible with WITHDIST, WITHHASH and WITHCOORD options",
        ),
        (
            &["GEOSEARCH", "str", "FROMLONLAT", "1", "1", "BYRADIUS", "1", "km"],
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
    ];
    for (args, want) in cases {
        assert_eq!(t.w(args), Reply::err(*want), "{args:?}");
    }
    assert_eq!(t.r(&["EXISTS", "k", "d"]), Reply::Int(0));
    assert_eq!(t.r(&["ZCARD", "Sicily"]), Reply::Int(2));
}

/// A radius search finds exactly the members whose stored point lies within the
/// radius: the cells it scans cover the circle, wherever it is and however large.
fn matches_every_distance(kind: EngineKind) {
    let mut runner = TestRunner::new(Config {
        cases: 12,
        ..Config::default()
    });
    let point = (-180.0f64..180.0, -85.0f64..85.0);
    let strategy = (
        proptest::collection::vec(point.clone(), 1..60),
        point,
        prop_oneof![1.0f64..50.0, 50.0f64..2_000.0, 2_000.0f64..20_000.0],
        0.0f64..2.0,
    );
    runner
        .run(&strategy, |(points, centre, radius_km, spread)| {
            let mut t = T::new(kind);
            // Points around the centre as often as anywhere on Earth. Not on the 180th
            // meridian: a point there is stored past the 52 bits (2^26 columns from the
            // west edge), outside every cell's score range, in Redis as here.
            let mut args = vec!["GEOADD".to_string(), "g".to_string()];
            for (i, (lon, lat)) in points.iter().enumerate() {
                let (lon, lat) = if i % 2 == 0 {
                    (
                        (centre.0 + (lon / 180.0) * spread * radius_km / 100.0)
                            .clamp(-179.999, 179.999),
                        (centre.1 + (lat / 85.0) * spread * radius_km / 100.0).clamp(-85.0, 85.0),
                    )
                } else {
                    (*lon, *lat)
                };
                args.extend([lon.to_string(), lat.to_string(), format!("p{i}")]);
            }
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            t.w(&refs);
            let (clon, clat, r) = (
                centre.0.to_string(),
                centre.1.to_string(),
                radius_km.to_string(),
            );
            let got = t.r(&[
                "GEOSEARCH",
                "g",
                "FROMLONLAT",
                &clon,
                &clat,
                "BYRADIUS",
                &r,
                "km",
                "WITHDIST",
            ]);
            let mut got: Vec<String> = match got {
                Reply::Array(items) => items
                    .into_iter()
                    .filter_map(|i| match i {
                        Reply::Array(mut pair) => match pair.swap_remove(0) {
                            Reply::Bulk(m) => Some(String::from_utf8_lossy(&m).into_owned()),
                            _ => None,
                        },
                        _ => None,
                    })
                    .collect(),
                other => return Err(TestCaseError::fail(format!("{other:?}"))),
            };
            got.sort();
            // The model: every member's decoded point, measured from the centre.
            let c = (centre.0, centre.1);
            let mut want = Vec::new();
            for i in 0..points.len() {
                let m = format!("p{i}");
                let Reply::Double(score) = t.r(&["ZSCORE", "g", &m]) else {
                    return Err(TestCaseError::fail("no score"));
                };
                let (lon, lat) = geohash::point_of(score);
                if geohash::distance(c.0, c.1, lon, lat) <= radius_km * 1000.0 {
                    want.push(m);
                }
            }
            want.sort();
            prop_assert_eq!(got, want);
            Ok(())
        })
        .expect("GEOSEARCH finds every member within the radius");
}

all_engines!(
    add_and_read,
    searches,
    store,
    errors,
    matches_every_distance
);
