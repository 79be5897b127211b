// meshviz analysis page: pan/zoom on the flow diagrams, copy buttons on the fix artifacts. No dependencies.
(function () {
  "use strict";

  function panZoom(box) {
    var svg = box.querySelector("svg");
    if (!svg) return;
    var vb = svg.viewBox && svg.viewBox.baseVal;
    if (!vb || !vb.width) return;
    var home = { x: vb.x, y: vb.y, w: vb.width, h: vb.height };
    var view = { x: home.x, y: home.y, w: home.w, h: home.h };
    // the diagram fills the box's width; its height follows the aspect ratio, bounded by CSS
    svg.removeAttribute("width");
    svg.removeAttribute("height");
    svg.setAttribute("preserveAspectRatio", "xMidYMin meet");

    function apply() {
      svg.setAttribute("viewBox", [view.x, view.y, view.w, view.h].join(" "));
    }
    function zoom(factor, cx, cy) {
      // cx, cy: the fixed point, as fractions of the box (0..1)
      var w = Math.min(Math.max(view.w * factor, home.w / 20), home.w * 4);
      var h = w * (home.h / home.w);
      view.x += (view.w - w) * cx;
      view.y += (view.h - h) * cy;
      view.w = w;
      view.h = h;
      apply();
    }
    function reset() {
      view = { x: home.x, y: home.y, w: home.w, h: home.h };
      apply();
    }

    box.addEventListener("wheel", function (e) {
      e.preventDefault();
      var r = svg.getBoundingClientRect();
      zoom(e.deltaY < 0 ? 1 / 1.2 : 1.2, (e.clientX - r.left) / r.width, (e.clientY - r.top) / r.height);
    }, { passive: false });

    var drag = null;
    box.addEventListener("pointerdown", function (e) {
      if (e.button !== 0) return;
      drag = { x: e.clientX, y: e.clientY, vx: view.x, vy: view.y };
      box.setPointerCapture(e.pointerId);
      box.classList.add("dragging");
    });
    box.addEventListener("pointermove", function (e) {
      if (!drag) return;
      var r = svg.getBoundingClientRect();
      var scale = Math.max(view.w / r.width, view.h / r.height);
      view.x = drag.vx - (e.clientX - drag.x) * scale;
      view.y = drag.vy - (e.clientY - drag.y) * scale;
      apply();
    });
    function stop() {
      drag = null;
      box.classList.remove("dragging");
    }
    box.addEventListener("pointerup", stop);
    box.addEventListener("pointercancel", stop);

    box.addEventListener("keydown", function (e) {
      if (e.key === "+" || e.key === "=") { zoom(1 / 1.2, 0.5, 0.5); e.preventDefault(); }
      else if (e.key === "-" || e.key === "_") { zoom(1.2, 0.5, 0.5); e.preventDefault(); }
      else if (e.key === "0") { reset(); e.preventDefault(); }
      else if (e.key.indexOf("Arrow") === 0) {
        var step = view.w / 10;
        if (e.key === "ArrowLeft") view.x -= step;
        if (e.key === "ArrowRight") view.x += step;
        if (e.key === "ArrowUp") view.y -= step;
        if (e.key === "ArrowDown") view.y += step;
        apply();
        e.preventDefault();
      }
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
    Array.prototype.forEach.call(document.querySelectorAll("button[data-copy-target]"), copyButton);
  });
})();
