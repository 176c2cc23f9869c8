// The map's one store: what the hub said (settings, the key's tenant and role, devices, alerts) and what the screen
// shows (filters, tab, selection), with subscribe/publish so that each part redraws itself when its data changes.
// The API key itself stays in api.js's `session` (this tab's sessionStorage only), never in this object.

export const ACTIVE = new Set(["open", "acknowledged"]);

export const state = {
  config: null, // /web/config.json
  me: null, // /v1/me: the key's tenant and role
  map: null,
  devices: new Map(), // id -> merged registry row + liveness + latest values
  deviceTypes: new Map(),
  alerts: new Map(), // id -> alert row as the API gives it
  ended: [], // resolved/closed alerts of the last hours (loaded on demand)
  filters: { state: "active", minLevel: 0, hazard: "", search: "" },
  tab: "alerts",
  selected: null, // {kind: "device"|"alert", id}
  fresh: new Set(), // alert ids raised since the page loaded and not yet looked at
  banner: false, // raised by a new or escalated alert, until dismissed or shown
};

const listeners = new Map();

/**
 * Calls `fn(detail)` on every `publish(topic, detail)`. Topics: "devices" and "alerts" (the store's rows changed),
 * "alert" (one alert changed by the stream), "language", "select" ({kind, id, fly}).
 */
export function subscribe(topic, fn) {
  if (!listeners.has(topic)) listeners.set(topic, []);
  listeners.get(topic).push(fn);
}

/** Tells the subscribers in the order they subscribed; resolves when the asynchronous ones are done. */
export function publish(topic, detail) {
  return Promise.all((listeners.get(topic) || []).map((fn) => fn(detail)));
}

/** Shows an alert or a device in the detail panel, flying the map to it when `fly`. */
export function select(kind, id, fly = false) {
  return publish("select", { kind, id, fly });
}
