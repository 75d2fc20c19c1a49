/* Sereus node service worker, rendered by apps.website.views.service_worker.
 *
 * What it does:
 * - install: stores the app shell (the offline page, the stylesheets, htmx, the icons, the
 *   manifest) so the installed app can show something useful without a connection;
 * - activate: deletes the caches of older versions (the cache name carries the node version and
 *   a hash of its static files, so an upgrade always starts from a clean cache);
 * - fetch: static files come from the cache first; pages come from the network, with the offline
 *   page as the fallback. The API, the admin and the rest of the node's pages are never stored.
 * - conversations: the conversation list and the last few conversation pages the owner opened
 *   are kept (network first) so the installed app can show them offline. A message sent while
 *   the node is unreachable is queued here (IndexedDB) and sent when it is back (Background
 *   Sync, the page coming back online, or the next page load); each compose form carries a
 *   message id of its own, so a message sent twice is posted once. Logging out clears all of it
 *   (the node answers the logout with Clear-Site-Data).
 */
"use strict";

const CACHE_NAME = {{ cache_name|safe }};
const PRECACHE_URLS = {{ precache|safe }};
const OFFLINE_URL = {{ offline_url|safe }};
const STATIC_PREFIX = {{ static_prefix|safe }};
const NEVER_CACHE = {{ never_cache|safe }};
const CACHE_PREFIX = "sereus-";
const KEPT_PREFIX = {{ kept_prefix|safe }};
const KEPT_PAGES = {{ kept_pages|safe }};
const READ_PATTERNS = {{ read_patterns|safe }};
const readPatterns = READ_PATTERNS.map((pattern) => new RegExp(pattern));
const PAGES_CACHE = "sereus-pages";
const OUTBOX_DB = "sereus-outbox";
const OUTBOX_SYNC = "sereus-outbox";

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
            .filter((name) => name.startsWith(CACHE_PREFIX) && name !== CACHE_NAME && name !== PAGES_CACHE)
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

// The pages kept for offline reading: the conversation list and single conversations (not a
// search, an older page or an edit form, which carry a query string).
function kept(url) {
  if (url.search !== "" || !url.pathname.startsWith(KEPT_PREFIX)) {
    return false;
  }
  const rest = url.pathname.slice(KEPT_PREFIX.length);
  return rest === "" || /^[0-9a-f]{64}\/$/.test(rest);
}

// Other pages kept for reading offline (a feed, a timeline, a post): never a form's target.
function readable(url) {
  return url.search === "" && readPatterns.some((pattern) => pattern.test(url.pathname));
}

async function keep(url, response) {
  const cache = await caches.open(PAGES_CACHE);
  await cache.delete(url); // put it back last: the oldest kept page goes first
  await cache.put(url, response);
  const keys = await cache.keys();
  await Promise.all(keys.slice(0, Math.max(0, keys.length - KEPT_PAGES)).map((key) => cache.delete(key)));
}

async function networkThenKeep(event) {
  const request = event.request;
  try {
    const response = await fetch(request);
    // Not a redirect (to the login page, say) and not an error: the page itself.
    if (storable(response) && !response.redirected) {
      event.waitUntil(keep(request.url, response.clone()));
    }
    event.waitUntil(outboxFlush());
    return response;
  } catch (error) {
    const cache = await caches.open(PAGES_CACHE);
    const page = await cache.match(request.url);
    if (page) {
      return page;
    }
    const offline = await caches.match(OFFLINE_URL, { cacheName: CACHE_NAME });
    if (offline) {
      return offline;
    }
    throw error;
  }
}

// -- the outbox: messages sent while the node was unreachable ---------------------------------

function outboxOpen() {
  return new Promise((resolve, reject) => {
    const opening = indexedDB.open(OUTBOX_DB, 1);
    opening.onupgradeneeded = () => opening.result.createObjectStore("messages", { autoIncrement: true });
    opening.onsuccess = () => resolve(opening.result);
    opening.onerror = () => reject(opening.error);
  });
}

async function outbox(mode, use) {
  const db = await outboxOpen();
  try {
    return await new Promise((resolve, reject) => {
      const transaction = db.transaction("messages", mode);
      const result = use(transaction.objectStore("messages"));
      transaction.oncomplete = () => resolve(result && "result" in result ? result.result : undefined);
      transaction.onerror = () => reject(transaction.error);
    });
  } finally {
    db.close();
  }
}

async function outboxEntries() {
  const db = await outboxOpen();
  try {
    return await new Promise((resolve, reject) => {
      const transaction = db.transaction("messages", "readonly");
      const store = transaction.objectStore("messages");
      const keys = store.getAllKeys();
      const values = store.getAll();
      transaction.oncomplete = () => resolve(keys.result.map((key, i) => [key, values.result[i]]));
      transaction.onerror = () => reject(transaction.error);
    });
  } finally {
    db.close();
  }
}

let flushing = null;

function outboxFlush() {
  // One flush at a time: two at once would send the same message twice (harmless, as it carries
  // its id, but wasteful).
  if (!flushing) {
    flushing = outboxSend().finally(() => {
      flushing = null;
    });
  }
  return flushing;
}

async function outboxSend() {
  for (const [key, item] of await outboxEntries()) {
    const body = new FormData();
    for (const [name, value] of item.fields) {
      body.append(name, value);
    }
    let response;
    try {
      response = await fetch(item.url, { method: "POST", body, credentials: "same-origin", redirect: "manual" });
    } catch (error) {
      return; // still unreachable: the rest waits too
    }
    if (response.status >= 500) {
      return; // the node is there but failing: try again later
    }
    // Sent (a redirect back to the conversation), or refused for good (the form is invalid, the
    // session ended): either way it leaves the outbox; a refusal is logged for the owner.
    if (response.type !== "opaqueredirect" && !response.ok) {
      console.warn("Sereus: a queued message was refused by the node:", response.status);
    }
    await outbox("readwrite", (store) => store.delete(key));
  }
}

function page(title, text, link) {
  const escape = (value) => value.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
  const body = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escape(title)}</title></head><body><main><h1>${escape(title)}</h1><p>${escape(text)}</p><p><a href="${escape(link)}">Back to the conversation</a></p></main></body></html>`;
  return new Response(body, { status: 202, headers: { "Content-Type": "text/html; charset=utf-8" } });
}

async function sendOrQueue(request) {
  const copy = request.clone();
  try {
    return await fetch(request);
  } catch (error) {
    const form = await copy.formData();
    const fields = [];
    let files = false;
    for (const [name, value] of form.entries()) {
      if (typeof value === "string") {
        fields.push([name, value]);
      } else if (value.size > 0) {
        files = true;
      }
    }
    const link = new URL(request.url).pathname;
    if (files || !fields.some(([name, value]) => name === "id" && value)) {
      return page(
        "Not sent",
        "The node cannot be reached, and a message with attachments cannot wait here: send it again when you are back online.",
        link
      );
    }
    await outbox("readwrite", (store) => store.add({ url: request.url, fields, queued: Date.now() }));
    try {
      await self.registration.sync.register(OUTBOX_SYNC);
    } catch (ignored) {
      // No Background Sync here: the next page load or the page coming online sends it.
    }
    return page("Queued", "The node cannot be reached: your message will be sent as soon as it can be.", link);
  }
}

self.addEventListener("sync", (event) => {
  if (event.tag === OUTBOX_SYNC) {
    event.waitUntil(outboxFlush());
  }
});

self.addEventListener("message", (event) => {
  if (event.data && event.data.type === "outbox-flush") {
    event.waitUntil(outboxFlush());
  }
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) {
    return;
  }
  if (request.method === "POST" && request.mode === "navigate" && kept(url) && url.pathname !== KEPT_PREFIX) {
    // The compose form of a conversation.
    event.respondWith(sendOrQueue(request));
    return;
  }
  if (request.method !== "GET") {
    return;
  }
  if (request.mode === "navigate") {
    if (kept(url) || readable(url)) {
      event.respondWith(networkThenKeep(event));
      return;
    }
    // Any other page: always the network (it may hold private data, so it is never stored);
    // when the network is down, the offline page instead of the browser's error.
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
