// The decision page's actions card (approve/reject/claim/release answered by a fragment).
(function () {
  "use strict";
  var ANSWERED_ERRORS = [400, 403, 409]; // the fragment says why: show it, do not drop it

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
  // that no longer exists.
  document.addEventListener("htmx:afterSettle", function () {
    var answer = document.querySelector("#actions [data-autofocus]");
    if (answer) { answer.focus(); }
  });
})();
