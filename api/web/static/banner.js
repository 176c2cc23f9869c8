// The banner over the map, raised by a new or escalated alert at or above the banner level: it names the highest
// active level (not the last alert to arrive), in the chosen language, until dismissed or shown.
import { $ } from "./dom.js";
import { alertTitle, t } from "./i18n.js";
import { LEVEL_COLORS, LEVEL_TEXT } from "./levels.js";
import { ACTIVE, select, state, subscribe } from "./state.js";
import { setTab } from "./tabs.js";

/** The active alerts the banner speaks of, the highest level first (a new one before an older one of its level). */
function bannerAlerts() {
  return [...state.alerts.values()]
    .filter((a) => ACTIVE.has(a.state) && a.level >= state.config.banner_level)
    .sort((a, b) => b.level - a.level || Number(state.fresh.has(b.id)) - Number(state.fresh.has(a.id)) || new Date(b.updated_at) - new Date(a.updated_at));
}

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

export function wireBanner() {
  $("#banner-show").addEventListener("click", () => {
    const id = Number($("#banner").dataset.alert);
    state.banner = false;
    $("#banner").hidden = true;
    setTab("alerts");
    select("alert", id, true).then(() => $("#detail-title")?.focus());
  });
  $("#banner-dismiss").addEventListener("click", () => {
    state.banner = false;
    $("#banner").hidden = true;
  });
}

subscribe("alerts", () => renderBanner());
subscribe("language", () => renderBanner());
