// Live tail for /tail: follows /api/v1/tail (Server-Sent Events) and appends lines.
// A static file (no inline script), so a CSP without 'unsafe-inline' allows it.
(function () {
  "use strict";
  var panel = document.querySelector("section.tail[data-stream]");
  if (!panel || !window.EventSource) return;
  var streamUrl = panel.getAttribute("data-stream");
  var pauseBtn = document.querySelector(".tail-pause");
  var resumeBtn = document.querySelector(".tail-resume");
  var statusEl = document.querySelector(".tail-status");
  var lines = panel.querySelector(".lines");
  var MAX_ROWS = 2000;
  var source = null;
  var lastId = null;

  function status(text) { if (statusEl) statusEl.textContent = text; }

  // An id as one path segment (query/id_paths.py): "." and ".." (and dots then tildes) get a
  // tilde more, or the browser would resolve them away.
  function idSegment(id) {
    return encodeURIComponent(/^\.{1,2}~*$/.test(id) ? id + "~" : id);
  }

  function chunk() {
    var chunks = lines.querySelectorAll(".chunk");
    var last = chunks[chunks.length - 1];
    if (!last || last.children.length >= 250) {
      last = document.createElement("div");
      last.className = "chunk";
      last.setAttribute("role", "rowgroup");
      lines.appendChild(last);
    }
    return last;
  }

  function cell(tag, cls, text) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function chip(href, text) {
    var a = cell("a", "chip", text);
    a.href = href;
    return a;
  }

  function addLine(line) {
    var row = cell("div", "row lv-" + line.level);
    row.setAttribute("role", "row");
    row.id = "L" + line.ref;
    var ts = cell("span", "ts");
    var tsLink = cell("a", "", line.ts.slice(11, -1));
    tsLink.href = "/context?ref=" + encodeURIComponent(line.ref);
    tsLink.title = line.ts;
    ts.appendChild(tsLink);
    row.appendChild(ts);
    row.appendChild(cell("span", "lv", line.level));
    row.appendChild(cell("span", "", line.service));
    row.appendChild(cell("span", "", line.host));
    var msg = cell("span", "msg", line.message);
    if (line.build_id) { msg.appendChild(document.createTextNode(" ")); msg.appendChild(chip("/builds/" + idSegment(line.build_id), "build " + line.build_id)); }
    if (line.deploy_id) { msg.appendChild(document.createTextNode(" ")); msg.appendChild(chip("/deploys/" + idSegment(line.deploy_id), "deploy " + line.deploy_id)); }
    if (line.trace_id) { msg.appendChild(document.createTextNode(" ")); msg.appendChild(chip("/search?q=" + encodeURIComponent("trace_id:" + line.trace_id), "trace " + line.trace_id.slice(0, 12))); }
    row.appendChild(msg);
    var atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    chunk().appendChild(row);
    var rows = lines.querySelectorAll(".chunk .row");
    for (var i = 0; i < rows.length - MAX_ROWS; i++) rows[i].remove();
    if (atBottom) window.scrollTo(0, document.body.scrollHeight);
  }

  function start() {
    var url = streamUrl + (lastId ? "&last_event_id=" + encodeURIComponent(lastId) : "");
    source = new EventSource(url);
    source.onopen = function () { status("following"); };
    source.onerror = function () { status("reconnecting…"); };
    source.onmessage = function (e) {
      if (e.lastEventId) lastId = e.lastEventId;
      addLine(JSON.parse(e.data));
    };
    source.addEventListener("notice", function (e) { status(JSON.parse(e.data).message); });
    pauseBtn.hidden = false;
    resumeBtn.hidden = true;
  }

  function pause() {
    if (source) source.close();
    source = null;
    status("paused");
    pauseBtn.hidden = true;
    resumeBtn.hidden = false;
  }

  pauseBtn.addEventListener("click", pause);
  resumeBtn.addEventListener("click", start);
  start();
})();
