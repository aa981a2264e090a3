// Live queue: the server pushes a bare "refresh" hint; the list re-fetches itself (which
// applies permissions). Pushes are hints: every (re)connect refreshes too, and the list also
// polls every few seconds, so a missed push only costs a little latency.
(function () {
  var queue = function () { return document.getElementById("queue"); };
  var delay = 1000;
  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + "/ws/decisions/");
    socket.onopen = function () { delay = 1000; };
    socket.onmessage = function () {
      if (queue() && window.htmx) { window.htmx.trigger(queue(), "refresh"); }
    };
    socket.onclose = function () {
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }
  connect();
})();
