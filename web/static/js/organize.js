// New league form: suggest the league's address (slug) from its name as the name is typed.
// The server makes the same slug when the field is left blank, so this is only a preview.
(function () {
  "use strict";
  var form = document.getElementById("new-league-form");
  if (!form) { return; }
  var name = form.querySelector("#name");
  var slug = form.querySelector("#slug");
  if (!name || !slug) { return; }

  function suggest(text) {
    var ascii = text.normalize("NFKD").replace(/[^\x00-\x7f]/g, "").toLowerCase();
    var s = ascii.replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 64)
      .replace(/-+$/, "");
    return s.length >= 3 ? s : (s + "-league").replace(/^-+/, "");
  }

  function update() { slug.placeholder = name.value.trim() ? suggest(name.value) : ""; }
  name.addEventListener("input", update);
  update();
}());
