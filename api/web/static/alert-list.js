// The alerts tab: the active (or recently ended) alerts through the filters, fresh ones first, and the tab's count.
import { allRows } from "./api.js";
import { $, fill, h, levelBadge } from "./dom.js";
import { ago, alertTitle, t } from "./i18n.js";
import { ACTIVE, select, state, subscribe } from "./state.js";

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

export function renderAlertList() {
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
            onclick: () => select("alert", a.id, true),
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

/** The resolved and closed alerts of the last `history_hours`, for the "ended" choice of the state filter. */
export async function loadEnded() {
  const since = new Date(Date.now() - state.config.history_hours * 3600_000).toISOString();
  state.ended = await allRows(`/v1/alerts?state=resolved,closed&since=${encodeURIComponent(since)}`);
  renderAlertList();
}

subscribe("alerts", () => renderAlertList());
subscribe("language", () => renderAlertList());
