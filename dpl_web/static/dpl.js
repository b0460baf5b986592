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
