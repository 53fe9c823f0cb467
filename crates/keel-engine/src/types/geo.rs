//! GEO commands: points kept in a sorted set, each member's score the 52-bit geohash
//! cell of its longitude and latitude (see [`crate::geohash`]), so that a geo set is
//! also a sorted set to every ZSET command, as in Redis.
//!
//! A search (GEOSEARCH, GEORADIUS and their variants) scans the score ranges of at most
//! nine cells around its centre, cells about as large as the search, and keeps the
//! points inside the circle or box. O(n + log m) for n points in those cells of m
//! members, plus O(r log r) to sort r results.

use bytes::Bytes;

use crate::args::{eq_ci, float_arg, int_arg, parse_f64};
use crate::command::{flags::*, CommandSpec};
use crate::error::{fail, CmdError, CmdResult};
use crate::exec::Exec;
use crate::geohash::{self, Shape};
use crate::reply::{errors, Reply};
use crate::types::zset::{self, GeoSet};

macro_rules! geocmd {
    ($name:literal, $arity:expr, $flags:expr, $first:expr, $last:expr, $summary:literal, $handler:expr) => {
        CommandSpec {
            name: $name,
            arity: $arity,
            flags: $flags,
            first_key: $first,
            last_key: $last,
            step: 1,
            group: "geo",
            summary: $summary,
            handler: $handler,
        }
    };
}

/// The GEO commands. GEORADIUS and GEORADIUSBYMEMBER may name a second key after STORE
/// or STOREDIST (see `command::movable_key_positions`).
pub static COMMANDS: &[CommandSpec] = &[
    geocmd!("geoadd", -5, WRITE | DENYOOM, 1, 1,
        "Adds one or more members to a geospatial index. The key is created if it doesn't exist.", geoadd),
    geocmd!("geodist", -4, READONLY, 1, 1,
        "Returns the distance between two members of a geospatial index.", geodist),
    geocmd!("geohash", -2, READONLY, 1, 1,
        "Returns members from a geospatial index as geohash strings.", geohash),
    geocmd!("geopos", -2, READONLY, 1, 1,
        "Returns the longitude and latitude of members from a geospatial index.", geopos),
    geocmd!("georadius", -6, WRITE | DENYOOM, 1, 1,
        "Queries a geospatial index for members within a distance from a coordinate, optionally stores the result.", georadius),
    geocmd!("georadius_ro", -6, READONLY, 1, 1,
        "Returns members from a geospatial index that are within a distance from a coordinate.", georadius_ro),
    geocmd!("georadiusbymember", -5, WRITE | DENYOOM, 1, 1,
        "Queries a geospatial index for members within a distance from a member, optionally stores the result.", georadiusbymember),
    geocmd!("georadiusbymember_ro", -5, READONLY, 1, 1,
        "Returns members from a geospatial index that are within a distance from a member.", georadiusbymember_ro),
    geocmd!("geosearch", -7, READONLY, 1, 1,
        "Queries a geospatial index for members inside an area of a box or a circle.", geosearch),
    geocmd!("geosearchstore", -8, WRITE | DENYOOM, 1, 2,
        "Queries a geospatial index for members inside an area of a box or a circle, optionally stores the result.", geosearchstore),
];

const NO_MEMBER: &str = "ERR could not decode requested zset member";

/// Reads a longitude and a latitude, refusing points outside the stored ranges.
fn lon_lat(lon: &[u8], lat: &[u8]) -> CmdResult<(f64, f64)> {
    let (lon, lat) = (float_arg(lon)?, float_arg(lat)?);
    if !(geohash::LON_MIN..=geohash::LON_MAX).contains(&lon)
        || !(geohash::LAT_MIN..=geohash::LAT_MAX).contains(&lat)
    {
        return fail(format!(
            "ERR invalid longitude,latitude pair {lon:.6},{lat:.6}"
        ));
    }
    Ok((lon, lat))
}

/// Meters per `unit`.
fn unit(u: &[u8]) -> CmdResult<f64> {
    if eq_ci(u, "m") {
        Ok(1.0)
    } else if eq_ci(u, "km") {
        Ok(1000.0)
    } else if eq_ci(u, "ft") {
        Ok(0.3048)
    } else if eq_ci(u, "mi") {
        Ok(1609.34)
    } else {
        fail("ERR unsupported unit provided. please use M, KM, FT, MI")
    }
}

/// A float argument, or `ERR <what>` as the error (Redis names the argument).
fn length(arg: &[u8], what: &str) -> CmdResult<f64> {
    parse_f64(arg).ok_or_else(|| CmdError::Reply(Reply::err(format!("ERR {what}"))))
}

/// `<radius> <unit>`: the radius in its unit and meters per unit.
fn radius_arg(r: &[u8], u: &[u8]) -> CmdResult<(f64, f64)> {
    let radius = length(r, "need numeric radius")?;
    if radius < 0.0 {
        return fail("ERR radius cannot be negative");
    }
    Ok((radius, unit(u)?))
}

/// `<width> <height> <unit>`: both in their unit and meters per unit.
fn box_arg(w: &[u8], h: &[u8], u: &[u8]) -> CmdResult<(f64, f64, f64)> {
    let width = length(w, "need numeric width")?;
    let height = length(h, "need numeric height")?;
    if width < 0.0 || height < 0.0 {
        return fail("ERR height or width cannot be negative");
    }
    Ok((width, height, unit(u)?))
}

/// A distance as Redis prints it: four decimals, rounded half to even.
fn distance_text(d: f64) -> Bytes {
    let scaled = (d * 10_000.0).round_ties_even();
    // A distance on Earth fits easily; `as` saturates anything that does not.
    let v = scaled as i64;
    let (sign, abs) = if v < 0 {
        ("-", v.unsigned_abs())
    } else {
        ("", v as u64)
    };
    Bytes::from(format!("{sign}{}.{:04}", abs / 10_000, abs % 10_000))
}

fn geoadd(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let (mut nx, mut xx, mut ch) = (false, false, false);
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        if eq_ci(a, "NX") {
            nx = true;
        } else if eq_ci(a, "XX") {
            xx = true;
        } else if eq_ci(a, "CH") {
            ch = true;
        } else {
            break;
        }
        i += 1;
    }
    let rest = &args[i..];
    if rest.is_empty() || !rest.len().is_multiple_of(3) || (nx && xx) {
        return fail(errors::SYNTAX);
    }
    let mut pairs = Vec::with_capacity(rest.len() / 3);
    for t in rest.chunks_exact(3) {
        let (lon, lat) = lon_lat(&t[0], &t[1])?;
        let Some(score) = geohash::score_of(lon, lat) else {
            return fail(format!(
                "ERR invalid longitude,latitude pair {lon:.6},{lat:.6}"
            ));
        };
        pairs.push((score as f64, t[2].clone()));
    }
    zset::add_scored(ex, &args[1], nx, xx, ch, &pairs)
}

/// The scores of the members `args[2..]` of the set at `args[1]` (None: not a member).
fn member_scores(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Vec<Option<f64>>> {
    let Some(set) = zset::open(ex, &args[1])? else {
        return Ok(vec![None; args.len() - 2]);
    };
    args[2..].iter().map(|m| set.score(ex, m)).collect()
}

fn geopos(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let out = member_scores(ex, args)?
        .into_iter()
        .map(|score| match score {
            Some(score) => {
                let (lon, lat) = geohash::point_of(score);
                Reply::Array(vec![Reply::HumanDouble(lon), Reply::HumanDouble(lat)])
            }
            None => Reply::NilArray,
        })
        .collect();
    Ok(Reply::Array(out))
}

fn geohash(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let out = member_scores(ex, args)?
        .into_iter()
        .map(|score| {
            score
                .and_then(geohash::geohash_string)
                .map_or(Reply::Nil, |h| Reply::Bulk(Bytes::from(h)))
        })
        .collect();
    Ok(Reply::Array(out))
}

fn geodist(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let to_meters = match args.len() {
        4 => 1.0,
        5 => unit(&args[4])?,
        _ => return fail(errors::SYNTAX),
    };
    let Some(set) = zset::open(ex, &args[1])? else {
        return Ok(Reply::Nil);
    };
    let (Some(a), Some(b)) = (set.score(ex, &args[2])?, set.score(ex, &args[3])?) else {
        return Ok(Reply::Nil);
    };
    let ((x1, y1), (x2, y2)) = (geohash::point_of(a), geohash::point_of(b));
    Ok(Reply::Bulk(distance_text(
        geohash::distance(x1, y1, x2, y2) / to_meters,
    )))
}

/// Which search command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// GEORADIUS key lon lat radius unit ...
    Radius,
    /// GEORADIUSBYMEMBER key member radius unit ...
    ByMember,
    /// GEOSEARCH key FROM... BY... ...
    Search,
    /// GEOSEARCHSTORE dst key FROM... BY... ...
    SearchStore,
}

/// Result order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// One point found.
struct Found {
    member: Bytes,
    score: f64,
    lon: f64,
    lat: f64,
    /// Meters from the centre until the reply divides by the unit.
    dist: f64,
}

fn georadius(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    search(ex, args, Form::Radius, true)
}

fn georadius_ro(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    search(ex, args, Form::Radius, false)
}

fn georadiusbymember(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    search(ex, args, Form::ByMember, true)
}

fn georadiusbymember_ro(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    search(ex, args, Form::ByMember, false)
}

fn geosearch(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    search(ex, args, Form::Search, false)
}

fn geosearchstore(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    search(ex, args, Form::SearchStore, true)
}

/// The centre of a search from `member` of `set`.
fn member_centre(ex: &Exec, set: &GeoSet, member: &[u8]) -> CmdResult<(f64, f64)> {
    match set.score(ex, member)? {
        Some(score) => Ok(geohash::point_of(score)),
        None => fail(NO_MEMBER),
    }
}

/// Every search command (Redis's `georadiusGeneric`), checking its arguments in
/// Redis's order so that each mistake gets Redis's error. `store_ok`: the command may
/// write (GEORADIUS's STORE and STOREDIST, GEOSEARCHSTORE).
fn search(ex: &mut Exec, args: &[Bytes], form: Form, store_ok: bool) -> CmdResult<Reply> {
    let src_at = if form == Form::SearchStore { 2 } else { 1 };
    let set = zset::open(ex, &args[src_at])?;
    let mut centre: Option<(f64, f64)> = None;
    // (shape in its unit, meters per unit)
    let mut shape: Option<(Shape, f64)> = None;
    let mut store: Option<Bytes> = None;
    let base = match form {
        Form::Radius => {
            centre = Some(lon_lat(&args[2], &args[3])?);
            let (r, conv) = radius_arg(&args[4], &args[5])?;
            shape = Some((Shape::Circle { radius: r }, conv));
            6
        }
        Form::ByMember => {
            if let Some(s) = &set {
                centre = Some(member_centre(ex, s, &args[2])?);
                let (r, conv) = radius_arg(&args[3], &args[4])?;
                shape = Some((Shape::Circle { radius: r }, conv));
            }
            5
        }
        Form::Search => 2,
        Form::SearchStore => {
            store = Some(args[1].clone());
            3
        }
    };
    let searching = matches!(form, Form::Search | Form::SearchStore);
    let store_event = if searching {
        "geosearchstore"
    } else {
        "georadiusstore"
    };
    let (mut withdist, mut withhash, mut withcoord, mut any) = (false, false, false, false);
    let (mut from_member, mut from_lonlat, mut by_radius, mut by_box) =
        (false, false, false, false);
    let mut storedist = false;
    let mut sort = Sort::None;
    let mut count: i64 = 0;
    let mut i = base;
    while i < args.len() {
        let a = &args[i];
        let left = args.len() - i - 1;
        if eq_ci(a, "WITHDIST") {
            withdist = true;
        } else if eq_ci(a, "WITHHASH") {
            withhash = true;
        } else if eq_ci(a, "WITHCOORD") {
            withcoord = true;
        } else if eq_ci(a, "ANY") {
            any = true;
        } else if eq_ci(a, "ASC") {
            sort = Sort::Asc;
        } else if eq_ci(a, "DESC") {
            sort = Sort::Desc;
        } else if eq_ci(a, "COUNT") && left >= 1 {
            count = int_arg(&args[i + 1])?;
            if count <= 0 {
                return fail("ERR COUNT must be > 0");
            }
            i += 1;
        } else if (eq_ci(a, "STORE") || eq_ci(a, "STOREDIST"))
            && left >= 1
            && store_ok
            && !searching
        {
            store = Some(args[i + 1].clone());
            storedist = eq_ci(a, "STOREDIST");
            i += 1;
        } else if eq_ci(a, "STOREDIST") && form == Form::SearchStore {
            storedist = true;
        } else if eq_ci(a, "FROMMEMBER") && left >= 1 && searching && !from_lonlat {
            if let Some(s) = &set {
                centre = Some(member_centre(ex, s, &args[i + 1])?);
            }
            from_member = true;
            i += 1;
        } else if eq_ci(a, "FROMLONLAT") && left >= 2 && searching && !from_member {
            centre = Some(lon_lat(&args[i + 1], &args[i + 2])?);
            from_lonlat = true;
            i += 2;
        } else if eq_ci(a, "BYRADIUS") && left >= 2 && searching && !by_box {
            let (r, conv) = radius_arg(&args[i + 1], &args[i + 2])?;
            shape = Some((Shape::Circle { radius: r }, conv));
            by_radius = true;
            i += 2;
        } else if eq_ci(a, "BYBOX") && left >= 3 && searching && !by_radius {
            let (w, h, conv) = box_arg(&args[i + 1], &args[i + 2], &args[i + 3])?;
            shape = Some((
                Shape::Box {
                    width: w,
                    height: h,
                },
                conv,
            ));
            by_box = true;
            i += 3;
        } else {
            return fail(errors::SYNTAX);
        }
        i += 1;
    }
    if store.is_some() && (withdist || withhash || withcoord) {
        return fail(if form == Form::SearchStore {
            "ERR GEOSEARCHSTORE is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        } else {
            "ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        });
    }
    let name = String::from_utf8_lossy(&args[0]);
    if searching && !(from_member || from_lonlat) {
        return fail(format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        ));
    }
    if searching && !(by_radius || by_box) {
        return fail(format!(
            "ERR exactly one of BYRADIUS and BYBOX can be specified for {name}"
        ));
    }
    if any && count == 0 {
        return fail("ERR the ANY argument requires COUNT argument");
    }
    let (Some(set), Some(centre), Some((shape, conv))) = (set, centre, shape) else {
        // No source set (the only way to get here without a centre or a shape).
        return match store {
            Some(dst) => {
                zset::store_zset(ex, &dst, &[], store_event)?;
                Ok(Reply::Int(0))
            }
            None => Ok(Reply::Array(Vec::new())),
        };
    };
    if count != 0 && sort == Sort::None && !any {
        sort = Sort::Asc;
    }
    let limit = if any { count as usize } else { 0 };
    let meters = match shape {
        Shape::Circle { radius } => Shape::Circle {
            radius: radius * conv,
        },
        Shape::Box { width, height } => Shape::Box {
            width: width * conv,
            height: height * conv,
        },
    };
    let mut found: Vec<Found> = Vec::new();
    for cell in geohash::search_cells(meters, centre.0, centre.1) {
        if limit > 0 && found.len() >= limit {
            break;
        }
        let (min, max) = geohash::score_range(cell);
        set.each_in(ex, min as f64, max as f64, |member, score| {
            let (lon, lat) = geohash::point_of(score);
            if let Some(dist) = geohash::within(meters, centre, (lon, lat)) {
                found.push(Found {
                    member,
                    score,
                    lon,
                    lat,
                    dist,
                });
            }
            !(limit > 0 && found.len() >= limit)
        })?;
    }
    if found.is_empty() && store.is_none() {
        return Ok(Reply::Array(Vec::new()));
    }
    match sort {
        Sort::Asc => found.sort_by(|a, b| a.dist.total_cmp(&b.dist)),
        Sort::Desc => found.sort_by(|a, b| b.dist.total_cmp(&a.dist)),
        Sort::None => {}
    }
    if count > 0 {
        found.truncate(usize::try_from(count).unwrap_or(usize::MAX));
    }
    for f in &mut found {
        f.dist /= conv;
    }
    if let Some(dst) = store {
        let items: Vec<(Bytes, f64)> = found
            .into_iter()
            .map(|f| (f.member, if storedist { f.dist } else { f.score }))
            .collect();
        zset::store_zset(ex, &dst, &items, store_event)?;
        return Ok(Reply::Int(items.len() as i64));
    }
    let extras = usize::from(withdist) + usize::from(withhash) + usize::from(withcoord);
    let out = found
        .into_iter()
        .map(|f| {
            if extras == 0 {
                return Reply::Bulk(f.member);
            }
            let mut item = Vec::with_capacity(extras + 1);
            item.push(Reply::Bulk(f.member));
            if withdist {
                item.push(Reply::Bulk(distance_text(f.dist)));
            }
            if withhash {
                item.push(Reply::Int(f.score as i64));
            }
            if withcoord {
                item.push(Reply::Array(vec![
                    Reply::HumanDouble(f.lon),
                    Reply::HumanDouble(f.lat),
                ]));
            }
            Reply::Array(item)
        })
        .collect();
    Ok(Reply::Array(out))
}

/// GEORADIUS's and GEORADIUSBYMEMBER's keys, found as Redis's key specs find them: the
/// source, then the argument after the first STORE and after the first STOREDIST from
/// the first option on (`options_at`: 6 for GEORADIUS, 5 for GEORADIUSBYMEMBER).
pub(crate) fn radius_key_positions(args: &[Bytes], options_at: usize) -> Vec<usize> {
    let mut keys = vec![1];
    for keyword in ["STORE", "STOREDIST"] {
        let last = args.len().saturating_sub(1);
        if let Some(at) = (options_at..last).find(|&i| eq_ci(&args[i], keyword)) {
            keys.push(at + 1);
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_print_with_four_decimals() {
        assert_eq!(distance_text(166_274.151_563_93), "166274.1516");
        assert_eq!(distance_text(0.0), "0.0000");
        assert_eq!(distance_text(0.000_05), "0.0000");
        assert_eq!(distance_text(0.000_150_000_1), "0.0002");
        assert_eq!(distance_text(-1.5), "-1.5000");
    }

    #[test]
    fn store_keys_of_georadius() {
        let a = |v: &[&str]| {
            v.iter()
                .map(|s| Bytes::from(s.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            radius_key_positions(
                &a(&["GEORADIUS", "k", "1", "2", "3", "km", "STORE", "d"]),
                6
            ),
            vec![1, 7]
        );
        assert_eq!(
            radius_key_positions(
                &a(&[
                    "GEORADIUSBYMEMBER",
                    "k",
                    "m",
                    "3",
                    "km",
                    "store",
                    "a",
                    "storedist",
                    "b"
                ]),
                5
            ),
            vec![1, 6, 8]
        );
        // A keyword in the last place names no key; one before the options is a value.
        assert_eq!(
            radius_key_positions(&a(&["GEORADIUS", "k", "1", "2", "3", "km", "STORE"]), 6),
            vec![1]
        );
        assert_eq!(
            radius_key_positions(&a(&["GEORADIUSBYMEMBER", "k", "store", "3", "km"]), 5),
            vec![1]
        );
    }
}
