/* The time a device link has left, counted down each second on its page ("expires in 9:41"),
 * then "has expired". The server's own poll says what became of the link; this is only the
 * clock a person reads. Without JavaScript the page says "expires in 10 minutes". */
(function () {
  "use strict";
  var nodes = document.querySelectorAll("[data-expires]");
  if (!nodes.length) {
    return;
  }
  function pad(n) {
    return n < 10 ? "0" + n : String(n);
  }
  function tick() {
    var now = Date.now();
    nodes.forEach(function (node) {
      var left = Math.floor((Date.parse(node.dataset.expires) - now) / 1000);
      if (isNaN(left)) {
        return;
      }
      node.textContent =
        left > 0 ? "expires in " + Math.floor(left / 60) + ":" + pad(left % 60) : "has expired";
    });
  }
  tick();
  window.setInterval(tick, 1000);
})();
