// durable dashboard: keeps the server-rendered pages live. No framework, no build step.
// One EventSource on /api/v1/changes (the server's single LISTEN connection fans out to it)
// says when to look again; a 5 s timer covers a dropped stream.
"use strict";

const api = (path, options) =>
  fetch("/api/v1" + path, Object.assign({ credentials: "same-origin" }, options)).then(
    async (r) => {
      const body = await r.json();
      if (!r.ok) throw new Error(body.error || r.statusText);
      return body;
    }
  );

const esc = (s) =>
  String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

const stateBadge = (s) => `<span class="state ${esc(s)}">${esc(s)}</span>`;

function onChanges(callback) {
  let timer = null;
  const soon = () => {
    if (timer === null) timer = setTimeout(() => { timer = null; callback(); }, 150);
  };
  const live = document.getElementById("live");
  const source = new EventSource("/api/v1/changes");
  source.addEventListener("open", () => live && live.classList.add("on"));
  source.addEventListener("error", () => live && live.classList.remove("on"));
  source.addEventListener("change", (e) => soon(JSON.parse(e.data).hint));
  setInterval(callback, 5000);
}

// -- task list ------------------------------------------------------------------------------

function taskListPage() {
  const form = document.getElementById("filters");
  const rows = document.getElementById("task-rows");
  const query = () => {
    const params = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) params.set(k, v);
    return params;
  };
  const refresh = async () => {
    const params = query();
    params.set("limit", "100");
    const { tasks } = await api("/tasks?" + params);
    rows.innerHTML = tasks.length
      ? tasks.map((t) => `<tr data-id="${t.id}"><td><a href="/tasks/${t.id}">${t.id}</a></td>
          <td>${esc(t.name)}</td><td><code>${esc(t.workflow)}</code></td><td>${stateBadge(t.state)}</td>
          <td>${esc(t.queue)}</td><td>${t.attempts}</td><td>${esc(t.created_at.slice(0, 19).replace("T", " "))}</td></tr>`).join("")
      : '<tr class="empty"><td colspan="7">No tasks match.</td></tr>';
  };
  const apply = (event) => {
    if (event) event.preventDefault();
    history.replaceState(null, "", "?" + query());
    refresh();
  };
  form.addEventListener("submit", apply);
  form.addEventListener("change", apply);
  form.addEventListener("input", () => { clearTimeout(form._t); form._t = setTimeout(apply, 300); });
  onChanges(refresh);
}

// -- task page --------------------------------------------------------------------------------

const FAILED = new Set(["failed", "error", "timeout", "rejected"]);

function eventMarks(e) {
  const p = e.payload && typeof e.payload === "object" ? e.payload : {};
  const status = p.status || p.state;
  return {
    failed: FAILED.has(status) || (p.error && status !== "ok") || e.kind === "cancel",
    retry: status === "retrying" || p.retried || e.kind === "retry" || (p.attempts || 1) > 1,
    waiting: status === "waiting",
    child: e.kind === "child" ? (p.id ?? p.task_id ?? p.child_id) : e.kind === "child_result" ? e.label : null,
  };
}

function drawTimeline(task, events) {
  const box = document.getElementById("timeline");
  if (!events.length) { box.innerHTML = '<p class="note">No events recorded yet.</p>'; return; }
  const t0 = Date.parse(task.started_at || task.created_at);
  const times = events.map((e) => Date.parse(e.at));
  const end = Math.max(...times, task.finished_at ? Date.parse(task.finished_at) : 0, t0 + 1);
  const span = Math.max(end - t0, 1);
  let previous = t0;
  box.innerHTML = `<div class="axis"><span>0 ms</span><span>${fmt(span)}</span></div>` +
    events.map((e, i) => {
      const at = times[i];
      const start = Math.min(previous, at);
      previous = Math.max(previous, at);
      const m = eventMarks(e);
      const left = ((start - t0) / span) * 100;
      const width = Math.max(((at - start) / span) * 100, 0.6);
      const cls = ["bar", e.kind, m.failed ? "failed" : "", m.retry ? "retried" : "", m.waiting ? "waiting" : ""].join(" ");
      const label = m.child != null ? `<a href="/tasks/${esc(m.child)}">${esc(e.label)} → task ${esc(m.child)}</a>` : esc(e.label);
      const badges = (m.failed ? ' <span class="badge failed">failed</span>' : "") + (m.retry ? ' <span class="badge retried">retry</span>' : "");
      return `<div class="event" data-seq="${e.seq}"><span class="seq">${e.seq}</span><span class="kind">${esc(e.kind)}</span>
        <span class="label">${label}${badges}</span>
        <span class="track"><span class="${cls}" style="left:${left}%;width:${width}%"></span></span>
        <span class="dur">${fmt(at - start)}</span>
        <details><summary>payload</summary><pre>${esc(JSON.stringify(e.payload, null, 2))}</pre></details></div>`;
    }).join("");
}

function fmt(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : ms < 60000 ? `${(ms / 1000).toFixed(2)} s` : `${(ms / 60000).toFixed(1)} min`;
}

function followLog(taskId) {
  const log = document.getElementById("log");
  const source = new EventSource(`/api/v1/tasks/${taskId}/logs?follow=1`);
  source.addEventListener("line", (e) => {
    const { line_no, line } = JSON.parse(e.data);
    if (log.querySelector(`[data-line="${line_no}"]`)) return;
    const div = document.createElement("div");
    div.dataset.line = line_no;
    div.textContent = line;
    log.appendChild(div);
  });
  source.addEventListener("end", () => source.close());
}

function taskPage(taskId) {
  const refresh = async () => {
    const [task, { events }] = await Promise.all([api(`/tasks/${taskId}`), api(`/tasks/${taskId}/events`)]);
    document.getElementById("task-state").innerHTML = stateBadge(task.state);
    document.getElementById("task-attempts").textContent = task.attempts;
    document.getElementById("task-error").textContent = task.error && task.state === "failed"
      ? `${task.error.type}: ${task.error.message}` : "";
    document.getElementById("cancel").disabled = ["complete", "failed", "cancelled"].includes(task.state);
    document.getElementById("retry").disabled = !["failed", "cancelled"].includes(task.state);
    document.getElementById("children").innerHTML = task.children.length
      ? task.children.map((c) => `<a href="/tasks/${c.id}">task ${c.id} ${esc(c.name)}</a> ${stateBadge(c.state)}`).join("<br>")
      : "none";
    const waiting = events.filter((e) => e.kind === "promise" && eventMarks(e).waiting).pop();
    const pid = document.querySelector("#promise [name=promise]");
    if (waiting && !pid.value) pid.value = waiting.label;
    drawTimeline(task, events);
  };
  const say = (text) => { document.getElementById("action-result").textContent = text; };
  const act = (path, body) => api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}) })
    .then(() => { say("done"); refresh(); }, (err) => say(err.message));
  document.getElementById("cancel").addEventListener("click", () => act(`/tasks/${taskId}/cancel`));
  document.getElementById("retry").addEventListener("click", () => act(`/tasks/${taskId}/retry`).then(() => followLog(taskId)));
  document.getElementById("promise").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const id = encodeURIComponent(form.get("promise"));
    const action = event.submitter ? event.submitter.value : "resolve";
    if (action === "reject") return act(`/promises/${id}/reject`, { message: form.get("value") || "rejected" });
    let value;
    try { value = JSON.parse(form.get("value") || "null"); } catch (err) { return say("the value is not JSON"); }
    return act(`/promises/${id}/resolve`, { value });
  });
  followLog(taskId);
  refresh();
  onChanges(refresh);
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "tasks") taskListPage();
  if (page === "task") taskPage(document.body.dataset.task);
});
