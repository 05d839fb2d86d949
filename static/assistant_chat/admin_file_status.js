// The admin's file page: while a file is processing (in the jobs worker, another process), poll its status and
// update the status and progress shown, until it is Available or failed. Works on the change page and the list.
(function () {
  "use strict";
  var POLL_MS = 1500;

  function statusUrl(node) {
    // /admin/assistant_chat/file/<pk>/change/ and the list both lead to /admin/assistant_chat/file/<pk>/status/
    var base = window.location.pathname.replace(/\/(\d+)\/change\/?$/, "/").replace(/\/$/, "");
    return base + "/" + encodeURIComponent(node.dataset.filePk) + "/status/";
  }

  function statusCell(node) {
    var row = node.closest("tr");
    if (row) return row.querySelector("td.field-status_display, td.field-status");
    var field = document.querySelector(".field-status .readonly");
    return field;
  }

  function apply(node, data) {
    var bar = node.querySelector("progress");
    var percent = node.querySelector(".file-percent");
    if (bar) bar.value = data.percent;
    if (percent) percent.textContent = data.percent + "%";
    node.dataset.status = data.status;
    var cell = statusCell(node);
    if (cell) {
      var badge = cell.querySelector("b") || cell;
      badge.textContent = data.status;
    }
    var error = document.querySelector(".field-error_message .readonly");
    if (error && data.error_message) error.textContent = data.error_message;
  }

  function watch(node) {
    var url = statusUrl(node);
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) throw new Error("status " + response.status);
          return response.json();
        })
        .then(function (data) {
          apply(node, data);
          if (data.processing) window.setTimeout(tick, POLL_MS);
        })
        .catch(function () {
          window.setTimeout(tick, POLL_MS * 4); // a passing fault: try again later
        });
    }
    window.setTimeout(tick, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var nodes = document.querySelectorAll(".file-progress[data-status='Processing']");
    Array.prototype.forEach.call(nodes, watch);
  });
})();
