// The filters over the lists (state, level, hazard, search), their choices in the chosen language.
import { loadEnded, renderAlertList } from "./alert-list.js";
import { renderDeviceList } from "./device-list.js";
import { $, fill, h } from "./dom.js";
import { t } from "./i18n.js";
import { state, subscribe } from "./state.js";

export function fillFilters() {
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

export function wireFilters() {
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
}

subscribe("language", () => fillFilters());
