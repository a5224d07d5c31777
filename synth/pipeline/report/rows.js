// The row browser: shows the sample rows (the JSON in #sample-data) and filters them as
// one types. Row text goes in through textContent only, never as HTML. page.py puts
// this file's sha256 in the page's Content-Security-Policy: no other script can run.
(function () {
  "use strict";
  var rows = JSON.parse(document.getElementById("sample-data").textContent);
  var q = document.getElementById("sample-q");
  var which = document.getElementById("sample-which");
  var stage = document.getElementById("sample-stage");
  var body = document.getElementById("sample-body");
  var count = document.getElementById("sample-count");
  rows.forEach(function (r) {
    r.hay = [r.id, r.stage, r.teacher, r.dropped_by, r.drop_reason, r.prompt, r.response,
             r.reasoning].join("\n").toLowerCase();
  });
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    var div = document.createElement("div");
    div.className = cls || "txt";
    div.textContent = text == null ? "" : String(text);
    td.appendChild(div);
    tr.appendChild(td);
  }
  function wanted(r, needle, w, s) {
    if (w === "kept" && r.status !== "kept") return false;
    if (w === "rejected" && r.status !== "rejected") return false;
    if (w.indexOf("by:") === 0 && (r.status !== "rejected" || r.dropped_by !== w.slice(3)))
      return false;
    if (s && r.stage !== s) return false;
    return !needle || r.hay.indexOf(needle) >= 0;
  }
  function render() {
    var needle = q.value.trim().toLowerCase(), w = which.value, s = stage.value, shown = 0;
    var frag = document.createDocumentFragment();
    rows.forEach(function (r) {
      if (!wanted(r, needle, w, s)) return;
      shown += 1;
      var tr = document.createElement("tr");
      tr.className = r.status;
      cell(tr, r.status === "kept" ? "kept" : "rejected by " + r.dropped_by +
           (r.where ? " (" + r.where + ")" : ""), "tag");
      cell(tr, r.drop_reason, "tag");
      cell(tr, r.stage + (r.teacher ? "\n" + r.teacher : ""), "tag");
      cell(tr, r.id, "tag");
      cell(tr, r.prompt);
      cell(tr, r.response);
      cell(tr, r.reasoning);
      frag.appendChild(tr);
    });
    body.replaceChildren(frag);
    count.textContent = shown + " of " + rows.length + " sample rows shown";
  }
  q.addEventListener("input", render);
  which.addEventListener("change", render);
  stage.addEventListener("change", render);
  render();
})();
