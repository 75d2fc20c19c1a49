/* A conversation page that behaves like a chat (templates/messaging/conversation.html).
 *
 * - It opens at the newest message, and stays there as messages arrive live (the socket swaps
 *   them in); a reader who scrolled up to read older ones stays where they are and gets a
 *   "New messages" button instead.
 * - The composer grows with its text; Enter sends on a computer, Shift+Enter starts a new line
 *   (on a touch screen Enter is a new line and the Send button sends); a text over the limit is
 *   said at once, in the same words as the node, and nothing is cut.
 * - Reply sets the form's reply without a reload; a message's menu closes when another opens,
 *   on Escape or on a click elsewhere.
 *
 * Everything here is a convenience: without it the page is plain forms and links.
 */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  var NEAR = 80; // pixels: a reader this close to the newest message is "at the bottom"
  var QUOTE = 100; // characters of a quoted first line, as the node cuts them

  function $(id) {
    return document.getElementById(id);
  }

  function newest() {
    var list = $("messages");
    var items = list ? list.querySelectorAll(":scope > li.message") : [];
    return items.length ? items[items.length - 1] : null;
  }

  // Where the newest message ends relative to what covers the screen's bottom (the dock).
  function dockTop() {
    var dock = $("dock");
    return dock ? dock.getBoundingClientRect().top : window.innerHeight;
  }

  function atBottom() {
    var last = newest();
    return !last || last.getBoundingClientRect().bottom <= dockTop() + NEAR;
  }

  function toBottom() {
    // The end of the conversation, where the pinned composer sits in the flow (its own box is
    // where it is pinned, so it cannot say).
    var end = $("conversation");
    if (!end) {
      return;
    }
    var below = end.getBoundingClientRect().bottom + window.scrollY - window.innerHeight;
    window.scrollTo(0, Math.max(0, below));
    stuck = true;
  }

  var stuck = true; // the reader is at the newest message
  var lastId = null;

  function jumpShown(shown) {
    var jump = $("jump");
    if (jump) {
      jump.hidden = !shown;
    }
  }

  function onScroll() {
    stuck = atBottom();
    if (stuck) {
      jumpShown(false);
    }
  }

  function changed() {
    var last = newest();
    var id = last ? last.id : null;
    var arrived = id !== lastId;
    lastId = id;
    if (stuck) {
      toBottom();
    } else if (arrived && id) {
      jumpShown(true);
    }
  }

  function opening() {
    if ("scrollRestoration" in history) {
      history.scrollRestoration = "manual";
    }
    var hash = decodeURIComponent(location.hash.slice(1));
    var target = hash ? document.getElementById(hash) : null;
    if (hash === "end" || hash === "compose") {
      // Back from sending: the node's redirect names the composer (for pages without this
      // script), and the browser's own jump to it, which may come later, would scroll past the
      // newest message: back to it once the page has loaded.
      target = null;
      window.addEventListener("load", function () {
        requestAnimationFrame(toBottom);
      });
    }
    if (target) {
      target.scrollIntoView({ block: "center" });
      stuck = atBottom();
    } else {
      toBottom();
    }
    var last = newest();
    lastId = last ? last.id : null;
    // Flash messages (a refused reaction, a deletion done) belong where one is looking.
    var flash = document.querySelector("main > ul.messages[role=status]");
    var dock = $("dock");
    if (flash && dock) {
      dock.insertBefore(flash, dock.firstChild);
      flash.classList.add("in-dock");
    }
  }

  // -- the composer --------------------------------------------------------------------------

  function grow(text) {
    text.style.height = "auto";
    text.style.height = Math.min(text.scrollHeight + 2, window.innerHeight * 0.4) + "px";
  }

  function thousands(n) {
    return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, "\u00a0");
  }

  function checkLength(form, text) {
    var limit = parseInt(form.dataset.limit, 10);
    var note = $("compose-limit");
    if (!limit || !note) {
      return true;
    }
    // Characters as the node counts them: code points, without the blanks around the text.
    var length = Array.from(text.value.trim()).length;
    var over = length > limit;
    note.hidden = !over;
    note.textContent = over ? form.dataset.tooLong.replace("{length}", thousands(length)) : "";
    return !over;
  }

  function composer() {
    var form = $("compose-form");
    var text = $("id_text");
    if (!form || !text) {
      return;
    }
    var coarse = window.matchMedia && window.matchMedia("(pointer: coarse)").matches;
    grow(text);
    var said = $("compose-errors"); // the node's errors about what was sent
    if (!said) {
      checkLength(form, text);
    }
    text.addEventListener("input", function () {
      var wasStuck = stuck;
      grow(text);
      // Once the text changes, the node's errors are about a text that is gone.
      if (said && said.parentNode) {
        said.parentNode.removeChild(said);
        text.removeAttribute("aria-invalid");
      }
      checkLength(form, text);
      if (wasStuck) {
        toBottom();
      }
    });
    text.addEventListener("keydown", function (event) {
      if (event.key !== "Enter" || event.shiftKey || event.isComposing || coarse) {
        return;
      }
      event.preventDefault();
      var files = $("id_files");
      var empty = !text.value.trim() && !(files && files.files.length);
      if (!empty && checkLength(form, text)) {
        form.requestSubmit ? form.requestSubmit() : form.submit();
      }
    });
    var files = $("id_files");
    var names = $("attach-names");
    if (files && names) {
      files.addEventListener("change", function () {
        var chosen = Array.prototype.map.call(files.files, function (f) { return f.name; });
        names.hidden = !chosen.length;
        names.textContent = chosen.length ? "To send: " + chosen.join(", ") : "";
      });
    }
    if (form.querySelector(".errorlist li")) {
      text.focus({ preventScroll: true });
    }
  }

  // -- replies and menus ---------------------------------------------------------------------

  function firstLine(element) {
    var body = element && element.querySelector(".body");
    var lines = body ? body.innerText.split("\n") : [];
    for (var i = 0; i < lines.length; i += 1) {
      var line = lines[i].trim();
      if (line) {
        return line.length <= QUOTE ? line : line.slice(0, QUOTE - 1).trim() + "…";
      }
    }
    var file = element && element.querySelector(".attachment span");
    return file ? "📎 " + file.textContent.trim() : "";
  }

  function replyTo(id) {
    var field = $("id_reply_to");
    var bar = $("replying");
    var item = $("m-" + id);
    var text = $("id_text");
    if (!field || !bar || !item || !text) {
      return false;
    }
    var author = item.querySelector(".author");
    field.value = id;
    $("replying-who").textContent = author ? author.textContent : "yourself";
    $("replying-line").textContent = firstLine(item);
    bar.hidden = false;
    text.focus();
    if (stuck) {
      toBottom();
    }
    return true;
  }

  function closeMenus(except) {
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (menu !== except) {
        menu.open = false;
      }
    });
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    var reply = target.closest && target.closest("a[data-reply]");
    if (reply && replyTo(reply.dataset.reply)) {
      event.preventDefault();
      closeMenus(null);
      return;
    }
    if (target.closest && target.closest("#replying-cancel")) {
      event.preventDefault();
      $("id_reply_to").value = "";
      $("replying").hidden = true;
      return;
    }
    if (target.closest && target.closest("#jump")) {
      toBottom();
      jumpShown(false);
      return;
    }
    closeMenus(target.closest ? target.closest("details.menu") : null);
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      var open = document.querySelector("details.menu[open]");
      if (open) {
        open.open = false;
        open.querySelector("summary").focus();
      }
    }
  });

  // -- start ---------------------------------------------------------------------------------

  function start() {
    var conversation = $("conversation");
    if (!conversation) {
      return;
    }
    composer(); // first: its height (a long text kept after an error) decides where the bottom is
    opening();
    window.addEventListener("scroll", onScroll, { passive: true });
    window.addEventListener("load", function () {
      if (stuck) {
        toBottom(); // what loaded late (pictures, fonts) may have moved the newest message
      }
    });
    window.addEventListener("resize", function () {
      if (stuck) {
        toBottom();
      }
    });
    // Live renders swap single messages or the whole list (htmx, out of band): watch the
    // conversation for them.
    new MutationObserver(changed).observe(conversation, { childList: true, subtree: true });
    // A picture that loads pushes what is below it down: keep the newest message in view.
    conversation.addEventListener(
      "load",
      function (event) {
        if (event.target.tagName === "IMG" && stuck) {
          toBottom();
        }
      },
      true
    );
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
