// The decision page's actions card (approve/reject/claim/release answered by a fragment), kept
// current while it is open: when someone else decides, claims or releases, the card re-renders.
(function () {
  "use strict";
  var ANSWERED_ERRORS = [400, 403, 409]; // the fragment says why: show it, do not drop it
  var POLL_MS = 10000; // the fallback when a push cannot arrive (a worker's, in memory)
  var actions = function () { return document.getElementById("actions"); };
  var typed = null; // a comment being written survives a live re-render that keeps the form

  // htmx does not swap 4xx answers by default; these ones carry the message people need
  // ("Already approved by alice at 14:02 UTC").
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "actions" &&
        ANSWERED_ERRORS.indexOf(event.detail.xhr.status) !== -1) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // Move focus to the answer, so keyboard and screen-reader users are not left on a button
  // that no longer exists; put back a comment that was being written.
  document.addEventListener("htmx:afterSettle", function () {
    var answer = document.querySelector("#actions [data-autofocus]");
    if (answer) { answer.focus(); }
    var comment = document.querySelector("#actions textarea[name=comment]");
    if (comment && typed && !comment.value) { comment.value = typed; }
    typed = null;
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.xhr.status === 204) { typed = null; } // nothing changed, nothing swapped
  });

  // Ask the server whether the decision changed under the page: 204 if not, else the card.
  function check() {
    var card = actions();
    // Not while the user's own post is on its way: its answer brings the new state.
    if (!card || !window.htmx || card.querySelector(".htmx-request")) { return; }
    var comment = card.querySelector("textarea[name=comment]");
    typed = comment ? comment.value : null;
    var url = card.dataset.checkUrl + "?seen=" + encodeURIComponent(card.dataset.state);
    window.htmx.ajax("GET", url, {target: "#actions", swap: "outerHTML"});
  }

  function onHint(hint) {
    var card = actions();
    if (!card) { return; }
    if (hint.decision === undefined) { check(); return; } // (re)connected: heal any gap
    // The page that made the change already shows its state; others re-fetch.
    if (String(hint.decision) === card.dataset.decision && hint.state !== card.dataset.state) {
      check();
    }
  }

  if (actions()) {
    window.StudioX.liveSocket({url: function () { return "/ws/decisions/"; }, onMessage: onHint});
    setInterval(function () {
      var card = actions();
      if (card && card.dataset.state.indexOf("pending:") === 0) { check(); } // final: no more
    }, POLL_MS);
  }
})();
