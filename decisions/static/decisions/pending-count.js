// The top bar's count of pending decisions. The server pushes bare hints over ws/decisions/
// when a decision of one of the user's roles changes; the badge then re-fetches itself (the
// count applies permissions). The first message only says the socket connected, and the page
// was just rendered with the count, so it is skipped; later ones (a reconnect) heal any gap.
// The badge also polls (hx-trigger), for the in-memory channel layer and missed pushes.
(function () {
  "use strict";
  var badge = function () { return document.getElementById("pending-count"); };
  var connectedOnce = false;

  function onMessage(frame) {
    if (frame.type !== "refresh") { return; }
    if (!frame.decision && !connectedOnce) { connectedOnce = true; return; }
    if (badge() && window.htmx) { window.htmx.trigger(badge(), "refresh"); }
  }

  if (badge() && window.StudioX && window.StudioX.liveSocket) {
    window.StudioX.liveSocket({url: function () { return "/ws/decisions/"; }, onMessage: onMessage});
  }
})();
