// The supervisor console, live. The page is complete without this script; with it, the figures
// are re-read from the floor API every 2 seconds (and on each floor event, when the page names
// an event stream in data-events-url) and written into the server-rendered rows. A queue or an
// agent that appears or goes away, or a new day, reloads the page, unless the supervisor is typing.
(function () {
  "use strict";
  var root = document.querySelector("[data-console]");
  if (!root || !window.fetch) return;
  var url = root.getAttribute("data-floor-url");
  var words = JSON.parse(document.getElementById("console-words").textContent);
  // Not ready reasons in the page's language, as the reason pickers show them.
  var reasons = {};
  root.querySelectorAll('select[name="reason"] option').forEach(function (option) {
    if (option.value) reasons[option.value] = option.textContent;
  });
  var EVERY_MS = 2000;
  var busy = false;
  var stopped = false;
  var source = null;

  function two(n) { return (n < 10 ? "0" : "") + n; }
  // Same formats as the template's macros: m:ss, h:mm:ss from an hour; percents half up.
  function clock(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    var head = s >= 3600 ? Math.floor(s / 3600) + ":" + two(Math.floor((s % 3600) / 60)) : String(Math.floor(s / 60));
    return head + ":" + two(s % 60);
  }
  function percent(rate) { return rate === null ? "—" : Math.floor(rate * 100 + 0.5) + "%"; }
  function average(seconds) { return seconds === null ? "—" : clock(Math.floor(seconds + 0.5)); }

  function put(row, figure, text, seconds) {
    var cell = row.querySelector('[data-figure="' + figure + '"]');
    if (!cell) return;
    if (cell.textContent !== text) cell.textContent = text;
    if (seconds !== undefined) cell.setAttribute("data-seconds", String(seconds));
  }

  function rows(selector, attribute) {
    var found = {};
    root.querySelectorAll(selector).forEach(function (el) {
      var key = el.getAttribute(attribute);
      (found[key] = found[key] || []).push(el);
    });
    return found;
  }

  // The same rows, as many of each (an HQ may have a "Pickup" queue in two branches).
  function sameKeys(shown, wanted) {
    var counts = {};
    wanted.forEach(function (key) { counts[key] = (counts[key] || 0) + 1; });
    var keys = Object.keys(shown);
    if (keys.length !== Object.keys(counts).length) return false;
    return keys.every(function (key) { return counts[key] === shown[key].length; });
  }

  function stateCell(cell, agent) {
    var badge = document.createElement("span");
    badge.className = "state state-" + agent.status;
    badge.textContent = words[agent.status] || agent.status;
    var parts = [badge];
    if (agent.reason) {
      var reason = document.createElement("span");
      reason.className = "muted";
      reason.textContent = "· " + (reasons[agent.reason] || agent.reason);
      parts.push(document.createTextNode(" "), reason);
    }
    if (agent.pending_status) {
      var pending = document.createElement("strong");
      pending.className = "pending";
      pending.textContent = "· " + words.after_call + ": " + (words[agent.pending_status] || agent.pending_status);
      parts.push(document.createTextNode(" "), pending);
    }
    var key = JSON.stringify([agent.status, agent.reason, agent.pending_status]);
    if (cell.getAttribute("data-shown") === key) return;
    cell.setAttribute("data-shown", key);
    cell.replaceChildren.apply(cell, parts);
  }

  function currentCall(call) {
    if (!call) return "—";
    var text = call.from_number + (call.queue ? " · " + call.queue : "") + " · ";
    return text + (call.status === "offered" ? words.ringing + " " : "") + clock(call.seconds);
  }

  function chart(queues) {
    var svg = root.querySelector("[data-chart]");
    if (!svg) return;
    var peak = 1;
    queues.forEach(function (q) { peak = Math.max(peak, q.answered, q.abandoned); });
    queues.forEach(function (q) {
      svg.querySelectorAll("[data-chart-queue]").forEach(function (group) {
        if (group.getAttribute("data-chart-queue") !== q.name) return;
        ["answered", "abandoned"].forEach(function (kind) {
          var width = q[kind] ? q[kind] / peak * 380 : 0;
          var bar = group.querySelector('[data-bar="' + kind + '"]');
          var value = group.querySelector('[data-bar-value="' + kind + '"]');
          if (bar) bar.setAttribute("width", width.toFixed(1));
          if (value) { value.setAttribute("x", (176 + width).toFixed(1)); value.textContent = String(q[kind]); }
        });
      });
    });
  }

  function show(floor) {
    var queueRows = rows("tr[data-queue]", "data-queue");
    var agentRows = rows("tr[data-agent]", "data-agent");
    var changed = floor.day !== root.getAttribute("data-day") ||
      !sameKeys(queueRows, floor.queues.map(function (q) { return q.name; })) ||
      !sameKeys(agentRows, floor.agents.map(function (a) { return a.email; }));
    if (changed) {
      var typing = document.activeElement && /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName);
      if (!typing) { window.location.reload(); return; }
    }
    var seen = {};
    floor.queues.forEach(function (q) {
      var nth = seen["q" + q.name] = (seen["q" + q.name] || 0) + 1;
      var row = (queueRows[q.name] || [])[nth - 1];
      if (!row) return;
      put(row, "waiting", String(q.waiting));
      put(row, "ringing", String(q.ringing));
      put(row, "longest_wait", clock(q.longest_wait_seconds), q.longest_wait_seconds);
      put(row, "offered", String(q.offered));
      put(row, "answered", String(q.answered));
      put(row, "abandoned", String(q.abandoned));
      put(row, "abandonment_rate", percent(q.abandonment_rate));
      put(row, "answer_rate", percent(q.answer_rate));
      put(row, "answered_15s", percent(q.service_level));
      put(row, "answered_in_time", String(q.answered_in_time));
      put(row, "average_wait", average(q.average_wait_seconds));
      put(row, "average_talk", average(q.average_talk_seconds));
    });
    floor.agents.forEach(function (a) {
      var nth = seen["a" + a.email] = (seen["a" + a.email] || 0) + 1;
      var row = (agentRows[a.email] || [])[nth - 1];
      if (!row) return;
      row.setAttribute("data-status", a.status);
      var state = row.querySelector('[data-figure="state"]');
      if (state) stateCell(state, a);
      put(row, "time_in_state", clock(a.time_in_state_seconds), a.time_in_state_seconds);
      put(row, "current_call", currentCall(a.current_call));
      put(row, "handled_today", String(a.calls_handled_today));
      row.querySelectorAll("[data-when]").forEach(function (button) {
        button.disabled = a.status !== button.getAttribute("data-when");
      });
      row.querySelectorAll("[data-unless]").forEach(function (button) {
        button.disabled = a.status === button.getAttribute("data-unless");
      });
    });
    chart(floor.queues);
    var updated = root.querySelector("[data-console-updated]");
    if (updated) updated.textContent = floor.local_time;
  }

  function refresh() {
    if (busy || stopped || document.hidden) return;
    busy = true;
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 401 || response.status === 403) { stop(); return null; }
        return response.ok ? response.json() : null;
      })
      .then(function (floor) { if (floor) show(floor); })
      .catch(function () { /* the next tick tries again */ })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  var timer = window.setInterval(refresh, EVERY_MS);
  function stop() {
    stopped = true;
    window.clearInterval(timer);
    if (source) source.close();
  }
  // Every response saves the whole session: a read of this page still under way while a form's
  // answer sets (or the next page shows) a message could bring back or drop that message.
  // So once a form is sent, or the page is left, this page asks nothing more.
  document.addEventListener("submit", stop);
  window.addEventListener("pagehide", stop);
  document.addEventListener("visibilitychange", refresh);
  // A burst of floor events (a surge) costs one fetch at a time, and one more after it.
  var again = false;
  function soon() {
    if (busy) { again = true; return; }
    refresh();
  }
  var events = root.getAttribute("data-events-url");
  if (events && window.EventSource) {
    source = new EventSource(events);
    ["agent", "call"].forEach(function (name) { source.addEventListener(name, soon); });
  }
})();
