// The detail panel for an alert: its facts, its history, and the lifecycle controls (acknowledge, resolve, close)
// for the roles that may use them.
import { api, HttpError } from "./api.js";
import { loadEnded, renderAlertList } from "./alert-list.js";
import { closeDetail, showDetail } from "./detail.js";
import { $, fill, h, levelBadge } from "./dom.js";
import { ago, alertTitle, formatTime, t } from "./i18n.js";
import { ACTIVE, publish, select, state, subscribe } from "./state.js";

// What an operator may do to an alert in each state (the API refuses the rest, and refuses other roles).
const ACTIONS = { open: ["acknowledge", "resolve"], acknowledged: ["resolve"], resolved: ["close"], closed: [] };

async function selectAlert(id, fly) {
  state.selected = { kind: "alert", id };
  if (state.fresh.delete(id)) publish("alerts");
  else renderAlertList();
  const full = await api(`/v1/alerts/${id}`);
  if (state.selected?.kind !== "alert" || state.selected.id !== id) return;
  if (ACTIVE.has(full.state) || state.alerts.has(id)) state.alerts.set(id, full);
  if (fly) {
    const g = full.location || full.area;
    if (g) {
      const coords = g.type === "Point" ? [g.coordinates] : g.coordinates.flat(2);
      const xs = coords.map((c) => c[0]);
      const ys = coords.map((c) => c[1]);
      state.map.fitBounds([[Math.min(...xs), Math.min(...ys)], [Math.max(...xs), Math.max(...ys)]], { maxZoom: 13, padding: 80, duration: 600 });
    }
  }
  renderAlertDetail(full);
}

function lifecycleForm(a) {
  // viewers, forestry and partner keys get no controls (and the API refuses them the changes anyway)
  const actions = ["operator", "admin"].includes(state.me.role) ? ACTIONS[a.state] || [] : [];
  if (!actions.length) return null;
  return h(
    "form",
    { class: "ack", onsubmit: (e) => changeAlert(e, a.id) },
    h("label", { for: "ack-note" }, t("detail.note")),
    h("textarea", { id: "ack-note", name: "note", rows: "2", maxlength: "2000" }),
    h(
      "div",
      { class: "actions" },
      actions.map((action, i) =>
        h("button", { type: "submit", value: action, class: i === 0 ? "primary" : "secondary", id: `${action}-button` }, t(`action.${action}`)),
      ),
    ),
    h("p", { class: "form-msg", role: "status" }),
  );
}

function renderAlertDetail(a) {
  const device = a.device_id ? state.devices.get(a.device_id) : null;
  const events = (a.events || []).slice().reverse();
  fill($("#detail"),
    h(
      "div",
      { class: "detail-head" },
      levelBadge(a.level),
      h("h2", { id: "detail-title", tabindex: "-1" }, alertTitle(a)),
      h("button", { class: "close", onclick: closeDetail, "aria-label": t("detail.close") }, "×"),
    ),
    h(
      "table",
      { class: "facts" },
      h("tr", {}, h("th", {}, t("detail.state")), h("td", {}, h("span", { class: `chip state-${a.state}`, id: "alert-state" }, t(`state.${a.state}`)))),
      h("tr", {}, h("th", {}, t("filter.hazard")), h("td", {}, t(`hazard.${a.hazard}`))),
      h("tr", {}, h("th", {}, t("detail.peak")), h("td", {}, t("level.n", { n: a.peak_level }))),
      a.device_id
        ? h("tr", {}, h("th", {}, t("detail.device")), h("td", {}, h("button", { class: "link", onclick: () => select("device", a.device_id, true) }, device ? device.name || device.id : a.device_id)))
        : null,
      a.value !== null ? h("tr", {}, h("th", {}, t("detail.value")), h("td", {}, String(+Number(a.value).toFixed(3)))) : null,
      h("tr", {}, h("th", {}, t("detail.opened")), h("td", {}, formatTime(a.opened_at))),
      h("tr", {}, h("th", {}, t("detail.updated")), h("td", {}, `${formatTime(a.updated_at)} (${ago(a.updated_at)})`)),
    ),
    lifecycleForm(a),
    h("h3", {}, t("detail.history")),
    h(
      "ol",
      { class: "history", id: "alert-history" },
      events.map((e) =>
        h(
          "li",
          { "data-kind": e.kind },
          levelBadge(e.level),
          // the person's name as the key had it then; the key id (or the rule) where there is none
          h("span", {}, h("strong", {}, t(`event.${e.kind}`)), " ", formatTime(e.at), h("span", { class: "actor" }, actorOf(e))),
          e.note ? h("q", {}, e.note) : null,
        ),
      ),
    ),
  );
  showDetail();
}

function actorOf(e) {
  const who = e.actor_name || e.actor;
  return who ? ` · ${who}` : "";
}

async function changeAlert(e, id) {
  e.preventDefault();
  const form = e.currentTarget;
  const action = e.submitter?.value || ACTIONS.open[0];
  const note = form.note.value.trim();
  const buttons = [...form.querySelectorAll("button")];
  for (const b of buttons) b.disabled = true;
  try {
    const full = await api(`/v1/alerts/${id}/${action}`, { method: "POST", body: { note: note || null } });
    state.alerts.set(id, full);
    publish("alerts");
    if (state.filters.state === "ended") loadEnded().catch((err) => console.warn("ended alerts:", err.message));
    renderAlertDetail(full);
    $("#detail .facts").after(h("p", { class: "ok", role: "status" }, t(`action.${action}.done`)));
    $("#detail-title")?.focus();
  } catch (err) {
    for (const b of buttons) b.disabled = false;
    form.querySelector(".form-msg").textContent = err instanceof HttpError && err.status === 403 ? t("action.forbidden") : err.message;
  }
}

const selectedAlert = () => (state.selected?.kind === "alert" ? state.selected.id : null);

subscribe("select", ({ kind, id, fly }) => (kind === "alert" ? selectAlert(id, fly) : undefined));
subscribe("alert", (a) => {
  if (selectedAlert() === a.id) selectAlert(a.id, false);
});
subscribe("language", () => {
  if (selectedAlert() !== null) selectAlert(selectedAlert(), false);
});
