// The citizens' page's service worker: network first, and with no network the page as last seen, marked offline
// so it shows its banner and the age of its values. Only /public is handled; nothing is sent anywhere else.
"use strict";
var CACHE = "mimamori-public-v1";

self.addEventListener("install", function () { self.skipWaiting(); });
self.addEventListener("activate", function (event) { event.waitUntil(self.clients.claim()); });

function offlineCopy(response) {
  return response.text().then(function (html) {
    var marked = html.replace('data-offline="0"', 'data-offline="1"').replace('<div id="offline" class="offline" role="status" hidden>', '<div id="offline" class="offline" role="status">');
    return new Response(marked, { status: 200, headers: { "Content-Type": "text/html; charset=utf-8" } });
  });
}

function fromNetwork(request) {
  return caches.open(CACHE).then(function (cache) {
    return fetch(request).then(function (response) {
      if (response.ok) cache.put(request, response.clone());
      return response;
    }).catch(function (error) {
      // Vary (Accept-Language) is for shared caches; here any kept copy of the address will do.
      return cache.match(request, { ignoreVary: true }).then(function (hit) {
        if (!hit && request.mode === "navigate") return cache.match(request, { ignoreSearch: true, ignoreVary: true });
        return hit;
      }).then(function (hit) {
        if (!hit) throw error;
        var type = hit.headers.get("Content-Type") || "";
        return type.indexOf("text/html") === 0 ? offlineCopy(hit) : hit;
      });
    });
  });
}

self.addEventListener("fetch", function (event) {
  var url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  if (url.pathname !== "/public" && url.pathname.indexOf("/public/") !== 0) return;
  event.respondWith(fromNetwork(event.request));
});
