// Signing in with an API key: the dialog, checking the key with /v1/me, and asking again when it is refused.
// The key itself is kept by api.js (this tab's sessionStorage only).
import { api, session, Unauthorized } from "./api.js";
import { $ } from "./dom.js";
import { t } from "./i18n.js";
import { state } from "./state.js";

export function askForKey() {
  document.body.classList.remove("signed-in");
  const dialog = $("#login");
  if (!dialog.open) dialog.showModal();
  $("#login-key").focus();
}

/** The sign-in form; `onSignedIn` once the hub accepted the key (state.me is then its tenant and role). */
export function wireLogin(onSignedIn) {
  $("#login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const key = $("#login-key").value.trim();
    const msg = $("#login-error");
    msg.textContent = "";
    try {
      state.me = await api("/v1/me", { key });
    } catch (err) {
      msg.textContent = err instanceof Unauthorized ? t("login.bad") : t("login.unreachable");
      return;
    }
    session.key = key;
    $("#login-key").value = "";
    $("#login").close();
    onSignedIn();
  });
}
