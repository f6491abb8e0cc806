// The preview page: the account's feed as a site would show it. The embed
// (/feed/embed.js, from the agent, so it works offline) renders itself: this reports
// its state. Then Instafeed.js, when the CDN answered: through the adapter
// (/feed/<account>.js, no token), and through the token snippet unless the account
// is feed only, exactly as the code beside it would on the owner's site (its
// transform and template are accounts/snippets.py's TEXT_ONLY_OPTIONS, which the
// agent serves as window.TokenagentTextOnly just before this script: captions are text).
(function () {
  "use strict";
  var script = document.currentScript;
  var name = script.getAttribute("data-js-name");
  var feedName = script.getAttribute("data-feed-name");

  function say(id, text, bad) {
    var status = document.getElementById(id);
    if (!status) return;
    status.textContent = text;
    status.className = bad ? "danger" : "";
  }

  var embed = document.getElementById("embed-preview");
  function embedState() {
    var classes = embed.classList;
    if (classes.contains("tokenagent-feed--ready")) {
      say("embed-status", "The embed rendered this feed from the agent" +
        (classes.contains("tokenagent-feed--stale")
          ? ": the last good copy (Instagram failed since, or the account needs reconnecting)."
          : "."), false);
    } else if (classes.contains("tokenagent-feed--error")) {
      say("embed-status", "The embed could not load the feed; the browser console says why.", true);
    }
  }
  new MutationObserver(embedState).observe(embed, { attributes: true, attributeFilter: ["class"] });
  embedState();

  if (typeof window.Instafeed !== "function") {
    var missing = "Instafeed.js did not load from the CDN (offline or blocked?); your site needs it too.";
    say("adapter-status", missing, true);
    say("preview-status", missing, true);
    return;
  }

  new Instafeed({
    accessToken: window[feedName],
    target: "instafeed-adapter",
    limit: 12,
    after: function () { say("adapter-status", "Instafeed.js rendered this feed from the agent, with no token.", false); },
    error: function (err) { say("adapter-status", "Instafeed.js could not load the feed: " + (err && err.message), true); }
  }).run();

  if (!name) return; // feed only: no token leaves the agent
  var token = window[name];
  if (typeof token !== "string") {
    say("preview-status", token === null
      ? "The snippet set " + name + " to null: the token is unusable (see above and the browser console)."
      : "The snippet did not load, so " + name + " is not set.", true);
    return;
  }
  var textOnly = window.TokenagentTextOnly;
  if (!textOnly) {
    say("preview-status", "The snippets' Instafeed.js options did not load; reload the page.", true);
    return;
  }
  new Instafeed(Object.assign({ accessToken: token, target: "instafeed", limit: 12 }, textOnly, {
    after: function () { say("preview-status", "Instafeed.js rendered this feed with the token from the snippet.", false); },
    error: function (err) { say("preview-status", "Instafeed.js could not load the feed: " + (err && err.message), true); }
  })).run();
})();
