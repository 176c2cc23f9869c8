// Talking to the hub: the API key (this tab's sessionStorage only), JSON requests, and the live alert stream.

const KEY = "mimamori.apiKey";

export class Unauthorized extends Error {}
export class HttpError extends Error {
  constructor(status, detail) {
    super(`HTTP ${status}: ${detail}`);
    this.status = status;
  }
}

export const session = {
  get key() {
    return sessionStorage.getItem(KEY);
  },
  set key(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
};

export async function api(path, { method = "GET", body, key = session.key } = {}) {
  const headers = { "X-API-Key": key, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 401) throw new Unauthorized();
  if (!res.ok) {
    let detail = res.statusText;
    try {
      detail = (await res.json()).detail ?? detail;
    } catch {
      // not JSON: keep the status text
    }
    throw new HttpError(res.status, detail);
  }
  return res.json();
}

/** Every page of an OGC API Features collection (following its `next` links). */
export async function allFeatures(path) {
  const features = [];
  let url = path;
  while (url) {
    const page = await api(url);
    features.push(...page.features);
    const next = (page.links || []).find((l) => l.rel === "next");
    url = next ? new URL(next.href, location.href).pathname + new URL(next.href, location.href).search : null;
  }
  return features;
}

/** Every page of a plain list endpoint taking limit/offset. */
export async function allRows(path, pageSize = 1000) {
  const rows = [];
  for (let offset = 0; ; offset += pageSize) {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api(`${path}${sep}limit=${pageSize}&offset=${offset}`);
    rows.push(...page);
    if (page.length < pageSize) return rows;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * The live alert stream (server-sent events) read over fetch, because EventSource cannot send the key in a header
 * (and a key in the URL would end up in logs). Reconnects with back-off and Last-Event-ID, so nothing is missed.
 * onStart(afterId) is called once per connection with the event id the server resumes after.
 */
export function alertStream({ onEvent, onState, onStart, onUnauthorized }) {
  const controller = new AbortController();
  let lastId = null;
  let backoff = 1000;

  function handle(block) {
    let id = null;
    let data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith(": resuming after event ")) onStart(Number(line.slice(23)));
      else if (line.startsWith("id: ")) id = Number(line.slice(4));
      else if (line.startsWith("data: ")) data += line.slice(6);
    }
    if (data) {
      if (id !== null) lastId = id;
      onEvent(JSON.parse(data));
    }
  }

  async function run() {
    while (!controller.signal.aborted) {
      try {
        const headers = { "X-API-Key": session.key, Accept: "text/event-stream" };
        if (lastId !== null) headers["Last-Event-ID"] = String(lastId);
        const res = await fetch("/v1/alerts/stream", { headers, signal: controller.signal, cache: "no-store" });
        if (res.status === 401) {
          onUnauthorized();
          return;
        }
        if (!res.ok) throw new HttpError(res.status, res.statusText);
        onState("live");
        backoff = 1000;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n/g, "\n");
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            handle(buffer.slice(0, cut));
            buffer = buffer.slice(cut + 2);
          }
        }
      } catch (err) {
        if (controller.signal.aborted) return;
        console.warn("alert stream:", err.message);
      }
      onState("reconnecting");
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 30_000);
    }
  }

  run();
  return { stop: () => controller.abort() };
}
