// meshviz collection page: polls /api/v1/collections/<id>/ (session auth) and shows the steps, the state, the
// error and the analysis link as they change. No dependencies; everything is inserted as text, never as HTML.
(function () {
  "use strict";

  var box = document.getElementById("collection");
  if (!box || box.getAttribute("data-finished") === "true") return;
  var url = box.getAttribute("data-collection-api");
  var INTERVAL_MS = 1000;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function renderSteps(steps) {
    var list = document.getElementById("steps");
    list.textContent = "";
    steps.forEach(function (s) {
      var li = el("li", "step-" + s.state);
      li.appendChild(el("code", "", s.step));
      li.appendChild(el("span", "step-state", s.state));
      if (s.detail) {
        li.appendChild(document.createTextNode(" "));
        li.appendChild(el("span", "muted", s.detail));
      }
      list.appendChild(li);
    });
  }

  function render(job) {
    var state = document.getElementById("job-state");
    state.textContent = job.state;
    state.className = "state state-" + job.state;
    document.getElementById("job-attempts").textContent = job.attempts > 1 ? "(attempt " + job.attempts + ")" : "";
    renderSteps(job.steps || []);
    var prov = document.getElementById("provenance");
    prov.textContent = "";
    if (job.provenance) {
      prov.appendChild(el("span", job.reconstructed ? "tag tag-warn" : "tag tag-ok", job.provenance));
    }
    var err = document.getElementById("job-error");
    err.textContent = "";
    if (job.error) {
      var p = el("p");
      p.appendChild(el("strong", "", job.error.kind));
      p.appendChild(document.createTextNode(" while " + job.error.step + ": " + job.error.message));
      err.appendChild(p);
      (job.error.errors || []).forEach(function (e) {
        err.appendChild(el("p", "", e.source + ":" + e.line + ":" + e.column + " " + e.message));
      });
      err.appendChild(el("p", "muted", "No analysis was created."));
      err.hidden = false;
    } else {
      err.hidden = true;
    }
    var notes = document.getElementById("notes");
    if (job.notes && job.notes.length) {
      var ul = notes.querySelector("ul");
      ul.textContent = "";
      job.notes.forEach(function (n) { ul.appendChild(el("li", "", n)); });
      notes.hidden = false;
    }
    if (job.analysis) {
      var link = document.getElementById("analysis-link");
      link.textContent = "";
      var a = el("a", "button", "Open the analysis");
      a.href = job.analysis.permalink;
      link.appendChild(a);
      link.hidden = false;
    }
    if (job.diff) {
      var diff = document.getElementById("diff-link");
      diff.textContent = "";
      var d = el("a", "", "Compare with the previous analysis of this pod");
      d.href = job.diff;
      diff.appendChild(d);
      diff.hidden = false;
    }
    var finished = job.state === "done" || job.state === "failed";
    document.getElementById("recollect").hidden = !finished;
    return finished;
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (job) {
        if (!render(job)) window.setTimeout(poll, INTERVAL_MS);
      })
      .catch(function () {
        window.setTimeout(poll, INTERVAL_MS * 3);
      });
  }

  window.setTimeout(poll, INTERVAL_MS);
})();
