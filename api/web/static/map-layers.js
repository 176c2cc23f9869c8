// The map: MapLibre on the hub's own base layers, the stands as our vector tiles, place names, and the devices and
// alerts of the store drawn (and kept drawn) on it; clicks open their details.
// `maplibregl` is the vendored classic script's global: index.html loads it (deferred) before this module runs.
import { session } from "./api.js";
import { deviceLevel, isSilent } from "./devices.js";
import { h, levelBadge } from "./dom.js";
import { ago, deviceTypeName, language, placeName, t } from "./i18n.js";
import { baseStyle, silentIcon } from "./map-style.js";
import { ACTIVE, select, state, subscribe } from "./state.js";

let labels = [];

function devicesGeoJSON() {
  const features = [];
  for (const d of state.devices.values()) {
    if (d.lon === null || d.lat === null || d.lon === undefined) continue;
    features.push({
      type: "Feature",
      id: features.length,
      geometry: { type: "Point", coordinates: [d.lon, d.lat] },
      properties: { id: d.id, level: deviceLevel(d.id), silent: isSilent(d), status: d.status, type: d.device_type },
    });
  }
  return { type: "FeatureCollection", features };
}

function alertsGeoJSON() {
  const areas = [];
  const points = [];
  for (const a of state.alerts.values()) {
    if (!ACTIVE.has(a.state)) continue;
    const props = { id: a.id, level: a.level, state: a.state, fresh: state.fresh.has(a.id) };
    if (a.area) areas.push({ type: "Feature", geometry: a.area, properties: props });
    if (a.location) points.push({ type: "Feature", geometry: a.location, properties: props });
  }
  return [
    { type: "FeatureCollection", features: areas },
    { type: "FeatureCollection", features: points },
  ];
}

function addStands(map) {
  // Stands come as our own vector tiles; partners' keys may not read them, so their map has none.
  map.addSource("stands", {
    type: "vector",
    tiles: [`${location.origin}/v1/tiles/stands/{z}/{x}/{y}.mvt`],
    minzoom: 10,
    maxzoom: 16,
    attribution: "森林簿 (stand register)",
  });
  const species = ["match", ["get", "species_1"], "スギ", "#3f7d4e", "ヒノキ", "#5e9c6a", "アカマツ", "#93a85a", "広葉樹", "#9cc48a", "竹", "#b7cf73", "#cfd8c4"];
  map.addLayer({ id: "stands-fill", type: "fill", source: "stands", "source-layer": "stands", minzoom: 10, paint: { "fill-color": species, "fill-opacity": 0.35 } }, "roads-casing");
  map.addLayer({ id: "stands-line", type: "line", source: "stands", "source-layer": "stands", minzoom: 12, paint: { "line-color": "#4f6b45", "line-width": 0.5, "line-opacity": 0.6 } }, "roads-casing");
  map.on("click", "stands-fill", (e) => {
    if (map.queryRenderedFeatures(e.point, { layers: ["devices", "alert-points"] }).length) return;
    const p = e.features[0].properties;
    const rows = ["species_1", "age_1", "age_class", "area_ha", "ownership", "forest_type", "protected"].map((k) => {
      const v = k === "protected" ? t(p[k] ? "yes" : "no") : p[k] ?? "—";
      return h("tr", {}, h("th", {}, t(`stand.${k}`)), h("td", {}, String(typeof v === "number" ? +v.toFixed(2) : v)));
    });
    const body = h("div", { class: "stand-popup" }, h("strong", {}, t("stand.title", { id: p.stand_id })), h("table", { class: "facts" }, rows));
    new maplibregl.Popup({ maxWidth: "320px" }).setLngLat(e.lngLat).setDOMContent(body).addTo(map);
  });
}

function placeLabels(map, base) {
  for (const m of labels) m.remove();
  labels = [];
  for (const f of base.features) {
    const p = f.properties;
    if (p.layer !== "place" && p.layer !== "district") continue;
    let at = f.geometry.coordinates;
    if (p.layer === "district") {
      // the district's name sits at the middle of its cell's bounding box, in small capitals
      const ring = f.geometry.type === "Polygon" ? f.geometry.coordinates[0] : f.geometry.coordinates[0][0];
      const xs = ring.map((c) => c[0]);
      const ys = ring.map((c) => c[1]);
      at = [(Math.min(...xs) + Math.max(...xs)) / 2, (Math.min(...ys) + Math.max(...ys)) / 2 + 0.012];
    }
    const el = h("div", { class: `map-label ${p.layer} ${p.kind || ""}`, "aria-hidden": "true" }, placeName(p));
    el.dataset.name = p.name;
    el.dataset.nameJa = p.name_ja;
    // town names repeat the district names until zoomed in; districts give way to the towns there
    el.dataset.minzoom = String(p.layer === "district" ? 0 : p.minzoom ?? 0);
    el.dataset.maxzoom = String(p.layer === "district" ? 12.5 : 99);
    labels.push(new maplibregl.Marker({ element: el, anchor: p.layer === "place" ? "left" : "center", offset: p.layer === "place" ? [6, 0] : [0, 0] }).setLngLat(at).addTo(map));
  }
}

function showLabelsForZoom() {
  const z = state.map.getZoom();
  for (const m of labels) {
    const el = m.getElement();
    el.hidden = z < Number(el.dataset.minzoom) || z >= Number(el.dataset.maxzoom);
  }
}

function relabel() {
  for (const m of labels) {
    const el = m.getElement();
    el.textContent = language() === "ja" ? el.dataset.nameJa : el.dataset.name;
  }
}

function devicePopup(map) {
  const popup = new maplibregl.Popup({ closeButton: false, closeOnClick: false, offset: 12 });
  map.on("mousemove", "devices", (e) => {
    map.getCanvas().style.cursor = "pointer";
    const d = state.devices.get(e.features[0].properties.id);
    if (!d) return;
    const level = deviceLevel(d.id);
    popup
      .setLngLat(e.features[0].geometry.coordinates)
      .setDOMContent(h("div", {}, levelBadge(level), " ", h("strong", {}, d.name || d.id), h("br"), h("small", {}, `${deviceTypeName(d.device_type)} · ${isSilent(d) ? "⊘ " : ""}${ago(d.last_reading)}`)))
      .addTo(map);
  });
  map.on("mouseleave", "devices", () => {
    map.getCanvas().style.cursor = "";
    popup.remove();
  });
  map.on("click", "devices", (e) => select("device", e.features[0].properties.id, false));
  map.on("click", "alert-points", (e) => {
    if (map.queryRenderedFeatures(e.point, { layers: ["devices"] }).length) return;
    select("alert", e.features[0].properties.id, false);
  });
  map.on("click", "alert-area-fill", (e) => {
    if (map.queryRenderedFeatures(e.point, { layers: ["devices", "alert-points"] }).length) return;
    select("alert", e.features[0].properties.id, false);
  });
}

export async function buildMap() {
  const base = await (await fetch("/web/basemap.geojson")).json();
  const outline = base.features.find((f) => f.properties.layer === "outline");
  const ring = outline ? outline.geometry.coordinates[0] : [[137.0, 34.95], [137.6, 35.3]];
  const xs = ring.map((c) => c[0]);
  const ys = ring.map((c) => c[1]);
  const map = new maplibregl.Map({
    container: "map",
    style: baseStyle(state.config.attribution),
    bounds: [[Math.min(...xs), Math.min(...ys)], [Math.max(...xs), Math.max(...ys)]],
    fitBoundsOptions: { padding: 24 },
    attributionControl: { compact: false, customAttribution: "Mimamori" },
    transformRequest: (url) => (url.startsWith(`${location.origin}/v1/`) ? { url, headers: { "X-API-Key": session.key } } : { url }),
    maxZoom: 18,
  });
  state.map = map;
  window.mimamoriMap = map; // for the browser tests and for whoever debugs a wall screen from its console
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-left");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");
  await new Promise((resolve) => map.on("load", resolve));
  map.addImage("silent", silentIcon(), { pixelRatio: 2 });
  if (state.me.role !== "partner") addStands(map);
  placeLabels(map, base);
  showLabelsForZoom();
  map.on("zoomend", showLabelsForZoom);
  devicePopup(map);
  return map;
}

subscribe("devices", () => state.map?.getSource("devices")?.setData(devicesGeoJSON()));
subscribe("alerts", () => {
  const [areas, points] = alertsGeoJSON();
  state.map?.getSource("alert-areas")?.setData(areas);
  state.map?.getSource("alert-points")?.setData(points);
  state.map?.getSource("devices")?.setData(devicesGeoJSON()); // a device's colour is its alerts' level
});
subscribe("language", () => relabel());
