// The map's style: its sources (the base layers, devices, alerts) and layers, coloured from the level table, and
// the silent device's icon. Drawn here so that no icon file, sprite or glyph server is needed.
import { LEVEL_COLORS } from "./levels.js";

const SILENT_COLOR = "#8a8f98";

function drawIcon(draw, size = 40) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  const ctx = canvas.getContext("2d");
  draw(ctx, size);
  return { width: size, height: size, data: ctx.getImageData(0, 0, size, size).data };
}

/** A grey ring crossed through: "no signal". */
export function silentIcon() {
  return drawIcon((ctx, s) => {
    ctx.lineWidth = 5;
    ctx.strokeStyle = "#ffffff";
    ctx.beginPath();
    ctx.arc(s / 2, s / 2, s / 2 - 4, 0, Math.PI * 2);
    ctx.moveTo(s * 0.2, s * 0.2);
    ctx.lineTo(s * 0.8, s * 0.8);
    ctx.stroke();
    ctx.lineWidth = 3;
    ctx.strokeStyle = "#3b3f46";
    ctx.stroke();
  });
}

/** The MapLibre style; `attribution` is the base layers' credit line. */
export function baseStyle(attribution) {
  return {
    version: 8,
    sources: {
      base: { type: "geojson", data: "/web/basemap.geojson", attribution },
      devices: { type: "geojson", data: { type: "FeatureCollection", features: [] } },
      "alert-areas": { type: "geojson", data: { type: "FeatureCollection", features: [] } },
      "alert-points": { type: "geojson", data: { type: "FeatureCollection", features: [] } },
    },
    layers: [
      { id: "background", type: "background", paint: { "background-color": "#dfe4e8" } },
      { id: "city", type: "fill", source: "base", filter: ["==", ["get", "layer"], "outline"], paint: { "fill-color": "#f6f5ef" } },
      {
        id: "districts",
        type: "line",
        source: "base",
        filter: ["==", ["get", "layer"], "district"],
        paint: { "line-color": "#a3a89c", "line-width": 1.2, "line-dasharray": [3, 2] },
      },
      {
        id: "city-edge",
        type: "line",
        source: "base",
        filter: ["==", ["get", "layer"], "outline"],
        paint: { "line-color": "#6d7466", "line-width": 2 },
      },
      {
        id: "roads-casing",
        type: "line",
        source: "base",
        filter: ["==", ["get", "layer"], "road"],
        layout: { "line-cap": "round", "line-join": "round" },
        paint: { "line-color": "#c9b48a", "line-width": ["interpolate", ["linear"], ["zoom"], 9, 3, 14, 9] },
      },
      {
        id: "roads",
        type: "line",
        source: "base",
        filter: ["==", ["get", "layer"], "road"],
        layout: { "line-cap": "round", "line-join": "round" },
        paint: { "line-color": "#fff3d6", "line-width": ["interpolate", ["linear"], ["zoom"], 9, 1.5, 14, 6] },
      },
      {
        id: "rivers",
        type: "line",
        source: "base",
        filter: ["==", ["get", "layer"], "river"],
        layout: { "line-cap": "round", "line-join": "round" },
        paint: {
          "line-color": "#4f94d4",
          "line-width": ["interpolate", ["linear"], ["zoom"], 9, ["match", ["get", "rank"], 1, 4, 2], 14, ["match", ["get", "rank"], 1, 14, 6]],
        },
      },
      {
        id: "alert-area-fill",
        type: "fill",
        source: "alert-areas",
        paint: { "fill-color": ["match", ["get", "level"], 1, "#bbbbbb", 2, LEVEL_COLORS[2], 3, LEVEL_COLORS[3], 4, LEVEL_COLORS[4], 5, LEVEL_COLORS[5], "#999"], "fill-opacity": 0.28 },
      },
      {
        id: "alert-area-line",
        type: "line",
        source: "alert-areas",
        paint: { "line-color": ["match", ["get", "level"], 1, "#888888", 2, "#c8bd00", 3, LEVEL_COLORS[3], 4, LEVEL_COLORS[4], 5, LEVEL_COLORS[5], "#999"], "line-width": 2.5 },
      },
      {
        id: "alert-points",
        type: "circle",
        source: "alert-points",
        paint: {
          "circle-radius": ["case", ["get", "fresh"], 22, 16],
          "circle-color": "rgba(0,0,0,0)",
          "circle-stroke-width": ["case", ["get", "fresh"], 5, 3],
          "circle-stroke-color": ["match", ["get", "level"], 1, "#888888", 2, "#c8bd00", 3, LEVEL_COLORS[3], 4, LEVEL_COLORS[4], 5, LEVEL_COLORS[5], "#999"],
        },
      },
      {
        id: "devices",
        type: "circle",
        source: "devices",
        paint: {
          "circle-radius": ["interpolate", ["linear"], ["zoom"], 8, 6, 13, 10],
          "circle-color": [
            "case",
            ["get", "silent"], SILENT_COLOR,
            ["match", ["get", "level"], 1, LEVEL_COLORS[1], 2, LEVEL_COLORS[2], 3, LEVEL_COLORS[3], 4, LEVEL_COLORS[4], 5, LEVEL_COLORS[5], LEVEL_COLORS[0]],
          ],
          "circle-stroke-color": ["case", ["==", ["get", "status"], "active"], "#1d2530", "#8a8f98"],
          "circle-stroke-width": 2,
          "circle-opacity": ["case", ["==", ["get", "status"], "active"], 1, 0.45],
        },
      },
      {
        id: "devices-silent",
        type: "symbol",
        source: "devices",
        filter: ["get", "silent"],
        layout: { "icon-image": "silent", "icon-size": ["interpolate", ["linear"], ["zoom"], 8, 0.5, 13, 0.8], "icon-allow-overlap": true },
      },
    ],
  };
}
