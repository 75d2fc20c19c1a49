/* Sereus node service worker, rendered by apps.website.views.service_worker.
 *
 * What it does, and why so little:
 * - install: stores the app shell (the offline page, the stylesheets, htmx, the icons, the
 *   manifest) so the installed app can show something useful without a connection;
 * - activate: deletes the caches of older versions (the cache name carries the node version and
 *   a hash of its static files, so an upgrade always starts from a clean cache);
 * - fetch: static files come from the cache first; pages come from the network, with the offline
 *   page as the fallback. Pages, the API and everything private are never stored: the node is the
 *   owner's door to their data, and a cache on a shared phone must not keep any of it.
 */
"use strict";

const CACHE_NAME = {{ cache_name|safe }};
const PRECACHE_URLS = {{ precache|safe }};
const OFFLINE_URL = {{ offline_url|safe }};
const STATIC_PREFIX = {{ static_prefix|safe }};
const NEVER_CACHE = {{ never_cache|safe }};
const CACHE_PREFIX = "sereus-";

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE_NAME)
      // Without cookies: the stored offline page must be the anonymous one, whoever installs.
      .then((cache) => cache.addAll(PRECACHE_URLS.map((url) => new Request(url, { credentials: "omit" }))))
      .then(() => self.skipWaiting())
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) =>
        Promise.all(
          names
            .filter((name) => name.startsWith(CACHE_PREFIX) && name !== CACHE_NAME)
            .map((name) => caches.delete(name))
        )
      )
      .then(() => self.clients.claim())
  );
});

// Only complete, successful, same-origin responses are worth keeping.
function storable(response) {
  return response.status === 200 && response.type === "basic";
}

async function cacheFirst(request) {
  const cache = await caches.open(CACHE_NAME);
  const cached = await cache.match(request);
  if (cached) {
    return cached;
  }
  const response = await fetch(request);
  if (storable(response)) {
    await cache.put(request, response.clone());
  }
  return response;
}

async function networkFirst(request, fallbackUrl) {
  try {
    return await fetch(request);
  } catch (error) {
    const cached = await caches.match(fallbackUrl, { cacheName: CACHE_NAME });
    if (cached) {
      return cached;
    }
    throw error;
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") {
    return;
  }
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) {
    return;
  }
  if (request.mode === "navigate") {
    // A page: always the network (it may hold private data, so it is never stored); when the
    // network is down, the offline page instead of the browser's error.
    event.respondWith(networkFirst(request, OFFLINE_URL));
    return;
  }
  if (NEVER_CACHE.some((prefix) => url.pathname.startsWith(prefix))) {
    return;
  }
  if (url.pathname.startsWith(STATIC_PREFIX)) {
    event.respondWith(cacheFirst(request));
    return;
  }
  if (PRECACHE_URLS.includes(url.pathname)) {
    // The manifest: fresh when online, the stored copy when not.
    event.respondWith(networkFirst(request, url.pathname));
  }
  // Anything else goes to the network as if there were no service worker.
});
