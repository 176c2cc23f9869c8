// The live alerts: the list loaded once the stream says where it starts, every change from the stream applied to
// the store (a loud one fresh, with the banner and the beep), and the live indicator in the header.
import { alertStream, allRows } from "./api.js";
import { loadDevices } from "./devices.js";
import { $ } from "./dom.js";
import { t } from "./i18n.js";
import { beep } from "./sound.js";
import { ACTIVE, publish, state, subscribe } from "./state.js";

let deviceTimer = null;

export function setLive(status) {
  const el = $("#live");
  el.dataset.state = status;
  el.textContent = t(`live.${status}`);
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
  publish("alerts");
  // an alert change means fresh readings: refresh the devices' states soon (once for a burst of changes)
  if (!deviceTimer) {
    deviceTimer = setTimeout(() => {
      deviceTimer = null;
      loadDevices({ registry: false }).catch((err) => console.warn("device refresh:", err.message));
    }, 2000);
  }
  publish("alert", a);
}

async function loadAlerts() {
  const rows = await allRows("/v1/alerts?state=open,acknowledged");
  state.alerts = new Map(rows.map((a) => [a.id, a]));
  publish("alerts");
}

/** Connects the stream; `onUnauthorized` when the hub refuses the key. Returns it (`stop()`). */
export function startStream({ onUnauthorized }) {
  setLive("connecting");
  // The list is loaded once the stream says where it starts, so no change between the two is missed.
  let first = true;
  return alertStream({
    onEvent: applyEvent,
    onState: setLive,
    onUnauthorized,
    onStart: () => {
      if (!first) return;
      first = false;
      loadAlerts().then(() => document.body.classList.add("ready"));
    },
  });
}

subscribe("language", () => setLive($("#live").dataset.state || "connecting"));
