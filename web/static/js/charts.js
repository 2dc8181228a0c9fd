// What the site's canvas charts share: a canvas made ready to draw in its logical size (its
// width/height attributes, remembered on first use), sharp on HiDPI screens.
(function () {
  "use strict";

  var FONT = "12px system-ui, sans-serif";

  function surface(canvas) {
    if (!canvas.dataset.w) {
      canvas.dataset.w = canvas.width;
      canvas.dataset.h = canvas.height;
    }
    var w = Number(canvas.dataset.w), h = Number(canvas.dataset.h);
    var ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = FONT;
    return { ctx: ctx, w: w, h: h };
  }

  window.paddockCharts = { surface: surface, FONT: FONT };
})();
