// Live status without reloading: the charger sends server-sent events, this fills them in.
// Served from the charger itself (no CDN); the page works without it, only not live.
(function () {
  "use strict";
  if (!window.EventSource || !document.querySelector("[data-connector]")) { return; }
  var source = new EventSource("/api/events");
  source.addEventListener("status", function (event) {
    var status = JSON.parse(event.data);
    status.connectors.forEach(function (c) {
      ["state", "power", "energy", "cost", "limit", "max_current", "share"].forEach(function (key) {
        var cell = document.querySelector('[data-live="' + c.id + "." + key + '"]');
        if (cell && cell.textContent !== c[key]) { cell.textContent = c[key]; }
      });
      var card = document.querySelector('[data-connector="' + c.id + '"]');
      if (card) { card.setAttribute("data-status", c.status); }
    });
    if (status.load) {
      ["limit", "house", "budget", "mode"].forEach(function (key) {
        var cell = document.querySelector('[data-live="load.' + key + '"]');
        if (cell && cell.textContent !== status.load[key]) { cell.textContent = status.load[key]; }
      });
    }
    document.body.setAttribute("data-live", "yes");
  });
  source.onerror = function () { document.body.setAttribute("data-live", "lost"); };
}());
