// Live queue. The server pushes bare "refresh" hints over ws/decisions/ (one group per role of
// the user); the list then re-fetches itself, which applies permissions. Pushes are hints:
// every (re)connect refreshes too, and the list also polls every 5 s (hx-trigger), so a missed
// push, or the in-memory channel layer that cannot carry a worker's push, costs only latency.
(function () {
  "use strict";
  var queue = function () { return document.getElementById("queue"); };

  function refresh() {
    if (queue() && window.htmx) { window.htmx.trigger(queue(), "refresh"); }
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

  // The first message, on connect, heals any gap.
  window.StudioX.liveSocket({url: function () { return "/ws/decisions/"; }, onMessage: refresh});
})();
