// The detail panel's frame, shared by the alert and the device details: opened by them, closed by × or Escape.
import { renderAlertList } from "./alert-list.js";
import { $ } from "./dom.js";
import { state } from "./state.js";

export function showDetail() {
  $("#detail").hidden = false;
  document.body.classList.add("has-detail");
}

export function closeDetail() {
  state.selected = null;
  $("#detail").hidden = true;
  document.body.classList.remove("has-detail");
  renderAlertList(); // the row drawn as selected no longer is
}
