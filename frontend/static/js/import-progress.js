// Keeps an import's progress bar current without reloading the page: polls the import's JSON
// every second and, once it has finished, reloads once to show the rejected rows.
(function () {
  "use strict";
  var box = document.querySelector("[data-import-poll]");
  if (!box) { return; }
  var url = box.getAttribute("data-import-poll");
  var bar = box.querySelector("progress");
  function show(name, value) {
    var field = box.querySelector('[data-field="' + name + '"]');
    if (field) { field.textContent = String(value); }
  }
  function poll() {
    fetch(url, { headers: { accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (run) {
        if (!run) { window.setTimeout(poll, 3000); return; }
        bar.max = Math.max(run.total, 1);
        bar.value = run.processed;
        bar.textContent = run.percent + "%";
        ["processed", "total", "percent", "accepted", "created", "rejected"].forEach(function (name) {
          show(name, run[name]);
        });
        show("updated", run.accepted - run.created);
        if (run.status === "done" || run.status === "failed") {
          window.location.reload();
        } else {
          window.setTimeout(poll, 1000);
        }
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 1000);
}());
