// The circuit explorer: builds the panel with textContent only; the target menu and the two
// sliders hide nodes and edges together. Globals from the pyvis page: nodes, edges, network.
(function () {
  var data = JSON.parse(document.getElementById('cm-data').textContent);
  var panel = document.getElementById('cm-panel');
  var state = {target: '', minInfluence: 0, minWeight: 0, focus: null};
  var nodeBase = {}, edgeBase = {};
  nodes.get().forEach(function (n) { nodeBase[n.id] = n.color; });
  edges.get().forEach(function (e) { edgeBase[e.id] = e.color; });
  var maxInfluence = 0, maxWeight = 0;
  Object.keys(data.nodes).forEach(function (id) {
    var d = data.nodes[id];
    if (d.kind === 'feature') maxInfluence = Math.max(maxInfluence, Math.abs(d.influence || 0));
  });
  edges.get().forEach(function (e) { maxWeight = Math.max(maxWeight, Math.abs(e.cm_weight)); });
  network.setOptions({interaction: {hover: true}});

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function fmt(v) {
    if (typeof v !== 'number') return String(v);
    return Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(3);
  }
  function inTarget(item) {
    return state.target === '' || (item.targets || '').split(',').indexOf(state.target) >= 0;
  }
  function nodeShown(id) {
    var d = data.nodes[id];
    if (!d) return true;
    if (!inTarget(d)) return false;
    return d.kind !== 'feature' || Math.abs(d.influence || 0) >= state.minInfluence;
  }
  function visibleEdges() {
    return edges.get().filter(function (e) {
      return nodeShown(e.from) && nodeShown(e.to) && inTarget(e) &&
        Math.abs(e.cm_weight) >= state.minWeight;
    });
  }
  function apply() {
    nodes.update(Object.keys(data.nodes).map(function (id) {
      return {id: id, hidden: !nodeShown(id)};
    }));
    var shown = {};
    visibleEdges().forEach(function (e) { shown[e.id] = true; });
    edges.update(edges.get().map(function (e) { return {id: e.id, hidden: !shown[e.id]}; }));
    highlight(state.focus);
  }
  function downstream(id) {
    var seen = {}, stack = [id], out = visibleEdges();
    seen[id] = true;
    while (stack.length) {
      var at = stack.pop();
      out.forEach(function (e) {
        if (e.from === at && !seen[e.to]) { seen[e.to] = true; stack.push(e.to); }
      });
    }
    return seen;
  }
  function highlight(id) {
    var on = id ? downstream(id) : null;
    nodes.update(Object.keys(data.nodes).map(function (n) {
      return {id: n, color: !on || on[n] ? nodeBase[n] : '#e4e4e4'};
    }));
    edges.update(edges.get().map(function (e) {
      return {id: e.id, color: !on || (on[e.from] && on[e.to]) ? edgeBase[e.id] : '#eeeeee'};
    }));
  }
  function row(table, name, value) {
    var tr = el('tr');
    tr.appendChild(el('td', name));
    tr.appendChild(el('td', value));
    table.appendChild(tr);
  }
  function edgeTable(title, list, other) {
    panel.appendChild(el('h4', title + ' (' + list.length + ')'));
    var table = el('table');
    list.sort(function (a, b) { return Math.abs(b.cm_weight) - Math.abs(a.cm_weight); });
    list.forEach(function (e) {
      var tr = el('tr'), cell = el('td');
      var id = other(e), link = el('button', data.nodes[id] ? data.nodes[id].label : id, 'cm-link');
      link.addEventListener('click', function () { select(id); });
      cell.appendChild(link);
      tr.appendChild(cell);
      tr.appendChild(el('td', (e.cm_weight >= 0 ? '+' : '') + fmt(e.cm_weight)));
      table.appendChild(tr);
    });
    panel.appendChild(table);
  }
  var FIGURES = [['influence', 'influence (share of the target)'], ['attribution', 'attribution'],
    ['agreement', 'kept in bootstrap resamples'], ['p_value', 'p-value vs controls'],
    ['effect_size', 'effect size (control sd)'], ['activation', 'activation on X'],
    ['layer_completeness', 'layer completeness'], ['layer_sufficiency', 'layer sufficiency'],
    ['layer_activation', 'target reached from this layer']];
  function show(id) {
    var d = data.nodes[id];
    panel.textContent = '';
    if (!d) return;
    panel.appendChild(el('h3', d.label));
    panel.appendChild(el('div', d.kind + ', layer ' + d.layer + ', index ' + d.index));
    var table = el('table');
    FIGURES.forEach(function (f) { if (f[0] in d) row(table, f[1], fmt(d[f[0]])); });
    if ('ci_low' in d) row(table, '95% interval', fmt(d.ci_low) + ' .. ' + fmt(d.ci_high));
    panel.appendChild(table);
    if (d.contexts) {
      panel.appendChild(el('h4', 'where it fires (build prompts)'));
      d.contexts.split(' | ').forEach(function (c) {
        var at = c.lastIndexOf('[['), div = el('div', undefined, 'cm-snippet');
        div.appendChild(document.createTextNode('\u2026' + c.slice(0, at)));
        div.appendChild(el('mark', c.slice(at + 2, c.length - 2)));
        panel.appendChild(div);
      });
    }
    if (data.layers[d.layer] !== undefined) {
      panel.appendChild(el('h4', 'layer ' + d.layer + ' gradient Patchscope'));
      panel.appendChild(el('div', data.layers[d.layer], 'cm-snippet'));
    }
    if (d.causal_description) {
      panel.appendChild(el('h4', 'causal description'));
      panel.appendChild(el('div', d.causal_description, 'cm-snippet'));
    }
    var np = typeof d.neuronpedia === 'string' ? d.neuronpedia : '';
    if (np.indexOf('https://www.neuronpedia.org/') === 0) {
      var a = el('a', 'Neuronpedia');
      a.href = np;
      a.target = '_blank';
      a.rel = 'noopener';
      panel.appendChild(a);
    }
    var shown = visibleEdges();
    edgeTable('incoming', shown.filter(function (e) { return e.to === id; }),
      function (e) { return e.from; });
    edgeTable('outgoing', shown.filter(function (e) { return e.from === id; }),
      function (e) { return e.to; });
  }
  function select(id) {
    state.focus = id;
    network.selectNodes([id]);
    show(id);
    highlight(id);
  }
  network.on('click', function (p) {
    if (p.nodes.length && data.nodes[p.nodes[0]]) { select(p.nodes[0]); }
    else { state.focus = null; highlight(null); }
  });
  network.on('hoverNode', function (p) { if (data.nodes[p.node]) highlight(p.node); });
  network.on('blurNode', function () { highlight(state.focus); });
  function slider(id, label, max, key) {
    var input = document.getElementById(id);
    input.addEventListener('input', function () {
      state[key] = max * input.value / 100;
      document.getElementById(label).textContent = fmt(state[key]);
      apply();
    });
  }
  slider('cm-node-slider', 'cm-node-value', maxInfluence, 'minInfluence');
  slider('cm-edge-slider', 'cm-edge-value', maxWeight, 'minWeight');
  document.getElementById('cm-search').addEventListener('change', function () {
    var q = this.value.trim().toLowerCase();
    if (!q) return;
    var hits = Object.keys(data.nodes).filter(function (id) {
      var d = data.nodes[id];
      return id.toLowerCase() === q || String(d.index) === q ||
        String(d.label).toLowerCase().indexOf(q) >= 0;
    });
    hits.sort(function (a, b) {
      return Math.abs(data.nodes[b].influence || 0) - Math.abs(data.nodes[a].influence || 0);
    });
    if (hits.length) { select(hits[0]); network.focus(hits[0], {animation: false}); }
  });
  var menu = document.getElementById('target-filter');
  if (menu) menu.addEventListener('change', function () { state.target = this.value; apply(); });
})();
