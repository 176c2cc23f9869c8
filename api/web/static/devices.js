// The devices: the registry and their liveness loaded into the store, and what the map derives from them.
import { allFeatures, allRows } from "./api.js";
import { ACTIVE, publish, state } from "./state.js";

/** The highest level of the device's active alerts (0: none). */
export function deviceLevel(id) {
  let level = 0;
  for (const a of state.alerts.values()) if (a.device_id === id && ACTIVE.has(a.state)) level = Math.max(level, a.level);
  return level;
}

/**
 * Whether the device is silent, as the hub judged it (devices/silence.py: one rule for the map, the API and
 * Grafana, the crisis gauge's daily reporting below its observation-start level included). Read, not re-derived.
 */
export function isSilent(d) {
  return d.silent === true;
}

/** Liveness and latest values from the devices collection; the registry rows too when `registry`. */
export async function loadDevices({ registry }) {
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
    Object.assign(d, {
      online: p.online,
      last_seen: p.last_seen,
      last_reading: p.last_reading,
      silent: p.silent,
      silent_since: p.silent_since,
      latest,
    });
  }
  publish("devices");
}
