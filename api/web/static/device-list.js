// The devices tab: one row per device (highest level, then silent, first) and the counts on the tab.
import { $, fill, h, levelBadge } from "./dom.js";
import { deviceLevel, isSilent } from "./devices.js";
import { ago, deviceTypeName, t } from "./i18n.js";
import { select, state, subscribe } from "./state.js";

export function renderDeviceList() {
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
          { class: `row${silent ? " silent" : ""}`, "data-device": d.id, onclick: () => select("device", d.id, true) },
          levelBadge(level),
          h("span", { class: "row-main" }, h("strong", {}, d.name || d.id), h("small", {}, `${deviceTypeName(d.device_type)} · ${d.id}`)),
          h("span", { class: "row-side" }, silent ? h("span", { class: "chip silent" }, "⊘") : null, ago(d.last_reading)),
        ),
      ),
    ),
  );
}

function renderCounts() {
  const silent = [...state.devices.values()].filter((d) => isSilent(d)).length;
  $("#device-count").textContent = t("devices.count", { n: state.devices.size });
  $("#silent-count").textContent = silent ? t("devices.silent", { n: silent }) : "";
}

function render() {
  if (state.tab === "devices") renderDeviceList();
  renderCounts();
}

subscribe("devices", render);
subscribe("language", render);
// a device's level comes from its alerts
subscribe("alerts", () => {
  if (state.tab === "devices") renderDeviceList();
});
