// Search for the offline docs site (tools/build_docs.py): the index of page titles, headings and docstrings is
// assets/search-index.js, written at build time and loaded on first use (a <script>, so it works from file:// too).
// No network and no library: every word of the query must occur in an entry; exact and leading title matches first.
(function () {
  var box = document.getElementById("site-search"), list = document.getElementById("search-results");
  if (!box || !list) return;
  var root = box.getAttribute("data-root") || "";

  function load(then) {
    if (window.SITE_SEARCH) return then();
    var s = document.getElementById("search-index");
    if (!s) {
      s = document.createElement("script");
      s.id = "search-index";
      s.src = root + "assets/search-index.js";
      document.head.appendChild(s);
    }
    s.addEventListener("load", then);
  }

  function score(e, words, q) {
    var t = e.t.toLowerCase(), text = (t + " " + e.p + " " + e.s).toLowerCase(), n = 1;
    for (var i = 0; i < words.length; i++) if (text.indexOf(words[i]) < 0) return 0;
    if (t === q) n += 100; else if (t.indexOf(q) === 0) n += 40; else if (t.indexOf(q) >= 0) n += 20;
    return n + (e.k === "symbol" ? 5 : e.k === "page" ? 3 : 0);
  }

  function item(e) {
    var li = document.createElement("li"), a = document.createElement("a");
    a.href = root + e.u;
    a.textContent = e.t;
    li.appendChild(a);
    [["search-page", e.p], ["search-text", e.s]].forEach(function (part) {
      if (!part[1]) return;
      var span = document.createElement("span");
      span.className = part[0];
      span.textContent = part[1];
      li.appendChild(span);
    });
    return li;
  }

  function show() {
    var q = box.value.trim().toLowerCase();
    if (q.length < 2) { list.textContent = ""; list.hidden = true; return; }
    load(function () {
      if (box.value.trim().toLowerCase() !== q) return;  // the query changed while the index loaded
      var words = q.split(/\s+/), hits = [];
      window.SITE_SEARCH.forEach(function (e) { var n = score(e, words, q); if (n) hits.push([n, e]); });
      hits.sort(function (a, b) { return b[0] - a[0]; });
      list.textContent = "";
      hits.slice(0, 12).forEach(function (h) { list.appendChild(item(h[1])); });
      if (!hits.length) {
        var none = list.appendChild(document.createElement("li"));
        none.className = "search-none";
        none.textContent = "No results";
      }
      list.hidden = false;
    });
  }

  box.addEventListener("input", show);
  box.addEventListener("keydown", function (ev) {
    var first = list.querySelector("a");
    if (ev.key === "Enter" && first) window.location.href = first.href;
    if (ev.key === "Escape") { box.value = ""; show(); }
  });
})();
