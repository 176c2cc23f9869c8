// Building the page: `$`, `h` (an element with attributes, listeners and children), `fill`, and the level badge.
import { LEVEL_COLORS, LEVEL_TEXT } from "./levels.js";

export const $ = (sel) => document.querySelector(sel);

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}

/** Replaces a node's children, skipping the null and undefined of optional parts. */
export function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

export function levelBadge(level) {
  const n = level || 0;
  return h(
    "span",
    { class: `badge level-${n}`, style: `background:${LEVEL_COLORS[n]};color:${LEVEL_TEXT[n]}` },
    n ? `L${n}` : "—",
  );
}
