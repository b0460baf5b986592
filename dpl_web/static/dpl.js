// DPL's own script: copy buttons, and a job page's live log. No library: EventSource is native.
"use strict";

// Copy buttons: <button data-copy="text">.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  navigator.clipboard.writeText(button.dataset.copy).then(() => {
    const label = button.textContent;
    button.textContent = "copied";
    setTimeout(() => { button.textContent = label; }, 1200);
  });
});

// The live log: <pre class="log" data-events="URL" data-after="SEQ">. It follows new lines only
// while the reader is at the bottom; scrolled up, it leaves the view alone and says so.
function liveLog(log) {
  const status = document.getElementById("job-status");
  const follow = document.getElementById("log-follow");
  const steps = document.querySelectorAll("ol.steps li");
  let atBottom = true;
  log.addEventListener("scroll", () => {
    atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 8;
    if (follow) follow.textContent = atBottom ? "following" : "paused: scroll to the bottom to follow";
  });

  function line(text, kind) {
    const span = document.createElement("span");
    if (kind) span.className = kind;
    span.textContent = text + "\n";
    log.appendChild(span);
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  function markStep(name, state) {
    let reached = false;
    steps.forEach((item) => {
      if (item.dataset.step === name) { item.className = state; reached = true; }
      else if (!reached && state !== "to-do") item.className = "done";
    });
  }

  const source = new EventSource(log.dataset.events + "?after=" + (log.dataset.after || "0"));
  const show = {
    queued: (e) => line(`queued by ${e.who}`, "note"),
    started: (e) => { line("started", "note"); if (steps.length) markStep(steps[0].dataset.step, "running"); },
    play: (e) => line(`PLAY ${e.name}`, "task"),
    task: (e) => line(`==> ${e.task}`, "task"),
    note: (e) => line(`    ${e.msg}`, "note"),
    step: (e) => { line(`    step: ${e.step} ${e.state || ""}`, "note"); markStep(e.step, e.state || "running"); },
    output: (e) => line(`    ${e.line}`),
    result: (e) => {
      const item = typeof e.item === "string" ? ` (${e.item})` : "";
      if (e.status === "failed" || e.status === "unreachable") {
        line(`    FAILED ${e.host}${item}: ${e.msg || "failed"}`, "failed");
        if (e.failed_step) markStep(e.failed_step, "failed");
      } else {
        const facts = ["commit", "release", "ipv4"].filter((k) => e[k]).map((k) => `${k} ${String(e[k]).slice(0, 12)}`);
        line(`    ${e.changed ? "changed" : "ok"} ${e.host}${item}${facts.length ? ": " + facts.join(", ") : ""}`,
             e.changed ? "changed" : "ok");
      }
    },
    finished: (e) => {
      line(`finished: ${e.status}${e.summary ? " — " + e.summary : ""}`, e.status === "successful" ? "ok" : "failed");
      if (status) { status.textContent = e.status; status.className = "badge " + e.status; }
      if (e.status === "successful") steps.forEach((item) => { item.className = "done"; });
    },
  };
  for (const [type, render] of Object.entries(show)) {
    source.addEventListener(type, (message) => {
      log.dataset.after = message.lastEventId;
      render(JSON.parse(message.data));
    });
  }
  source.addEventListener("end", () => {
    source.close();
    // A job that ended while the page was open: its final state (duration, what changed, the
    // failure's lines) is drawn by the server, so load the page again, once.
    if (log.dataset.done !== "yes") setTimeout(() => window.location.reload(), 600);
  });
}

document.querySelectorAll("pre.log[data-events]").forEach(liveLog);

// Charts: <section class="charts" data-target="container/web1" data-series="URL"> holding
// <figure data-field="cpu" data-unit="%">; range buttons <button data-range="day">. Plain
// SVG drawn here: no library.
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  return element;
}

function formatValue(value, unit) {
  if (unit === "B" || unit === "B/s") {
    const units = ["B", "kB", "MB", "GB", "TB"];
    let index = 0;
    while (Math.abs(value) >= 1000 && index < units.length - 1) { value /= 1000; index += 1; }
    return `${value.toFixed(index ? 1 : 0)} ${units[index]}${unit === "B/s" ? "/s" : ""}`;
  }
  return `${value.toFixed(value < 10 ? 2 : 0)}${unit ? " " + unit : ""}`;
}

function drawChart(figure, points) {
  const field = figure.dataset.field;
  const unit = figure.dataset.unit || "";
  const values = points.filter((p) => typeof p[field] === "number").map((p) => [p.at, p[field]]);
  figure.querySelectorAll("svg, .empty").forEach((old) => old.remove());
  const caption = figure.querySelector("figcaption");
  if (values.length < 2) {
    const empty = document.createElement("p");
    empty.className = "empty muted";
    empty.textContent = "no samples yet";
    figure.appendChild(empty);
    caption.dataset.value = "";
    return;
  }
  const width = 320, height = 90;
  const first = values[0][0], last = values[values.length - 1][0];
  const top = Math.max(...values.map((v) => v[1]), 1e-9);
  const x = (t) => ((t - first) / Math.max(last - first, 1)) * width;
  const y = (v) => height - (v / top) * (height - 4) - 2;
  const chart = svg("svg", {viewBox: `0 0 ${width} ${height}`, role: "img",
                             "aria-label": `${caption.textContent}: ${values.length} points`});
  chart.appendChild(svg("polyline", {points: values.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" "),
                                     fill: "none", stroke: "#0969da", "stroke-width": "1.5"}));
  figure.insertBefore(chart, caption);
  caption.dataset.value = `now ${formatValue(values[values.length - 1][1], unit)} · max ${formatValue(top, unit)}`;
  const now = caption.querySelector(".now");
  if (now) now.textContent = caption.dataset.value;
}

function charts(section) {
  function load(range) {
    section.querySelectorAll("button[data-range]").forEach((b) => { b.disabled = b.dataset.range === range; });
    fetch(`${section.dataset.series}?target=${encodeURIComponent(section.dataset.target)}&range=${range}`,
          {credentials: "same-origin"})
      .then((answer) => answer.json())
      .then((data) => section.querySelectorAll("figure[data-field]").forEach((f) => drawChart(f, data.points)));
  }
  section.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-range]");
    if (button) load(button.dataset.range);
  });
  load("day");
}

document.querySelectorAll("section.charts[data-series]").forEach(charts);

// An app's journal: <pre class="log" data-poll="URL" data-cursor="C">, asked every second for
// what came after the last entry; follows only while scrolled to the bottom, like the job log.
function polledLog(log) {
  const follow = document.getElementById("log-follow");
  let atBottom = true;
  log.scrollTop = log.scrollHeight;
  log.addEventListener("scroll", () => {
    atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 8;
    if (follow) follow.textContent = atBottom ? "following" : "paused: scroll to the bottom to follow";
  });
  function poll() {
    if (!log.dataset.cursor) { setTimeout(poll, 1000); return; }
    fetch(`${log.dataset.poll}?after=${encodeURIComponent(log.dataset.cursor)}`, {credentials: "same-origin"})
      .then((answer) => answer.json())
      .then((data) => {
        for (const entry of data.entries || []) {
          log.appendChild(document.createTextNode(`${entry.at} ${entry.text}\n`));
        }
        if (data.cursor) log.dataset.cursor = data.cursor;
        if (atBottom) log.scrollTop = log.scrollHeight;
      })
      .finally(() => setTimeout(poll, 1000));
  }
  setTimeout(poll, 1000);
}

document.querySelectorAll("pre.log[data-poll]").forEach(polledLog);
