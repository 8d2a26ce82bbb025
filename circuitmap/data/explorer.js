// The circuit explorer: the layered graph drawn on one canvas (layers left to right, the target
// last), pan and zoom, paths to the target highlighted on hover or click, a side panel built with
// textContent only, sliders, search, the target menu, the toggle for nodes outside the circuit,
// collapsible supernodes. Adjacency is built once; a hover draws only the highlighted paths over
// a cached picture of the rest; a slider recomputes visibility flags and redraws.
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('cm-data').textContent);
  var canvas = document.getElementById('cm-canvas'), ctx = canvas.getContext('2d');
  var tip = document.getElementById('cm-tip'), panel = document.getElementById('cm-panel');
  var nodes = data.nodes, N = nodes.length, E = data.edges.w.length;
  var groups = data.supernodes, K = groups.length;
  var es = Int32Array.from(data.edges.s), et = Int32Array.from(data.edges.t);
  var ew = Float64Array.from(data.edges.w), eg = Int32Array.from(data.edges.g);
  var FONT = 13, HEAD = 30, PAD = 14;
  var index = {};
  nodes.forEach(function (d, i) { index[d.id] = i; });

  function csr(from) {  // edge ids grouped by one end, built once
    var start = new Int32Array(N + 1), list = new Int32Array(E), k;
    for (k = 0; k < E; k++) start[from[k] + 1]++;
    for (var i = 0; i < N; i++) start[i + 1] += start[i];
    var fill = start.slice(0, N);
    for (k = 0; k < E; k++) list[fill[from[k]]++] = k;
    return {start: start, list: list};
  }
  var outAdj = csr(es), inAdj = csr(et);
  var groupOf = new Int32Array(N).fill(-1);
  groups.forEach(function (g, k) { g.members.forEach(function (i) { groupOf[i] = k; }); });
  var inCircuit = new Uint8Array(N), isError = new Uint8Array(N), isTarget = new Uint8Array(N);
  var maxInfluence = 0, maxWeight = 0;
  nodes.forEach(function (d, i) {
    inCircuit[i] = !data.circuit || d.in_circuit === true || d.kind === 'neuron' ? 1 : 0;
    isError[i] = d.kind === 'error' ? 1 : 0;
    isTarget[i] = d.kind === 'neuron' ? 1 : 0;
    if (d.kind === 'feature') maxInfluence = Math.max(maxInfluence, Math.abs(d.influence || 0));
  });
  var edgeBucket = new Uint8Array(E);
  for (var k0 = 0; k0 < E; k0++) {
    maxWeight = Math.max(maxWeight, Math.abs(ew[k0]));
    edgeBucket[k0] = bucket(k0);
  }

  var state = {target: '', minInfluence: 0, minWeight: 0, outside: false, focus: -1, hover: -1,
    collapsed: new Uint8Array(K), view: {s: 1, x: 0, y: 0}};
  var M = N + K;  // drawn items: nodes, then collapsed supernodes
  var nodeOn = new Uint8Array(N), edgeOn = new Uint8Array(E), drawn = new Uint8Array(M);
  var rep = new Int32Array(N), px = new Float64Array(M), py = new Float64Array(M);
  var pr = new Float64Array(M), col = new Int32Array(M), labels = new Array(M), columns = [];
  var rowStep = 0, buckets = [], timings = [];
  var base = document.createElement('canvas'), bctx = base.getContext('2d');
  var coarse = document.createElement('canvas'), cctx = coarse.getContext('2d');
  var DENSE = 4000, visibleEdges = 0;

  function inTarget(targets) {
    return state.target === '' || (targets || '').split(',').indexOf(state.target) >= 0;
  }
  var edgeTargetOk = [];
  function laidOut(i) {
    return (state.outside || inCircuit[i]) && inTarget(nodes[i].targets);
  }

  // --- layout: one column per layer, rows spread over the canvas, groups kept together ---
  function layout() {
    var W = canvas.clientWidth, H = canvas.clientHeight, byLayer = {}, i;
    for (i = 0; i < N; i++) {
      if (!laidOut(i)) continue;
      (byLayer[nodes[i].layer] = byLayer[nodes[i].layer] || []).push(i);
    }
    var layers = Object.keys(byLayer).map(Number).sort(function (a, b) { return a - b; });
    var weight = function (i) { return Math.abs(nodes[i].influence || 0); };
    var groupWeight = groups.map(function (g) {
      return g.members.reduce(function (s, i) { return s + weight(i); }, 0);
    });
    var tallest = 1;
    layers.forEach(function (l) {
      byLayer[l].sort(function (a, b) {
        var ga = groupOf[a] >= 0 ? groupWeight[groupOf[a]] : weight(a);
        var gb = groupOf[b] >= 0 ? groupWeight[groupOf[b]] : weight(b);
        return isError[a] - isError[b] || gb - ga || groupOf[a] - groupOf[b] ||
          weight(b) - weight(a);
      });
      tallest = Math.max(tallest, byLayer[l].length);
    });
    ctx.font = FONT + 'px sans-serif';
    var last = layers.length ? byLayer[layers[layers.length - 1]] : [];
    var tail = Math.min(220, Math.max.apply(null, [40].concat(last.map(function (i) {
      return ctx.measureText(nodes[i].label).width;
    }))));
    var x0 = PAD + 12, x1 = Math.max(x0, W - tail - PAD - 40);
    var colStep = layers.length > 1 ? (x1 - x0) / (layers.length - 1) : 0;
    var top = HEAD + PAD + 10, bottom = H - PAD - 10;
    rowStep = tallest > 1 ? (bottom - top) / (tallest - 1) : 0;
    var rMax = tallest > 1 ? Math.max(3, rowStep * 0.42) : 16;
    columns = layers.map(function (l, c) {
      var list = byLayer[l], x = layers.length > 1 ? x0 + c * colStep : W / 2;
      // One node a column: alternately high and low, so the chain spans the canvas.
      var single = layers.length < 2 ? (top + bottom) / 2 : c % 2 ? bottom - 40 : top + 40;
      var y0 = tallest > 1 ? top + (tallest - list.length) * rowStep / 2 : single;
      var room = (c === layers.length - 1 ? W - x - PAD : colStep) - 8;
      list.forEach(function (i, r) {
        px[i] = x;
        py[i] = y0 + r * rowStep;
        col[i] = c;
        var share = maxInfluence ? Math.sqrt(Math.abs(nodes[i].influence || 0) / maxInfluence) : 0;
        pr[i] = isTarget[i] ? Math.min(14, rMax + 2) : Math.min(rMax, 4 + 10 * share);
        labels[i] = fit(shortLabel(nodes[i]), room - pr[i] - 6);
      });
      return {layer: l, x: x, room: Math.max(30, (c === layers.length - 1 ? W - x : colStep) - 8),
        heading: headingText(l)};
    });
    columns.forEach(function (c) { c.short = fit(c.heading, c.room); });
    state.view = {s: 1, x: 0, y: 0};
  }
  function shortLabel(d) {  // the column names the layer: 'F905 L7: morphism' -> 'F905 morphism'
    if (d.kind === 'error') return 'error';
    return String(d.label).replace(new RegExp('^(F\\d+) L' + d.layer + '\\b:?'), '$1');
  }
  function headingText(layer) {
    var info = data.layers[layer];
    if (info === undefined) return 'L' + layer;
    var level = info.layer_level === undefined ? '' : ' · \u00d7' + info.layer_level.toFixed(1);
    return 'L' + layer + level + ' · ' + info.patchscope;
  }
  function fit(text, room) {  // the text cut to ``room`` px at the label font, with an ellipsis
    text = String(text);
    if (room <= 8) return '';
    if (ctx.measureText(text).width <= room) return text;
    var lo = 0, hi = text.length;
    while (lo < hi) {
      var mid = (lo + hi + 1) >> 1;
      if (ctx.measureText(text.slice(0, mid) + '\u2026').width <= room) lo = mid; else hi = mid - 1;
    }
    return lo ? text.slice(0, lo) + '\u2026' : '';
  }

  // --- visibility: flags recomputed in one pass over nodes and edges ---
  function filter() {
    var i, k;
    for (i = 0; i < N; i++) {
      nodeOn[i] = laidOut(i) && (nodes[i].kind !== 'feature' ||
        Math.abs(nodes[i].influence || 0) >= state.minInfluence) ? 1 : 0;
      rep[i] = groupOf[i] >= 0 && state.collapsed[groupOf[i]] ? N + groupOf[i] : i;
    }
    drawn.fill(0);
    for (i = 0; i < N; i++) if (nodeOn[i]) drawn[rep[i]] = 1;
    for (k = 0; k < K; k++) if (drawn[N + k]) placeGroup(k);
    edgeTargetOk = data.edge_targets.map(inTarget);
    buckets = [];
    visibleEdges = 0;
    for (k = 0; k < E; k++) {
      var s = es[k], t = et[k];
      edgeOn[k] = nodeOn[s] && nodeOn[t] && rep[s] !== rep[t] && edgeTargetOk[eg[k]] &&
        Math.abs(ew[k]) >= state.minWeight ? 1 : 0;
      if (edgeOn[k]) {
        visibleEdges++;
        var b = edgeBucket[k];
        (buckets[b] = buckets[b] || []).push(k);
      }
    }
  }
  function placeGroup(k) {
    var x = 0, y = 0, n = 0, c = 1e9;
    groups[k].members.forEach(function (i) {
      if (!nodeOn[i]) return;
      x += px[i]; y += py[i]; n++; c = Math.min(c, col[i]);
    });
    px[N + k] = x / n; py[N + k] = y / n; col[N + k] = c;
    pr[N + k] = Math.max(7, Math.min(16, 5 + 2 * n));
    labels[N + k] = fit(groups[k].label + ' (' + groups[k].members.length + ')',
      (columns[c] ? columns[c].room : 80) - pr[N + k] - 6);
  }
  var COLOURS = ['rgba(26,152,80,0.55)', 'rgba(215,48,39,0.55)', 'rgba(150,150,150,0.35)'];
  function bucket(k) {  // colour (support, opposition, through an error node) x width
    var colour = isError[es[k]] || isError[et[k]] ? 2 : ew[k] >= 0 ? 0 : 1;
    return colour * 6 + Math.min(5, Math.floor(Math.min(Math.abs(ew[k]), 1) * 6));
  }

  // --- drawing ---
  function setView(c, alpha, scale) {
    var dpr = (window.devicePixelRatio || 1) * (scale || 1), v = state.view;
    c.setTransform(dpr * v.s, 0, 0, dpr * v.s, dpr * v.x, dpr * v.y);
    c.globalAlpha = alpha;
  }
  function edgePath(c, k) {
    var a = rep[es[k]], b = rep[et[k]], skip = col[b] - col[a] - 1;
    c.moveTo(px[a], py[a]);
    if (skip > 0) c.quadraticCurveTo((px[a] + px[b]) / 2, (py[a] + py[b]) / 2 - 30 * skip,
      px[b], py[b]);
    else c.lineTo(px[b], py[b]);
  }
  function drawEdges(c, list, b) {
    c.strokeStyle = COLOURS[Math.floor(b / 6)];
    c.lineWidth = 0.75 + 1.3 * (b % 6);
    c.beginPath();
    for (var j = 0; j < list.length; j++) edgePath(c, list[j]);
    c.stroke();
  }
  function drawNode(c, i) {
    var x = px[i], y = py[i], r = pr[i];
    c.beginPath();
    if (i >= N) {  // a collapsed supernode
      c.fillStyle = '#1f5f99';
      c.rect(x - r, y - r * 0.8, 2 * r, 1.6 * r);
      c.fill();
    } else if (isError[i]) {  // secondary: a pale square that carries its share as a number
      c.fillStyle = '#e3e3e3';
      c.strokeStyle = '#b5b5b5';
      c.rect(x - r - 4, y - r, 2 * r + 8, 2 * r);
      c.fill();
      c.stroke();
      var share = nodes[i].influence;
      c.fillStyle = '#666';
      c.font = Math.max(9, Math.min(FONT, r * 1.2)) + 'px sans-serif';
      c.textAlign = 'center';
      c.fillText(typeof share === 'number' ? share.toFixed(2) : '\u2013', x, y + 4);
      c.textAlign = 'left';
    } else {
      c.fillStyle = isTarget[i] ? '#d7301f' : '#2b7bba';
      c.arc(x, y, r, 0, 2 * Math.PI);
      c.fill();
    }
    if (i === state.focus) {
      c.strokeStyle = '#111';
      c.lineWidth = 2;
      c.stroke();
    }
  }
  function labelsShown() { return rowStep * state.view.s >= FONT || rowStep === 0; }
  function drawLabel(c, i) {
    if (!labels[i]) return;
    c.fillStyle = isError[i] ? '#888' : '#222';
    c.font = (i >= N ? 'bold ' : '') + FONT + 'px sans-serif';
    c.fillText(labels[i], px[i] + pr[i] + (isError[i] ? 8 : 4), py[i] + FONT / 2 - 2);
  }
  function drawEdgeLayer(c, scale) {
    setView(c, 1, scale);
    for (var b = 0; b < buckets.length; b++) if (buckets[b]) drawEdges(c, buckets[b], b);
  }
  function drawScene(c, alpha, only, onlyEdges, edgesDrawn) {
    var b, i;
    if (onlyEdges) {
      setView(c, alpha);
      var byBucket = [];
      onlyEdges.forEach(function (k) { (byBucket[edgeBucket[k]] = byBucket[edgeBucket[k]] || []).push(k); });
      for (b = 0; b < byBucket.length; b++) if (byBucket[b]) drawEdges(c, byBucket[b], b);
    } else if (!edgesDrawn) {
      drawEdgeLayer(c, 1);
    }
    setView(c, alpha);
    var withLabels = labelsShown();
    for (i = 0; i < M; i++) {
      if (!drawn[i] || (only && !only[i])) continue;
      drawNode(c, i);
      if (withLabels) drawLabel(c, i);
    }
    c.globalAlpha = 1;
  }
  function drawHeadings(c) {
    c.setTransform(window.devicePixelRatio || 1, 0, 0, window.devicePixelRatio || 1, 0, 0);
    c.font = 'bold ' + FONT + 'px sans-serif';
    c.fillStyle = '#333';
    columns.forEach(function (h) {
      var x = state.view.x + h.x * state.view.s;
      h.box = {x: x - 6, y: 4, w: h.room, h: HEAD - 4};
      c.fillText(h.short, x - 6, HEAD - 10);
    });
  }
  function render() {  // the whole scene into the cached picture, then on screen
    var dpr = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = base.width = Math.round(w * dpr);
      canvas.height = base.height = Math.round(h * dpr);
    }
    bctx.setTransform(1, 0, 0, 1, 0, 0);
    bctx.clearRect(0, 0, base.width, base.height);
    var dense = visibleEdges > DENSE;
    if (dense) {  // many edges: drawn at half resolution (a quarter of the pixels), then scaled
      coarse.width = Math.ceil(base.width / 2);
      coarse.height = Math.ceil(base.height / 2);
      drawEdgeLayer(cctx, 0.5);
      bctx.drawImage(coarse, 0, 0, base.width, base.height);
    }
    drawScene(bctx, 1, null, null, dense);
    present();
  }
  function present() {  // the cached picture, dimmed under the highlighted paths if any
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    var focus = state.hover >= 0 ? state.hover : state.focus;
    if (focus < 0) {
      ctx.drawImage(base, 0, 0);
    } else {
      ctx.globalAlpha = 0.2;
      ctx.drawImage(base, 0, 0);
      var paths = downstream(focus);
      drawScene(ctx, 1, paths.on, paths.edges);
    }
    drawHeadings(ctx);
  }
  function downstream(item) {  // drawn items and edges on the paths from ``item`` to the target
    var on = new Uint8Array(M), seen = new Uint8Array(N), stack = [], list = [], i, j;
    if (item >= N) groups[item - N].members.forEach(function (m) { if (nodeOn[m]) stack.push(m); });
    else stack.push(item);
    stack.forEach(function (m) { seen[m] = 1; });
    while (stack.length) {
      i = stack.pop();
      on[rep[i]] = 1;
      for (j = outAdj.start[i]; j < outAdj.start[i + 1]; j++) {
        var k = outAdj.list[j];
        if (!edgeOn[k]) continue;
        list.push(k);
        if (!seen[et[k]]) { seen[et[k]] = 1; stack.push(et[k]); }
      }
    }
    on[item] = 1;
    return {on: on, edges: list};
  }

  // --- pointer: hover, click, pan, zoom ---
  function toWorld(e) {
    var r = canvas.getBoundingClientRect(), v = state.view;
    return {x: (e.clientX - r.left - v.x) / v.s, y: (e.clientY - r.top - v.y) / v.s,
      sx: e.clientX - r.left, sy: e.clientY - r.top};
  }
  function hit(p) {
    var best = -1, bestD = Infinity;
    for (var i = 0; i < M; i++) {
      if (!drawn[i]) continue;
      var dx = px[i] - p.x, dy = py[i] - p.y, d = dx * dx + dy * dy;
      var reach = Math.max(pr[i] + (isError[i] ? 4 : 0), 6 / state.view.s) + 2;
      if (d <= reach * reach && d < bestD) { best = i; bestD = d; }
    }
    return best;
  }
  function headingAt(p) {
    for (var c = 0; c < columns.length; c++) {
      var b = columns[c].box;
      if (b && p.sx >= b.x && p.sx <= b.x + b.w && p.sy >= b.y && p.sy <= b.y + b.h) return c;
    }
    return -1;
  }
  function timed(what, fn) {
    var t0 = performance.now();
    fn();
    timings.push({what: what, ms: performance.now() - t0});
    if (timings.length > 500) timings.shift();
  }
  function showTip(text, p) {
    if (!text) { tip.hidden = true; return; }
    tip.textContent = text;
    tip.hidden = false;
    tip.style.left = Math.min(p.sx + 14, canvas.clientWidth - 300) + 'px';
    tip.style.top = (p.sy + 14) + 'px';
  }
  function tooltipOf(i) {
    if (i >= N) {
      var g = groups[i - N];
      return 'supernode ' + g.label + ' (' + g.members.length + ' features)\nclick: members';
    }
    return nodes[i].tooltip || nodes[i].label;
  }
  var drag = null;
  canvas.addEventListener('mousedown', function (e) {
    drag = {x: e.clientX, y: e.clientY, vx: state.view.x, vy: state.view.y, moved: false};
  });
  window.addEventListener('mouseup', function (e) {
    if (drag && !drag.moved && e.target === canvas) click(toWorld(e));
    drag = null;
  });
  canvas.addEventListener('mousemove', function (e) {
    var p = toWorld(e);
    if (drag && (Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) > 3)) {
      drag.moved = true;
      state.view.x = drag.vx + e.clientX - drag.x;
      state.view.y = drag.vy + e.clientY - drag.y;
      render();
      return;
    }
    var i = hit(p);
    if (i !== state.hover) {
      timed(i >= 0 ? 'hover' : 'leave', function () { state.hover = i; present(); });
    }
    var h = i < 0 ? headingAt(p) : -1;
    showTip(i >= 0 ? tooltipOf(i) : h >= 0 ? columns[h].heading : '', p);
  });
  canvas.addEventListener('mouseleave', function () {
    tip.hidden = true;
    if (state.hover >= 0) { state.hover = -1; present(); }
  });
  canvas.addEventListener('wheel', function (e) {
    e.preventDefault();
    var p = toWorld(e), v = state.view, s = Math.max(0.1, Math.min(8, v.s * Math.exp(-e.deltaY / 500)));
    v.x = p.sx - p.x * s;
    v.y = p.sy - p.y * s;
    v.s = s;
    render();
  }, {passive: false});
  function click(p) {
    var i = hit(p);
    if (i >= N) { showGroup(i - N); return; }
    if (i >= 0) { select(i); return; }
    state.focus = -1;
    present();
    showIntro();
  }

  // --- the panel (textContent only) ---
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function fmt(v) {
    if (v === null || v === undefined) return '\u2013';
    if (typeof v !== 'number') return String(v);
    return Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(3);
  }
  function button(text, onClick, cls) {
    var b = el('button', text, cls || 'cm-link');
    b.addEventListener('click', onClick);
    return b;
  }
  function linkTo(i) {
    return button(nodes[i].label, function () { select(i); });
  }
  var FIGURES = [['influence', 'influence (share of the target)'], ['attribution', 'attribution'],
    ['agreement', 'kept in bootstrap resamples'], ['p_value', 'p-value vs controls'],
    ['q_value', 'q-value (Benjamini-Hochberg over the nodes)'],
    ['effect_size', 'effect size (control sd)'], ['activation', 'activation on X'],
    ['layer_completeness', 'layer completeness'], ['layer_sufficiency', 'layer sufficiency'],
    ['layer_activation', 'target reached from this layer']];
  function snippet(c) {  // a context: text before, the token marked, text after, activation
    var div = el('div', undefined, 'cm-snippet');
    div.appendChild(document.createTextNode('\u2026' + (c.before || '')));
    div.appendChild(el('mark', c.token));
    div.appendChild(document.createTextNode((c.after || '') + '\u2026'));
    if (typeof c.activation === 'number') div.appendChild(el('span', ' ' + fmt(c.activation), 'cm-act'));
    return div;
  }
  function histogram(h) {
    var box = el('div', undefined, 'cm-hist'), top = Math.max.apply(null, [1].concat(h.counts));
    h.counts.forEach(function (n, j) {
      var bar = el('div', undefined, 'cm-bar');
      bar.style.height = Math.round(60 * n / top) + 'px';
      bar.title = fmt(h.edges[j]) + ' .. ' + fmt(h.edges[j + 1]) + ': ' + n + ' tokens';
      box.appendChild(bar);
    });
    panel.appendChild(box);
    panel.appendChild(el('div', 'active on ' + h.active + ' of ' + h.tokens + ' tokens; ' +
      fmt(h.edges[0]) + ' .. ' + fmt(h.edges[h.edges.length - 1]), 'cm-note'));
  }
  function section(title) { panel.appendChild(el('h4', title)); }
  function dashboard(d) {
    if (d.top_prompts) {
      section('prompts where it fires most');
      d.top_prompts.forEach(function (c) { panel.appendChild(snippet(c)); });
    }
    if (d.corpus_contexts) {
      section('top activations over ' + (data.dashboard_texts || 'the') + ' corpus texts');
      d.corpus_contexts.forEach(function (c) { panel.appendChild(snippet(c)); });
    }
    if (d.activation_histogram) {
      section('activation histogram (corpus tokens where active)');
      histogram(d.activation_histogram);
    }
    if (d.promoted_tokens) {
      section('tokens its direction promotes (unembedding)');
      var list = el('div', undefined, 'cm-tokens');
      d.promoted_tokens.forEach(function (t) { list.appendChild(el('span', t.token, 'cm-token')); });
      panel.appendChild(list);
    }
    if (d.contexts) {
      section('where it fires (build prompts)');
      d.contexts.split(' | ').forEach(function (c) {
        var at = c.lastIndexOf('[[');
        panel.appendChild(snippet({before: c.slice(0, at), token: c.slice(at + 2, c.length - 2)}));
      });
    }
    section('causal decode (Patchscope of the feature)');
    panel.appendChild(el('div', d.causal_description === undefined ? '\u2013' :
      d.causal_description, 'cm-snippet'));
    if (data.layers[d.layer] !== undefined) layerSection(d.layer, data.layers[d.layer]);
  }
  function layerSection(layer, info) {  // the layer's gradient Patchscope against its circuit
    section('layer ' + layer + ' gradient Patchscope');
    panel.appendChild(el('div', info.patchscope, 'cm-snippet'));
    var rows = [];
    if (info.layer_level !== undefined) {
      rows.push('X drives the target to \u00d7' + fmt(info.layer_level) + ' its corpus maximum');
    }
    if (info.restart_top1 !== undefined) {
      rows.push('restarts: top-1 agreement ' + Math.round(100 * info.restart_top1) + '%, Jaccard ' +
        fmt(info.restart_jaccard) + (info.restart_consensus ?
          ', consensus F' + info.restart_consensus.split(',').join(', F') : ''));
    }
    if (info.x_features !== undefined) {
      var ranks = (info.x_ranks || '').split(',');
      rows.push("X's top features (attribution rank): " + info.x_features.split(',').map(
        function (f, i) { return 'F' + f + ' (' + (ranks[i] === undefined ? '\u2013' : ranks[i]) + ')'; }
      ).join(', '));
    }
    if (info.x_overlap !== undefined) {
      rows.push("share among the layer's attribution top 10: " + Math.round(100 * info.x_overlap) + '%');
    }
    rows.forEach(function (r) { panel.appendChild(el('div', r)); });
    if (info.circuit_decode !== undefined) {
      section("decode of the layer's circuit features");
      panel.appendChild(el('div', info.circuit_decode, 'cm-snippet'));
    }
  }
  function edgeTable(title, adj, other, i) {
    var list = [];
    for (var j = adj.start[i]; j < adj.start[i + 1]; j++) if (edgeOn[adj.list[j]]) list.push(adj.list[j]);
    list.sort(function (a, b) { return Math.abs(ew[b]) - Math.abs(ew[a]); });
    section(title + ' (' + list.length + ')');
    var table = el('table');
    list.slice(0, 30).forEach(function (k) {
      var tr = el('tr'), cell = el('td');
      cell.appendChild(linkTo(other[k]));
      tr.appendChild(cell);
      tr.appendChild(el('td', (ew[k] >= 0 ? '+' : '') + fmt(ew[k])));
      table.appendChild(tr);
    });
    panel.appendChild(table);
    if (list.length > 30) panel.appendChild(el('div', (list.length - 30) + ' more', 'cm-note'));
  }
  function show(i) {
    var d = nodes[i];
    panel.textContent = '';
    panel.appendChild(el('h3', d.label));
    panel.appendChild(el('div', d.kind + ', layer ' + d.layer + ', index ' + d.index +
      (data.circuit ? (d.in_circuit ? ', in the circuit' : ', outside the circuit') : '')));
    if (groupOf[i] >= 0) {
      var g = groupOf[i], line = el('div', 'supernode ' + groups[g].label + ' ');
      line.appendChild(button('collapse', function () { collapse(g, true); showGroup(g); }, 'cm-btn'));
      panel.appendChild(line);
    }
    var table = el('table');
    if (d.kind !== 'neuron') {
      FIGURES.forEach(function (f) {
        var tr = el('tr');
        tr.appendChild(el('td', f[1]));
        tr.appendChild(el('td', fmt(d[f[0]])));
        table.appendChild(tr);
      });
    }
    panel.appendChild(table);
    dashboard(d);
    var np = typeof d.neuronpedia === 'string' ? d.neuronpedia : '';
    if (np.indexOf('https://www.neuronpedia.org/') === 0) {
      var a = el('a', 'Neuronpedia');
      a.href = np;
      a.target = '_blank';
      a.rel = 'noopener';
      panel.appendChild(a);
    }
    edgeTable('incoming', inAdj, es, i);
    edgeTable('outgoing', outAdj, et, i);
  }
  function showGroup(k) {
    var g = groups[k];
    state.focus = state.collapsed[k] ? N + k : -1;
    present();
    panel.textContent = '';
    panel.appendChild(el('h3', 'supernode ' + g.label));
    panel.appendChild(el('div', g.members.length + ' features, layers ' + g.layers.join(', ')));
    panel.appendChild(button(state.collapsed[k] ? 'expand' : 'collapse', function () {
      collapse(k, !state.collapsed[k]);
      showGroup(k);
    }, 'cm-btn'));
    section('members');
    g.members.forEach(function (i) {
      var div = el('div');
      div.appendChild(linkTo(i));
      div.appendChild(el('span', ' ' + fmt(nodes[i].influence), 'cm-act'));
      panel.appendChild(div);
    });
  }
  function showIntro() {
    panel.textContent = '';
    panel.appendChild(el('p', 'Click a node for its dashboard and edges; hover a node to see ' +
      'its paths to the target; drag to pan, wheel to zoom.', 'cm-hint'));
    if (!K) return;
    section('supernodes (' + K + ')');
    groups.forEach(function (g, k) {
      var div = el('div');
      div.appendChild(button(g.label + ' (' + g.members.length + ')', function () { showGroup(k); }));
      panel.appendChild(div);
    });
  }
  function select(i) {
    if (i < N && groupOf[i] >= 0 && state.collapsed[groupOf[i]]) collapse(groupOf[i], false);
    state.focus = i;
    show(i);
    present();
  }
  function collapse(k, on) {
    state.collapsed[k] = on ? 1 : 0;
    filter();
    render();
  }

  // --- controls ---
  function refresh(relayout) {
    if (relayout) layout();
    filter();
    render();
  }
  function slider(id, label, max, key) {
    var input = document.getElementById(id);
    input.addEventListener('input', function () {
      timed('slider', function () {
        state[key] = max * input.value / 100;
        document.getElementById(label).textContent = fmt(state[key]);
        refresh(false);
      });
    });
  }
  slider('cm-node-slider', 'cm-node-value', maxInfluence, 'minInfluence');
  slider('cm-edge-slider', 'cm-edge-value', maxWeight, 'minWeight');
  var outside = document.getElementById('cm-outside');
  if (outside) outside.addEventListener('change', function () {
    state.outside = outside.checked;
    refresh(true);
  });
  var groupAll = document.getElementById('cm-group');
  if (groupAll) groupAll.addEventListener('change', function () {
    state.collapsed.fill(groupAll.checked ? 1 : 0);
    refresh(false);
  });
  document.getElementById('cm-fit').addEventListener('click', function () { refresh(true); });
  document.getElementById('cm-search').addEventListener('change', function () {
    var q = this.value.trim().toLowerCase();
    if (!q) return;
    var hits = [];
    nodes.forEach(function (d, i) {
      if (d.id.toLowerCase() === q || String(d.index) === q ||
        String(d.label).toLowerCase().indexOf(q) >= 0) hits.push(i);
    });
    hits.sort(function (a, b) {
      return Math.abs(nodes[b].influence || 0) - Math.abs(nodes[a].influence || 0);
    });
    if (!hits.length) return;
    if (!laidOut(hits[0]) && outside) { outside.checked = state.outside = true; refresh(true); }
    select(hits[0]);
  });
  var menu = document.getElementById('target-filter');
  if (menu) menu.addEventListener('change', function () { state.target = this.value; refresh(true); });
  window.addEventListener('resize', function () { refresh(true); });

  function screenOf(i) {
    var r = canvas.getBoundingClientRect(), v = state.view;
    return {x: r.left + v.x + px[i] * v.s, y: r.top + v.y + py[i] * v.s};
  }
  // What tests and benchmarks read: drawn items, their page positions and labels, timings.
  window.cm = {
    shown: function () {
      var ids = [];
      for (var i = 0; i < M; i++) if (drawn[i]) ids.push(i < N ? nodes[i].id : groups[i - N].id);
      return ids.sort();
    },
    edgesShown: function () { var n = 0; for (var k = 0; k < E; k++) n += edgeOn[k]; return n; },
    at: function (id) { return screenOf(id in index ? index[id] : N + groups.findIndex(
      function (g) { return g.id === id; })); },
    labels: function () {
      var out = [];
      if (!labelsShown()) return out;
      for (var i = 0; i < M; i++) if (drawn[i] && labels[i]) {
        out.push({id: i < N ? nodes[i].id : groups[i - N].id, text: labels[i],
          px: FONT * state.view.s});
      }
      return out;
    },
    bbox: function () {  // drawn nodes and their labels, in canvas px
      var v = state.view, b = {x0: Infinity, y0: Infinity, x1: -Infinity, y1: -Infinity};
      ctx.font = FONT + 'px sans-serif';
      for (var i = 0; i < M; i++) {
        if (!drawn[i]) continue;
        var w = labels[i] ? ctx.measureText(labels[i]).width + 8 : 0;
        b.x0 = Math.min(b.x0, v.x + (px[i] - pr[i]) * v.s);
        b.x1 = Math.max(b.x1, v.x + (px[i] + pr[i] + w) * v.s);
        b.y0 = Math.min(b.y0, v.y + (py[i] - Math.max(pr[i], FONT / 2)) * v.s);
        b.y1 = Math.max(b.y1, v.y + (py[i] + Math.max(pr[i], FONT / 2)) * v.s);
      }
      b.width = canvas.clientWidth;
      b.height = canvas.clientHeight;
      return b;
    },
    selected: function () { return state.focus < 0 ? null : state.focus < N ?
      nodes[state.focus].id : groups[state.focus - N].id; },
    timings: timings,
    ready: true
  };
  refresh(true);
  showIntro();
})();
