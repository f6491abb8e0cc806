/* tokenagent embed, served as /feed/embed.js: renders each
 * <div data-tokenagent-feed="acme" data-limit="12"></div> on the page as a grid of
 * linked posts from <agent>/feed/acme.json (the agent is where this script came from;
 * an empty value means the default account's /feed.json). No other library, no
 * inline style, no eval: it runs under a strict CSP that lists only the agent.
 * Class names, attributes and the stylesheet are documented in docs/embed.md.
 */
(function (w, d) {
  "use strict";
  if (w.tokenagentEmbed) return;
  var script = d.currentScript || d.querySelector('script[src*="/feed/embed.js"]');
  if (!script || !script.src) {
    console.error("tokenagent: embed.js cannot tell which agent it came from; load it with <script src>");
    return;
  }
  var base = new URL(".", script.src);
  var C = "tokenagent-feed";
  var KINDS = { IMAGE: "image", VIDEO: "video", CAROUSEL_ALBUM: "carousel" };
  var LABELS = { VIDEO: "Video", CAROUSEL_ALBUM: "Carousel" };
  var SIZES = "auto, (max-width: 480px) 50vw, 33vw";
  var ALT_MAX = 300;
  var seen = new WeakSet();
  var loads = {};
  var styled = stylesheet();
  var pending = false;

  function fail(message) {
    console.error("tokenagent: " + message);
  }

  function stylesheet() {
    if (script.getAttribute("data-css") === "none") return Promise.resolve();
    var href = new URL("embed.css", base).href;
    var links = d.querySelectorAll('link[rel~="stylesheet"]');
    for (var i = 0; i < links.length; i++) if (links[i].href === href) return Promise.resolve();
    return new Promise(function (done) {
      var link = d.createElement("link");
      link.rel = "stylesheet";
      link.href = href;
      link.onload = link.onerror = done;
      setTimeout(done, 3000);
      d.head.appendChild(link);
    });
  }

  function safe(url, from) {
    try {
      var u = new URL(url, from);
      return u.protocol === "https:" || u.protocol === "http:" ? u.href : "";
    } catch (e) {
      return "";
    }
  }

  function load(url) {
    if (!loads[url]) {
      loads[url] = fetch(url, { credentials: "omit" }).then(
        function (r) {
          if (r.ok) return r.json();
          return r.json().catch(function () { return {}; }).then(function (body) {
            throw new Error("the agent answered HTTP " + r.status + (body && body.detail ? ": " + body.detail : ""));
          });
        },
        function () {
          throw new Error("the agent did not answer, or does not allow this site (" + location.origin +
            ") in ALLOWED_DOMAINS; the console shows a CORS error if so");
        }
      );
    }
    return loads[url];
  }

  function el(tag, name) {
    var node = d.createElement(tag);
    node.className = name;
    return node;
  }

  function altText(post, feed) {
    var text = typeof post.caption === "string" ? post.caption.replace(/\s+/g, " ").trim() : "";
    if (text.length > ALT_MAX) text = text.slice(0, ALT_MAX - 1) + "\u2026";
    return text || "Instagram post" + (feed.username ? " by @" + feed.username : "");
  }

  function item(post, feed, from, sizes) {
    var image = post && post.image;
    var src = image && safe(image.url, from);
    if (!src) return null;
    var kind = KINDS[post.media_type] || "image";
    var li = el("li", C + "__item " + C + "__item--" + kind);
    var link = el("a", C + "__link");
    var href = safe(post.permalink, from);
    if (href) link.href = href;
    var img = el("img", C + "__image");
    img.alt = altText(post, feed);
    if (image.width > 0 && image.height > 0) {
      img.width = image.width;
      img.height = image.height;
    }
    img.loading = "lazy";
    img.decoding = "async";
    var srcset = (image.sizes || []).map(function (s) {
      var u = s && s.width > 0 && safe(s.url, from);
      return u && u.indexOf(",") < 0 ? u + " " + Math.round(s.width) + "w" : "";
    }).filter(Boolean).join(", ");
    if (srcset) {
      img.srcset = srcset;
      img.sizes = sizes;
    }
    img.src = src;
    link.appendChild(img);
    if (LABELS[post.media_type]) {
      var label = el("span", C + "__label");
      label.textContent = LABELS[post.media_type];
      link.appendChild(label);
    }
    li.appendChild(link);
    return li;
  }

  function render(node, feed, from) {
    var grid = el("ul", C + "__grid");
    var sizes = node.getAttribute("data-sizes") || SIZES;
    (Array.isArray(feed.posts) ? feed.posts : []).forEach(function (post) {
      var li = item(post, feed, from, sizes);
      if (li) grid.appendChild(li);
    });
    node.textContent = "";
    node.appendChild(grid);
    node.classList.remove(C + "--loading");
    node.classList.add(C + "--ready");
    if (feed.stale) node.classList.add(C + "--stale");
  }

  function show(node) {
    var account = node.getAttribute("data-tokenagent-feed");
    if (!/^[-\w]{0,64}$/.test(account)) {
      node.classList.add(C + "--error");
      fail("data-tokenagent-feed must be an account slug (letters, digits, - and _)");
      return;
    }
    var url = new URL(account ? account + ".json" : "../feed.json", base);
    var limit = node.getAttribute("data-limit");
    if (limit !== null) {
      if (/^\d{1,3}$/.test(limit) && +limit > 0) url.searchParams.set("limit", +limit);
      else fail("data-limit must be a positive whole number; ignored");
    }
    node.classList.add(C, C + "--loading");
    Promise.all([load(url.href), styled]).then(
      function (results) { render(node, results[0], url.href); },
      function (err) {
        node.classList.remove(C + "--loading");
        node.classList.add(C + "--error");
        fail("could not load the feed from " + url.href + ": " + err.message);
      }
    );
  }

  function scan() {
    pending = false;
    var nodes = d.querySelectorAll("[data-tokenagent-feed]");
    for (var i = 0; i < nodes.length; i++) {
      if (!seen.has(nodes[i])) {
        seen.add(nodes[i]);
        show(nodes[i]);
      }
    }
  }

  function added(records) {
    for (var i = 0; i < records.length && !pending; i++) {
      var nodes = records[i].addedNodes;
      for (var j = 0; j < nodes.length; j++) {
        var n = nodes[j];
        if (n.nodeType === 1 && (n.hasAttribute("data-tokenagent-feed") || n.querySelector("[data-tokenagent-feed]"))) {
          pending = true;
          setTimeout(scan, 0);
          break;
        }
      }
    }
  }

  w.tokenagentEmbed = { scan: scan };
  new MutationObserver(added).observe(d.documentElement, { childList: true, subtree: true });
  scan();
})(window, document);
