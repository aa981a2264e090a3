// Places the timeline's bars. Their offsets come as data attributes, never style="...": the
// Content-Security-Policy refuses inline styles, while styles set from a script are allowed.
(function () {
  "use strict";

  function place(scope) {
    scope.querySelectorAll("[data-bar-left]").forEach(function (bar) {
      bar.style.left = bar.dataset.barLeft + "%";
      bar.style.width = bar.dataset.barWidth + "%";
    });
  }

  // The live page swaps a fresh timeline in after news: place its bars too.
  new MutationObserver(function (changes) {
    changes.forEach(function (change) {
      change.addedNodes.forEach(function (node) {
        if (node.nodeType === Node.ELEMENT_NODE) place(node);
      });
    });
  }).observe(document.body, { childList: true, subtree: true });
  place(document);
})();
