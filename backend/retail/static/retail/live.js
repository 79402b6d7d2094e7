/* The live dashboard: draws the charts as SVG from the page's JSON (#live-data), then keeps
   them, their tables, the firing alerts and the errors table current from the server-sent
   events of /metrics/stream/ (deltas: points replaced by time, errors added by id). When
   the stream is refused (the worker's cap) or unsupported it polls /metrics/live/, and
   tries the stream again later. Hand-written, no library, nothing from another origin (the CSP). */
(function () {
  "use strict";
  var data = document.getElementById("live-data");
  var section = document.getElementById("live");
  if (!data || !section) { return; }
  var doc = JSON.parse(data.textContent);
  var SVG = "http://www.w3.org/2000/svg";
  var W = 720, LEFT = 64, RIGHT = 10, TOP = 12, BOTTOM = 30;
  var POLL_MS = 5000, STREAM_RETRY_MS = 30000, ERRORS_SHOWN = 50;
  // Each chart's kind and series, as the server defined them (views.LIVE_CHARTS).
  var CHARTS = {};
  Array.prototype.forEach.call(section.querySelectorAll("svg[data-series]"), function (svg) {
    CHARTS[svg.getAttribute("data-chart")] = {
      kind: svg.getAttribute("data-kind"),
      series: svg.getAttribute("data-series").split(" ")
    };
  });
  var status = document.getElementById("live-status");
  var requestUrl = section.getAttribute("data-request-url");
  var source = null, pollTimer = null, retryTimer = null;

  function ms(text) { return Date.parse(text); }
  function widthMs() { return doc.resolution === "minute" ? 60000 : 3600000; }
  function startMs() { return ms(doc.end) - doc.range_seconds * 1000; }
  function pointTime(t) {
    return doc.resolution === "minute" ? t.slice(11, 16) : t.slice(5, 10) + " " + t.slice(11, 13) + ":00";
  }
  function axisTime(moment) {
    var iso = new Date(moment).toISOString();
    return doc.range_seconds <= 86400 ? iso.slice(11, 16) : iso.slice(5, 10) + " " + iso.slice(11, 16);
  }
  function el(name, attrs, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  function cell(row, text, className) {
    var td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "–" : String(text);
    if (className) { td.className = className; }
    row.appendChild(td);
    return td;
  }
  function niceMax(value) {
    if (!(value > 0)) { return 1; }
    var step = Math.pow(10, Math.floor(Math.log10(value)));
    var ratios = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < ratios.length; i++) {
      if (ratios[i] * step >= value) { return ratios[i] * step; }
    }
    return 10 * step;
  }
  function short(value) {
    if (value >= 10000) { return Math.round(value / 1000) + "k"; }
    if (value >= 1000) { return (value / 1000).toFixed(1) + "k"; }
    return String(Math.round(value * 10) / 10);
  }

  function frame(svg, height, top) {
    var start = startMs(), end = ms(doc.end), plot = W - LEFT - RIGHT;
    var x = function (moment) {
      return LEFT + Math.max(0, Math.min(1, (moment - start) / (end - start))) * plot;
    };
    [start, (start + end) / 2, end].forEach(function (moment, i) {
      var anchor = ["start", "middle", "end"][i];
      svg.appendChild(el("text", { x: x(moment), y: height - 6, "text-anchor": anchor }, axisTime(moment)));
    });
    svg.appendChild(el("line", { x1: LEFT, x2: W - RIGHT, y1: height - BOTTOM, y2: height - BOTTOM, "class": "grid" }));
    if (top !== undefined) {
      svg.appendChild(el("line", { x1: LEFT, x2: W - RIGHT, y1: TOP, y2: TOP, "class": "grid" }));
    }
    return x;
  }

  function marks(svg, id, x, height) {
    (doc.anomalies || []).forEach(function (anomaly) {
      if (anomaly.chart !== id) { return; }
      var from = x(ms(anomaly.hour)), to = x(ms(anomaly.hour) + 3600000);
      var rect = el("rect", { x: from, y: TOP, width: Math.max(2, to - from), height: height - TOP - BOTTOM, "class": "anomaly" });
      rect.appendChild(el("title", {}, "anomaly: " + anomaly.series + " " + anomaly.observed + " (expected " + anomaly.low + "–" + anomaly.high + ")"));
      svg.appendChild(rect);
    });
    (doc.alerts_firing || []).forEach(function (alert) {
      if (alert.chart !== id) { return; }
      var at = x(ms(alert.since));
      var line = el("line", { x1: at, x2: at, y1: TOP, y2: height - BOTTOM, "class": "mark" });
      line.appendChild(el("title", {}, "firing: " + alert.rule + " since " + alert.since.slice(0, 16)));
      svg.appendChild(line);
    });
  }

  function drawSeries(svg, id) {
    var chart = CHARTS[id], height = 200, base = height - BOTTOM;
    var peak = 0;
    doc.points.forEach(function (p) {
      chart.series.forEach(function (key) { if (p[key] > peak) { peak = p[key]; } });
    });
    var top = niceMax(peak);
    var y = function (value) { return base - (value / top) * (base - TOP); };
    var x = frame(svg, height, true);
    svg.appendChild(el("text", { x: LEFT - 6, y: TOP + 6, "text-anchor": "end" }, short(top)));
    svg.appendChild(el("text", { x: LEFT - 6, y: base, "text-anchor": "end" }, "0"));
    marks(svg, id, x, height);
    var slot = Math.max(1, x(startMs() + widthMs()) - x(startMs()));
    chart.series.forEach(function (key, index) {
      if (chart.kind === "bars") {
        doc.points.forEach(function (p) {
          if (!(p[key] > 0)) { return; }
          var left = x(ms(p.t));
          var rect = el("rect", { x: left, y: y(p[key]), width: Math.max(1, Math.min(slot * 0.8, W - RIGHT - left)), height: base - y(p[key]), "class": "s" + index });
          rect.appendChild(el("title", {}, pointTime(p.t) + ": " + p[key] + " " + key));
          svg.appendChild(rect);
        });
        return;
      }
      var run = [];
      var flush = function () {
        if (run.length === 1) {
          svg.appendChild(el("circle", { cx: run[0][0], cy: run[0][1], r: 4, "class": "s" + index }));
        } else if (run.length > 1) {
          svg.appendChild(el("polyline", { points: run.map(function (xy) { return xy.join(","); }).join(" "), "class": "s" + index }));
        }
        run = [];
      };
      doc.points.forEach(function (p) {
        if (p[key] === null || p[key] === undefined) { flush(); return; }
        // The middle of the point's slot; the partial last minute stops at the edge.
        run.push([Math.min(x(ms(p.t)) + slot / 2, W - RIGHT).toFixed(1), y(p[key]).toFixed(1)]);
      });
      flush();
    });
  }

  function drawBreaker(svg) {
    var height = 70;
    var x = frame(svg, height);
    doc.breaker.forEach(function (band) {
      var from = x(ms(band.start)), to = x(ms(band.end));
      if (to <= from) { return; }
      var rect = el("rect", { x: from, y: TOP, width: to - from, height: height - TOP - BOTTOM, "class": band.state });
      rect.appendChild(el("title", {}, band.state + " from " + band.start.slice(11, 19) + " to " + band.end.slice(11, 19)));
      svg.appendChild(rect);
    });
    marks(svg, "breaker", x, height);
  }

  function draw() {
    Array.prototype.forEach.call(section.querySelectorAll("svg[data-chart]"), function (svg) {
      while (svg.firstChild) { svg.removeChild(svg.firstChild); }
      var id = svg.getAttribute("data-chart");
      if (id === "breaker") { drawBreaker(svg); } else { drawSeries(svg, id); }
    });
  }

  function fillTables() {
    Object.keys(CHARTS).forEach(function (id) {
      var body = section.querySelector('table[data-table="' + id + '"] tbody');
      if (!body) { return; }
      var rows = document.createDocumentFragment();
      doc.points.slice().reverse().forEach(function (p) {
        var row = document.createElement("tr");
        cell(row, pointTime(p.t), "time");
        CHARTS[id].series.forEach(function (key) { cell(row, p[key], "num"); });
        rows.appendChild(row);
      });
      body.replaceChildren(rows);
    });
    var bands = section.querySelector('table[data-table="breaker"] tbody');
    if (bands) {
      var rows = document.createDocumentFragment();
      doc.breaker.forEach(function (band) {
        var row = document.createElement("tr");
        cell(row, band.start.slice(5, 19), "time");
        cell(row, band.end.slice(5, 19), "time");
        cell(row, band.state, band.state);
        rows.appendChild(row);
      });
      bands.replaceChildren(rows);
    }
  }

  function fillErrors(fresh) {
    var body = document.getElementById("live-errors");
    if (!body) { return; }
    var rows = document.createDocumentFragment();
    doc.errors.forEach(function (error) {
      var row = document.createElement("tr");
      row.setAttribute("data-id", error.id);
      if (fresh[error.id]) { row.className = "new"; }
      cell(row, error.recorded_at.slice(11, 19), "time");
      cell(row, error.method);
      cell(row, error.route);
      cell(row, error.status_code, "num");
      cell(row, error.error || "-");
      var link = cell(row, error.request_id ? "" : "-");
      if (error.request_id) {
        var a = document.createElement("a");
        a.href = requestUrl.replace("REQUEST_ID", encodeURIComponent(error.request_id));
        a.textContent = error.request_id;
        link.appendChild(a);
      }
      rows.appendChild(row);
    });
    if (!doc.errors.length) {
      var none = document.createElement("tr");
      none.className = "none";
      cell(none, "No errors in this range.").colSpan = 6;
      rows.appendChild(none);
    }
    body.replaceChildren(rows);
  }

  function fillAlerts() {
    var body = document.getElementById("live-alerts");
    if (!body) { return; }
    var rows = document.createDocumentFragment();
    doc.alerts_firing.forEach(function (alert) {
      var row = document.createElement("tr");
      var rule = cell(row, "");
      var a = document.createElement("a");
      a.href = "#chart-" + alert.chart;
      a.textContent = alert.rule;
      rule.appendChild(a);
      cell(row, alert.severity, "bad");
      cell(row, alert.since.slice(0, 16));
      var summary = alert.summary;
      if (alert.notifications_owed && alert.notifications_owed.length) {
        summary += " (not yet delivered to " + alert.notifications_owed.join(", ") + ")";
      }
      cell(row, summary);
      rows.appendChild(row);
    });
    if (!doc.alerts_firing.length) {
      var none = document.createElement("tr");
      cell(none, "Nothing firing (as of the last retailctl alert run).", "ok").colSpan = 4;
      rows.appendChild(none);
    }
    body.replaceChildren(rows);
  }

  function apply(delta) {
    var byTime = {};
    doc.points.concat(delta.points).forEach(function (p) { byTime[p.t] = p; });
    if (ms(delta.end) > ms(doc.end)) { doc.end = delta.end; }
    var start = startMs(), width = widthMs();
    doc.points = Object.keys(byTime).map(function (t) { return byTime[t]; })
      .filter(function (p) { return ms(p.t) + width > start; })
      .sort(function (a, b) { return ms(a.t) - ms(b.t); });
    if (delta.breaker.length) {
      var cut = delta.breaker[0].start;
      doc.breaker = doc.breaker.filter(function (band) { return ms(band.start) < ms(cut); })
        .map(function (band) { return ms(band.end) > ms(cut) ? { start: band.start, end: cut, state: band.state } : band; })
        .concat(delta.breaker)
        .filter(function (band) { return ms(band.end) > start; })
        .reduce(function (bands, band) {
          // A delta starts with the state it began in: one band, not two side by side.
          var last = bands[bands.length - 1];
          if (last && last.state === band.state && last.end === band.start) {
            bands[bands.length - 1] = { start: last.start, end: band.end, state: band.state };
          } else {
            bands.push(band);
          }
          return bands;
        }, []);
    }
    var seen = {}, fresh = {};
    doc.errors.forEach(function (error) { seen[error.id] = true; });
    delta.errors.forEach(function (error) {
      if (!seen[error.id]) { fresh[error.id] = true; doc.errors.push(error); seen[error.id] = true; }
    });
    doc.errors = doc.errors.filter(function (error) { return ms(error.recorded_at) >= start; })
      .sort(function (a, b) { return ms(b.recorded_at) - ms(a.recorded_at) || b.id - a.id; })
      .slice(0, ERRORS_SHOWN);
    doc.alerts_firing = delta.alerts_firing;
    if (delta.anomalies) {
      // A delta judges only the hours it crossed: add them to those already shown.
      var hours = {};
      (doc.anomalies || []).concat(delta.anomalies).forEach(function (anomaly) {
        hours[anomaly.series + " " + anomaly.hour] = anomaly;
      });
      doc.anomalies = Object.keys(hours).map(function (key) { return hours[key]; })
        .filter(function (anomaly) { return ms(anomaly.hour) + 3600000 > start; });
    }
    draw();
    fillTables();
    fillErrors(fresh);
    fillAlerts();
  }

  function setStatus(mode, text) {
    status.className = "status " + mode;
    status.textContent = text + " · as of " + doc.end.slice(11, 19) + " UTC";
  }

  function poll() {
    var url = section.getAttribute("data-poll-url") + "&since=" + encodeURIComponent(doc.end);
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (answer) {
        if (!answer.ok) { throw new Error("status " + answer.status); }
        return answer.json();
      })
      .then(function (delta) { apply(delta); setStatus("polling", "Polling every " + POLL_MS / 1000 + " s"); })
      .catch(function () { setStatus("offline", "Server unreachable, retrying"); });
  }

  function startPolling() {
    if (pollTimer === null) {
      poll();
      pollTimer = setInterval(poll, POLL_MS);
    }
  }

  function connect() {
    retryTimer = null;
    if (!window.EventSource) { startPolling(); return; }
    var url = section.getAttribute("data-stream-url") + "&since=" + encodeURIComponent(doc.end);
    source = new EventSource(url);
    source.addEventListener("delta", function (event) {
      if (pollTimer !== null) { clearInterval(pollTimer); pollTimer = null; }
      apply(JSON.parse(event.data));
      setStatus("live", "Live");
    });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (the worker's stream cap) or not a stream at all: poll, retry later.
        source = null;
        startPolling();
        if (retryTimer === null) { retryTimer = setTimeout(connect, STREAM_RETRY_MS); }
      } else {
        setStatus("offline", "Reconnecting");
      }
    };
  }

  draw();
  connect();
}());
