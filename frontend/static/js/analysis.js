// meshviz analysis page: pan/zoom on the diagrams (vendored svg-pan-zoom), copy buttons on the fix artifacts.
(function () {
  "use strict";

  // Pan and zoom with the vendored svg-pan-zoom (static/vendor/svg-pan-zoom). A plain wheel scrolls the page;
  // Ctrl (or Cmd) + wheel zooms, as do the +, - and 0 keys and the buttons under the diagram; drag pans.
  // A flow diagram (.diagram without .structure-diagram) is shown at the page's width and its full height;
  // the step where the connection fails (class "failure") is brought into view inside its box.
  function panZoom(box) {
    var svg = box.querySelector("svg");
    if (!svg || typeof window.svgPanZoom !== "function") return;
    var vb = svg.viewBox && svg.viewBox.baseVal;
    if (!vb || !vb.width) return;
    var natural = !box.classList.contains("structure-diagram");
    svg.removeAttribute("width");
    svg.removeAttribute("height");
    // through the CSSOM, which the Content-Security-Policy allows (svg-pan-zoom would write a style attribute)
    svg.style.overflow = "hidden";
    function size() {
      if (natural) svg.style.height = Math.round(box.clientWidth * vb.height / vb.width) + "px";
    }
    size();
    var pz = window.svgPanZoom(svg, {
      zoomEnabled: true,
      mouseWheelZoomEnabled: false,
      dblClickZoomEnabled: false,
      controlIconsEnabled: false,
      fit: true,
      center: true,
      minZoom: 0.3,
      maxZoom: 12
    });
    box.svgPanZoom = pz;
    box.addEventListener("wheel", function (e) {
      if (!(e.ctrlKey || e.metaKey)) return;  // the page scrolls
      e.preventDefault();
      var r = svg.getBoundingClientRect();
      pz.zoomAtPointBy(e.deltaY < 0 ? 1.2 : 1 / 1.2, { x: e.clientX - r.left, y: e.clientY - r.top });
    }, { passive: false });
    box.addEventListener("pointerdown", function () { box.classList.add("dragging"); });
    document.addEventListener("pointerup", function () { box.classList.remove("dragging"); });
    function reset() { size(); pz.resize(); pz.fit(); pz.center(); }
    box.addEventListener("keydown", function (e) {
      if (e.key === "+" || e.key === "=") { pz.zoomBy(1.2); e.preventDefault(); }
      else if (e.key === "-" || e.key === "_") { pz.zoomBy(1 / 1.2); e.preventDefault(); }
      else if (e.key === "0") { reset(); e.preventDefault(); }
      else if (e.key.indexOf("Arrow") === 0) {
        var step = 60;
        pz.panBy({
          x: e.key === "ArrowLeft" ? step : e.key === "ArrowRight" ? -step : 0,
          y: e.key === "ArrowUp" ? step : e.key === "ArrowDown" ? -step : 0
        });
        e.preventDefault();
      }
    });
    var controls = box.parentNode.querySelector("[data-panzoom-controls='" + box.id + "']");
    if (controls) {
      controls.hidden = false;
      controls.querySelector("[data-zoom='in']").addEventListener("click", function () { pz.zoomBy(1.3); });
      controls.querySelector("[data-zoom='out']").addEventListener("click", function () { pz.zoomBy(1 / 1.3); });
      controls.querySelector("[data-zoom='reset']").addEventListener("click", reset);
    }
    // a window resize refits the diagram only when its box's width changed: a resize that leaves it (a scrollbar
    // coming or going elsewhere, a mobile browser's toolbar) keeps the reader's zoom
    var resizing = null, width = box.clientWidth;
    window.addEventListener("resize", function () {
      clearTimeout(resizing);
      resizing = setTimeout(function () {
        if (box.clientWidth === width) return;
        width = box.clientWidth;
        reset();
      }, 150);
    });
    // the failing step: visible inside its box (a structure diagram's box is shorter than the drawing)
    var failure = svg.querySelector(".failure");
    if (failure && !natural) {
      var br = box.getBoundingClientRect(), fr = failure.getBoundingClientRect();
      if (fr.bottom > br.bottom || fr.top < br.top) pz.panBy({ x: 0, y: br.top + br.height / 2 - (fr.top + fr.height / 2) });
    }
  }

  // a click on a step shows all of it under the diagram: the rule that decided it and the hooks it passed
  function stepDetails(box) {
    var out = box.parentNode.querySelector("[data-step-detail='" + box.id + "']");
    if (!out) return;
    box.addEventListener("click", function (e) {
      var node = e.target.closest && e.target.closest("g.node");
      var link = node && node.querySelector("a");
      var text = link && (link.getAttribute("xlink:title") || link.getAttributeNS("http://www.w3.org/1999/xlink", "title"));
      if (!text) return;
      out.hidden = false;
      out.textContent = text;
    });
  }

  // a failing connection's diagram opens at its failure: the page scrolls there when it opens on it (#failure)
  function showFailure() {
    if (location.hash !== "#failure") return;
    var f = document.querySelector(".diagram .failure");
    if (f && f.scrollIntoView) f.scrollIntoView({ block: "center" });
  }
  function failureLink(a) {
    a.addEventListener("click", function (e) {
      var section = a.closest("section");
      var f = section && section.querySelector(".diagram .failure");
      if (!f) return;
      e.preventDefault();
      f.scrollIntoView({ block: "center", behavior: "smooth" });
    });
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return copyWithTextarea(text); });
    }
    return copyWithTextarea(text);
  }

  // fallback for http:// pages and old browsers: a selected off-screen textarea
  function copyWithTextarea(text) {
    return new Promise(function (resolve, reject) {
      var ta = document.createElement("textarea");
      ta.value = text;
      ta.setAttribute("readonly", "");
      ta.style.position = "fixed";
      ta.style.left = "-9999px";
      document.body.appendChild(ta);
      ta.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (err) { ok = false; }
      document.body.removeChild(ta);
      if (ok) { resolve(); } else { reject(new Error("copy failed")); }
    });
  }

  function copyButton(button) {
    button.addEventListener("click", function () {
      var target = document.getElementById(button.getAttribute("data-copy-target"));
      if (!target) return;
      var label = button.textContent;
      copyText(target.textContent).then(
        function () { button.textContent = "copied"; },
        function () { button.textContent = "select and copy"; }
      ).then(function () {
        setTimeout(function () { button.textContent = label; }, 1500);
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-panzoom]"), panZoom);
    Array.prototype.forEach.call(document.querySelectorAll("a[data-failure-link]"), failureLink);
    Array.prototype.forEach.call(document.querySelectorAll(".flow-diagram[id], .compare-diagram[id]"), stepDetails);
    showFailure();
    Array.prototype.forEach.call(document.querySelectorAll("button[data-copy-target]"), copyButton);
  });
})();
