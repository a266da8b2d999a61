// scangate console: times in the viewer's zone, and sortable tables. The
// pages work without it: times stay in UTC, tables in the server's order.
(function () {
  "use strict";
  var fmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      if (t.dataset.local) return;
      var d = new Date(t.getAttribute("datetime"));
      if (isNaN(d)) return;
      t.dataset.local = "1";
      t.title = d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
      t.textContent = fmt.format(d);
    });
  }
  function cellValue(row, i) {
    var c = row.cells[i];
    if (!c) return "";
    return c.dataset.sort !== undefined ? c.dataset.sort : c.textContent.trim();
  }
  function sortBy(table, i, btn) {
    var body = table.tBodies[0];
    var asc = btn.getAttribute("aria-sort") !== "ascending";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, i), y = cellValue(b, i);
      var nx = parseFloat(x), ny = parseFloat(y);
      var r = (!isNaN(nx) && !isNaN(ny) && String(nx) === x && String(ny) === y) ? nx - ny : x.localeCompare(y, undefined, { numeric: true });
      return asc ? r : -r;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    table.querySelectorAll("th").forEach(function (th) { th.removeAttribute("aria-sort"); });
    btn.closest("th").setAttribute("aria-sort", asc ? "ascending" : "descending");
  }
  function sortable(root) {
    root.querySelectorAll("table.sortable").forEach(function (table) {
      if (table.dataset.sortable || !table.tHead || !table.tBodies[0]) return;
      table.dataset.sortable = "1";
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
        var b = document.createElement("button");
        b.type = "button";
        b.className = "sort";
        b.textContent = th.textContent;
        b.title = "Sort by " + th.textContent;
        b.addEventListener("click", function () { sortBy(table, i, b); });
        th.textContent = "";
        th.appendChild(b);
      });
    });
  }
  function init(root) { localTimes(root); sortable(root); }
  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:afterSettle", function (e) { init(e.target); });
})();
