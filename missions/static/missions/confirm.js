// The operator's forms on a mission page (cancel, retry, …) ask first: a form with
// data-confirm="question" posts only once the user answered yes. (htmx's hx-confirm would
// only guard htmx requests; these forms post and load the page the ordinary way.)
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var message = event.target.dataset && event.target.dataset.confirm;
    if (message && !window.confirm(message)) { event.preventDefault(); }
  });
})();
