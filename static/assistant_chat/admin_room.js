// Room form in the admin: a live count of the assistant's files the metadata filter matches (checked by the
// server's filter parser, so errors read exactly as on save) and a note when the chosen model ignores temperature.
(function () {
  "use strict";
  function ready(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }
  ready(function () {
    var filter = document.getElementById("id_metadata_filter");
    var assistant = document.getElementById("id_assistant");
    var model = document.getElementById("id_model");
    var temperature = document.getElementById("id_temperature");
    if (!filter || !assistant) return;

    var count = document.createElement("p");
    count.id = "filter-live-count";
    count.className = "help";
    count.setAttribute("aria-live", "polite");
    filter.insertAdjacentElement("afterend", count);
    var timer = null;
    var asked = 0;

    function update() {
      var mine = ++asked;
      var params = new URLSearchParams({ assistant: assistant.value, filter: filter.value });
      fetch(filter.dataset.countUrl + "?" + params.toString(), { credentials: "same-origin" })
        .then(function (response) { return response.json(); })
        .then(function (data) {
          if (mine !== asked) return;
          if (!data.valid) {
            count.textContent = "Invalid filter: " + data.error;
            count.style.color = "#cf222e";
          } else if (data.matching === null) {
            count.textContent = "Choose an assistant to see how many files match.";
            count.style.color = "";
          } else {
            var names = data.names.length ? ": " + data.names.join(", ") + (data.matching > data.names.length ? " …" : "") : "";
            count.textContent = data.matching + " of " + data.total + " files match" + names;
            count.style.color = data.matching === 0 ? "#9a6700" : "";
          }
        })
        .catch(function () { count.textContent = ""; });
    }
    function later() { clearTimeout(timer); timer = setTimeout(update, 250); }
    filter.addEventListener("input", later);
    assistant.addEventListener("change", update);
    update();

    if (model && temperature) {
      var ignores = JSON.parse(model.dataset.ignoresTemperature || "[]");
      var note = document.createElement("p");
      note.id = "temperature-note";
      note.className = "help";
      note.style.color = "#9a6700";
      temperature.insertAdjacentElement("afterend", note);
      var noteUpdate = function () {
        note.textContent = ignores.indexOf(model.value) >= 0
          ? "The chosen model ignores the temperature: it is kept but not sent." : "";
      };
      model.addEventListener("change", noteUpdate);
      noteUpdate();
    }
  });

  // Django's two-box member picker labels its search icons with aria-label on a plain span, which assistive
  // technology ignores (axe: aria-prohibited-attr). Giving them the image role makes the label count.
  window.addEventListener("load", function () {
    setTimeout(function () {
      document.querySelectorAll(".selector .help-tooltip[aria-label]:not([role])").forEach(function (icon) {
        icon.setAttribute("role", "img");
      });
    }, 0);
  });
})();
