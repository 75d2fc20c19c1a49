/* "Copy text" buttons: copy the text of the field named by the button's data-copy attribute
 * (a read-only textarea, e.g. a message the conversation did not accept). The buttons show only
 * when this script runs (the "js" class); without it the text can still be selected by hand.
 * One listener on the document, so buttons in parts that live updates replace work as well.
 */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function say(button, text) {
    var status = button.parentElement && button.parentElement.querySelector(".copied");
    if (status) {
      status.textContent = text;
    }
  }

  function copyBySelection(field) {
    // Older browsers, or a page that is not a secure context: select and ask for a copy.
    field.focus();
    field.select();
    try {
      return document.execCommand("copy");
    } catch (error) {
      return false;
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-copy]");
    if (!button) {
      return;
    }
    var field = document.getElementById(button.dataset.copy);
    if (!field) {
      return;
    }
    var done = function () { say(button, "Copied."); };
    var fallback = function () {
      say(button, copyBySelection(field) ? "Copied." : "Selected: copy it with your keyboard or menu.");
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, fallback);
    } else {
      fallback();
    }
  });
})();
