// The agent desk, live. The page works without this script: every action is a form that posts
// and comes back. With it, offers and state changes arrive as they happen (an EventSource on
// /desk/events), the screen pop is fetched the moment a call is offered, the forms are sent
// with fetch, and the frequent actions have keys. On every (re)connect the desk asks the server
// for its state (/desk/state), so an offer made while the stream was down is still shown.
(function () {
  "use strict";
  var root = document.getElementById("desk");
  if (!root || !window.fetch || !window.EventSource) return;

  var csrf = root.getAttribute("data-csrf");
  var words = JSON.parse(document.getElementById("desk-words").textContent);
  var state = JSON.parse(document.getElementById("desk-state").textContent);
  var popBox = document.getElementById("screen-pop");
  var placeholder = popBox.querySelector("[data-call-id]") ? null : popBox.innerHTML;
  var shown = popBox.querySelector("[data-call-id]");
  var popCall = shown ? shown.getAttribute("data-call-id") : "";
  var skew = 0; // the server's clock minus ours, in ms
  var lastId = null;
  var source = null;
  var refreshing = null;
  var again = false;
  var autoAnswered = {};
  var wrapAsked = null;

  function $(id) { return document.getElementById(id); }
  function two(n) { return (n < 10 ? "0" : "") + n; }
  function clock(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    return Math.floor(s / 60) + ":" + two(s % 60);
  }
  function now() { return Date.now() + skew; }
  function until(iso) { return Math.max(0, Math.ceil((Date.parse(iso) - now()) / 1000)); }
  function since(iso) { return Math.max(0, (now() - Date.parse(iso)) / 1000); }
  function visible(el) { return !!el && el.offsetParent !== null; }
  function setText(id, text) { var el = $(id); if (el && el.textContent !== text) el.textContent = text; }

  // The latest announcement wins: a slow machine must not let "Incoming call" overwrite the
  // caller's name that the screen pop announced after it.
  var announcing = 0;
  function announce(text) {
    var region = $("announce");
    window.clearTimeout(announcing);
    region.textContent = "";
    announcing = window.setTimeout(function () { region.textContent = text; }, 50);
  }

  function callerName(callId) {
    var shown = popBox.getAttribute("data-call") === callId;
    var name = shown ? popBox.querySelector("[data-testid=caller-name]") : null;
    return name ? name.textContent.trim() : "";
  }

  function showError(text) {
    var box = $("desk-error");
    box.textContent = text;
    box.hidden = !text;
  }

  function callOf(st) {
    if (st.offer) return st.offer.call_id;
    if (st.call) return st.call.call_id;
    if (st.wrap_up) return st.wrap_up.call_id;
    return "";
  }

  // -- the screen pop ---------------------------------------------------------------------
  function loadPop(callId) {
    if (!callId || callId === popCall) return;
    popCall = callId;
    fetch("/desk/calls/" + callId + "/pop", {
      headers: { Accept: "text/html" }, credentials: "same-origin"
    }).then(function (response) {
      if (!response.ok) throw new Error(String(response.status));
      return response.text();
    }).then(function (html) {
      if (popCall !== callId) return; // another call came in meanwhile
      popBox.innerHTML = html;
      popBox.setAttribute("data-call", callId);
      var name = popBox.querySelector("[data-testid=caller-name]");
      if (state.offer && state.offer.call_id === callId && name) {
        announce(words.offered_from + " " + name.textContent.trim());
      }
      document.dispatchEvent(new CustomEvent("desk:screen-pop", { detail: { callId: callId } }));
    }).catch(function () {
      if (popCall === callId) popCall = ""; // not ours (any more): the next state decides
    });
  }

  function clearPop() {
    if (!popCall) return;
    popCall = "";
    popBox.setAttribute("data-call", "");
    popBox.innerHTML = placeholder || "<p class=\"muted\">" + words.no_call + "</p>";
  }

  // -- the desk's state -------------------------------------------------------------------
  function apply(next) {
    var before = state;
    state = next;
    if (next.server_time) skew = Date.parse(next.server_time) - Date.now();
    var badge = $("agent-state");
    badge.textContent = words[next.status] || next.status;
    badge.className = "state-badge state-" + next.status;
    badge.setAttribute("data-status", next.status);
    setText("agent-reason", next.reason ? "· " + (words.reasons[next.reason] || next.reason) : "");
    $("auto-answer").checked = !!next.auto_answer;

    var callId = callOf(next);
    root.setAttribute("data-call-id", callId);
    document.querySelectorAll("form[data-call-action]").forEach(function (form) {
      form.action = "/desk/calls/" + callId + "/" + form.getAttribute("data-call-action");
    });
    $("offer-panel").hidden = !next.offer;
    $("call-panel").hidden = !next.call;
    $("wrap-panel").hidden = !next.wrap_up;
    $("idle-panel").hidden = !!callId;
    if (next.call) {
      $("hold-form").hidden = next.call.held;
      $("resume-form").hidden = !next.call.held;
      setText("call-state", next.call.held ? words.on_hold : words.talking);
      setText("call-third", next.call.conference_with ? "· " + words.three_way + " " + next.call.conference_with : "");
    }
    if (next.wrap_up && (!before.wrap_up || before.wrap_up.call_id !== next.wrap_up.call_id)) {
      $("wrap-notes").value = "";
    }
    var fresh = next.offer && (!before.offer || before.offer.offer_id !== next.offer.offer_id);
    if (fresh) {
      // The same call offered again (after a decline elsewhere) keeps its pop: name it at once.
      var known = callerName(next.offer.call_id);
      announce(known ? words.offered_from + " " + known : words.offer);
      if (document.activeElement === document.body) $("btn-accept").focus();
      if (next.auto_answer && !autoAnswered[next.offer.offer_id]) {
        autoAnswered[next.offer.offer_id] = true;
        send($("btn-accept").form);
      }
    }
    if (callId) loadPop(callId); else clearPop();
    tick();
  }

  function refresh() {
    if (refreshing) { again = true; return refreshing; }
    refreshing = fetch("/desk/state", {
      headers: { Accept: "application/json" }, credentials: "same-origin"
    }).then(function (response) {
      if (response.status === 401 || response.redirected) { window.location.reload(); return null; }
      return response.ok ? response.json() : null;
    }).then(function (next) {
      if (next) apply(next);
    }).catch(function () { /* the stream's reconnect asks again */ })
      .then(function () {
        refreshing = null;
        if (again) { again = false; refresh(); }
      });
    return refreshing;
  }

  // -- the stream -------------------------------------------------------------------------
  function connect() {
    var url = "/desk/events" + (lastId ? "?last_event_id=" + encodeURIComponent(lastId) : "");
    source = new EventSource(url);
    source.addEventListener("ready", function (e) {
      lastId = e.lastEventId || lastId;
      setText("desk-connection", "");
      root.setAttribute("data-live", "true"); // following the stream (tests and tools wait for it)
      refresh();
    });
    ["offer", "offer_withdrawn", "call_state", "status"].forEach(function (name) {
      source.addEventListener(name, function (e) {
        lastId = e.lastEventId || lastId;
        var data = JSON.parse(e.data);
        // The pop first: it is what the agent reads while deciding.
        if (name === "offer") loadPop(data.call_id);
        if (name === "call_state" && data.state === "transferred") announce(words.transferred);
        refresh();
      });
    });
    source.onerror = function () {
      root.removeAttribute("data-live");
      setText("desk-connection", words.lost);
      if (source.readyState === EventSource.CLOSED) { // the browser gave up: start again
        source.close();
        window.setTimeout(connect, 2000);
      }
    };
  }

  // -- actions ----------------------------------------------------------------------------
  function send(form) {
    var body = new URLSearchParams(new FormData(form));
    if (form.id === "auto-answer-form") body.set("auto_answer", $("auto-answer").checked ? "on" : "off");
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    return fetch(form.action, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { Accept: "application/json", "x-csrf-token": csrf }
    }).then(function (response) {
      return response.json().then(function (data) { return { ok: response.ok, data: data }; });
    }).then(function (answer) {
      if (answer.ok) {
        showError("");
        if (form.id === "transfer-form" || form.id === "conference-form") form.reset();
        apply(answer.data.state);
      } else {
        showError(answer.data.detail || "");
        refresh();
      }
    }).catch(function () {
      showError(words.lost);
    }).then(function () {
      buttons.forEach(function (b) { b.disabled = false; });
    });
  }

  root.addEventListener("submit", function (e) {
    var form = e.target;
    if (form.hasAttribute("data-plain")) return; // switching seats reloads the page
    e.preventDefault();
    send(form);
  });
  $("auto-answer").addEventListener("change", function () { send($("auto-answer-form")); });

  // -- keys -------------------------------------------------------------------------------
  function press(id) {
    var button = $(id);
    if (visible(button) && !button.disabled) { button.click(); return true; }
    return false;
  }
  function focus(id) {
    var field = $(id);
    if (visible(field)) { field.focus(); return true; }
    return false;
  }
  document.addEventListener("keydown", function (e) {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
    var target = e.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) {
      if (e.key === "Escape") target.blur();
      return; // typing: keys are letters, not actions
    }
    var done = false;
    switch (e.key) {
      case "a": done = press("btn-accept"); break;
      case "d": done = press("btn-decline"); break;
      case "h": done = press(state.call && state.call.held ? "btn-resume" : "btn-hold"); break;
      case "t": done = focus("transfer-to"); break;
      case "c": done = focus("conference-number"); break;
      case "x": done = press("btn-hang-up"); break;
      case "w": done = focus("wrap-code"); break;
      case "r": done = press("btn-ready"); break;
      case "n": done = press("btn-not-ready"); break;
      case "?":
        $("shortcuts").open = !$("shortcuts").open;
        done = true;
        break;
      default: return;
    }
    if (done) e.preventDefault();
  });

  // -- clocks -----------------------------------------------------------------------------
  function tick() {
    if (state.offer && state.offer.expires_at) setText("offer-countdown", String(until(state.offer.expires_at)));
    if (state.call && state.call.answered_at) setText("call-clock", clock(since(state.call.answered_at)));
    if (state.wrap_up && state.wrap_up.ends_at) {
      var left = until(state.wrap_up.ends_at);
      setText("wrap-countdown", String(left));
      // At zero the server's wrap-up timer makes the agent ready: ask once, a moment later.
      if (left === 0 && wrapAsked !== state.wrap_up.call_id) {
        wrapAsked = state.wrap_up.call_id;
        window.setTimeout(refresh, 1500);
      }
    }
  }
  window.setInterval(tick, 1000);

  apply(state);
  connect();
})();
