// The detail panel for a device: level, silence, its active alerts, facts, latest values, and a chart of its main
// metric with the site's threshold levels.
import { api, HttpError } from "./api.js";
import { lineChart } from "./chart.js";
import { closeDetail, showDetail } from "./detail.js";
import { deviceLevel, isSilent } from "./devices.js";
import { $, fill, h, levelBadge } from "./dom.js";
import { ago, alertTitle, deviceTypeName, formatTime, language, metricName, t } from "./i18n.js";
import { LEVEL_COLORS, readableOn } from "./levels.js";
import { ACTIVE, select, state, subscribe } from "./state.js";

const CHART_BG = "#fbfcfd"; // .chart's background in app.css: threshold labels are made readable on it
const THRESHOLDS = [
  ["standby_m", 1],
  ["caution_m", 2],
  ["evacuation_m", 3],
  ["danger_m", 4],
];
const QUIET_METRICS = new Set(["battery", "signal"]);

let chartTimer = null;

function selectDevice(id, fly) {
  const d = state.devices.get(id);
  if (!d) return;
  state.selected = { kind: "device", id };
  if (fly && d.lon !== null) state.map.flyTo({ center: [d.lon, d.lat], zoom: Math.max(state.map.getZoom(), 12) });
  renderDeviceDetail(id, { chart: true });
}

function siteThresholds(d) {
  return THRESHOLDS.filter(([key]) => typeof d.metadata?.[key] === "number").map(([key, level]) => ({
    value: d.metadata[key],
    label: t(`threshold.${key}`),
    color: level === 1 ? "#777" : LEVEL_COLORS[level],
    textColor: readableOn(level === 1 ? "#555" : LEVEL_COLORS[level], CHART_BG),
  }));
}

function mainMetric(d) {
  const type = state.deviceTypes.get(d.device_type);
  const metrics = (type?.metrics || []).map((m) => m.metric).filter((m) => !QUIET_METRICS.has(m));
  return metrics[0] || Object.keys(d.latest || {}).find((m) => !QUIET_METRICS.has(m));
}

function unitOf(d, metric) {
  return state.deviceTypes.get(d.device_type)?.metrics.find((m) => m.metric === metric)?.unit || "";
}

function renderDeviceDetail(id, { chart }) {
  const d = state.devices.get(id);
  if (!d) return;
  const level = deviceLevel(id);
  const silent = isSilent(d);
  const panel = $("#detail");
  // the chart already drawn for this device stays while a fresher one loads (alerts can come several a second)
  const drawn = panel.querySelector(".chart-box");
  const keep = drawn && drawn.dataset.device === id ? drawn : null;
  const latest = Object.entries(d.latest || {}).map(([m, v]) => h("tr", {}, h("th", {}, metricName(m)), h("td", {}, `${+v.toFixed(3)} ${unitOf(d, m)}`)));
  const meta = Object.entries(d.metadata || {}).map(([k, v]) =>
    h("tr", {}, h("th", {}, t(`threshold.${k}`) === `threshold.${k}` ? k : `${t(`threshold.${k}`)} (${k})`), h("td", {}, String(v))),
  );
  const alerts = [...state.alerts.values()].filter((a) => a.device_id === id && ACTIVE.has(a.state));
  fill(panel,
    h(
      "div",
      { class: "detail-head" },
      levelBadge(level),
      h("h2", { id: "detail-title", tabindex: "-1" }, d.name || d.id),
      h("button", { class: "close", onclick: closeDetail, "aria-label": t("detail.close") }, "×"),
    ),
    silent ? h("p", { class: "warn silent-note" }, t("detail.silent")) : null,
    keep || h("div", { class: "chart-box", "data-device": id }, h("p", { class: "muted" }, "…")),
    alerts.length
      ? h("div", {}, h("h3", {}, t("detail.alerts")), h("ul", { class: "plain" }, alerts.map((a) => h("li", {}, h("button", { class: "link", onclick: () => select("alert", a.id, true) }, levelBadge(a.level), " ", alertTitle(a))))))
      : null,
    h(
      "table",
      { class: "facts" },
      h("tr", {}, h("th", {}, "ID"), h("td", {}, d.id)),
      h("tr", {}, h("th", {}, t("detail.type")), h("td", {}, deviceTypeName(d.device_type))),
      h("tr", {}, h("th", {}, t("detail.tenant")), h("td", {}, d.tenant_id)),
      h("tr", {}, h("th", {}, t("detail.status")), h("td", {}, d.status)),
      h("tr", {}, h("th", {}, t("detail.location")), h("td", {}, d.lat === null ? "—" : `${d.lat.toFixed(4)}, ${d.lon.toFixed(4)}`)),
      h("tr", {}, h("th", {}, t("detail.last")), h("td", {}, `${formatTime(d.last_reading)} (${ago(d.last_reading)})`)),
    ),
    latest.length ? h("div", {}, h("h3", {}, t("detail.latest")), h("table", { class: "facts" }, latest)) : null,
    meta.length ? h("div", {}, h("h3", {}, t("detail.metadata")), h("table", { class: "facts" }, meta)) : null,
  );
  showDetail();
  if (chart) {
    clearTimeout(chartTimer);
    chartTimer = setTimeout(() => loadChart(d).catch((err) => console.warn("chart:", err.message)), keep ? 1000 : 0);
  }
}

async function loadChart(d) {
  const metric = mainMetric(d);
  const box = $("#detail .chart-box");
  if (!metric || !box) return;
  const hours = state.config.history_hours;
  const end = Date.now();
  const start = end - hours * 3600_000;
  const base = `/v1/devices/${encodeURIComponent(d.id)}/readings?metric=${encodeURIComponent(metric)}&start=${new Date(start).toISOString()}&end=${new Date(end).toISOString()}`;
  let body;
  try {
    body = await api(base);
  } catch (err) {
    // Too many raw points for one request: ask for 10-minute maxima instead.
    if (!(err instanceof HttpError && err.status === 422)) throw err;
    body = await api(`${base}&bucket=10m&agg=max`);
  }
  if (state.selected?.kind !== "device" || state.selected.id !== d.id) return;
  const points = body.series[metric] || [];
  const title = `${metricName(metric)} — ${t("detail.chart", { h: hours })}`;
  const fmt = new Intl.DateTimeFormat(language() === "ja" ? "ja-JP" : "en-GB", { timeZone: "Asia/Tokyo", hour: "2-digit", minute: "2-digit" });
  const svg = lineChart({
    points,
    thresholds: metric === "water_level" ? siteThresholds(d) : [],
    range: { start, end },
    unit: unitOf(d, metric),
    title,
    timeFormat: (ms) => fmt.format(new Date(ms)),
  });
  fill(box, h("h3", {}, title), svg, points.length ? null : h("p", { class: "muted" }, t("detail.nodata")));
}

const selectedDevice = () => (state.selected?.kind === "device" ? state.selected.id : null);

subscribe("select", ({ kind, id, fly }) => (kind === "device" ? selectDevice(id, fly) : undefined));
subscribe("devices", () => {
  if (selectedDevice()) renderDeviceDetail(selectedDevice(), { chart: false });
});
// an alert of this device changed: its readings did too, so the chart is drawn again
subscribe("alert", (a) => {
  if (selectedDevice() && selectedDevice() === a.device_id) renderDeviceDetail(a.device_id, { chart: true });
});
subscribe("language", () => {
  if (selectedDevice()) renderDeviceDetail(selectedDevice(), { chart: true });
});
