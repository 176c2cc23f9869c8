// The citizens' page, made better by script (it reads fine without): ages kept current, the offline banner, the
// evacuation sites sorted by the distance from where the browser is (the position never leaves the browser), and
// the service worker that keeps the page for offline use.
"use strict";
(function () {
  var CACHE = "mimamori-public-v1";
  var root = document.documentElement;
  var words = JSON.parse(document.getElementById("i18n").textContent);

  function fill(text, values) {
    return text.replace(/\{(\w+)\}/g, function (whole, key) {
      return key in values ? String(values[key]) : whole;
    });
  }

  function ageText(then, now) {
    var minutes = Math.max(0, Math.floor((now - then) / 60000));
    if (minutes < 1) return words.age_now;
    if (minutes < 60) return fill(words.age_min, { n: minutes });
    if (minutes < 48 * 60) return fill(words.age_hour, { n: Math.floor(minutes / 60) });
    return fill(words.age_day, { n: Math.floor(minutes / 1440) });
  }

  function refreshAges() {
    var now = Date.now();
    document.querySelectorAll(".age[data-t]").forEach(function (el) {
      el.textContent = ageText(Date.parse(el.getAttribute("data-t")), now);
    });
  }

  // Great-circle distance in km (the same sum as api/public/page.py's haversine_km).
  function distanceKm(lat1, lon1, lat2, lon2) {
    var r = Math.PI / 180;
    var dp = (lat2 - lat1) * r, dl = (lon2 - lon1) * r;
    var a = Math.pow(Math.sin(dp / 2), 2) + Math.cos(lat1 * r) * Math.cos(lat2 * r) * Math.pow(Math.sin(dl / 2), 2);
    return 6371.0088 * 2 * Math.asin(Math.sqrt(a));
  }

  function sortSites(position) {
    var lat = position.coords.latitude, lon = position.coords.longitude;
    var groups = document.getElementById("site-groups");
    var items = Array.prototype.slice.call(groups.querySelectorAll("li.site[data-lat]"));
    items.forEach(function (li) {
      li.dataset.km = distanceKm(lat, lon, parseFloat(li.dataset.lat), parseFloat(li.dataset.lon));
      li.querySelector(".dist").textContent = fill(words.distance, { km: Number(li.dataset.km).toFixed(1) });
    });
    items.sort(function (a, b) { return a.dataset.km - b.dataset.km; });
    var list = document.getElementById("sites-sorted");
    if (!list) {
      list = document.createElement("ol");
      list.id = "sites-sorted";
      list.className = "cards";
      groups.parentNode.insertBefore(list, groups);
    }
    items.forEach(function (li) { list.appendChild(li); });
    groups.hidden = true;
    document.getElementById("sites-order").hidden = true;
    document.getElementById("sort-status").textContent = words.sorted;
  }

  function setUpSorting() {
    var button = document.getElementById("sort-sites");
    if (!button || !("geolocation" in navigator)) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.geolocation.getCurrentPosition(sortSites, function () {
        document.getElementById("sort-status").textContent = words.location_failed;
      }, { maximumAge: 300000, timeout: 20000 });
    });
  }

  function setUpOffline() {
    if (root.dataset.offline === "1") document.getElementById("offline").hidden = false;
    if (!("serviceWorker" in navigator) || !window.caches) return;
    navigator.serviceWorker.register("/public/sw.js", { scope: "/public" }).then(function () {
      return navigator.serviceWorker.ready;
    }).then(function () {
      if (root.dataset.offline === "1") return null;
      // The page as this visit saw it (the worker keeps later ones itself), for the next visit with no network.
      return caches.open(CACHE).then(function (cache) {
        return cache.addAll([location.href, document.querySelector("script[src]").src]);
      });
    }).then(function () {
      root.dataset.cached = "1";
    }).catch(function () { /* no worker: the page still works, only not offline */ });
  }

  function start() {
    refreshAges();
    setInterval(refreshAges, 30000);
    setUpSorting();
    setUpOffline();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
