/* Register the node's service worker (offline page, cached static files, installable app).
 * The worker's URL comes from this script tag's data-sw-url attribute (no inline script: the CSP
 * forbids it). Browsers without service workers, or pages not on HTTPS/localhost, simply skip it.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var url = script && script.dataset.swUrl;
  if (!url || !("serviceWorker" in navigator)) {
    return;
  }
  navigator.serviceWorker.register(url, { scope: "/" }).catch(function (error) {
    // Not fatal: the node works without it, only offline support is missing.
    console.warn("Sereus: service worker not registered:", error);
  });
  // Back online: messages queued while the node was unreachable go out now.
  function flush() {
    if (navigator.serviceWorker.controller) {
      navigator.serviceWorker.controller.postMessage({ type: "outbox-flush" });
    }
  }
  window.addEventListener("online", flush);
  flush();
})();
