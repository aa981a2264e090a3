// The one WebSocket loop of every live page (decision queue, decision page, rail, mission page).
//
// StudioX.liveSocket({url, onMessage, onStop, onRetry}) opens url() and opens it again after
// any close, waiting 1 s, then twice as long each time up to 10 s, and back to 1 s once a
// connection opens. url is a function so that a page can name, on every reconnect, the last
// sequence number it holds (?after=N): the server then sends what the page missed.
// It does not reconnect after the closes by which the server says that trying again cannot
// help (studiox/websockets.py and the consumers define them): onStop(code, text) says why.
//
// htmx's ws extension is not used for this: it reconnects only after an abnormal close
// (1006, 1011, 1012, 1013), so a server restart that closes cleanly would end the live page,
// and its URL is fixed, so it cannot catch up from a sequence number (docs/concepts.md, "How
// live pages follow along").
(function (StudioX) {
  "use strict";

  var FIRST_DELAY_MS = 1000;
  var MAX_DELAY_MS = 10000;
  var FINAL_CLOSES = {
    4400: "The live stream refused this page; reload it.",
    4401: "Log in again to follow live updates.",
    4403: "You may not follow this mission.",
    4404: "This live stream does not exist."
  };

  function absolute(path) {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    return scheme + location.host + path;
  }

  StudioX.liveSocket = function (options) {
    var delay = FIRST_DELAY_MS;
    var ignore = function () {};
    var onMessage = options.onMessage || ignore;
    var onStop = options.onStop || ignore;
    var onRetry = options.onRetry || ignore;

    function connect() {
      var socket = new WebSocket(absolute(options.url()));
      socket.onopen = function () { delay = FIRST_DELAY_MS; };
      socket.onmessage = function (event) {
        var frame;
        try { frame = JSON.parse(event.data); } catch (e) { return; }
        onMessage(frame);
      };
      socket.onclose = function (event) {
        if (FINAL_CLOSES[event.code]) {
          onStop(event.code, FINAL_CLOSES[event.code]);
          return;
        }
        onRetry();
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, MAX_DELAY_MS);
      };
    }

    connect();
  };
})(window.StudioX = window.StudioX || {});
