/* Campaign page: poll <id>/progress.json every 2 s while the campaign is sending (or
   paused) and update the progress bar and counts; ask before buttons marked data-confirm. */
(function () {
  "use strict";

  var INTERVAL_MS = 2000;
  var LIVE = { sending: true, paused: true };

  function confirmations() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
  }

  function progress() {
    var panel = document.getElementById("campaign-progress");
    if (!panel || !LIVE[panel.dataset.status]) return;
    var bar = panel.querySelector("progress");

    function set(name, value) {
      panel.querySelectorAll('[data-field="' + name + '"]').forEach(function (node) {
        node.textContent = value === null || value === undefined ? "" : String(value);
      });
    }

    function poll() {
      fetch(panel.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (data) {
          ["status_display", "percent", "recipients", "queued", "sent", "failed", "skipped", "paused_reason"]
            .forEach(function (name) { set(name, data[name]); });
          bar.max = Math.max(data.recipients, 1);
          bar.value = data.done;
          panel.dataset.status = data.status;
          if (LIVE[data.status]) window.setTimeout(poll, INTERVAL_MS);
        })
        .catch(function () { window.setTimeout(poll, INTERVAL_MS * 5); });
    }

    window.setTimeout(poll, INTERVAL_MS);
  }

  function start() {
    confirmations();
    progress();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
