// The preview page: run Instafeed.js with the token the agent's own snippet set,
// exactly as the code beside it would on the owner's site (the transform and
// template are accounts/snippets.py's TEXT_ONLY_OPTIONS, verbatim: captions are text).
(function () {
  "use strict";
  var name = document.currentScript.getAttribute("data-js-name");
  var status = document.getElementById("preview-status");

  function say(text, bad) {
    status.textContent = text;
    status.className = bad ? "danger" : "";
  }

  if (typeof window.Instafeed !== "function") {
    say("Instafeed.js did not load from the CDN (offline or blocked?); your site needs it too.", true);
    return;
  }
  var token = window[name];
  if (typeof token !== "string") {
    say(token === null
      ? "The snippet set " + name + " to null: the token is unusable (see above and the browser console)."
      : "The snippet did not load, so " + name + " is not set.", true);
    return;
  }
  new Instafeed({
    accessToken: token,
    target: "instafeed",
    limit: 12,
    // Captions are text, not markup: escape every field the template uses.
    transform: function (item) {
      var text = function (s) {
        return String(s || "").replace(/[&<>"']/g, function (c) {
          return "&#" + c.charCodeAt(0) + ";";
        });
      };
      item.caption = text(item.caption);
      item.link = text(item.link);
      item.image = text(item.image);
      return item;
    },
    template: '<a href="{{link}}"><img title="{{caption}}" src="{{image}}" /></a>',
    after: function () { say("Instafeed.js rendered this feed with the token from the snippet.", false); },
    error: function (err) { say("Instafeed.js could not load the feed: " + (err && err.message), true); }
  }).run();
})();
