// meshviz explorer: rule table keyboard navigation and in-place rule detail, the packet composer's in-place trace
// with a step cursor highlighted in the structure graph, and the what-if form. No dependencies; every view also
// works without JavaScript (plain GET forms and links), this only avoids reloads. URL state is kept in sync.
(function () {
  "use strict";

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function typing(e) {
    var t = e.target;
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  }
  function withParam(url, key, value) {
    var u = new URL(url, window.location.href);
    u.searchParams.set(key, value);
    return u.toString();
  }

  // ---------------------------------------------------------------- rules
  function rulesPage() {
    var table = $("[data-rule-table]");
    if (!table) return;
    var form = $("[data-rule-filter]");
    var filter = $("#rule-filter");
    var detail = $("#rule-detail");
    var count = $("[data-rule-count]");
    var total = count ? count.textContent.replace(/^.* of /, "") : "";
    var rows = $all("tr.rule-row", table);

    function visible() { return rows.filter(function (r) { return !r.hidden; }); }
    function current() { return $("tr.rule-row.current", table); }
    function setCurrent(row) {
      rows.forEach(function (r) { r.classList.remove("current"); });
      if (!row) return;
      row.classList.add("current");
      row.scrollIntoView({ block: "nearest" });
    }

    // instant text filter (the server filters the same way on submit)
    if (filter) {
      filter.addEventListener("input", function () {
        var needle = filter.value.trim().toLowerCase();
        var shown = 0;
        rows.forEach(function (r) {
          var hit = !needle || r.textContent.toLowerCase().indexOf(needle) !== -1;
          r.hidden = !hit;
          if (hit) shown++;
        });
        if (count) count.textContent = shown + " of " + total;
        var u = new URL(window.location.href);
        if (needle) { u.searchParams.set("q", filter.value.trim()); } else { u.searchParams.delete("q"); }
        history.replaceState(null, "", u.toString());
      });
    }
    if (form) {
      $all("select", form).forEach(function (s) {
        s.addEventListener("change", function () { form.submit(); });
      });
    }

    function open(row, push) {
      if (!row) return;
      setCurrent(row);
      rows.forEach(function (r) { r.classList.remove("selected"); r.removeAttribute("aria-current"); });
      row.classList.add("selected");
      row.setAttribute("aria-current", "true");
      var url = row.getAttribute("data-url");
      fetch(withParam(url, "fragment", "1"), { headers: { "Accept": "text/html" } })
        .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.text(); })
        .then(function (html) {
          detail.innerHTML = html;
          if (push) {
            var u = new URL(url, window.location.href);
            var q = new URL(window.location.href).searchParams.get("q");
            if (q) u.searchParams.set("q", q);
            history.pushState({ rule: url }, "", u.toString());
          }
        })
        .catch(function () { window.location.href = url; });
    }

    table.addEventListener("click", function (e) {
      if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
      var row = e.target.closest("tr.rule-row");
      if (!row) return;
      e.preventDefault();
      open(row, true);
    });
    window.addEventListener("popstate", function () { window.location.reload(); });

    document.addEventListener("keydown", function (e) {
      if (e.key === "/" && !typing(e)) { e.preventDefault(); if (filter) { filter.focus(); filter.select(); } return; }
      if (e.key === "Escape" && typing(e)) { e.target.blur(); return; }
      if (typing(e) || e.metaKey || e.ctrlKey || e.altKey) return;
      var list = visible();
      if (!list.length) return;
      var i = list.indexOf(current());
      if (e.key === "j" || e.key === "ArrowDown") { e.preventDefault(); setCurrent(list[Math.min(i + 1, list.length - 1)]); }
      else if (e.key === "k" || e.key === "ArrowUp") { e.preventDefault(); setCurrent(list[Math.max(i - 1, 0)]); }
      else if (e.key === "Enter" && current()) { e.preventDefault(); open(current(), true); }
    });
    var sel = $("tr.rule-row.selected", table);
    if (sel) sel.scrollIntoView({ block: "center" });
  }

  // ---------------------------------------------------------------- structure highlights
  function svgNode(id) {
    if (!id) return null;
    var el = document.getElementById(id) || document.getElementById("a_" + id);
    return el && el.closest("svg") ? el : null;
  }
  function clearMarks(cls) {
    $all(".structure-diagram ." + cls).forEach(function (g) { g.classList.remove(cls); });
  }

  // ---------------------------------------------------------------- composer
  function composer() {
    var form = $("[data-compose-form]");
    if (!form) return;
    var box = $("#compose-result");
    var timer = null;
    var seq = 0;
    var step = -1;

    function entry() {
      var r = $("input[name=entry]:checked", form);
      return r ? r.value : "iface";
    }
    function syncEntry() {
      var en = entry();
      form.setAttribute("data-entry", en);
      $all("[data-for-entry]", form).forEach(function (el) {
        el.disabled = el.getAttribute("data-for-entry") !== en;
      });
    }
    function query() {
      var p = new URLSearchParams(new FormData(form));
      return p.toString();
    }
    function steps() { return $all("li.step", box); }
    function showStep(n) {
      var list = steps();
      var pos = $("[data-step-pos]", box);
      clearMarks("mv-current");
      list.forEach(function (li) { li.classList.remove("current"); });
      if (!list.length) return;
      step = Math.max(0, Math.min(n, list.length - 1));
      var li = list[step];
      li.classList.add("current");
      li.scrollIntoView({ block: "nearest" });
      if (pos) pos.textContent = "step " + (step + 1) + " of " + list.length;
      var g = svgNode(li.getAttribute("data-node"));
      if (g) g.classList.add("mv-current");
      var u = new URL(window.location.href);
      u.searchParams.set("step", String(step + 1));
      history.replaceState(null, "", u.toString());
    }
    function markPath() {
      clearMarks("mv-path");
      steps().forEach(function (li) {
        if (!li.classList.contains("kind-rulematch")) return;
        var g = svgNode(li.getAttribute("data-node"));
        if (g) g.classList.add("mv-path");
      });
    }
    function refresh() {
      var q = query();
      var mine = ++seq;
      box.classList.add("loading");
      fetch(form.action + "?" + q + "&fragment=1", { headers: { "Accept": "text/html" } })
        .then(function (r) { return r.text(); })
        .then(function (html) {
          if (mine !== seq) return;  // a newer request is on its way
          box.innerHTML = html;
          box.classList.remove("loading");
          history.replaceState(null, "", form.action + "?" + q);
          markPath();
          step = -1;
          var pos = $("[data-step-pos]", box);
          if (pos && steps().length) pos.textContent = steps().length + " steps";
          clearMarks("mv-current");
        })
        .catch(function () { box.classList.remove("loading"); });
    }
    form.addEventListener("input", function () {
      syncEntry();
      clearTimeout(timer);
      timer = setTimeout(refresh, 250);
    });
    form.addEventListener("change", function () { syncEntry(); });
    form.addEventListener("submit", function (e) { e.preventDefault(); clearTimeout(timer); refresh(); });
    box.addEventListener("click", function (e) {
      var b = e.target.closest("[data-step]");
      if (b) { showStep(step + (b.getAttribute("data-step") === "next" ? 1 : -1)); return; }
      var li = e.target.closest("li.step");
      if (li && !e.target.closest("a")) showStep(steps().indexOf(li));
    });
    document.addEventListener("keydown", function (e) {
      if (typing(e) || e.metaKey || e.ctrlKey || e.altKey) return;
      if (e.key === "n") { e.preventDefault(); showStep(step + 1); }
      else if (e.key === "p") { e.preventDefault(); showStep(step - 1); }
    });
    syncEntry();
    markPath();
    var initial = parseInt(new URL(window.location.href).searchParams.get("step") || "0", 10);
    if (initial > 0) showStep(initial - 1);
  }

  // ---------------------------------------------------------------- what-if form
  function whatifForm() {
    var form = $("[data-edit-form]");
    if (!form) return;
    var op = $("[data-edit-op]", form);
    function sync() {
      $all("[data-ops]", form).forEach(function (label) {
        var on = label.getAttribute("data-ops").split(" ").indexOf(op.value) !== -1;
        label.classList.toggle("inactive", !on);
        $all("input, select, textarea", label).forEach(function (el) { el.disabled = !on; });
      });
    }
    op.addEventListener("change", sync);
    sync();
  }

  document.addEventListener("DOMContentLoaded", function () {
    rulesPage();
    composer();
    whatifForm();
  });
})();
