// Navigation links to the job's point in the maps apps nurses use. Our
// points are WGS-84; Amap and Baidu are told so (`coordinate=wgs84`,
// `coord_type=wgs84`) and convert to their own systems (GCJ-02, BD-09)
// themselves. Apple Maps takes WGS-84 coordinates as they are.

/** [{key, url}] for Amap, Baidu Maps and Apple Maps at `point`, labelled `name`. */
export function navLinks(point, name = '') {
  const lat = Number(point.lat).toFixed(6);
  const lng = Number(point.lng).toFixed(6);
  const n = encodeURIComponent(name);
  return [
    {
      key: 'amap',
      url: `https://uri.amap.com/navigation?to=${lng},${lat},${n}&mode=car&coordinate=wgs84&callnative=1&src=yixin.nurse`,
    },
    {
      key: 'baidu',
      url: `https://api.map.baidu.com/marker?location=${lat},${lng}&title=${n}&content=${n}&coord_type=wgs84&output=html&src=yixin.nurse`,
    },
    {
      key: 'apple',
      url: `https://maps.apple.com/?daddr=${lat},${lng}&q=${n}&dirflg=d`,
    },
  ];
}
