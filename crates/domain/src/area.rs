//! Service areas: the polygons an organisation serves.

use ::geo::{Area, Coord, Intersects, LineString, Polygon, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::DomainError;
use crate::geo::GeoPoint;
use crate::ids::{AreaId, OrgId};

/// Most rings (outer plus holes) a service-area polygon may have.
pub const MAX_RINGS: usize = 16;
/// Most positions, over all rings, a service-area polygon may have.
pub const MAX_POSITIONS: usize = 10_000;
/// Longest area name, in characters.
pub const AREA_NAME_MAX_CHARS: usize = 100;

/// The fixed id of [`ServiceArea::shuangfu_demo`], so seeding it is idempotent.
pub const SHUANGFU_DEMO_AREA_ID: AreaId =
    AreaId(Uuid::from_u128(0x5b1f_0c2e_7d4a_4e8b_9c3f_2a6d_1e0b_4f7a));

/// A GeoJSON `Polygon` geometry (RFC 7946) as it travels in the API:
/// `{"type": "Polygon", "coordinates": [[[lng, lat], ...], ...]}`.
///
/// Just the wire shape; [`ServiceArea::new`] is where it is checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeoJsonPolygon {
    /// Must be `"Polygon"`.
    pub r#type: String,
    /// Rings of `[lng, lat]` positions: the outer boundary first, then any holes.
    pub coordinates: Vec<Vec<[f64; 2]>>,
}

impl GeoJsonPolygon {
    /// A polygon with one outer ring and no holes.
    pub fn new(outer: Vec<[f64; 2]>) -> Self {
        Self {
            r#type: "Polygon".to_owned(),
            coordinates: vec![outer],
        }
    }
}

/// An area an organisation serves; orders outside every area are refused.
///
/// The polygon is always valid: one outer ring and optionally holes (up to
/// [`MAX_RINGS`] rings in all, e.g. to cut out a lake or a closed site), each
/// ring closed with at least 4 positions of valid coordinates, no
/// self-intersection, holes inside the outer ring, non-zero area. Either
/// winding order is accepted. Rings crossing the antimeridian are not
/// supported (not a concern for a city district).
///
/// JSON: `{"id", "org_id", "name", "polygon": GeoJsonPolygon}`; deserialising validates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ServiceAreaDto", into = "ServiceAreaDto")]
pub struct ServiceArea {
    pub id: AreaId,
    pub org_id: OrgId,
    pub name: String,
    polygon: Polygon<f64>,
}

#[derive(Serialize, Deserialize)]
struct ServiceAreaDto {
    id: AreaId,
    org_id: OrgId,
    name: String,
    polygon: GeoJsonPolygon,
}

impl TryFrom<ServiceAreaDto> for ServiceArea {
    type Error = DomainError;

    fn try_from(d: ServiceAreaDto) -> Result<Self, Self::Error> {
        ServiceArea::new(d.id, d.org_id, d.name, d.polygon)
    }
}

impl From<ServiceArea> for ServiceAreaDto {
    fn from(a: ServiceArea) -> Self {
        ServiceAreaDto {
            polygon: a.to_geojson(),
            id: a.id,
            org_id: a.org_id,
            name: a.name,
        }
    }
}

impl ServiceArea {
    /// Checks the name (trimmed, required, at most [`AREA_NAME_MAX_CHARS`]) and
    /// the polygon (`invalid_polygon`, see the type's documentation).
    pub fn new(
        id: AreaId,
        org_id: OrgId,
        name: String,
        polygon: GeoJsonPolygon,
    ) -> Result<Self, DomainError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(DomainError::Required { field: "name" });
        }
        if name.chars().count() > AREA_NAME_MAX_CHARS {
            return Err(DomainError::TooLong {
                field: "name",
                max: AREA_NAME_MAX_CHARS,
            });
        }
        Ok(Self {
            id,
            org_id,
            name: name.to_owned(),
            polygon: polygon_from_geojson(&polygon)?,
        })
    }

    /// Whether the point is in the area; a point on the boundary counts as inside.
    pub fn contains(&self, p: &GeoPoint) -> bool {
        self.polygon.intersects(&p.to_point())
    }

    /// The first of `areas` containing `p`, or `outside_service_area`.
    pub fn covering<'a>(
        areas: impl IntoIterator<Item = &'a ServiceArea>,
        p: &GeoPoint,
    ) -> Result<&'a ServiceArea, DomainError> {
        areas
            .into_iter()
            .find(|a| a.contains(p))
            .ok_or(DomainError::OutsideServiceArea)
    }

    /// The polygon as GeoJSON, positions exactly as given to [`ServiceArea::new`].
    pub fn to_geojson(&self) -> GeoJsonPolygon {
        let ring = |ls: &LineString<f64>| ls.coords().map(|c| [c.x, c.y]).collect::<Vec<_>>();
        let mut coordinates = vec![ring(self.polygon.exterior())];
        coordinates.extend(self.polygon.interiors().iter().map(ring));
        GeoJsonPolygon {
            r#type: "Polygon".to_owned(),
            coordinates,
        }
    }

    /// The polygon, x = longitude, y = latitude.
    pub fn polygon(&self) -> &Polygon<f64> {
        &self.polygon
    }

    /// The demo area: Shuangfu subdistrict (双福街道), Jiangjin District,
    /// Chongqing, roughly lat 29.36–29.43, lng 106.27–106.36, under the fixed
    /// id [`SHUANGFU_DEMO_AREA_ID`].
    pub fn shuangfu_demo(org_id: OrgId) -> ServiceArea {
        // An octagon hugging the box; built directly because the constant
        // ring is known valid (a unit test runs it through `new`).
        let ring: Vec<Coord<f64>> = SHUANGFU_RING.iter().map(|&[x, y]| Coord { x, y }).collect();
        ServiceArea {
            id: SHUANGFU_DEMO_AREA_ID,
            org_id,
            name: "双福街道 Shuangfu".to_owned(),
            polygon: Polygon::new(LineString::new(ring), vec![]),
        }
    }
}

/// Counter-clockwise, as RFC 7946 recommends for outer rings; `[lng, lat]`.
const SHUANGFU_RING: [[f64; 2]; 9] = [
    [106.27, 29.38],
    [106.29, 29.36],
    [106.34, 29.36],
    [106.36, 29.38],
    [106.36, 29.42],
    [106.34, 29.43],
    [106.29, 29.43],
    [106.27, 29.41],
    [106.27, 29.38],
];

fn invalid(reason: impl Into<String>) -> DomainError {
    DomainError::InvalidPolygon {
        reason: reason.into(),
    }
}

fn polygon_from_geojson(g: &GeoJsonPolygon) -> Result<Polygon<f64>, DomainError> {
    if g.r#type != "Polygon" {
        return Err(invalid(format!(
            "type must be \"Polygon\", got {:?}",
            g.r#type.chars().take(32).collect::<String>()
        )));
    }
    if g.coordinates.is_empty() {
        return Err(invalid("no ring"));
    }
    if g.coordinates.len() > MAX_RINGS {
        return Err(invalid(format!("at most {MAX_RINGS} rings")));
    }
    if g.coordinates.iter().map(Vec::len).sum::<usize>() > MAX_POSITIONS {
        return Err(invalid(format!("at most {MAX_POSITIONS} positions")));
    }
    let mut rings = Vec::with_capacity(g.coordinates.len());
    for (i, ring) in g.coordinates.iter().enumerate() {
        let role = if i == 0 {
            "outer ring".to_owned()
        } else {
            format!("hole {i}")
        };
        if ring.len() < 4 {
            return Err(invalid(format!("{role} needs at least 4 positions")));
        }
        for (j, &[lng, lat]) in ring.iter().enumerate() {
            if let Err(e) = GeoPoint::new(lat, lng) {
                return Err(invalid(format!("{role}, position {j}: {e}")));
            }
        }
        if ring.first() != ring.last() {
            return Err(invalid(format!(
                "{role} is not closed (first and last positions differ)"
            )));
        }
        rings.push(LineString::new(
            ring.iter().map(|&[x, y]| Coord { x, y }).collect(),
        ));
    }
    let mut rings = rings.into_iter();
    let exterior = rings.next().unwrap_or_else(|| LineString::new(vec![]));
    let polygon = Polygon::new(exterior, rings.collect());
    if let Err(e) = polygon.check_validation() {
        return Err(invalid(e.to_string()));
    }
    // Validation accepts some degenerate rings (e.g. all points on one line); refuse them here.
    if polygon.unsigned_area() <= 0.0 {
        return Err(invalid("zero area"));
    }
    Ok(polygon)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn area(coordinates: Vec<Vec<[f64; 2]>>) -> Result<ServiceArea, DomainError> {
        ServiceArea::new(
            AreaId::new(),
            OrgId::from("demo"),
            "test".into(),
            GeoJsonPolygon {
                r#type: "Polygon".into(),
                coordinates,
            },
        )
    }

    fn square(x0: f64, y0: f64, side: f64) -> Vec<[f64; 2]> {
        vec![
            [x0, y0],
            [x0 + side, y0],
            [x0 + side, y0 + side],
            [x0, y0 + side],
            [x0, y0],
        ]
    }

    fn p(lat: f64, lng: f64) -> GeoPoint {
        GeoPoint::new(lat, lng).unwrap()
    }

    #[test]
    fn shuangfu_demo_is_valid_and_covers_the_district() {
        let demo = ServiceArea::shuangfu_demo(OrgId::from("demo"));
        assert_eq!(demo.id, SHUANGFU_DEMO_AREA_ID);
        assert_eq!(demo.id.to_string(), "5b1f0c2e-7d4a-4e8b-9c3f-2a6d1e0b4f7a");
        // Through the validating constructor: the hand-built polygon is valid.
        let checked = ServiceArea::new(
            demo.id,
            demo.org_id.clone(),
            demo.name.clone(),
            demo.to_geojson(),
        )
        .unwrap();
        assert_eq!(checked, demo);

        assert!(demo.contains(&p(29.39, 106.32)), "the API example point");
        assert!(demo.contains(&p(29.40, 106.30)));
        assert!(!demo.contains(&p(29.29, 106.25)), "Jiangjin old town");
        assert!(!demo.contains(&p(29.56, 106.55)), "central Chongqing");
        assert!(!demo.contains(&p(29.361, 106.271)), "cut corner");

        let rect = ::geo::BoundingRect::bounding_rect(demo.polygon()).unwrap();
        assert_eq!((rect.min().y, rect.max().y), (29.36, 29.43));
        assert_eq!((rect.min().x, rect.max().x), (106.27, 106.36));
    }

    #[test]
    fn contains_counts_the_boundary() {
        let a = area(vec![square(0.0, 0.0, 1.0)]).unwrap();
        assert!(a.contains(&p(0.5, 0.5)));
        assert!(a.contains(&p(0.0, 0.5)));
        assert!(a.contains(&p(0.0, 0.0)));
        assert!(!a.contains(&p(1.5, 0.5)));
    }

    #[test]
    fn holes_are_allowed_and_excluded() {
        let a = area(vec![square(0.0, 0.0, 10.0), square(4.0, 4.0, 2.0)]).unwrap();
        assert!(a.contains(&p(1.0, 1.0)));
        assert!(!a.contains(&p(5.0, 5.0)));
        assert_eq!(a.to_geojson().coordinates.len(), 2);
    }

    #[test]
    fn covering_finds_an_area_or_says_outside() {
        let a = area(vec![square(0.0, 0.0, 1.0)]).unwrap();
        let b = area(vec![square(5.0, 5.0, 1.0)]).unwrap();
        let areas = [a, b];
        assert_eq!(
            ServiceArea::covering(&areas, &p(5.5, 5.5)).unwrap().id,
            areas[1].id
        );
        let e = ServiceArea::covering(&areas, &p(3.0, 3.0)).unwrap_err();
        assert_eq!(
            (e.code(), e.field()),
            ("outside_service_area", Some("location"))
        );
    }

    #[test]
    fn invalid_polygons_are_refused() {
        let bowtie = vec![[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]];
        let collinear = vec![[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [0.0, 0.0]];
        let same = vec![[1.0, 1.0]; 4];
        let open = vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]];
        let triangle_short = vec![[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]];
        let out_of_range = vec![[0.0, 0.0], [181.0, 0.0], [1.0, 1.0], [0.0, 0.0]];
        let nan = vec![[0.0, 0.0], [f64::NAN, 0.0], [1.0, 1.0], [0.0, 0.0]];
        let hole_outside = vec![square(0.0, 0.0, 1.0), square(5.0, 5.0, 1.0)];
        let hole_crossing = vec![square(0.0, 0.0, 2.0), square(1.0, 1.0, 2.0)];
        let cases: Vec<(&str, Vec<Vec<[f64; 2]>>)> = vec![
            ("no ring", vec![]),
            ("bowtie", vec![bowtie]),
            ("collinear", vec![collinear]),
            ("one point", vec![same]),
            ("open", vec![open]),
            ("too short", vec![triangle_short]),
            ("out of range", vec![out_of_range]),
            ("nan", vec![nan]),
            ("hole outside", hole_outside),
            ("hole crossing", hole_crossing),
            ("too many rings", vec![square(0.0, 0.0, 1.0); MAX_RINGS + 1]),
        ];
        for (what, coords) in cases {
            let e = area(coords).unwrap_err();
            assert_eq!(
                (e.code(), e.field()),
                ("invalid_polygon", Some("polygon")),
                "{what}: {e}"
            );
        }
        let e = ServiceArea::new(
            AreaId::new(),
            OrgId::from("demo"),
            "x".into(),
            GeoJsonPolygon {
                r#type: "MultiPolygon".into(),
                coordinates: vec![square(0.0, 0.0, 1.0)],
            },
        )
        .unwrap_err();
        assert_eq!(e.code(), "invalid_polygon");
        let e = ServiceArea::new(
            AreaId::new(),
            OrgId::from("demo"),
            " ".into(),
            GeoJsonPolygon::new(square(0.0, 0.0, 1.0)),
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("name"));
    }

    #[test]
    fn either_winding_is_accepted() {
        let mut cw = square(0.0, 0.0, 1.0);
        cw.reverse();
        assert!(area(vec![cw]).is_ok());
    }

    #[test]
    fn geojson_and_area_json() {
        let demo = ServiceArea::shuangfu_demo(OrgId::from("demo"));
        let v = serde_json::to_value(&demo).unwrap();
        assert_eq!(v["polygon"]["type"], "Polygon");
        assert_eq!(
            v["polygon"]["coordinates"][0][0],
            serde_json::json!([106.27, 29.38])
        );
        assert_eq!(v["id"], SHUANGFU_DEMO_AREA_ID.to_string());
        let back: ServiceArea = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back, demo);

        let mut bad = v;
        bad["polygon"]["coordinates"][0][1] = serde_json::json!([200.0, 29.0]);
        assert!(serde_json::from_value::<ServiceArea>(bad).is_err());

        let g: GeoJsonPolygon =
            serde_json::from_str(r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}"#)
                .unwrap();
        assert_eq!(g.r#type, "Polygon");
        assert!(area(g.coordinates).is_ok());
    }

    proptest! {
        #[test]
        fn random_rectangles_round_trip_and_contain_their_centre(
            x0 in -170.0f64..170.0, y0 in -80.0f64..80.0,
            w in 0.001f64..5.0, h in 0.001f64..5.0,
        ) {
            let ring = vec![[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h], [x0, y0]];
            let a = area(vec![ring.clone()]).unwrap();
            prop_assert_eq!(&a.to_geojson().coordinates[0], &ring);
            prop_assert!(a.contains(&p(y0 + h / 2.0, x0 + w / 2.0)));
            let json = serde_json::to_string(&a).unwrap();
            let back = serde_json::from_str::<ServiceArea>(&json).unwrap();
            prop_assert_eq!((back.id, &back.org_id, &back.name), (a.id, &a.org_id, &a.name));
            // Floats may come back one ULP off (see GeoPoint).
            let (got, want) = (back.to_geojson(), a.to_geojson());
            for (g, w) in got.coordinates[0].iter().zip(&want.coordinates[0]) {
                prop_assert!((g[0] - w[0]).abs() <= 1e-9 && (g[1] - w[1]).abs() <= 1e-9);
            }
            prop_assert_eq!(got.coordinates[0].len(), want.coordinates[0].len());
        }
    }
}
