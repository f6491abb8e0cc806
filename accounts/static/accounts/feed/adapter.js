/* tokenagent: the Instafeed.js 2.1.0 adapter, served as /feed/<account>.js.
 *
 * A site that used `<script src=".../token/acme.js">` with an unmodified Instafeed.js
 * 2.1.0 and `new Instafeed({accessToken: InstagramToken}).run()` changes only that URL
 * to `.../feed/acme.js`. Instafeed.js then renders the feed from the agent's
 * `/feed/acme/media` (the Graph /me/media shape, images on the agent): no token in the
 * page, no request to Instagram.
 *
 * How the agent serves it: this file unchanged, after ONE line that is the only
 * per-request part (values written as JSON string literals, the name validated):
 *
 *   (window.__tokenagentFeeds = window.__tokenagentFeeds || []).push({"name": "InstagramToken", "media": "https://agent.example/feed/acme/media"});
 *
 * Why a line and not document.currentScript: a static file cannot know the agent's
 * JS_CONSTANT_NAME, currentScript is null when a tag manager or loader injects the
 * code inline, and a media URL guessed from the script's own URL breaks behind a
 * path prefix. The queue also makes any number of adapters on one page work.
 *
 * What it does: sets window[name] to a placeholder ("tokenagent:" + media URL),
 * which is not a token, and wraps Instafeed.prototype._makeApiRequest (the one
 * place where Instafeed.js 2.1.0 makes its hard-coded Graph request) so that an
 * instance whose token is a registered placeholder reads the agent instead:
 * Instafeed's first request becomes `<media>[?limit=N]` (N from `limit`/`apiLimit`),
 * `next()` follows the agent's `paging.next` (only on the agent's origin). Other
 * instances (real tokens) are left alone. The wrapper is installed at once when
 * Instafeed is already defined, otherwise when it is assigned to window.Instafeed
 * (an accessor), so the two scripts may come in either order. A bundled or AMD
 * Instafeed never reaches window: call window.tokenagentAdapter.install(Instafeed).
 *
 * Captions are text: every string in the agent's data is HTML-escaped (& < > " ')
 * before Instafeed.js sees it, because Instafeed's templating pastes values into
 * innerHTML unescaped. So `{{caption}}` (or any field, `model.*` included) is text
 * in element content and in quoted attributes, and what `transform`, `filter`,
 * `sort`, `render` and the `success` hook receive is escaped too: slicing, casing
 * or joining those strings cannot create markup; only markup your own code writes
 * (or text it decodes) can. URLs (media_url, thumbnail_url, permalink) are made
 * absolute against the agent and dropped unless http(s). Quote template attributes.
 *
 * When the agent answers an error (403 site not allowed, 404, 503, no answer/CORS,
 * timeout), a "tokenagent: ..." message goes to the console and Instafeed's `error`
 * hook gets an Error with the same text.
 */
(function (w) {
  "use strict";
  var PREFIX = "tokenagent:";
  var GRAPH = "https://graph.instagram.com/";
  var URL_KEYS = { media_url: 1, thumbnail_url: 1, permalink: 1 };
  var ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  var WHY = {
    403: "the agent refuses this site (is it in ALLOWED_DOMAINS?)",
    404: "the agent has no such feed (unknown account?)",
    503: "the feed is not available yet"
  };

  function say(message) {
    message = PREFIX + " " + message;
    if (w.console) console.error(message);
    return new Error(message);
  }

  function escapeHtml(text) {
    return text.replace(/[&<>"']/g, function (c) { return ESCAPES[c]; });
  }

  function absolute(url, base) {
    try {
      var u = new URL(url, base);
      return u.protocol === "https:" || u.protocol === "http:" ? u.href : "";
    } catch (e) {
      return "";
    }
  }

  // A copy of the agent's items with every string escaped and the URLs absolute.
  function clean(value, key, base) {
    if (typeof value === "string") {
      return escapeHtml(URL_KEYS[key] ? absolute(value, base) : value);
    }
    if (Array.isArray(value)) {
      return value.map(function (v) { return clean(v, "", base); });
    }
    if (value && typeof value === "object") {
      var out = {};
      Object.keys(value).forEach(function (k) {
        if (k !== "__proto__") out[k] = clean(value[k], k, base);
      });
      return out;
    }
    return value;
  }

  function prepare(body, base) {
    var next = body.paging && typeof body.paging.next === "string" && absolute(body.paging.next, base);
    return { data: clean(body.data, "", base), paging: next ? { next: next } : {} };
  }

  // Instafeed's URL -> the agent's; null for a URL outside the agent.
  function target(feed, url) {
    if (url.indexOf(GRAPH) === 0) {
      var limit = /&limit=(\d+)$/.exec(url);
      return feed.media + (limit ? (feed.media.indexOf("?") < 0 ? "?" : "&") + "limit=" + limit[1] : "");
    }
    var u = absolute(url, feed.media);
    return u && new URL(u).origin === feed.origin ? u : null;
  }

  function problem(status, body, url) {
    var detail = "";
    if (body && typeof body.detail === "string") detail = body.detail;
    else if (body && body.error && typeof body.error.message === "string") detail = body.error.message;
    else if (body && typeof body.error === "string") detail = body.error;
    return (WHY[status] || "the agent answered an error") + " (HTTP " + status + " from " + url + ")" +
      (detail ? ": " + detail : "");
  }

  function load(instafeed, feed, url, callback) {
    var to = target(feed, url);
    if (!to) {
      callback(say("refusing to request " + url + ": it is not on the agent (" + feed.origin + ")"));
      return;
    }
    var xhr = new XMLHttpRequest();
    xhr.open("GET", to, true);
    xhr.timeout = instafeed._options.apiTimeout;
    xhr.onload = function () {
      var body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch (e) {
        body = null;
      }
      if (xhr.status === 200 && body && Array.isArray(body.data)) {
        callback(null, prepare(body, to));
      } else if (xhr.status === 200) {
        callback(say("the agent's answer from " + to + " is not a feed"));
      } else {
        callback(say(problem(xhr.status, body, to)));
      }
    };
    xhr.onerror = function () {
      callback(say("could not load " + to + ": the agent did not answer, or does not allow this site (" +
        w.location.origin + ") in ALLOWED_DOMAINS; the console shows a CORS error if so"));
    };
    xhr.ontimeout = function () {
      callback(say("the agent did not answer " + to + " within " + xhr.timeout + " ms"));
    };
    xhr.send();
  }

  function install(Instafeed) {
    var proto = Instafeed && Instafeed.prototype;
    if (!proto || (proto._makeApiRequest && proto._makeApiRequest.tokenagent)) return;
    if (typeof proto._makeApiRequest !== "function") {
      say("this Instafeed.js has no _makeApiRequest (not version 2.x): the feed adapter cannot serve it");
      return;
    }
    var original = proto._makeApiRequest;
    var wrapped = function (url, callback) {
      var token = this._state && this._state.token;
      if (typeof token !== "string" || !Object.prototype.hasOwnProperty.call(shared.feeds, token)) {
        return original.apply(this, arguments);
      }
      load(this, shared.feeds[token], String(url), callback);
    };
    wrapped.tokenagent = true;
    proto._makeApiRequest = wrapped;
  }

  function register(config) {
    var media = config && typeof config.media === "string" ? absolute(config.media) : "";
    if (!media || typeof config.name !== "string") {
      say("bad adapter configuration; nothing was set");
      return;
    }
    var placeholder = PREFIX + media;
    shared.feeds[placeholder] = { media: media, origin: new URL(media).origin };
    w[config.name] = placeholder;
  }

  function watch() {
    if (typeof w.Instafeed === "function") {
      install(w.Instafeed);
      return;
    }
    var current = w.Instafeed;
    try {
      Object.defineProperty(w, "Instafeed", {
        configurable: true,
        enumerable: true,
        get: function () { return current; },
        set: function (value) {
          current = value;
          if (typeof value === "function") install(value);
        }
      });
    } catch (e) {
      say("cannot watch for Instafeed.js (" + e.message + "); call tokenagentAdapter.install(Instafeed)");
    }
  }

  var shared = w.tokenagentAdapter;
  if (!shared || !shared.feeds) {
    shared = w.tokenagentAdapter = { feeds: {}, install: install };
    watch();
  }
  var queue = w.__tokenagentFeeds || [];
  while (queue.length) register(queue.shift());
})(window);
