//! Geohash arithmetic for the GEO commands: a point's 52-bit cell (the sorted-set score
//! a member is stored with), the cells a search looks in, and distances on the sphere.
//!
//! The numbers follow Redis's geohash code exactly, because they are visible: the score
//! GEOADD stores, the coordinates GEOPOS decodes from it, the GEOHASH string, the
//! WITHDIST distance, and which cells a GEOSEARCH scans (hence which members ANY
//! returns first). Longitude and latitude each get 26 bits, interleaved with latitude
//! in the even bits; the latitude range is Web Mercator's (±85.05112878), except for
//! GEOHASH's strings, which use the standard ±90.

/// Bits per coordinate in a stored score (26 * 2 = 52, a double's mantissa).
pub const STEP_MAX: u8 = 26;
/// Smallest longitude a point may have.
pub const LON_MIN: f64 = -180.0;
/// Largest longitude a point may have.
pub const LON_MAX: f64 = 180.0;
/// Smallest latitude a point may have (Web Mercator's limit).
pub const LAT_MIN: f64 = -85.051_128_78;
/// Largest latitude a point may have.
pub const LAT_MAX: f64 = 85.051_128_78;
/// The radius distances are computed with (Earth's quadratic mean radius, WGS-84).
pub const EARTH_RADIUS_M: f64 = 6_372_797.560_856;
/// Half the Mercator projection's width: where the step estimate stops doubling.
const MERCATOR_MAX: f64 = 20_037_726.37;

/// A cell: `step` bits of each coordinate, interleaved into `bits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    /// Interleaved bits, latitude in the even positions.
    pub bits: u64,
    /// Bits per coordinate (1..=26).
    pub step: u8,
}

/// A coordinate interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// Lower end.
    pub min: f64,
    /// Upper end.
    pub max: f64,
}

/// The rectangle a cell covers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Area {
    /// Longitudes covered.
    pub lon: Range,
    /// Latitudes covered.
    pub lat: Range,
}

/// The shape a search keeps points inside, in meters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// Within `radius` of the centre.
    Circle {
        /// Radius in meters.
        radius: f64,
    },
    /// Within a box centred on the centre, its sides along the meridian and parallel.
    Box {
        /// East-west extent in meters.
        width: f64,
        /// North-south extent in meters.
        height: f64,
    },
}

/// Spreads the low 32 bits of `v` to the even bit positions.
fn spread(v: u32) -> u64 {
    let mut x = u64::from(v);
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

/// Gathers the even bit positions of `v` into the low 32 bits.
fn squash(v: u64) -> u32 {
    let mut x = v & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x >> 16)) & 0x0000_0000_FFFF_FFFF;
    x as u32
}

/// The cell of `step` bits holding (`lon`, `lat`) within the given ranges; None outside
/// them or outside the stored ranges (or for a step out of 1..=32).
pub fn encode_in(lon_range: Range, lat_range: Range, lon: f64, lat: f64, step: u8) -> Option<Cell> {
    if !(1..=32).contains(&step)
        || !(LON_MIN..=LON_MAX).contains(&lon)
        || !(LAT_MIN..=LAT_MAX).contains(&lat)
        || !(lat_range.min..=lat_range.max).contains(&lat)
        || !(lon_range.min..=lon_range.max).contains(&lon)
    {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_off = (lat - lat_range.min) / (lat_range.max - lat_range.min) * scale;
    let lon_off = (lon - lon_range.min) / (lon_range.max - lon_range.min) * scale;
    // Truncated, as C converts a double argument to uint32_t.
    let bits = spread(lat_off as u32) | (spread(lon_off as u32) << 1);
    Some(Cell { bits, step })
}

/// The ranges points are stored within.
pub fn store_ranges() -> (Range, Range) {
    (
        Range {
            min: LON_MIN,
            max: LON_MAX,
        },
        Range {
            min: LAT_MIN,
            max: LAT_MAX,
        },
    )
}

/// The cell of `step` bits a stored point falls in (None outside the stored ranges).
pub fn encode(lon: f64, lat: f64, step: u8) -> Option<Cell> {
    let (lo, la) = store_ranges();
    encode_in(lo, la, lon, lat, step)
}

/// The rectangle `cell` covers.
pub fn decode_in(lon_range: Range, lat_range: Range, cell: Cell) -> Area {
    let lat_i = f64::from(squash(cell.bits));
    let lon_i = f64::from(squash(cell.bits >> 1));
    let scale = (1u64 << cell.step) as f64;
    let (lat_w, lon_w) = (lat_range.max - lat_range.min, lon_range.max - lon_range.min);
    Area {
        lat: Range {
            min: lat_range.min + (lat_i / scale) * lat_w,
            max: lat_range.min + ((lat_i + 1.0) / scale) * lat_w,
        },
        lon: Range {
            min: lon_range.min + (lon_i / scale) * lon_w,
            max: lon_range.min + ((lon_i + 1.0) / scale) * lon_w,
        },
    }
}

/// [`decode_in`] within the stored ranges.
pub fn decode(cell: Cell) -> Area {
    let (lo, la) = store_ranges();
    decode_in(lo, la, cell)
}

/// A 52-bit score: the cell's bits shifted to the top of 52.
pub fn align52(cell: Cell) -> u64 {
    cell.bits << (52 - u32::from(cell.step) * 2)
}

/// The score a point is stored with (None outside the stored ranges).
pub fn score_of(lon: f64, lat: f64) -> Option<u64> {
    encode(lon, lat, STEP_MAX).map(align52)
}

/// The point a stored score stands for: its cell's centre, kept within the ranges.
pub fn point_of(score: f64) -> (f64, f64) {
    // No GEO score is negative, but a sorted set's may be: x86's conversion, which
    // Redis gets from C's (undefined) cast, wraps it as a signed 64-bit number.
    let bits = if score < 0.0 {
        (score as i64) as u64
    } else {
        score as u64
    };
    let area = decode(Cell {
        bits,
        step: STEP_MAX,
    });
    let lon = ((area.lon.min + area.lon.max) / 2.0).clamp(LON_MIN, LON_MAX);
    let lat = ((area.lat.min + area.lat.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (lon, lat)
}

/// The standard 11-character geohash of a stored score (latitude range ±90).
pub fn geohash_string(score: f64) -> Option<String> {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (lon, lat) = point_of(score);
    let cell = encode_in(
        Range {
            min: -180.0,
            max: 180.0,
        },
        Range {
            min: -90.0,
            max: 90.0,
        },
        lon,
        lat,
        STEP_MAX,
    )?;
    // 52 bits give ten 5-bit characters; the eleventh has no bits left and is '0'.
    Some(
        (0..11)
            .map(|i| {
                let idx = if i == 10 {
                    0
                } else {
                    (cell.bits >> (52 - (i + 1) * 5)) & 0x1f
                };
                char::from(ALPHABET[idx as usize])
            })
            .collect(),
    )
}

fn deg_rad(d: f64) -> f64 {
    d * (std::f64::consts::PI / 180.0)
}

fn rad_deg(r: f64) -> f64 {
    r / (std::f64::consts::PI / 180.0)
}

/// The north-south distance between two latitudes, in meters.
fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_M * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// The great-circle distance between two points, in meters (haversine).
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let v = ((deg_rad(lon2) - deg_rad(lon1)) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let (lat1r, lat2r) = (deg_rad(lat1), deg_rad(lat2));
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

/// The distance from `centre` to `point` when the point is inside `shape` around it.
pub fn within(shape: Shape, centre: (f64, f64), point: (f64, f64)) -> Option<f64> {
    let ((x1, y1), (x2, y2)) = (centre, point);
    match shape {
        Shape::Circle { radius } => {
            let d = distance(x1, y1, x2, y2);
            (d <= radius).then_some(d)
        }
        Shape::Box { width, height } => {
            if lat_distance(y2, y1) > height / 2.0 || distance(x2, y2, x1, y2) > width / 2.0 {
                return None;
            }
            Some(distance(x1, y1, x2, y2))
        }
    }
}

/// The bits per coordinate of cells about as large as `range_m` at latitude `lat`.
fn steps_for_radius(range_m: f64, lat: f64) -> u8 {
    if range_m == 0.0 {
        return STEP_MAX;
    }
    let mut range = range_m;
    let mut step: i32 = 1;
    while range < MERCATOR_MAX {
        range *= 2.0;
        step += 1;
    }
    // Cells a little larger than the range, so that it falls in few of them.
    step -= 2;
    // Meridians draw together towards the poles.
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, i32::from(STEP_MAX)) as u8
}

/// Odd bit positions: longitude's.
const LON_BITS: u64 = 0xaaaa_aaaa_aaaa_aaaa;
/// Even bit positions: latitude's.
const LAT_BITS: u64 = 0x5555_5555_5555_5555;

/// Adds `d` (-1, 0 or 1, wrapping) to the coordinate whose bits are `own` (`LON_BITS`
/// or `LAT_BITS`): filling the other coordinate's positions with ones carries the
/// addition across them.
fn step_along(cell: Cell, own: u64, d: i8) -> u64 {
    if d == 0 {
        return cell.bits;
    }
    let shift = 64 - u32::from(cell.step) * 2;
    let other = !own;
    let mut v = cell.bits & own;
    let filler = other >> shift;
    if d > 0 {
        v = v.wrapping_add(filler + 1);
    } else {
        v |= filler;
        v = v.wrapping_sub(filler + 1);
    }
    (v & (own >> shift)) | (cell.bits & other)
}

/// The cell `dx` columns east and `dy` rows north of `cell` (-1, 0 or 1 each).
fn neighbour(cell: Cell, dx: i8, dy: i8) -> Cell {
    let moved = Cell {
        bits: step_along(cell, LON_BITS, dx),
        step: cell.step,
    };
    Cell {
        bits: step_along(moved, LAT_BITS, dy),
        step: cell.step,
    }
}

/// The bounding box of `shape` around (`lon`, `lat`): (min lon, min lat, max lon, max
/// lat). A box's east-west half-width is measured along its edge nearer the pole,
/// where it spans the most degrees.
pub fn bounding_box(shape: Shape, lon: f64, lat: f64) -> (f64, f64, f64, f64) {
    let (half_h, half_w) = match shape {
        Shape::Circle { radius } => (radius, radius),
        Shape::Box { width, height } => (height / 2.0, width / 2.0),
    };
    let lat_delta = rad_deg(half_h / EARTH_RADIUS_M);
    let lon_delta_top = rad_deg(half_w / EARTH_RADIUS_M / deg_rad(lat + lat_delta).cos());
    let lon_delta_bottom = rad_deg(half_w / EARTH_RADIUS_M / deg_rad(lat - lat_delta).cos());
    let lon_delta = if lat < 0.0 {
        lon_delta_bottom
    } else {
        lon_delta_top
    };
    (
        lon - lon_delta,
        lat - lat_delta,
        lon + lon_delta,
        lat + lat_delta,
    )
}

/// The cells a search of `shape` around (`lon`, `lat`) scans, in Redis's order: the
/// centre's cell, then north, south, east, west, north-east, north-west, south-east,
/// south-west; neighbours the bounding box does not reach are left out, and so is a
/// neighbour equal to the neighbour scanned before it (at the largest cells they
/// repeat).
pub fn search_cells(shape: Shape, lon: f64, lat: f64) -> Vec<Cell> {
    let (min_lon, min_lat, max_lon, max_lat) = bounding_box(shape, lon, lat);
    let radius = match shape {
        Shape::Circle { radius } => radius,
        Shape::Box { width, height } => ((width / 2.0).powi(2) + (height / 2.0).powi(2)).sqrt(),
    };
    let mut step = steps_for_radius(radius, lat);
    // The centre was checked against the stored ranges when it was parsed.
    let Some(mut centre) = encode(lon, lat, step) else {
        return Vec::new();
    };
    // When a neighbour does not reach the bounding box's edge, nine cells of this size
    // do not cover it: one step coarser does.
    let reaches = |c: Cell| {
        decode(neighbour(c, 0, 1)).lat.max >= max_lat
            && decode(neighbour(c, 0, -1)).lat.min <= min_lat
            && decode(neighbour(c, 1, 0)).lon.max >= max_lon
            && decode(neighbour(c, -1, 0)).lon.min <= min_lon
    };
    if step > 1 && !reaches(centre) {
        step -= 1;
        if let Some(c) = encode(lon, lat, step) {
            centre = c;
        }
    }
    let area = decode(centre);
    // (dx, dy) in Redis's order.
    const ORDER: [(i8, i8); 9] = [
        (0, 0),
        (0, 1),
        (0, -1),
        (1, 0),
        (-1, 0),
        (1, 1),
        (-1, 1),
        (1, -1),
        (-1, -1),
    ];
    let mut cells = Vec::with_capacity(9);
    // The last neighbour scanned: Redis compares with it only once one other than the
    // centre was scanned, so a first neighbour equal to the centre is scanned twice.
    let mut last: Option<Cell> = None;
    for (i, (dx, dy)) in ORDER.into_iter().enumerate() {
        if step >= 2 {
            // The centre's own cell already reaches past the box on that side.
            let useless = (dy < 0 && area.lat.min < min_lat)
                || (dy > 0 && area.lat.max > max_lat)
                || (dx < 0 && area.lon.min < min_lon)
                || (dx > 0 && area.lon.max > max_lon);
            if useless {
                continue;
            }
        }
        let c = neighbour(centre, dx, dy);
        if i > 0 {
            if last == Some(c) {
                continue;
            }
            last = Some(c);
        }
        cells.push(c);
    }
    cells
}

/// The scores of the points in `cell`: `[min, max)`.
pub fn score_range(cell: Cell) -> (u64, u64) {
    let next = Cell {
        bits: cell.bits + 1,
        step: cell.step,
    };
    (align52(cell), align52(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_round_trips() {
        for v in [0u32, 1, 0x3ff_ffff, 0xdead_beef, u32::MAX] {
            assert_eq!(squash(spread(v)), v);
            assert_eq!(squash(spread(v) << 1 >> 1), v);
        }
        assert_eq!(spread(0b11), 0b101);
    }

    #[test]
    fn palermo_scores_as_redis_does() {
        // redis-server 7.2: GEOADD Sicily 13.361389 38.115556 "Palermo"; ZSCORE gives
        // 3479099956230698, GEOPOS 13.36138933897018433 38.11555639549629859, GEOHASH
        // "sqc8b49rny0".
        let s = score_of(13.361389, 38.115556).expect("in range");
        assert_eq!(s, 3_479_099_956_230_698);
        let (lon, lat) = point_of(s as f64);
        assert_eq!(format!("{lon:.17}"), "13.36138933897018433");
        assert_eq!(format!("{lat:.17}"), "38.11555639549629859");
        assert_eq!(geohash_string(s as f64).as_deref(), Some("sqc8b49rny0"));
    }

    #[test]
    fn palermo_catania_distance() {
        // GEODIST Sicily Palermo Catania: "166274.1516" meters.
        let p = point_of(score_of(13.361389, 38.115556).expect("in range") as f64);
        let c = point_of(score_of(15.087269, 37.502669).expect("in range") as f64);
        let d = distance(p.0, p.1, c.0, c.1);
        assert!((d - 166_274.151_6).abs() < 0.0001, "{d}");
    }

    #[test]
    fn out_of_range_points_have_no_cell() {
        assert_eq!(score_of(181.0, 0.0), None);
        assert_eq!(score_of(0.0, 85.1), None);
        assert!(score_of(180.0, 85.051_128_78).is_some());
    }

    #[test]
    fn the_edge_is_inside() {
        let (a, b) = ((13.0, 38.0), (13.5, 38.2));
        let d = distance(a.0, a.1, b.0, b.1);
        assert_eq!(within(Shape::Circle { radius: d }, a, b), Some(d));
        assert_eq!(
            within(
                Shape::Circle {
                    radius: d * 0.999_999
                },
                a,
                b
            ),
            None
        );
        // A box measures each side on its own: 0.5 degrees of longitude at 38.2 N is
        // about 43.7 km, 0.2 of latitude about 22.2 km.
        let (w, h) = (
            2.0 * distance(a.0, b.1, b.0, b.1),
            2.0 * EARTH_RADIUS_M * (0.2f64).to_radians(),
        );
        assert!(within(
            Shape::Box {
                width: w,
                height: h * 1.000_001
            },
            a,
            b
        )
        .is_some());
        assert!(within(
            Shape::Box {
                width: w * 0.999,
                height: h * 2.0
            },
            a,
            b
        )
        .is_none());
        assert!(within(
            Shape::Box {
                width: w * 2.0,
                height: h * 0.999
            },
            a,
            b
        )
        .is_none());
    }

    #[test]
    fn neighbours_step_by_one_cell() {
        let c = encode(10.0, 10.0, 10).expect("in range");
        let a = decode(c);
        let e = decode(neighbour(c, 1, 0));
        let n = decode(neighbour(c, 0, 1));
        assert!((e.lon.min - a.lon.max).abs() < 1e-9);
        assert!((e.lat.min - a.lat.min).abs() < 1e-9);
        assert!((n.lat.min - a.lat.max).abs() < 1e-9);
        assert_eq!(neighbour(neighbour(c, -1, -1), 1, 1), c);
    }

    #[test]
    fn search_cells_cover_the_circle() {
        // Every point within the radius lies in one of the cells scanned.
        let (lon, lat, r) = (-73.9454966, 40.747533, 3_000.0);
        let cells = search_cells(Shape::Circle { radius: r }, lon, lat);
        assert!(!cells.is_empty() && cells.len() <= 9);
        for i in 0..360 {
            let bearing = f64::from(i).to_radians();
            let (dlat, dlon) = (
                rad_deg(r * 0.999 * bearing.cos() / EARTH_RADIUS_M),
                rad_deg(r * 0.999 * bearing.sin() / EARTH_RADIUS_M / deg_rad(lat).cos()),
            );
            let s = score_of(lon + dlon, lat + dlat).expect("in range");
            assert!(
                cells.iter().any(|c| {
                    let (lo, hi) = score_range(*c);
                    (lo..hi).contains(&s)
                }),
                "bearing {i} not covered"
            );
        }
    }
}
