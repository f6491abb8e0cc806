// Preview page only, when the agent uses another Graph server (the sandbox):
// Instafeed.js always calls https://graph.instagram.com/, so send those calls there.
(function () {
  "use strict";
  var base = document.currentScript.getAttribute("data-graph-url").replace(/\/+$/, "");
  var prefix = "https://graph.instagram.com/";
  var open = XMLHttpRequest.prototype.open;
  XMLHttpRequest.prototype.open = function (method, url) {
    var args = Array.prototype.slice.call(arguments);
    if (typeof url === "string" && url.indexOf(prefix) === 0) {
      args[1] = base + "/" + url.slice(prefix.length);
    }
    return open.apply(this, args);
  };
})();
