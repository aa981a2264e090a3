// Live observations for the rail and mission pages (no framework, no CDN).
//
// <div data-live-stream="/ws/..." data-after="SEQ" data-list="#list" data-refresh="#a,#b">
// opens the WebSocket with ?after=SEQ, prepends each observation to the list (once: lines are
// keyed by sequence number), and re-fetches the regions named in data-refresh (each carries
// its own data-refresh-url) a moment after news arrives and whenever the socket (re)opens, so
// a missed push or a reconnect heals itself: the server's database is the truth.
(function () {
  "use strict";

  var REFRESH_DELAY_MS = 250;
  var RECONNECT_MAX_MS = 10000;
  var NO_RETRY = {
    4401: "Log in again to follow live updates.",
    4403: "You may not follow this mission.",
    4404: "This live stream does not exist."
  };

  function kindLabels() {
    var node = document.getElementById("observation-kinds");
    try { return node ? JSON.parse(node.textContent) : {}; } catch (e) { return {}; }
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function utcTime(iso) {
    var d = new Date(iso);
    return isNaN(d) ? "" : d.toISOString().slice(11, 19);
  }

  function lineFor(o, labels, showMission) {
    var li = el("li", "obs kind-" + o.kind + " fresh");
    li.dataset.seq = o.seq;
    var time = el("time", "", utcTime(o.created_at));
    time.setAttribute("datetime", o.created_at);
    li.appendChild(time);
    if (showMission) {
      var a = el("a", "obs-mission", (o.mission_title || "Mission") + " ");
      a.href = "/missions/" + o.mission_id + "/";
      a.appendChild(el("span", "muted", "#" + String(o.mission_id).slice(0, 8)));
      li.appendChild(a);
      li.appendChild(document.createTextNode(" "));
    }
    li.appendChild(el("span", "obs-kind", labels[o.kind] || o.kind));
    if (o.step) {
      li.appendChild(document.createTextNode(" "));
      li.appendChild(el("span", "obs-step", o.step));
    }
    li.appendChild(document.createTextNode(" "));
    li.appendChild(el("span", "obs-message", o.message));
    return li;
  }

  function Stream(root) {
    this.root = root;
    this.url = root.dataset.liveStream;
    this.after = parseInt(root.dataset.after || "0", 10) || 0;
    this.list = document.querySelector(root.dataset.list);
    this.max = parseInt((this.list && this.list.dataset.max) || "200", 10);
    this.refreshTargets = (root.dataset.refresh || "").split(",").filter(Boolean);
    this.showMission = root.dataset.showMission === "true";
    this.status = document.querySelector("[data-live-status]");
    this.labels = kindLabels();
    this.retryMs = 1000;
    this.refreshTimer = null;
    this.refreshEvery = parseInt(root.dataset.refreshEvery || "500", 10);
    this.lastRefresh = 0;
    this.connect();
  }

  Stream.prototype.say = function (text, state) {
    if (!this.status) return;
    this.status.textContent = text;
    this.status.dataset.state = state;
  };

  Stream.prototype.connect = function () {
    var self = this;
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + this.url + "?after=" + this.after);
    this.socket = socket;
    socket.onmessage = function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      if (frame.type === "ready") {
        self.retryMs = 1000;
        self.say("Live", "live");
        self.scheduleRefresh(0);
      } else if (frame.type === "observations") {
        self.add(frame.observations || []);
      }
    };
    socket.onclose = function (event) {
      if (NO_RETRY[event.code]) {
        self.say(NO_RETRY[event.code], "stopped");
        return;
      }
      self.say("Reconnecting…", "reconnecting");
      setTimeout(function () { self.connect(); }, self.retryMs);
      self.retryMs = Math.min(self.retryMs * 2, RECONNECT_MAX_MS);
    };
  };

  Stream.prototype.add = function (observations) {
    if (!this.list || !observations.length) return;
    var empty = this.list.querySelector(".empty");
    if (empty) empty.remove();
    for (var i = 0; i < observations.length; i++) {
      var o = observations[i];
      this.after = Math.max(this.after, o.seq);
      if (this.list.querySelector('[data-seq="' + o.seq + '"]')) continue;
      this.insert(lineFor(o, this.labels, this.showMission), o.seq);
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
    if (!target || !target.dataset.refreshUrl) return;
    // Someone is typing in it (a cancel reason): try again later rather than wipe it.
    if (target.contains(document.activeElement) && document.activeElement !== document.body) {
      setTimeout(function () { self.refresh(selector); }, 1000);
      return;
    }
    fetch(target.dataset.refreshUrl, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var holder = document.createElement("div");
        holder.innerHTML = html.trim();
        var fresh = holder.querySelector(selector) || holder.firstElementChild;
        var current = document.querySelector(selector);
        if (!fresh || !current) return;
        current.replaceWith(fresh);
        if (window.htmx) window.htmx.process(fresh);
        tickDurations(fresh);
      })
      .catch(function () {});
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

  function confirmForms() {
    document.addEventListener("submit", function (event) {
      var message = event.target.dataset && event.target.dataset.confirm;
      if (message && !window.confirm(message)) event.preventDefault();
    });
  }

  function start() {
    confirmForms();
    document.querySelectorAll("[data-live-stream]").forEach(function (root) { new Stream(root); });
    setInterval(tickDurations, 5000);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
