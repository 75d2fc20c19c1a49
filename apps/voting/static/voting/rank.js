/* A ranked ballot's order (apps/voting, poll page): drag an option by its handle (mouse or
 * finger), or press its arrows, without a round trip. The form posts the hidden inputs in the
 * list's order; without this script the arrows post and the page comes back reordered. */
(function () {
  "use strict";
  var list = document.getElementById("ranking");
  if (!list) { return; }

  function refresh() {
    var items = list.querySelectorAll(".rank-item");
    items.forEach(function (item, at) {
      var buttons = item.querySelectorAll(".rank-moves button");
      buttons[0].disabled = at === 0;
      buttons[1].disabled = at === items.length - 1;
    });
  }

  list.addEventListener("click", function (event) {
    var button = event.target.closest("button[name=move]");
    if (!button) { return; }
    event.preventDefault();
    var item = button.closest(".rank-item");
    if (button.value.indexOf("up:") === 0 && item.previousElementSibling) {
      list.insertBefore(item, item.previousElementSibling);
    } else if (button.value.indexOf("down:") === 0 && item.nextElementSibling) {
      list.insertBefore(item.nextElementSibling, item);
    }
    refresh();
    button.focus();
  });

  // Pointer events cover mouse, pen and touch alike; the handle alone starts a drag so the
  // list still scrolls under a finger elsewhere.
  var dragged = null;
  list.addEventListener("pointerdown", function (event) {
    var handle = event.target.closest(".rank-handle");
    if (!handle) { return; }
    dragged = handle.closest(".rank-item");
    dragged.classList.add("dragging");
    handle.setPointerCapture(event.pointerId);
    event.preventDefault();
  });
  list.addEventListener("pointermove", function (event) {
    if (!dragged) { return; }
    var items = Array.prototype.slice.call(list.querySelectorAll(".rank-item"));
    for (var i = 0; i < items.length; i += 1) {
      var box = items[i].getBoundingClientRect();
      if (items[i] !== dragged && event.clientY > box.top && event.clientY < box.bottom) {
        var after = event.clientY > box.top + box.height / 2;
        list.insertBefore(dragged, after ? items[i].nextElementSibling : items[i]);
        break;
      }
    }
  });
  function drop() {
    if (!dragged) { return; }
    dragged.classList.remove("dragging");
    dragged = null;
    refresh();
  }
  list.addEventListener("pointerup", drop);
  list.addEventListener("pointercancel", drop);
})();
