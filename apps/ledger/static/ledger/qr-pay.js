/* Open a payment request with its QR code: camera frames are read with jsQR (vendored) until
 * one holds a sereus:pay/ link, which fills the form and submits it. The frames never leave the
 * page. Without a camera (or JavaScript) the page still works: paste the link.
 */
(function () {
  "use strict";
  var PREFIX = "sereus:pay/";
  var SCAN_EVERY_MS = 150;
  var button = document.getElementById("qr-scan");
  var form = document.getElementById("pay-link-form");
  var video = document.getElementById("qr-video");
  var status = document.getElementById("qr-status");
  if (!button || !form || !video || !status || typeof jsQR !== "function") {
    return;
  }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return; // no camera here (or not a secure context): the button stays hidden
  }
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
        status.textContent = "Request found: opening it…";
        form.requestSubmit();
        return;
      }
      if (code) {
        status.textContent = "That QR code is not a payment request.";
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
        status.textContent = "Point the camera at the request's QR code.";
        return video.play();
      })
      .then(scan)
      .catch(function (error) {
        stop();
        status.textContent = "The camera cannot be used: " + error.message;
      });
  });
})();
