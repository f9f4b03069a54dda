// The status page: polls /status.json every second and redraws the grid.
// Everything is built with textContent (no HTML from the server is ever parsed).
"use strict";
(function () {
  const grid = document.getElementById("grid");
  const summary = document.getElementById("summary");
  const process = document.getElementById("process");
  const previous = new Map(); // shard id -> [time, dispatches], for events per second

  function seconds(value) {
    if (value === null || value === undefined) return "-";
    if (value < 120) return value.toFixed(1) + " s";
    if (value < 7200) return (value / 60).toFixed(1) + " min";
    return (value / 3600).toFixed(1) + " h";
  }

  function cell(shard, now) {
    const box = document.createElement("section");
    box.className = "shard " + shard.state;
    box.dataset.shard = String(shard.id);
    box.dataset.state = shard.state;
    const title = document.createElement("h2");
    title.textContent = "Shard " + shard.id + " \u00b7 " + shard.state;
    box.appendChild(title);
    let rate = "-";
    const last = previous.get(shard.id);
    if (last && now > last[0]) rate = ((shard.dispatches - last[1]) / (now - last[0])).toFixed(1);
    previous.set(shard.id, [now, shard.dispatches]);
    const rows = [
      ["latency", shard.latency === null ? "-" : (shard.latency * 1000).toFixed(0) + " ms"],
      ["events/s", rate],
      ["in state", seconds(shard.state_age)],
      ["last close", shard.last_close === null ? "-" : shard.last_close],
    ];
    const list = document.createElement("dl");
    for (const [name, value] of rows) {
      const dt = document.createElement("dt");
      dt.textContent = name;
      const dd = document.createElement("dd");
      dd.textContent = value;
      list.append(dt, dd);
    }
    box.appendChild(list);
    return box;
  }

  const fleetSection = document.getElementById("fleet-section");
  const fleetGrid = document.getElementById("fleet");
  const fleetSummary = document.getElementById("fleet-summary");
  const processRows = document.querySelector("#processes tbody");

  function fleetCell(shard, self) {
    const box = document.createElement("div");
    const mine = shard.owner !== null && shard.owner === self;
    box.className = "fleet-cell " + shard.state + (mine ? " mine" : "");
    box.dataset.shard = String(shard.id);
    box.dataset.state = shard.state;
    box.dataset.owner = shard.owner === null ? "" : shard.owner;
    const title = document.createElement("b");
    title.textContent = shard.id + " \u00b7 " + shard.state;
    const owner = document.createElement("span");
    owner.textContent = shard.owner === null ? "nobody" : shard.owner;
    box.append(title, owner);
    return box;
  }

  function processRow(record) {
    const row = document.createElement("tr");
    const values = [
      record.owner, record.host || "-", record.pid === null ? "-" : String(record.pid),
      record.request || "-", record.shards.join(", ") || "-", seconds(record.seen_ago) + " ago",
    ];
    for (const value of values) {
      const td = document.createElement("td");
      td.textContent = value;
      row.appendChild(td);
    }
    return row;
  }

  async function refreshFleet() {
    try {
      const response = await fetch("/fleet.json", { cache: "no-store" });
      const doc = await response.json();
      if (doc.error) throw new Error(doc.error);
      const held = doc.shards.filter((s) => s.owner !== null).length;
      fleetSummary.textContent = doc.processes.length + " processes, " + held + " of " +
        doc.shards.length + " shards held";
      fleetGrid.replaceChildren(...doc.shards.map((s) => fleetCell(s, doc.self)));
      processRows.replaceChildren(...doc.processes.map(processRow));
    } catch (error) {
      fleetSummary.textContent = "the fleet could not be read (" + error.message + ")";
      for (const box of fleetGrid.children) box.classList.add("stale");
    }
  }

  async function refresh() {
    try {
      const response = await fetch("/status.json", { cache: "no-store" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const doc = await response.json();
      process.textContent = doc.process ? "(" + doc.process + ")" : "";
      const ready = doc.shards.filter((s) => s.state === "ready").length;
      summary.textContent = ready + " of " + doc.shards.length + " shards ready";
      grid.replaceChildren(...doc.shards.map((s) => cell(s, doc.now)));
      fleetSection.hidden = !doc.fleet;
      if (doc.fleet) await refreshFleet();
    } catch (error) {
      summary.textContent = "the status server does not answer (" + error.message + ")";
      for (const box of grid.children) box.classList.add("stale");
    }
  }

  refresh();
  setInterval(refresh, 1000);
})();
