// The warning levels' colours (from alerts/levels.yaml, through /web/config.json) and text that stays readable on
// them: black or white, whichever has the higher WCAG 2 contrast, so a city that edits a colour keeps AA text.

export const LEVEL_COLORS = {};
export const LEVEL_TEXT = {};
export const AA = 4.5; // WCAG 2 AA for normal-size text

function channels(hex) {
  const h = hex.replace("#", "");
  const full = h.length === 3 ? [...h].map((c) => c + c).join("") : h;
  return [0, 2, 4].map((i) => parseInt(full.slice(i, i + 2), 16));
}

/** Relative luminance as WCAG 2 defines it. */
export function luminance(hex) {
  const [r, g, b] = channels(hex).map((v) => {
    const c = v / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

export function contrast(a, b) {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

/** Black or white text, whichever reads better on `background`. */
export function textOn(background) {
  return contrast(background, "#000000") >= contrast(background, "#ffffff") ? "#000000" : "#ffffff";
}

/** `color` itself when it reads on `background`, else the nearest darker shade of it that does (chart labels). */
export function readableOn(color, background, min = AA) {
  const rgb = channels(color);
  for (let k = 1; k >= 0; k -= 0.02) {
    const shade = `#${rgb.map((v) => Math.round(v * k).toString(16).padStart(2, "0")).join("")}`;
    if (contrast(shade, background) >= min) return shade;
  }
  return "#000000";
}

export function setLevelColors(colors) {
  for (const [level, color] of Object.entries(colors)) {
    LEVEL_COLORS[level] = color;
    LEVEL_TEXT[level] = textOn(color);
  }
}
