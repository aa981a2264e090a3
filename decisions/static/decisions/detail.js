// The decision page's actions card (approve/reject/claim/release answered by a fragment), kept
// current while it is open: when someone else decides, claims or releases, the card re-renders.
(function () {
  "use strict";
  var ANSWERED_ERRORS = [400, 403, 409]; // the fragment says why: show it, do not drop it
  var POLL_MS = 10000; // the fallback when a push cannot arrive (a worker's, in memory)
  var actions = function () { return document.getElementById("actions"); };
  var typed = null; // a comment being written survives a live re-render that keeps the form
  var checking = false; // one check at a time
  // Other parts of the page swap too (the top bar's pending count, on the same live hint):
  // only the actions card's own requests may touch the comment.
  var aboutActions = function (event) {
    var target = event.detail.target;
    return Boolean(target && target.id === "actions");
  };

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
  document.addEventListener("htmx:afterSettle", function (event) {
    if (!aboutActions(event)) { return; }
    var answer = document.querySelector("#actions [data-autofocus]");
    if (answer) { answer.focus(); }
    var comment = document.querySelector("#actions textarea[name=comment]");
    if (comment && typed && !comment.value) { comment.value = typed; }
    if (!comment && typed) { keepUnsent(typed); } // decided meanwhile: the words stay, unsent
    typed = null;
  });

  // A colleague's decision landed while a comment was being typed: the form is gone, so show
  // the comment beside the new state (read-only, to copy), rather than lose it.
  function keepUnsent(text) {
    var card = actions();
    if (!card || !text.trim()) { return; }
    var box = document.createElement("div");
    box.className = "unsent-comment";
    var label = document.createElement("label");
    label.htmlFor = "unsent-comment";
    label.textContent = "Your comment, not sent:";
    var area = document.createElement("textarea");
    area.id = "unsent-comment";
    area.readOnly = true;
    area.rows = 3;
    area.value = text;
    box.appendChild(label);
    box.appendChild(area);
    card.appendChild(box);
  }
  // The user's own claim, release or decision re-renders the card too: keep what they typed
  // until the answer says it was recorded.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var card = actions();
    var comment = card && card.querySelector("textarea[name=comment]");
    if (comment && card.contains(event.detail.elt)) { typed = comment.value; }
  });
  // Before the swap, while the form is still in the page (events of a removed form do not
  // reach the document): the comment went out with the user's own decision.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    var elt = event.detail.requestConfig && event.detail.requestConfig.elt; // detail.elt: target
    var decided = elt && elt.matches && elt.matches("form[action*='/decide/']");
    if (decided && status >= 200 && status < 300) { typed = null; }
  });

  // Ask the server whether the decision changed under the page: 204 if not, else the card.
  function check() {
    var card = actions();
    // Not while the user's own post is on its way: its answer brings the new state.
    if (!card || !window.htmx || checking || card.querySelector(".htmx-request")) { return; }
    checking = true;
    checkedText = "";
    var url = card.dataset.checkUrl + "?seen=" + encodeURIComponent(card.dataset.state);
    // htmx swaps the answer in before its promise resolves: the words go back then, as they
    // stood when the answer arrived (other requests of the page cannot touch this copy).
    var answered = function () { checking = false; putBack(checkedText); };
    var failed = function () { checking = false; };
    window.htmx.ajax("GET", url, {target: "#actions", swap: "outerHTML"}).then(answered, failed);
  }

  // A check's answer is about to replace the card: take the comment as it is now, not as it
  // was when the check left (someone may have typed while it was on its way).
  var checkedText = "";
  document.addEventListener("htmx:beforeSwap", function (event) {
    var config = event.detail.requestConfig;
    if (!checking || !aboutActions(event) || !config) { return; }
    if (String(config.path || "").indexOf("?seen=") === -1) { return; } // the user's own
    var comment = document.querySelector("#actions textarea[name=comment]");
    checkedText = comment ? comment.value : "";
  });

  // Into the new card's empty comment box; or, if the form is gone, shown unsent beside it.
  function putBack(text) {
    if (!text) { return; }
    var comment = document.querySelector("#actions textarea[name=comment]");
    if (comment) {
      if (!comment.value) { comment.value = text; }
    } else if (!document.querySelector("#actions .unsent-comment")) {
      keepUnsent(text);
    }
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
