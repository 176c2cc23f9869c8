// The live alert map's entry module: settings, sign-in, the map, and the live parts. Each part is its own module
// and subscribes to the store (state.js) when imported, so importing them here is what puts them on the page.
import "./alert-detail.js";
import "./device-detail.js";
import { renderAlertList } from "./alert-list.js";
import { api, session, Unauthorized } from "./api.js";
import { wireBanner } from "./banner.js";
import { closeDetail } from "./detail.js";
import { loadDevices } from "./devices.js";
import { $ } from "./dom.js";
import { fillFilters, wireFilters } from "./filters.js";
import { language, setLanguage } from "./i18n.js";
import { foldLegendOnPhone, renderLegend } from "./legend.js";
import { setLevelColors } from "./levels.js";
import { askForKey, wireLogin } from "./login.js";
import { buildMap } from "./map-layers.js";
import { renderSound, wireSound } from "./sound.js";
import { publish, state } from "./state.js";
import { startStream } from "./stream.js";
import { wireTabs } from "./tabs.js";

let stream = null;
let refreshTimer = null;

function applyLanguage(lang) {
  setLanguage(lang);
  localStorage.setItem("mimamori.lang", lang);
  renderSound();
  if (state.config) publish("language");
}

function logout() {
  session.key = null;
  stream?.stop();
  clearInterval(refreshTimer);
  location.reload();
}

function wire() {
  $("#lang").addEventListener("click", () => applyLanguage(language() === "ja" ? "en" : "ja"));
  wireSound();
  $("#logout").addEventListener("click", logout);
  wireFilters();
  wireTabs();
  wireBanner();
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !$("#detail").hidden) closeDetail();
    if (e.target.matches("input, textarea, select")) return;
    if (e.key === "/") {
      e.preventDefault();
      $("#filter-search").focus();
    } else if (e.key === "l") applyLanguage(language() === "ja" ? "en" : "ja");
  });
  wireLogin(start);
}

async function start() {
  document.body.classList.add("signed-in");
  $("#role").textContent = `${state.me.tenant_id} · ${state.me.role}`;
  fillFilters();
  const types = await api("/v1/device-types");
  state.deviceTypes = new Map(types.map((ty) => [ty.id, ty]));
  await buildMap();
  await loadDevices({ registry: true });
  stream = startStream({ onUnauthorized: askForKey });
  let ticks = 0;
  refreshTimer = setInterval(() => {
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
  foldLegendOnPhone();
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
