// The beep for a loud alert, and the button that turns it on (off unless chosen; remembered in this browser).
import { $ } from "./dom.js";
import { t } from "./i18n.js";

let on = localStorage.getItem("mimamori.sound") === "on";
let audio = null;

/** The button's label, in the chosen language. */
export function renderSound() {
  $("#sound").textContent = t(on ? "sound.on" : "sound.off");
}

export function wireSound() {
  $("#sound").addEventListener("click", () => {
    on = !on;
    localStorage.setItem("mimamori.sound", on ? "on" : "off");
    $("#sound").setAttribute("aria-pressed", String(on));
    renderSound();
    if (on) {
      audio ||= new AudioContext(); // created on a click, so the browser lets it play later
      audio.resume();
    }
  });
  $("#sound").setAttribute("aria-pressed", String(on));
}

export function beep(level) {
  if (!on) return;
  audio ||= new AudioContext();
  const ctx = audio;
  // Higher levels beep more often: three short tones at level 3, five at level 4 and above.
  const count = level >= 4 ? 5 : 3;
  for (let i = 0; i < count; i++) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = "square";
    osc.frequency.value = level >= 4 ? 1320 : 880;
    const at = ctx.currentTime + i * 0.25;
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.25, at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.18);
    osc.connect(gain).connect(ctx.destination);
    osc.start(at);
    osc.stop(at + 0.2);
  }
}
