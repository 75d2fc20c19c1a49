/* Open a link from a QR code: frames from the camera are read with jsQR (vendored) until one
 * holds a link that starts as the form says (data-qr-prefix: sereus:invite/ on the Join page,
 * sereus:pay/ on Money), which fills the form's "link" field and submits it. The form's
 * data-qr-found, data-qr-wrong and data-qr-point say what the page shows meanwhile. The frames
 * never leave the page. Without a camera (or JavaScript) the page still works: paste the link.
 */
(function () {
  "use strict";
  var button = document.getElementById("qr-scan");
  var form = document.querySelector("form[data-qr-prefix]");
  var video = document.getElementById("qr-video");
  var status = document.getElementById("qr-status");
  if (!button || !form || !video || !status || typeof jsQR !== "function") {
    return;
  }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return; // no camera API here (or not a secure context): the button stays hidden
  }
  var SCAN_EVERY_MS = 150;
  var PREFIX = form.dataset.qrPrefix;
  var canvas = document.createElement("canvas");
  var context = canvas.getContext("2d", { willReadFrequently: true });
  var stream = null;

  function stop() {
    if (stream) {
      stream.getTracks().forEach(function (track) {
        track.stop();
      });
      stream = null;
    }
    video.hidden = true;
  }

  function scan() {
    if (!stream) {
      return;
    }
    if (video.readyState >= 2 && video.videoWidth > 0) {
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      context.drawImage(video, 0, 0, canvas.width, canvas.height);
      var frame = context.getImageData(0, 0, canvas.width, canvas.height);
      var code = jsQR(frame.data, frame.width, frame.height, { inversionAttempts: "attemptBoth" });
      if (code && code.data.indexOf(PREFIX) === 0) {
        stop();
        form.elements.link.value = code.data;
        status.textContent = form.dataset.qrFound;
        form.requestSubmit();
        return;
      }
      if (code) {
        status.textContent = form.dataset.qrWrong;
      }
    }
    window.setTimeout(scan, SCAN_EVERY_MS);
  }

  button.hidden = false;
  button.addEventListener("click", function () {
    if (stream) {
      stop();
      status.textContent = "";
      return;
    }
    navigator.mediaDevices
      .getUserMedia({ video: { facingMode: "environment" }, audio: false })
      .then(function (camera) {
        stream = camera;
        video.srcObject = camera;
        video.hidden = false;
        status.textContent = form.dataset.qrPoint;
        return video.play();
      })
      .then(scan)
      .catch(function (error) {
        stop();
        status.textContent = "The camera cannot be used: " + error.message;
      });
  });
})();
