/* The design system's bits of behaviour (docs/ui.md); every page works without them.
 * - the "js" class: controls that need a script (Copy, close) show only when it runs;
 * - toasts: a close button; good news fades by itself (CSS);
 * - confirm dialog: a form with data-confirm="Question?" asks in a <dialog> before it posts
 *   (without a script the page it posts to, or a confirmation page, asks instead).
 */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // Where this person is: the node renders times and day separators in this zone (the cookie
  // is read by apps.core.timezones; the first page after a move may still show the old zone).
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && document.cookie.indexOf("sereus_tz=" + encodeURIComponent(zone)) === -1) {
      document.cookie = "sereus_tz=" + encodeURIComponent(zone) +
        "; path=/; max-age=31536000; samesite=strict" +
        (location.protocol === "https:" ? "; secure" : "");
    }
  } catch (error) { /* no Intl: times stay in UTC */ }

  document.addEventListener("click", function (event) {
    var close = event.target.closest && event.target.closest("button.toast-close");
    if (close) {
      close.closest(".toast").classList.add("gone");
    }
  });

  function ask(form) {
    var dialog = document.createElement("dialog");
    dialog.className = "confirm-dialog";
    var text = document.createElement("p");
    text.textContent = form.dataset.confirm;
    var actions = document.createElement("div");
    actions.className = "dialog-actions";
    var cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "secondary";
    cancel.textContent = "Cancel";
    var ok = document.createElement("button");
    ok.type = "button";
    ok.className = form.dataset.confirmClass || "danger";
    ok.textContent = form.dataset.confirmButton || "Yes";
    actions.append(cancel, ok);
    dialog.append(text, actions);
    document.body.append(dialog);
    cancel.addEventListener("click", function () { dialog.close(); });
    ok.addEventListener("click", function () {
      form.dataset.confirmed = "yes";
      dialog.close();
      form.requestSubmit();
    });
    dialog.addEventListener("close", function () { dialog.remove(); });
    dialog.showModal();
    cancel.focus();
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.dataset || !form.dataset.confirm || form.dataset.confirmed === "yes") {
      return;
    }
    if (typeof HTMLDialogElement === "function") {
      event.preventDefault();
      ask(form);
    }
  });
})();
