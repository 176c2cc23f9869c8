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
 * A device is silent when it has said nothing for `silent_factor` expected intervals (crisis gauges below their
 * observation-start level only report daily, as the national guideline lets them).
 * Judged here because the API has no silent/state field to take instead: /v1/devices is the registry and
 * /ogc/collections/devices/items gives only online, last_seen and last_reading (issue 16, item 4).
 */
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
    Object.assign(d, { online: p.online, last_seen: p.last_seen, last_reading: p.last_reading, latest });
  }
  publish("devices");
}
