// lossboard: progressive enhancement only; every table is complete without this script.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function numeric(cell) {
    const raw = cell ? cell.dataset.value : undefined;
    return raw === undefined || raw === "" ? NaN : parseFloat(raw);
  }

  function sortTable(table, column, header) {
    const isNumber = header.dataset.sort === "num";
    const first = isNumber ? "descending" : "ascending";
    const direction = header.getAttribute("aria-sort") === first
      ? (first === "ascending" ? "descending" : "ascending") : first;
    for (const th of table.tHead.rows[0].cells) th.removeAttribute("aria-sort");
    header.setAttribute("aria-sort", direction);
    const sign = direction === "ascending" ? 1 : -1;
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    rows.sort(function (a, b) {
      if (isNumber) {
        const x = numeric(a.cells[column]);
        const y = numeric(b.cells[column]);
        if (isNaN(x) || isNaN(y)) return isNaN(x) - isNaN(y);
        return sign * (x - y);
      }
      const s = a.cells[column].textContent.trim().toLowerCase();
      const t = b.cells[column].textContent.trim().toLowerCase();
      return sign * s.localeCompare(t);
    });
    for (const row of rows) body.appendChild(row);
  }

  function showMetric(value) {
    for (const wrap of document.querySelectorAll("[data-metrics]")) {
      wrap.hidden = !JSON.parse(wrap.dataset.metrics).includes(value);
    }
    for (const board of document.querySelectorAll(".board")) {
      const note = board.querySelector(".no-metric");
      if (note) note.hidden = board.querySelector("[data-metrics]:not([hidden])") !== null;
    }
  }

  function filterRows(query, count) {
    const q = query.trim().toLowerCase();
    const all = new Set();
    const shown = new Set();
    for (const row of document.querySelectorAll("tr[data-label]")) {
      const label = row.dataset.label;
      row.hidden = q !== "" && !label.toLowerCase().includes(q);
      all.add(label);
      if (!row.hidden) shown.add(label);
    }
    if (count) count.textContent = q === "" ? "" : shown.size + " of " + all.size + " shown";
  }

  document.addEventListener("DOMContentLoaded", function () {
    for (const form of document.querySelectorAll("form.controls")) form.hidden = false;
    for (const table of document.querySelectorAll("table.sortable")) {
      Array.from(table.tHead.rows[0].cells).forEach(function (header, column) {
        const button = header.querySelector("button");
        if (button) button.addEventListener("click", function () { sortTable(table, column, header); });
      });
    }
    const metric = document.getElementById("metric");
    if (metric) {
      metric.addEventListener("change", function () { showMetric(metric.value); });
      showMetric(metric.value);
    }
    const filter = document.getElementById("filter");
    if (filter) {
      const count = document.getElementById("filter-count");
      filter.addEventListener("input", function () { filterRows(filter.value, count); });
      filterRows(filter.value, count);
    }
  });
})();
