// The emergency link carries its key after "#": browsers never send that part to a server, so
// the key reaches no log. This copies it into the passcode form, which posts it with the passcode.
(function () {
  "use strict";
  function fill() {
    var key = decodeURIComponent(window.location.hash.replace(/^#/, ""));
    if (!key) return;
    document.querySelectorAll("input[data-link-key]").forEach(function (input) {
      if (!input.value) input.value = key;
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", fill);
  else fill();
})();
