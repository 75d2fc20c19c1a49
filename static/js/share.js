/* "Share" buttons: hand the text of the field named by the button's data-share attribute (an
 * invite link) to the phone's share sheet (the Web Share API). Shown only where the browser has
 * one; elsewhere the Copy button and the QR code do the job.
 */
(function () {
  "use strict";
  if (!navigator.share) {
    return;
  }
  document.querySelectorAll("button[data-share]").forEach(function (button) {
    button.hidden = false;
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-share]");
    var field = button && document.getElementById(button.dataset.share);
    if (!field) {
      return;
    }
    // As text, not as a url: a sereus: link is no web address, and the share sheet may refuse it.
    navigator.share({ title: button.dataset.shareTitle || document.title, text: field.value })
      .catch(function () { /* closed without sharing: nothing to say */ });
  });
})();
