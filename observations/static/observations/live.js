// Live observations for the rail and mission pages.
//
// <div data-live-stream="/ws/..." data-after="SEQ" data-list="#list" data-refresh="#a,#b">
// follows the stream from SEQ (studiox/live-socket.js), inserts each observation's line as the
// server rendered it (the frame's "html", from observations/_line.html: the markup has one
// home) into the list, once (lines are keyed by sequence number), and has htmx re-fetch the
// regions named in data-refresh (each carries its own data-refresh-url) a moment after news
// arrives and whenever the socket (re)opens, so a missed push or a reconnect heals itself:
// the server's database is the truth.
(function () {
  "use strict";

  var REFRESH_DELAY_MS = 250;

  // The server rendered the line (escaped, like every page); this only makes it an element.
  function lineFrom(html) {
    var holder = document.createElement("template");
    holder.innerHTML = html.trim();
    var li = holder.content.firstElementChild;
    if (li) li.classList.add("fresh");
    return li;
  }

  function Stream(root) {
    var self = this;
    this.after = parseInt(root.dataset.after || "0", 10) || 0;
    this.list = document.querySelector(root.dataset.list);
    this.max = parseInt((this.list && this.list.dataset.max) || "200", 10);
    this.refreshTargets = (root.dataset.refresh || "").split(",").filter(Boolean);
    this.status = document.querySelector("[data-live-status]");
    this.refreshTimer = null;
    this.refreshEvery = parseInt(root.dataset.refreshEvery || "500", 10);
    this.lastRefresh = 0;
    window.StudioX.liveSocket({
      // Every (re)connect names the last line the page holds: the server sends what it missed.
      url: function () {
        var stream = root.dataset.liveStream;  // may carry its own query (?view=technical)
        return stream + (stream.indexOf("?") >= 0 ? "&" : "?") + "after=" + self.after;
      },
      onMessage: function (frame) { self.receive(frame); },
      onRetry: function () { self.say("Reconnecting…", "reconnecting"); },
      onStop: function (code, text) { self.say(text, "stopped"); }
    });
  }

  Stream.prototype.say = function (text, state) {
    if (!this.status) return;
    this.status.textContent = text;
    this.status.dataset.state = state;
  };

  Stream.prototype.receive = function (frame) {
    if (frame.type === "ready") {
      this.say("Live", "live");
      this.scheduleRefresh(0);
    } else if (frame.type === "observations") {
      this.add(frame.observations || []);
    }
  };

  Stream.prototype.add = function (observations) {
    if (!this.list || !observations.length) return;
    var empty = this.list.querySelector(".empty");
    if (empty) empty.remove();
    for (var i = 0; i < observations.length; i++) {
      var o = observations[i];
      this.after = Math.max(this.after, o.seq);
      if (this.list.querySelector('[data-seq="' + o.seq + '"]')) continue;
      var line = o.html && lineFrom(o.html);
      if (line) this.insert(line, o.seq);
    }
    while (this.list.children.length > this.max) this.list.lastElementChild.remove();
    this.scheduleRefresh(REFRESH_DELAY_MS);
  };

  // Newest first; a late line goes where its sequence number belongs.
  Stream.prototype.insert = function (line, seq) {
    var child = this.list.firstElementChild;
    while (child && parseInt(child.dataset.seq || "0", 10) > seq) child = child.nextElementSibling;
    this.list.insertBefore(line, child);
  };

  // At most one refresh per data-refresh-every ms: a busy rail must not turn every
  // observation into a page request.
  Stream.prototype.scheduleRefresh = function (delay) {
    var self = this;
    if (!this.refreshTargets.length || this.refreshTimer) return;
    var wait = Math.max(delay, this.lastRefresh + this.refreshEvery - Date.now());
    this.refreshTimer = setTimeout(function () {
      self.refreshTimer = null;
      self.lastRefresh = Date.now();
      self.refreshTargets.forEach(function (selector) { self.refresh(selector); });
    }, wait);
  };

  Stream.prototype.refresh = function (selector) {
    var self = this;
    var target = document.querySelector(selector);
    if (!target || !target.dataset.refreshUrl || !window.htmx) return;
    // Someone is typing in it (a cancel reason): try again later rather than wipe it.
    if (target.contains(document.activeElement) && document.activeElement !== document.body) {
      setTimeout(function () { self.refresh(selector); }, 1000);
      return;
    }
    window.htmx.ajax("GET", target.dataset.refreshUrl, {target: selector, swap: "outerHTML"});
  };

  // "Waiting for" columns keep counting between refreshes.
  function words(seconds) {
    if (seconds < 10) return seconds.toFixed(1) + " s";
    var s = Math.floor(seconds), d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    var m = Math.floor((s % 3600) / 60), r = s % 60;
    if (d) return h ? d + " d " + h + " h" : d + " d";
    if (h) return m ? h + " h " + m + " min" : h + " h";
    if (m) return r ? m + " min " + r + " s" : m + " min";
    return r + " s";
  }

  function tickDurations(scope) {
    var now = Date.now();
    (scope || document).querySelectorAll("time[data-since]").forEach(function (node) {
      var since = Date.parse(node.dataset.since);
      if (!isNaN(since)) node.textContent = words(Math.max(0, (now - since) / 1000));
    });
  }

  function start() {
    // A refreshed region comes with the durations as the server wrote them: count on at once.
    document.addEventListener("htmx:afterSettle", function () { tickDurations(); });
    document.querySelectorAll("[data-live-stream]").forEach(function (root) { new Stream(root); });
    setInterval(tickDurations, 5000);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
