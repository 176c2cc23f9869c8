// The small map of the OGC API's HTML pages: the page's features (embedded as JSON by the template) on the hub's own
// base layers. Nothing leaves the hub: MapLibre is vendored, the base layers are /web/basemap.geojson, no glyphs.
const box = document.getElementById("map");
const data = JSON.parse(document.getElementById("features").textContent);

function bounds(collection) {
  let west = 180, south = 90, east = -180, north = -90;
  const visit = (c) => {
    if (typeof c[0] === "number") {
      west = Math.min(west, c[0]); east = Math.max(east, c[0]);
      south = Math.min(south, c[1]); north = Math.max(north, c[1]);
    } else c.forEach(visit);
  };
  for (const f of collection.features) {
    const g = f.geometry;
    if (!g) continue;
    (g.type === "GeometryCollection" ? g.geometries : [g]).forEach((part) => visit(part.coordinates));
  }
  return west <= east ? [[west, south], [east, north]] : null;
}

function noMap() {
  const p = document.createElement("p");
  p.className = "no-map";
  p.textContent = box.dataset.noMap;
  box.replaceChildren(p);
}

function show() {
  if (!window.maplibregl) return noMap();
  const around = bounds(data);
  let map;
  try {
    map = new maplibregl.Map({
      container: box,
      style: {
        version: 8,
        sources: {
          base: { type: "geojson", data: "/web/basemap.geojson", attribution: box.dataset.attribution },
          features: { type: "geojson", data },
        },
        layers: [
          { id: "background", type: "background", paint: { "background-color": "#dfe4e8" } },
          { id: "city", type: "fill", source: "base", filter: ["==", ["get", "layer"], "outline"], paint: { "fill-color": "#f6f5ef" } },
          { id: "base-lines", type: "line", source: "base", filter: ["!=", ["get", "layer"], "outline"], paint: { "line-color": "#b9bfb2", "line-width": 1 } },
          { id: "areas", type: "fill", source: "features", filter: ["in", ["geometry-type"], ["literal", ["Polygon", "MultiPolygon"]]], paint: { "fill-color": "#0b5cad", "fill-opacity": 0.25 } },
          { id: "edges", type: "line", source: "features", filter: ["in", ["geometry-type"], ["literal", ["Polygon", "MultiPolygon", "LineString", "MultiLineString"]]], paint: { "line-color": "#0b5cad", "line-width": 2 } },
          { id: "points", type: "circle", source: "features", filter: ["in", ["geometry-type"], ["literal", ["Point", "MultiPoint"]]], paint: { "circle-radius": 6, "circle-color": "#0b5cad", "circle-stroke-color": "#ffffff", "circle-stroke-width": 2 } },
        ],
      },
      bounds: around || [[136.9, 34.9], [137.7, 35.4]],
      fitBoundsOptions: { padding: 30, maxZoom: 15 },
      attributionControl: { compact: false },
    });
  } catch {
    return noMap(); // no WebGL here: the table still says everything
  }
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }));
  map.on("load", () => { box.dataset.loaded = "true"; });
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", show);
else show();
