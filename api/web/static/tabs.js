// The two tabs over the lists, alerts and devices: by click, or by the arrow keys once one has the focus.
import { renderAlertList } from "./alert-list.js";
import { renderDeviceList } from "./device-list.js";
import { $ } from "./dom.js";
import { state } from "./state.js";

export function setTab(tab) {
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

export function wireTabs() {
  for (const b of document.querySelectorAll("[role=tab]")) b.addEventListener("click", () => setTab(b.dataset.tab));
  $(".tabs").addEventListener("keydown", (e) => {
    if (e.key !== "ArrowRight" && e.key !== "ArrowLeft") return;
    const next = state.tab === "alerts" ? "devices" : "alerts";
    setTab(next);
    $(`[data-tab=${next}]`).focus();
  });
}
