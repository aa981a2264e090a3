// Live queue. The server pushes bare "refresh" hints over ws/decisions/ (one group per role of
// the user); the list then re-fetches itself, which applies permissions. Pushes are hints:
// every (re)connect refreshes too, and the list also polls every 5 s (hx-trigger), so a missed
// push, or the in-memory channel layer that cannot carry a worker's push, costs only latency.
(function () {
  "use strict";
  var queue = function () { return document.getElementById("queue"); };
  var delay = 1000;

  function refresh() {
    if (queue() && window.htmx) { window.htmx.trigger(queue(), "refresh"); }
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + "/ws/decisions/");
    socket.onopen = function () { delay = 1000; };
    socket.onmessage = refresh; // the first message, on connect, heals any gap
    socket.onclose = function (event) {
      if (event.code === 4401) { return; } // signed out: the page's links will say so
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }

  // After a swap: tell screen readers what changed (only if it did) and update the tab counts.
  document.addEventListener("htmx:afterSettle", function () {
    var list = queue();
    var status = document.getElementById("queue-status");
    if (!list) { return; }
    if (status && list.dataset.summary && status.textContent !== list.dataset.summary) {
      status.textContent = list.dataset.summary;
    }
    document.querySelectorAll("[data-count]").forEach(function (count) {
      var value = list.dataset["count" + count.dataset.count.charAt(0).toUpperCase() +
                                count.dataset.count.slice(1)];
      if (value !== undefined) { count.textContent = value; }
    });
  });

  connect();
})();
