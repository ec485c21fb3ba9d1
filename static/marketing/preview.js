/* Live preview on the campaign form: POST the content fields as typed (debounced) to the
   preview endpoint, which renders them for a sample recipient and saves nothing, then
   show the HTML in the iframes (srcdoc) and the plain-text part. */
(function () {
  "use strict";

  var FIELDS = ["purpose", "subject", "preheader", "layout", "body_format", "body", "first_name_fallback"];
  var DELAY_MS = 600;

  function start() {
    var panel = document.getElementById("campaign-live-preview");
    var form = document.getElementById("campaign_form");
    if (!panel || !form) return;
    var url = panel.dataset.url;
    var status = panel.querySelector('[data-field="preview-status"]');
    var subject = panel.querySelector('[data-field="preview-subject"]');
    var frames = panel.querySelectorAll('iframe[data-preview="html"]');
    var text = panel.querySelector('pre[data-preview="text"]');
    var timer = null;
    var latest = 0;

    function payload() {
      var data = new FormData();
      var token = form.querySelector('input[name="csrfmiddlewaretoken"]');
      data.append("csrfmiddlewaretoken", token ? token.value : "");
      FIELDS.forEach(function (name) {
        var field = form.elements.namedItem(name);
        if (field && "value" in field) data.append(name, field.value);
      });
      return data;
    }

    function show(result) {
      if (result.error) {
        status.textContent = "(" + result.error + ")";
        return;
      }
      status.textContent = "";
      subject.textContent = "Subject: " + result.subject;
      frames.forEach(function (frame) { frame.srcdoc = result.html; });
      text.textContent = result.text;
    }

    function refresh() {
      var request = ++latest;
      status.textContent = "(updating…)";
      fetch(url, { method: "POST", body: payload(), credentials: "same-origin",
                   headers: { "X-Requested-With": "XMLHttpRequest" } })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (result) { if (request === latest) show(result); })
        .catch(function (error) { if (request === latest) status.textContent = "(preview failed: " + error.message + ")"; });
    }

    function later() {
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, DELAY_MS);
    }

    FIELDS.forEach(function (name) {
      var field = form.elements.namedItem(name);
      if (!field || !field.addEventListener) return;
      field.addEventListener("input", later);
      field.addEventListener("change", later);
    });
    refresh();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
