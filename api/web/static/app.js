// The live alert map: base layers shipped with the hub, devices by warning level, alerts live from the stream.
import { alertStream, allFeatures, allRows, api, HttpError, session, Unauthorized } from "./api.js";
import { lineChart } from "./chart.js";
import {
  ago, alertTitle, deviceTypeName, formatTime, language, metricName, placeName, setLanguage, t,
} from "./i18n.js";
import { LEVEL_COLORS, LEVEL_TEXT, readableOn, setLevelColors } from "./levels.js";

const CHART_BG = "#fbfcfd"; // .chart's background in app.css: threshold labels are made readable on it
const SILENT_COLOR = "#8a8f98";
const THRESHOLDS = [
  ["standby_m", 1],
  ["caution_m", 2],
  ["evacuation_m", 3],
  ["danger_m", 4],
];
const QUIET_METRICS = new Set(["battery", "signal"]);
const ACTIVE = new Set(["open", "acknowledged"]);
// What an operator may do to an alert in each state (the API refuses the rest, and refuses other roles).
const ACTIONS = { open: ["acknowledge", "resolve"], acknowledged: ["resolve"], resolved: ["close"], closed: [] };
const PHONE = "(max-width: 760px)";

const state = {
  config: null,
  me: null,
  map: null,
  devices: new Map(), // id -> merged registry row + liveness + latest values
  deviceTypes: new Map(),
  alerts: new Map(), // id -> alert row as the API gives it
  ended: [], // resolved/closed alerts of the last hours (loaded on demand)
  filters: { state: "active", minLevel: 0, hazard: "", search: "" },
  tab: "alerts",
  selected: null, // {kind: "device"|"alert", id}
  stream: null,
  refreshTimer: null,
  fresh: new Set(), // alert ids raised since the page loaded and not yet looked at
  sound: localStorage.getItem("mimamori.sound") === "on",
  audio: null,
  labels: [],
  banner: false, // raised by a new or escalated alert, until dismissed or shown
};

const $ = (sel) => document.querySelector(sel);

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}

/** Replaces a node's children, skipping the null and undefined of optional parts. */
function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

function levelBadge(level) {
  const n = level || 0;
  return h(
    "span",
    { class: `badge level-${n}`, style: `background:${LEVEL_COLORS[n]};color:${LEVEL_TEXT[n]}` },
    n ? `L${n}` : "—",
  );
}

// -- devices -------------------------------------------------------------------------------------------------

function deviceLevel(id) {
  let level = 0;
  for (const a of state.alerts.values()) if (a.device_id === id && ACTIVE.has(a.state)) level = Math.max(level, a.level);
  return level;
}

/** A device is silent when it has said nothing for `silent_factor` expected intervals (crisis gauges below their
 * observation-start level only report daily, as the national guideline lets them). */
export function isSilent(d, now = Date.now()) {
  if (d.status !== "active") return false;
  if (d.online === false) return true;
  // when the hub last heard from it, not the device's own clock (replays and bad clocks lag or run ahead)
  const heard = d.last_seen || d.last_reading;
  if (!heard) return true;
  let interval = d.expected_interval_s || 600;
  const start = d.metadata?.observation_start_m;
  if (start !== undefined && d.latest?.water_level !== undefined && d.latest.water_level < start) interval = 86400;
  return now - new Date(heard).getTime() > state.config.silent_factor * interval * 1000;
}

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

async function loadDevices({ registry }) {
  if (registry) {
    const rows = await allRows("/v1/devices");
    const seen = new Set();
    for (const r of rows) {
      seen.add(r.id);
      state.devices.set(r.id, { ...(state.devices.get(r.id) || {}), ...r });
    }
    for (const id of [...state.devices.keys()]) if (!seen.has(id)) state.devices.delete(id);
  }
  const features = await allFeatures("/ogc/collections/devices/items?limit=1000");
  for (const f of features) {
    const d = state.devices.get(f.id);
    if (!d) continue;
    const p = f.properties;
    const latest = {};
    for (const [k, v] of Object.entries(p)) if (typeof v === "number" && !k.endsWith("_time")) latest[k] = v;
    Object.assign(d, { online: p.online, last_seen: p.last_seen, last_reading: p.last_reading, latest });
  }
  renderDevices();
}

function renderDevices() {
  state.map?.getSource("devices")?.setData(devicesGeoJSON());
  if (state.tab === "devices") renderDeviceList();
  const silent = [...state.devices.values()].filter((d) => isSilent(d)).length;
  $("#device-count").textContent = t("devices.count", { n: state.devices.size });
  $("#silent-count").textContent = silent ? t("devices.silent", { n: silent }) : "";
  if (state.selected?.kind === "device") renderDeviceDetail(state.selected.id, { chart: false });
}

function renderDeviceList() {
  const q = state.filters.search.trim().toLowerCase();
  const rows = [...state.devices.values()]
    .filter((d) => !q || d.id.toLowerCase().includes(q) || (d.name || "").toLowerCase().includes(q))
    .map((d) => ({ d, level: deviceLevel(d.id), silent: isSilent(d) }))
    .sort((a, b) => b.level - a.level || Number(b.silent) - Number(a.silent) || a.d.id.localeCompare(b.d.id));
  const list = $("#device-list");
  fill(list,
    ...rows.map(({ d, level, silent }) =>
      h(
        "li",
        {},
        h(
          "button",
          { class: `row${silent ? " silent" : ""}`, "data-device": d.id, onclick: () => selectDevice(d.id, true) },
          levelBadge(level),
          h("span", { class: "row-main" }, h("strong", {}, d.name || d.id), h("small", {}, `${deviceTypeName(d.device_type)} · ${d.id}`)),
          h("span", { class: "row-side" }, silent ? h("span", { class: "chip silent" }, "⊘") : null, ago(d.last_reading)),
        ),
      ),
    ),
  );
}

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
      ? h("div", {}, h("h3", {}, t("detail.alerts")), h("ul", { class: "plain" }, alerts.map((a) => h("li", {}, h("button", { class: "link", onclick: () => selectAlert(a.id, true) }, levelBadge(a.level), " ", alertTitle(a))))))
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
    clearTimeout(state.chartTimer);
    state.chartTimer = setTimeout(() => loadChart(d).catch((err) => console.warn("chart:", err.message)), keep ? 1000 : 0);
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

// -- alerts --------------------------------------------------------------------------------------------------

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

function renderAlerts() {
  const [areas, points] = alertsGeoJSON();
  state.map?.getSource("alert-areas")?.setData(areas);
  state.map?.getSource("alert-points")?.setData(points);
  renderBanner();
  renderAlertList();
  state.map?.getSource("devices")?.setData(devicesGeoJSON());
  if (state.tab === "devices") renderDeviceList();
}

function filteredAlerts() {
  const f = state.filters;
  let rows;
  if (f.state === "ended") rows = state.ended;
  else rows = [...state.alerts.values()].filter((a) => (f.state === "active" ? ACTIVE.has(a.state) : a.state === f.state));
  const q = f.search.trim().toLowerCase();
  return rows
    .filter((a) => a.level >= f.minLevel && (!f.hazard || a.hazard === f.hazard))
    .filter((a) => !q || `${a.title_en} ${a.title_ja} ${a.device_id} ${a.subject}`.toLowerCase().includes(q))
    .sort((a, b) => Number(state.fresh.has(b.id)) - Number(state.fresh.has(a.id)) || b.level - a.level || new Date(b.updated_at) - new Date(a.updated_at));
}

function renderAlertList() {
  const rows = filteredAlerts();
  const active = [...state.alerts.values()].filter((a) => ACTIVE.has(a.state));
  $("#alert-count").textContent = t("alerts.count", { n: active.length });
  const top = Math.max(0, ...active.map((a) => a.level));
  $("#tab-alerts").dataset.level = String(top);
  const list = $("#alert-list");
  if (!rows.length) {
    fill(list, h("li", { class: "muted empty" }, t("alerts.none")));
    return;
  }
  fill(list,
    ...rows.map((a) => {
      const device = a.device_id ? state.devices.get(a.device_id) : null;
      return h(
        "li",
        {},
        h(
          "button",
          {
            class: `row alert-row level-${a.level}${state.fresh.has(a.id) ? " fresh" : ""}${state.selected?.kind === "alert" && state.selected.id === a.id ? " selected" : ""}`,
            "data-alert": a.id,
            "data-level": a.level,
            "data-state": a.state,
            onclick: () => selectAlert(a.id, true),
          },
          levelBadge(a.level),
          h(
            "span",
            { class: "row-main" },
            h("strong", {}, alertTitle(a)),
            h("small", {}, `${device ? device.name || device.id : a.device_id || a.subject} · ${t(`hazard.${a.hazard}`)}`),
          ),
          h("span", { class: "row-side" }, h("span", { class: `chip state-${a.state}` }, t(`state.${a.state}`)), ago(a.updated_at)),
        ),
      );
    }),
  );
}

function applyEvent(ev) {
  const a = ev.alert;
  state.alerts.set(a.id, a);
  const loud = (ev.kind === "raised" || ev.kind === "escalated") && a.level >= state.config.banner_level && ACTIVE.has(a.state);
  if (loud) {
    state.fresh.add(a.id);
    state.banner = true;
    beep(a.level);
  }
  renderAlerts();
  // an alert change means fresh readings: refresh the devices' states soon (once for a burst of changes)
  if (!state.deviceTimer) {
    state.deviceTimer = setTimeout(() => {
      state.deviceTimer = null;
      loadDevices({ registry: false }).catch((err) => console.warn("device refresh:", err.message));
    }, 2000);
  }
  if (state.selected?.kind === "alert" && state.selected.id === a.id) selectAlert(a.id, false);
  else if (state.selected?.kind === "device" && state.selected.id === a.device_id) renderDeviceDetail(a.device_id, { chart: true });
}

async function loadAlerts() {
  const rows = await allRows("/v1/alerts?state=open,acknowledged");
  state.alerts = new Map(rows.map((a) => [a.id, a]));
  renderAlerts();
}

async function loadEnded() {
  const since = new Date(Date.now() - state.config.history_hours * 3600_000).toISOString();
  state.ended = await allRows(`/v1/alerts?state=resolved,closed&since=${encodeURIComponent(since)}`);
  renderAlertList();
}

async function selectAlert(id, fly) {
  state.selected = { kind: "alert", id };
  if (state.fresh.delete(id)) renderAlerts();
  else renderAlertList();
  const full = await api(`/v1/alerts/${id}`);
  if (state.selected?.kind !== "alert" || state.selected.id !== id) return;
  if (ACTIVE.has(full.state) || state.alerts.has(id)) state.alerts.set(id, full);
  if (fly) {
    const g = full.location || full.area;
    if (g) {
      const coords = g.type === "Point" ? [g.coordinates] : g.coordinates.flat(2);
      const xs = coords.map((c) => c[0]);
      const ys = coords.map((c) => c[1]);
      state.map.fitBounds([[Math.min(...xs), Math.min(...ys)], [Math.max(...xs), Math.max(...ys)]], { maxZoom: 13, padding: 80, duration: 600 });
    }
  }
  renderAlertDetail(full);
}

function renderAlertDetail(a) {
  const device = a.device_id ? state.devices.get(a.device_id) : null;
  // viewers, forestry and partner keys get no controls (and the API refuses them the changes anyway)
  const actions = ["operator", "admin"].includes(state.me.role) ? ACTIONS[a.state] || [] : [];
  const events = (a.events || []).slice().reverse();
  const form = actions.length
    ? h(
        "form",
        { class: "ack", onsubmit: (e) => changeAlert(e, a.id) },
        h("label", { for: "ack-note" }, t("detail.note")),
        h("textarea", { id: "ack-note", name: "note", rows: "2", maxlength: "2000" }),
        h(
          "div",
          { class: "actions" },
          actions.map((action, i) =>
            h("button", { type: "submit", value: action, class: i === 0 ? "primary" : "secondary", id: `${action}-button` }, t(`action.${action}`)),
          ),
        ),
        h("p", { class: "form-msg", role: "status" }),
      )
    : null;
  fill($("#detail"),
    h(
      "div",
      { class: "detail-head" },
      levelBadge(a.level),
      h("h2", { id: "detail-title", tabindex: "-1" }, alertTitle(a)),
      h("button", { class: "close", onclick: closeDetail, "aria-label": t("detail.close") }, "×"),
    ),
    h(
      "table",
      { class: "facts" },
      h("tr", {}, h("th", {}, t("detail.state")), h("td", {}, h("span", { class: `chip state-${a.state}`, id: "alert-state" }, t(`state.${a.state}`)))),
      h("tr", {}, h("th", {}, t("filter.hazard")), h("td", {}, t(`hazard.${a.hazard}`))),
      h("tr", {}, h("th", {}, t("detail.peak")), h("td", {}, t("level.n", { n: a.peak_level }))),
      a.device_id
        ? h("tr", {}, h("th", {}, t("detail.device")), h("td", {}, h("button", { class: "link", onclick: () => selectDevice(a.device_id, true) }, device ? device.name || device.id : a.device_id)))
        : null,
      a.value !== null ? h("tr", {}, h("th", {}, t("detail.value")), h("td", {}, String(+Number(a.value).toFixed(3)))) : null,
      h("tr", {}, h("th", {}, t("detail.opened")), h("td", {}, formatTime(a.opened_at))),
      h("tr", {}, h("th", {}, t("detail.updated")), h("td", {}, `${formatTime(a.updated_at)} (${ago(a.updated_at)})`)),
    ),
    form,
    h("h3", {}, t("detail.history")),
    h(
      "ol",
      { class: "history", id: "alert-history" },
      events.map((e) =>
        h(
          "li",
          { "data-kind": e.kind },
          levelBadge(e.level),
          // the person's name as the key had it then; the key id (or the rule) where there is none
          h("span", {}, h("strong", {}, t(`event.${e.kind}`)), " ", formatTime(e.at), h("span", { class: "actor" }, actorOf(e))),
          e.note ? h("q", {}, e.note) : null,
        ),
      ),
    ),
  );
  showDetail();
}

function actorOf(e) {
  const who = e.actor_name || e.actor;
  return who ? ` · ${who}` : "";
}

async function changeAlert(e, id) {
  e.preventDefault();
  const form = e.currentTarget;
  const action = e.submitter?.value || ACTIONS.open[0];
  const note = form.note.value.trim();
  const buttons = [...form.querySelectorAll("button")];
  for (const b of buttons) b.disabled = true;
  try {
    const full = await api(`/v1/alerts/${id}/${action}`, { method: "POST", body: { note: note || null } });
    state.alerts.set(id, full);
    renderAlerts();
    if (state.filters.state === "ended") loadEnded().catch((err) => console.warn("ended alerts:", err.message));
    renderAlertDetail(full);
    $("#detail .facts").after(h("p", { class: "ok", role: "status" }, t(`action.${action}.done`)));
    $("#detail-title")?.focus();
  } catch (err) {
    for (const b of buttons) b.disabled = false;
    form.querySelector(".form-msg").textContent = err instanceof HttpError && err.status === 403 ? t("action.forbidden") : err.message;
  }
}

function showDetail() {
  $("#detail").hidden = false;
  document.body.classList.add("has-detail");
}

function closeDetail() {
  state.selected = null;
  $("#detail").hidden = true;
  document.body.classList.remove("has-detail");
  renderAlertList();
}

// -- the banner and the beep ---------------------------------------------------------------------------------

/** The active alerts the banner speaks of, the highest level first (a new one before an older one of its level). */
function bannerAlerts() {
  return [...state.alerts.values()]
    .filter((a) => ACTIVE.has(a.state) && a.level >= state.config.banner_level)
    .sort((a, b) => b.level - a.level || Number(state.fresh.has(b.id)) - Number(state.fresh.has(a.id)) || new Date(b.updated_at) - new Date(a.updated_at));
}

/** The banner, once raised, names the highest active level (not the last alert to arrive), in the chosen language. */
function renderBanner() {
  const banner = $("#banner");
  const [top, ...others] = state.banner ? bannerAlerts() : [];
  if (!top) {
    state.banner = false;
    banner.hidden = true;
    return;
  }
  banner.dataset.alert = top.id;
  banner.dataset.level = top.level;
  banner.style.setProperty("--level", LEVEL_COLORS[top.level]);
  banner.style.setProperty("--level-text", LEVEL_TEXT[top.level]);
  const device = top.device_id ? state.devices.get(top.device_id) : null;
  const what = t(state.fresh.has(top.id) ? "banner.new" : "banner.active", { n: top.level });
  const more = others.length ? ` ${t("banner.more", { n: others.length })}` : "";
  const text = `${what}: ${alertTitle(top)}${device ? ` — ${device.name || device.id}` : ""}${more}`;
  // rewritten only when it changes: the banner is a live region, and each change is read out
  if ($("#banner-text").textContent !== text) $("#banner-text").textContent = text;
  banner.hidden = false;
}

function beep(level) {
  if (!state.sound) return;
  state.audio ||= new AudioContext();
  const ctx = state.audio;
  // Higher levels beep more often: three short tones at level 3, five at level 4 and above.
  const count = level >= 4 ? 5 : 3;
  for (let i = 0; i < count; i++) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = "square";
    osc.frequency.value = level >= 4 ? 1320 : 880;
    const at = ctx.currentTime + i * 0.25;
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.25, at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.18);
    osc.connect(gain).connect(ctx.destination);
    osc.start(at);
    osc.stop(at + 0.2);
  }
}

// -- the map -------------------------------------------------------------------------------------------------

function drawIcon(draw, size = 40) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  const ctx = canvas.getContext("2d");
  draw(ctx, size);
  return { width: size, height: size, data: ctx.getImageData(0, 0, size, size).data };
}

function silentIcon() {
  // A grey ring crossed through: "no signal". Drawn here so no icon file (or glyph server) is needed.
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

function baseStyle() {
  return {
    version: 8,
    sources: {
      base: { type: "geojson", data: "/web/basemap.geojson", attribution: state.config.attribution },
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
  for (const m of state.labels) m.remove();
  state.labels = [];
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
    state.labels.push(new maplibregl.Marker({ element: el, anchor: p.layer === "place" ? "left" : "center", offset: p.layer === "place" ? [6, 0] : [0, 0] }).setLngLat(at).addTo(map));
  }
}

function showLabelsForZoom() {
  const z = state.map.getZoom();
  for (const m of state.labels) {
    const el = m.getElement();
    el.hidden = z < Number(el.dataset.minzoom) || z >= Number(el.dataset.maxzoom);
  }
}

function relabel() {
  for (const m of state.labels) {
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
  map.on("click", "devices", (e) => selectDevice(e.features[0].properties.id, false));
  map.on("click", "alert-points", (e) => {
    if (map.queryRenderedFeatures(e.point, { layers: ["devices"] }).length) return;
    selectAlert(e.features[0].properties.id, false);
  });
  map.on("click", "alert-area-fill", (e) => {
    if (map.queryRenderedFeatures(e.point, { layers: ["devices", "alert-points"] }).length) return;
    selectAlert(e.features[0].properties.id, false);
  });
}

async function buildMap() {
  const base = await (await fetch("/web/basemap.geojson")).json();
  const outline = base.features.find((f) => f.properties.layer === "outline");
  const ring = outline ? outline.geometry.coordinates[0] : [[137.0, 34.95], [137.6, 35.3]];
  const xs = ring.map((c) => c[0]);
  const ys = ring.map((c) => c[1]);
  const map = new maplibregl.Map({
    container: "map",
    style: baseStyle(),
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

// -- page ----------------------------------------------------------------------------------------------------

function renderLegend() {
  const dot = (cls, style) => h("i", { class: `dot ${cls}`, style, "aria-hidden": "true" });
  fill($("#legend-list"),
    h("li", {}, dot("", `background:${LEVEL_COLORS[0]}`), h("span", {}, t("legend.normal"))),
    [1, 2, 3, 4, 5].map((n) => h("li", {}, levelBadge(n), h("span", {}, levelName(n)))),
    h("li", {}, dot("silent-dot"), h("span", {}, t("legend.silent"))),
    h("li", {}, dot("stand-dot"), h("span", {}, t("legend.stands"))),
  );
}

function levelName(n) {
  const names = state.config.levels[String(n)];
  return (language() === "ja" ? names.ja : names.en) || t("level.n", { n });
}

function setLive(status) {
  const el = $("#live");
  el.dataset.state = status;
  el.textContent = t(`live.${status}`);
}

function fillFilters() {
  const stateSel = $("#filter-state");
  const keep = { state: stateSel.value, level: $("#filter-level").value, hazard: $("#filter-hazard").value };
  fill(stateSel,
    ...["active", "open", "acknowledged"].map((s) => h("option", { value: s }, t(`state.${s}`))),
    h("option", { value: "ended" }, t("state.ended", { h: state.config.history_hours })),
  );
  fill($("#filter-level"), h("option", { value: "0" }, t("level.any")), ...[1, 2, 3, 4, 5].map((n) => h("option", { value: String(n) }, t("level.min", { n }))));
  fill($("#filter-hazard"),
    h("option", { value: "" }, t("hazard.any")),
    ...["flood", "landslide", "rain", "sediment", "equipment", "other"].map((z) => h("option", { value: z }, t(`hazard.${z}`))),
  );
  stateSel.value = keep.state || "active";
  $("#filter-level").value = keep.level || "0";
  $("#filter-hazard").value = keep.hazard || "";
}

function setTab(tab) {
  state.tab = tab;
  for (const b of document.querySelectorAll("[role=tab]")) {
    const on = b.dataset.tab === tab;
    b.setAttribute("aria-selected", String(on));
    b.tabIndex = on ? 0 : -1;
    $(`#${b.getAttribute("aria-controls")}`).hidden = !on;
  }
  if (tab === "devices") renderDeviceList();
  else renderAlertList();
}

function applyLanguage(lang) {
  setLanguage(lang);
  localStorage.setItem("mimamori.lang", lang);
  $("#sound").textContent = t(state.sound ? "sound.on" : "sound.off");
  if (state.config) {
    fillFilters();
    relabel();
    renderLegend();
    renderBanner();
    renderAlertList();
    renderDevices();
    if (state.selected?.kind === "alert") selectAlert(state.selected.id, false);
    else if (state.selected?.kind === "device") renderDeviceDetail(state.selected.id, { chart: true });
    setLive($("#live").dataset.state || "connecting");
  }
}

function wire() {
  $("#lang").addEventListener("click", () => applyLanguage(language() === "ja" ? "en" : "ja"));
  $("#sound").addEventListener("click", () => {
    state.sound = !state.sound;
    localStorage.setItem("mimamori.sound", state.sound ? "on" : "off");
    $("#sound").setAttribute("aria-pressed", String(state.sound));
    $("#sound").textContent = t(state.sound ? "sound.on" : "sound.off");
    if (state.sound) {
      state.audio ||= new AudioContext(); // created on a click, so the browser lets it play later
      state.audio.resume();
    }
  });
  $("#sound").setAttribute("aria-pressed", String(state.sound));
  $("#logout").addEventListener("click", logout);
  $("#filter-state").addEventListener("change", (e) => {
    state.filters.state = e.target.value;
    if (state.filters.state === "ended") loadEnded();
    else renderAlertList();
  });
  $("#filter-level").addEventListener("change", (e) => {
    state.filters.minLevel = Number(e.target.value);
    renderAlertList();
  });
  $("#filter-hazard").addEventListener("change", (e) => {
    state.filters.hazard = e.target.value;
    renderAlertList();
  });
  $("#filter-search").addEventListener("input", (e) => {
    state.filters.search = e.target.value;
    if (state.tab === "devices") renderDeviceList();
    else renderAlertList();
  });
  for (const b of document.querySelectorAll("[role=tab]")) b.addEventListener("click", () => setTab(b.dataset.tab));
  $(".tabs").addEventListener("keydown", (e) => {
    if (e.key !== "ArrowRight" && e.key !== "ArrowLeft") return;
    const next = state.tab === "alerts" ? "devices" : "alerts";
    setTab(next);
    $(`[data-tab=${next}]`).focus();
  });
  $("#banner-show").addEventListener("click", () => {
    const id = Number($("#banner").dataset.alert);
    state.banner = false;
    $("#banner").hidden = true;
    setTab("alerts");
    selectAlert(id, true).then(() => $("#detail-title")?.focus());
  });
  $("#banner-dismiss").addEventListener("click", () => {
    state.banner = false;
    $("#banner").hidden = true;
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !$("#detail").hidden) closeDetail();
    if (e.target.matches("input, textarea, select")) return;
    if (e.key === "/") {
      e.preventDefault();
      $("#filter-search").focus();
    } else if (e.key === "l") applyLanguage(language() === "ja" ? "en" : "ja");
  });
  $("#login-form").addEventListener("submit", login);
}

async function login(e) {
  e.preventDefault();
  const key = $("#login-key").value.trim();
  const msg = $("#login-error");
  msg.textContent = "";
  try {
    state.me = await api("/v1/me", { key });
  } catch (err) {
    msg.textContent = err instanceof Unauthorized ? t("login.bad") : t("login.unreachable");
    return;
  }
  session.key = key;
  $("#login-key").value = "";
  $("#login").close();
  start();
}

function logout() {
  session.key = null;
  state.stream?.stop();
  clearInterval(state.refreshTimer);
  location.reload();
}

function askForKey() {
  document.body.classList.remove("signed-in");
  const dialog = $("#login");
  if (!dialog.open) dialog.showModal();
  $("#login-key").focus();
}

async function start() {
  document.body.classList.add("signed-in");
  $("#role").textContent = `${state.me.tenant_id} · ${state.me.role}`;
  fillFilters();
  const types = await api("/v1/device-types");
  state.deviceTypes = new Map(types.map((ty) => [ty.id, ty]));
  await buildMap();
  await loadDevices({ registry: true });
  setLive("connecting");
  // The list is loaded once the stream says where it starts, so no change between the two is missed.
  let first = true;
  state.stream = alertStream({
    onEvent: applyEvent,
    onState: setLive,
    onUnauthorized: askForKey,
    onStart: () => {
      if (!first) return;
      first = false;
      loadAlerts().then(() => document.body.classList.add("ready"));
    },
  });
  let ticks = 0;
  state.refreshTimer = setInterval(() => {
    ticks += 1;
    loadDevices({ registry: ticks % 10 === 0 }).catch((err) => console.warn("device refresh:", err.message));
    if (state.tab === "alerts") renderAlertList(); // the "… ago" times
  }, state.config.refresh_s * 1000);
}

async function main() {
  applyLanguage(localStorage.getItem("mimamori.lang") || (navigator.language.startsWith("ja") ? "ja" : "en"));
  wire();
  state.config = await (await fetch("/web/config.json")).json();
  setLevelColors(Object.fromEntries(Object.entries(state.config.levels).map(([n, v]) => [n, v.color])));
  // on a phone the legend starts folded (its title stays, one tap opens it); on larger screens it is open
  $("#legend").open = !matchMedia(PHONE).matches;
  renderLegend();
  fillFilters();
  if (!session.key) return askForKey();
  try {
    state.me = await api("/v1/me");
  } catch (err) {
    if (err instanceof Unauthorized) {
      session.key = null;
      return askForKey();
    }
    throw err;
  }
  await start();
}

window.addEventListener("unhandledrejection", (e) => {
  if (e.reason instanceof Unauthorized) {
    session.key = null;
    askForKey();
  }
});

main();
