// The legend: the level table's colours and names (from /web/config.json), silence and stands; folded on a phone.
import { $, fill, h, levelBadge } from "./dom.js";
import { language, t } from "./i18n.js";
import { LEVEL_COLORS } from "./levels.js";
import { state, subscribe } from "./state.js";

const PHONE = "(max-width: 760px)";

function levelName(n) {
  const names = state.config.levels[String(n)];
  return (language() === "ja" ? names.ja : names.en) || t("level.n", { n });
}

export function renderLegend() {
  const dot = (cls, style) => h("i", { class: `dot ${cls}`, style, "aria-hidden": "true" });
  fill($("#legend-list"),
    h("li", {}, dot("", `background:${LEVEL_COLORS[0]}`), h("span", {}, t("legend.normal"))),
    [1, 2, 3, 4, 5].map((n) => h("li", {}, levelBadge(n), h("span", {}, levelName(n)))),
    h("li", {}, dot("silent-dot"), h("span", {}, t("legend.silent"))),
    h("li", {}, dot("stand-dot"), h("span", {}, t("legend.stands"))),
  );
}

/** On a phone the legend starts folded (its title stays, one tap opens it); on larger screens it is open. */
export function foldLegendOnPhone() {
  $("#legend").open = !matchMedia(PHONE).matches;
}

subscribe("language", () => renderLegend());
