// Upload form: a drop zone around the model's file input (the plain input works without this).
(function () {
  "use strict";

  function humanSize(bytes) {
    if (bytes < 1024) return bytes + " B";
    if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + " KiB";
    return (bytes / (1024 * 1024)).toFixed(1) + " MiB";
  }

  function setUp(zone) {
    var input = zone.querySelector("input[type=file]");
    var shown = zone.querySelector("[data-dropzone-file]");
    var hint = zone.querySelector("[data-dropzone-hint]");
    if (!input || !shown) return;
    if (hint) hint.hidden = false;

    function show() {
      var file = input.files && input.files[0];
      zone.classList.toggle("has-file", !!file);
      shown.classList.remove("warn");
      if (!file) { shown.textContent = ""; return; }
      shown.textContent = file.name + " · " + humanSize(file.size);
      if (!/\.onnx$/i.test(file.name)) {
        shown.textContent += " — this does not look like an .onnx file";
        shown.classList.add("warn");
      }
    }

    function isFileDrag(event) {
      var types = event.dataTransfer && event.dataTransfer.types;
      return !!types && Array.prototype.indexOf.call(types, "Files") >= 0;
    }

    zone.addEventListener("dragenter", function (event) {
      if (!isFileDrag(event)) return;
      event.preventDefault();
      zone.classList.add("dragging");
    });
    zone.addEventListener("dragover", function (event) {
      if (!isFileDrag(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    });
    zone.addEventListener("dragleave", function (event) {
      if (!zone.contains(event.relatedTarget)) zone.classList.remove("dragging");
    });
    zone.addEventListener("drop", function (event) {
      zone.classList.remove("dragging");
      if (!isFileDrag(event)) return;
      event.preventDefault();
      var files = event.dataTransfer.files;
      if (!files || !files.length) return;
      try {
        var transfer = new DataTransfer();  // keep only the first file
        transfer.items.add(files[0]);
        input.files = transfer.files;
      } catch (err) {
        input.files = files;
      }
      input.dispatchEvent(new Event("change", { bubbles: true }));
    });
    input.addEventListener("change", show);
    show();
  }

  document.querySelectorAll("[data-dropzone]").forEach(setUp);
})();
