// The ops console: every figure comes from the public GraphQL API (with the ops key entered in
// the header) or, on the overview, from /metrics. Plain browser JavaScript, no build step.
'use strict';

const KEY_STORAGE = 'recsys-ops-key';
const $ = (selector, root = document) => root.querySelector(selector);
const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const esc = (value) => String(value ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c]);
const pct = (rate) => `${(rate * 100).toFixed(2)}%`;
const num = (value, digits = 4) =>
  value === null || value === undefined ? '–' : Number(value).toFixed(digits);
const when = (iso) => (iso ? new Date(iso).toISOString().replace('T', ' ').slice(0, 19) : '–');

async function gql(query, variables = {}) {
  const headers = { 'content-type': 'application/json' };
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (key) headers['x-api-key'] = key;
  const response = await fetch('/graphql', {
    method: 'POST',
    headers,
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors && body.errors.length > 0) {
    throw new Error(body.errors.map((error) => error.message).join('; '));
  }
  return body.data;
}

// What the current page owns; dropped when another page renders.
let charts = [];
let timers = [];

function render(html) {
  for (const chart of charts) chart.destroy();
  for (const timer of timers) clearInterval(timer);
  charts = [];
  timers = [];
  $('#page').innerHTML = html;
}

function chart(canvas, config) {
  const created = new Chart(canvas, {
    ...config,
    options: { responsive: true, maintainAspectRatio: false, animation: false, ...config.options },
  });
  charts.push(created);
  return created;
}

function showError(error) {
  const message = error instanceof Error ? error.message : String(error);
  $('#page').insertAdjacentHTML('afterbegin', `<p class="error" id="error">${esc(message)}</p>`);
}

// --- /metrics -----------------------------------------------------------------------------

/** Prometheus text to samples: { name, labels, value }. */
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]] = pair[2];
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

function sumBy(samples, name, label, filter = () => true) {
  const sums = new Map();
  for (const sample of samples) {
    if (sample.name !== name || !filter(sample.labels)) continue;
    const key = sample.labels[label] ?? '';
    sums.set(key, (sums.get(key) ?? 0) + sample.value);
  }
  return sums;
}

/** p99 per operation from cumulative histogram buckets (`before`: an earlier scrape, or none). */
function p99ByOperation(samples, before) {
  const buckets = new Map();
  const previous = new Map(
    (before ?? [])
      .filter((s) => s.name === 'graphql_request_duration_seconds_bucket')
      .map((s) => [`${s.labels.operation}|${s.labels.outcome}|${s.labels.le}`, s.value]),
  );
  for (const s of samples) {
    if (s.name !== 'graphql_request_duration_seconds_bucket') continue;
    const key = `${s.labels.operation}|${s.labels.outcome}|${s.labels.le}`;
    const count = s.value - (previous.get(key) ?? 0);
    const byLe = buckets.get(s.labels.operation) ?? new Map();
    byLe.set(s.labels.le, (byLe.get(s.labels.le) ?? 0) + count);
    buckets.set(s.labels.operation, byLe);
  }
  const result = new Map();
  for (const [operation, byLe] of buckets) {
    const sorted = [...byLe].sort((a, b) => Number(a[0]) - Number(b[0]));
    const total = sorted.at(-1)?.[1] ?? 0;
    if (total === 0) continue;
    const found = sorted.find(([, count]) => count >= 0.99 * total);
    result.set(operation, found ? found[0] : '+Inf');
  }
  return result;
}

// --- pages --------------------------------------------------------------------------------

async function overview() {
  render(`<h1>Overview</h1>
    <div class="cards" id="cards"></div>
    <h2>GraphQL operations <span class="muted" id="window"></span></h2>
    <table id="operations"><thead><tr><th>operation</th><th>requests</th><th>requests/s</th><th>p99 ≤ (s)</th></tr></thead><tbody></tbody></table>
    <h2>Ingest</h2>
    <table id="ingest"><thead><tr><th>topic</th><th>consumer lag</th><th>stored</th><th>dead-lettered</th><th>dead-lettered/s</th></tr></thead><tbody></tbody></table>
    <h2>Recent training runs</h2>
    <table id="runs-table"><thead><tr><th>run</th><th>mode</th><th>status</th><th>outcome</th><th>version</th><th>queued</th><th>by</th></tr></thead><tbody></tbody></table>
    <h2>Recent model versions</h2>
    <table id="versions"><thead><tr><th>version</th><th>status</th><th>AUC</th><th>created</th><th>by</th></tr></thead><tbody></tbody></table>`);
  const data = await gql(`{
    health { status }
    servingModel { versionId loadedAt armVersionIds }
    modelVersions(first: 5) { id status auc createdAt triggeredBy }
    trainingRuns(first: 5) { id mode status outcome versionId createdAt triggeredBy }
    experiments(first: 1) { name kind status }
  }`);
  $('#runs-table tbody').innerHTML = data.trainingRuns
    .map(
      (
        run,
      ) => `<tr><td><a href="#/training/${esc(run.id)}">${esc(run.id)}</a></td><td>${esc(run.mode)}</td>
        <td>${esc(run.status)}</td><td>${esc(run.outcome ?? '–')}</td><td>${esc(run.versionId ?? '–')}</td>
        <td>${when(run.createdAt)}</td><td>${esc(run.triggeredBy)}</td></tr>`,
    )
    .join('');
  const running = data.experiments.find((experiment) => experiment.status === 'RUNNING');
  const card = (label, value, id) =>
    `<div class="card" id="${id}"><div class="label">${esc(label)}</div><div class="value">${esc(value)}</div></div>`;
  $('#cards').innerHTML = [
    card('health', data.health.status, 'card-health'),
    card('served version', data.servingModel.versionId ?? 'none', 'card-served'),
    card('arm versions loaded', data.servingModel.armVersionIds.join(', ') || 'none', 'card-arms'),
    card(
      'running experiment',
      running ? `${running.name} (${running.kind})` : 'none',
      'card-experiment',
    ),
    `<div class="card"><div class="label">embedding backlog</div><div class="value" id="backlog">–</div></div>`,
    `<div class="card"><div class="label">training runs (this process)</div><div class="value" id="runs">–</div></div>`,
  ].join('');
  $('#versions tbody').innerHTML = data.modelVersions
    .map(
      (
        v,
      ) => `<tr><td>${esc(v.id)}</td><td class="status-${esc(v.status.toLowerCase())}">${esc(v.status)}</td>
        <td class="num">${num(v.auc)}</td><td>${when(v.createdAt)}</td><td>${esc(v.triggeredBy)}</td></tr>`,
    )
    .join('');
  let before;
  let beforeAt;
  const refresh = async () => {
    const response = await fetch('/metrics');
    if (!response.ok) {
      $('#window').textContent = '(metrics are served on OPS_PORT, not here)';
      return;
    }
    const samples = parseMetrics(await response.text());
    const at = performance.now();
    const counts = sumBy(samples, 'graphql_request_duration_seconds_count', 'operation');
    const earlier = before
      ? sumBy(before, 'graphql_request_duration_seconds_count', 'operation')
      : undefined;
    const seconds = before ? (at - beforeAt) / 1000 : undefined;
    const p99 = p99ByOperation(samples, before);
    $('#window').textContent = before
      ? `(rates and p99 over the last ${seconds.toFixed(0)} s)`
      : '(since start)';
    $('#operations tbody').innerHTML = [...counts]
      .sort((a, b) => b[1] - a[1])
      .map(([operation, count]) => {
        const rate = earlier ? ((count - (earlier.get(operation) ?? 0)) / seconds).toFixed(1) : '–';
        return `<tr><td>${esc(operation)}</td><td class="num">${count}</td><td class="num">${rate}</td><td class="num">${esc(p99.get(operation) ?? '–')}</td></tr>`;
      })
      .join('');
    const lag = sumBy(samples, 'ingest_consumer_lag_messages', 'topic');
    const stored = sumBy(samples, 'ingest_messages_total', 'topic', (l) => l.outcome === 'stored');
    const isDead = (l) => l.outcome === 'dead_lettered';
    const dead = sumBy(samples, 'ingest_messages_total', 'topic', isDead);
    const deadBefore = before ? sumBy(before, 'ingest_messages_total', 'topic', isDead) : undefined;
    const deadRate = (topic) =>
      deadBefore
        ? (((dead.get(topic) ?? 0) - (deadBefore.get(topic) ?? 0)) / seconds).toFixed(2)
        : '–';
    const topics = [...new Set([...lag.keys(), ...stored.keys(), ...dead.keys()])].sort();
    $('#ingest tbody').innerHTML = topics
      .map(
        (topic) => `<tr><td>${esc(topic)}</td><td class="num">${lag.get(topic) ?? '–'}</td>
          <td class="num">${stored.get(topic) ?? 0}</td><td class="num">${dead.get(topic) ?? 0}</td>
          <td class="num">${deadRate(topic)}</td></tr>`,
      )
      .join('');
    const backlog = samples.find((s) => s.name === 'embedding_backlog_items');
    $('#backlog').textContent = backlog ? String(backlog.value) : '–';
    const runs = sumBy(samples, 'training_runs_total', 'outcome');
    $('#runs').textContent = runs.size ? [...runs].map(([o, n]) => `${n} ${o}`).join(', ') : '–';
    before = samples;
    beforeAt = at;
  };
  await refresh();
  timers.push(setInterval(() => refresh().catch(showError), 5000));
}

async function models() {
  render(`<h1>Model versions</h1>
    <p><button id="rollback">Roll back to the previous version</button></p>
    <div class="chart"><canvas id="metrics-chart"></canvas></div>
    <h2>Versions</h2>
    <table id="versions"><thead><tr><th>version</th><th>status</th><th>reason</th><th>AUC</th><th>other metrics</th><th>online CTR (window)</th><th>created</th><th>activated</th><th></th></tr></thead><tbody></tbody></table>`);
  const { modelVersions } = await gql(`{ modelVersions(first: 50) {
    id status statusReason auc createdAt activatedAt metrics { name value }
    online { impressions ctr { rate } windowHours } } }`);
  const shown = /^(auc|mrr|ndcg)/i;
  $('#versions tbody').innerHTML = modelVersions
    .map((v) => {
      const others = v.metrics
        .filter((m) => shown.test(m.name) && m.name !== 'auc')
        .map((m) => `${esc(m.name)} ${num(m.value)}`)
        .join(', ');
      const action =
        v.status === 'CANDIDATE' || v.status === 'RETIRED'
          ? `<button data-activate="${esc(v.id)}">Activate</button>`
          : '';
      const online =
        v.online.impressions > 0 ? `${pct(v.online.ctr.rate)} of ${v.online.impressions}` : '–';
      return `<tr data-version="${esc(v.id)}"><td>${esc(v.id)}</td>
        <td class="status-${esc(v.status.toLowerCase())}">${esc(v.status)}</td>
        <td>${esc(v.statusReason)}</td><td class="num">${num(v.auc)}</td><td>${others}</td>
        <td>${online}</td><td>${when(v.createdAt)}</td><td>${when(v.activatedAt)}</td><td>${action}</td></tr>`;
    })
    .join('');
  const ordered = [...modelVersions].reverse();
  const names = [...new Set(ordered.flatMap((v) => v.metrics.map((m) => m.name)))].filter((n) =>
    shown.test(n),
  );
  chart($('#metrics-chart'), {
    type: 'line',
    data: {
      labels: ordered.map((v) => `v${v.id}`),
      datasets: names.map((name) => ({
        label: name,
        data: ordered.map((v) => v.metrics.find((m) => m.name === name)?.value ?? null),
        spanGaps: true,
      })),
    },
    options: {
      plugins: {
        title: { display: true, text: 'Offline metrics per version (validation window)' },
      },
    },
  });
  $('#rollback').addEventListener('click', () => {
    if (!confirm('Roll back to the version that was active before the current one?')) return;
    gql('mutation { rollbackModel { id } }').then(models).catch(showError);
  });
  for (const button of document.querySelectorAll('[data-activate]')) {
    button.addEventListener('click', () => {
      const id = button.getAttribute('data-activate');
      if (!confirm(`Activate version ${id} for every user?`)) return;
      gql('mutation($id: ID!) { activateModelVersion(id: $id) { id } }', { id })
        .then(models)
        .catch(showError);
    });
  }
}

async function training(runId) {
  render(`<h1>Training run</h1>${idForm('training', 'run id', runId, 'show')}
    <p><span class="muted">or queue one:</span>
      <button type="button" id="train-incremental">train (incremental)</button>
      <button type="button" id="train-full">train (full)</button></p>
    <div id="run"></div>`);
  wireIdForm('training');
  const queue = (mode) =>
    gql(`mutation { trainModel(mode: ${mode}) { id } }`)
      .then(({ trainModel }) => {
        location.hash = `#/training/${trainModel.id}`;
      })
      .catch(showError);
  $('#train-incremental').addEventListener('click', () => queue('INCREMENTAL'));
  $('#train-full').addEventListener('click', () => queue('FULL'));
  if (!runId) return;
  const show = async () => {
    const { trainingRun: run } = await gql(
      `query($id: ID!) { trainingRun(id: $id) { id mode status progress outcome error triggeredBy
        waitingFor createdAt startedAt finishedAt versionId metrics { name value }
        epochs { epoch loss validationAuc seconds } } }`,
      { id: runId },
    );
    $('#run').innerHTML =
      `<p>Run ${esc(run.id)} (${esc(run.mode)}), <strong id="run-status">${esc(run.status)}</strong>
        ${run.outcome ? `: ${esc(run.outcome)}` : ''}, by ${esc(run.triggeredBy)}</p>
      <p><progress id="run-progress" max="1" value="${Number(run.progress)}"></progress> ${pct(run.progress)}</p>
      ${run.error ? `<p class="error">${esc(run.error)}</p>` : ''}
      ${run.waitingFor ? `<p id="run-waiting">waiting: ${esc(run.waitingFor)}</p>` : ''}
      <p>queued ${when(run.createdAt)}, started ${when(run.startedAt)}, finished ${when(run.finishedAt)};
        version ${run.versionId ? `<a href="#/models">${esc(run.versionId)}</a>` : '–'}</p>
      <div class="chart"><canvas id="epochs-chart"></canvas></div>
      <table id="run-metrics"><thead><tr><th>metric</th><th>value</th></tr></thead><tbody>${run.metrics
        .map((m) => `<tr><td>${esc(m.name)}</td><td class="num">${num(m.value)}</td></tr>`)
        .join('')}</tbody></table>`;
    for (const previous of charts) previous.destroy();
    charts = [];
    chart($('#epochs-chart'), {
      type: 'line',
      data: {
        labels: run.epochs.map((e) => `epoch ${e.epoch}`),
        datasets: [
          { label: 'training loss', data: run.epochs.map((e) => e.loss), yAxisID: 'loss' },
          { label: 'validation AUC', data: run.epochs.map((e) => e.validationAuc), yAxisID: 'auc' },
        ],
      },
      options: {
        plugins: { title: { display: true, text: 'Per epoch: training loss and validation AUC' } },
        scales: {
          loss: { position: 'left' },
          auc: { position: 'right', grid: { drawOnChartArea: false } },
        },
      },
    });
    document.body.dataset.epochs = String(run.epochs.length);
    return run.status === 'QUEUED' || run.status === 'RUNNING';
  };
  if (await show()) {
    timers.push(
      setInterval(() => {
        show()
          .then((going) => {
            if (!going) timers.forEach(clearInterval);
          })
          .catch(showError);
      }, 2000),
    );
  }
}

async function experiments(selectedId) {
  render(`<h1>Experiments</h1>
    <table id="experiments"><thead><tr><th>id</th><th>name</th><th>kind</th><th>status</th><th>started</th><th>outcome</th></tr></thead><tbody></tbody></table>
    <div id="experiment"></div>`);
  const { experiments: list } = await gql(
    '{ experiments(first: 20) { id name kind status startedAt outcome } }',
  );
  $('#experiments tbody').innerHTML = list
    .map(
      (
        e,
      ) => `<tr><td><a href="#/experiments/${esc(e.id)}">${esc(e.id)}</a></td><td>${esc(e.name)}</td>
        <td>${esc(e.kind)}</td><td>${esc(e.status)}</td><td>${when(e.startedAt)}</td><td>${esc(e.outcome)}</td></tr>`,
    )
    .join('');
  const id = selectedId ?? list[0]?.id;
  if (!id) {
    $('#experiment').innerHTML =
      '<p class="muted">No experiment yet: createExperiment, or activateModelVersion with canaryPercent.</p>';
    return;
  }
  const { experiment: e } = await gql(
    `query($id: ID!) { experiment(id: $id) { id name kind status outcome outcomeReason minImpressions
      arms { name modelVersion profile share online { slates impressions clicks purchases
        ctr { rate low high } conversion { rate low high }
        ctrVsControl { relativeLift pValue significant } impressionsNeeded verdict summary } } } }`,
    { id },
  );
  const running = e.status === 'RUNNING';
  $('#experiment').innerHTML = `<h2>${esc(e.name)} (${esc(e.kind)}, ${esc(e.status)})</h2>
    ${e.outcome ? `<p id="decision"><strong>${esc(e.outcome)}</strong>: ${esc(e.outcomeReason)}</p>` : ''}
    <div class="chart"><canvas id="ctr-chart"></canvas></div>
    <table id="arms"><thead><tr><th>arm</th><th>version</th><th>profile</th><th>share</th><th>impressions</th>
      <th>clicks</th><th>CTR [95%]</th><th>conversion</th><th>lift</th><th>p</th><th>more needed</th><th>verdict</th>${running ? '<th></th>' : ''}</tr></thead>
    <tbody>${e.arms
      .map((arm) => {
        const o = arm.online;
        const versus = o.ctrVsControl;
        return `<tr><td>${esc(arm.name)}</td><td>${esc(arm.modelVersion ?? 'active')}</td><td>${esc(arm.profile ?? '–')}</td>
          <td class="num">${esc(arm.share)}%</td><td class="num">${o.impressions}</td><td class="num">${o.clicks}</td>
          <td>${pct(o.ctr.rate)} [${pct(o.ctr.low)}, ${pct(o.ctr.high)}]</td><td>${pct(o.conversion.rate)}</td>
          <td class="num">${versus?.relativeLift == null ? '–' : `${(versus.relativeLift * 100).toFixed(1)}%`}</td>
          <td class="num">${versus ? versus.pValue.toFixed(4) : '–'}</td><td class="num">${o.impressionsNeeded ?? '–'}</td>
          <td class="verdict-${esc(o.verdict.toLowerCase())}">${esc(o.verdict)}</td>
          ${running ? `<td><button data-promote="${esc(arm.name)}">Promote</button></td>` : ''}</tr>`;
      })
      .join('')}</tbody></table>
    <ul id="summaries">${e.arms.map((arm) => `<li>${esc(arm.online.summary)}</li>`).join('')}</ul>
    ${running ? '<p><button id="stop">Stop without promoting</button></p>' : ''}`;
  chart($('#ctr-chart'), {
    type: 'bar',
    data: {
      labels: e.arms.map((arm) => arm.name),
      datasets: [
        {
          type: 'bar',
          label: 'CTR 95% interval',
          data: e.arms.map((arm) => [arm.online.ctr.low, arm.online.ctr.high]),
        },
        {
          type: 'line',
          label: 'CTR',
          data: e.arms.map((arm) => arm.online.ctr.rate),
          showLine: false,
          pointRadius: 6,
        },
      ],
    },
    options: {
      plugins: { title: { display: true, text: 'CTR per arm with its Wilson interval' } },
      scales: { y: { beginAtZero: true, ticks: { callback: (value) => pct(value) } } },
    },
  });
  for (const button of document.querySelectorAll('[data-promote]')) {
    button.addEventListener('click', () => {
      const arm = button.getAttribute('data-promote');
      if (!confirm(`End ${e.name} and promote arm ${arm}?`)) return;
      gql('mutation($id: ID!, $arm: String!) { promoteArm(experimentId: $id, arm: $arm) { id } }', {
        id: e.id,
        arm,
      })
        .then(() => experiments(e.id))
        .catch(showError);
    });
  }
  $('#stop')?.addEventListener('click', () => {
    if (!confirm(`Stop ${e.name} without promoting anything?`)) return;
    gql('mutation($id: ID!) { stopExperiment(id: $id) { id } }', { id: e.id })
      .then(() => experiments(e.id))
      .catch(showError);
  });
}

/** A one-field form that opens `#/<route>/<value>`; `wireIdForm` makes it do so. */
const idForm = (route, label, value, button) =>
  `<form class="inline" id="${route}-form"><label>${esc(label)} <input id="${route}-id" value="${esc(value ?? '')}" /></label>
    <button type="submit">${esc(button)}</button></form>`;

function wireIdForm(route) {
  $(`#${route}-form`).addEventListener('submit', (event) => {
    event.preventDefault();
    location.hash = `#/${route}/${encodeURIComponent($(`#${route}-id`).value.trim())}`;
  });
}

async function inspector(userId) {
  render(
    `<h1>Inspector</h1>${idForm('inspector', 'user id', userId, 'recommend')}<div id="inspection"></div>`,
  );
  wireIdForm('inspector');
  if (!userId) return;
  const { recommend: r, userInteractions } = await gql(
    `query($u: ID!) { recommend(userId: $u, first: 10) { modelVersion experiment arm degraded
      items { itemId rank score parts { name value weight } } }
      userInteractions(userId: $u, first: 20) { itemId title type at } }`,
    { u: userId },
  );
  const names = [...new Set(r.items.flatMap((item) => item.parts.map((part) => part.name)))];
  $('#inspection').innerHTML = `<p id="served-by">version ${esc(r.modelVersion ?? 'none')}${
    r.experiment ? `, experiment ${esc(r.experiment)} arm ${esc(r.arm)}` : ''
  }${r.degraded.length ? `; degraded: ${esc(r.degraded.join(', '))}` : ''}</p>
    <div class="chart"><canvas id="parts-chart"></canvas></div>
    <h2>Recommended, with each score's parts</h2>
    <table id="recommended"><thead><tr><th>rank</th><th>item</th><th>score</th>${names
      .map((name) => `<th>${esc(name)}</th>`)
      .join('')}</tr></thead><tbody>${r.items
      .map(
        (item) =>
          `<tr><td class="num">${item.rank}</td><td>${esc(item.itemId)}</td><td class="num">${num(item.score)}</td>${names
            .map((name) => {
              const part = item.parts.find((p) => p.name === name);
              return `<td class="num">${part ? num(part.value * part.weight) : '–'}</td>`;
            })
            .join('')}</tr>`,
      )
      .join('')}</tbody></table>
    <h2>Recent interactions</h2>
    <table id="interactions"><thead><tr><th>when</th><th>type</th><th>item</th><th>title</th></tr></thead><tbody>${userInteractions
      .map(
        (i) =>
          `<tr><td>${when(i.at)}</td><td>${esc(i.type)}</td><td>${itemLink(i.itemId)}</td><td>${esc(i.title ?? '–')}</td></tr>`,
      )
      .join('')}</tbody></table>`;
  chart($('#parts-chart'), {
    type: 'bar',
    data: {
      labels: r.items.map((item) => item.itemId),
      datasets: names.map((name) => ({
        label: name,
        data: r.items.map((item) => {
          const part = item.parts.find((p) => p.name === name);
          return part ? part.value * part.weight : 0;
        }),
      })),
    },
    options: {
      indexAxis: 'y',
      plugins: {
        title: {
          display: true,
          text: 'Each item’s score as the sum of its parts (value × weight)',
        },
      },
      scales: { x: { stacked: true }, y: { stacked: true } },
    },
  });
}

const itemLink = (itemId) => `<a href="#/item/${encodeURIComponent(itemId)}">${esc(itemId)}</a>`;

async function item(itemId) {
  render(`<h1>Item</h1>${idForm('item', 'item id', itemId, 'show')}<div id="item"></div>`);
  wireIdForm('item');
  if (!itemId) return;
  const { catalogItem: i } = await gql(
    `query($id: ID!) { catalogItem(itemId: $id) { itemId title description category tags price createdAt deleted
      dailyEvents(days: 30) { day impressions clicks addToCarts purchases }
      nearest(first: 10) { itemId title similarity } } }`,
    { id: itemId },
  );
  $('#item').innerHTML = `<h2 id="item-title">${esc(i.title)}${i.deleted ? ' (deleted)' : ''}</h2>
    <p>${esc(i.description ?? '')}</p>
    <p class="muted">category ${esc(i.category ?? '–')}; tags ${esc(i.tags.join(', ') || '–')}; price ${esc(i.price ?? '–')}; created ${when(i.createdAt)}</p>
    <div class="chart"><canvas id="events-chart"></canvas></div>
    <h2>Nearest items under the served version</h2>
    <table id="nearest"><thead><tr><th>item</th><th>title</th><th>similarity</th></tr></thead><tbody>${i.nearest
      .map(
        (n) =>
          `<tr><td>${itemLink(n.itemId)}</td><td>${esc(n.title ?? '–')}</td><td class="num">${num(n.similarity)}</td></tr>`,
      )
      .join('')}</tbody></table>`;
  chart($('#events-chart'), {
    type: 'line',
    data: {
      labels: i.dailyEvents.map((d) => d.day.slice(0, 10)),
      datasets: ['impressions', 'clicks', 'addToCarts', 'purchases'].map((type) => ({
        label: type,
        data: i.dailyEvents.map((d) => d[type]),
      })),
    },
    options: { plugins: { title: { display: true, text: 'Events per day (last 30 days, UTC)' } } },
  });
}

// --- routing ------------------------------------------------------------------------------

const PAGES = { overview, models, training, experiments, inspector, item };

async function route() {
  const [, name = 'overview', argument] = location.hash.split('/');
  const page = PAGES[name] ?? overview;
  for (const link of document.querySelectorAll('header nav a')) {
    link.classList.toggle('current', link.getAttribute('href') === `#/${name}`);
  }
  document.body.dataset.page = '';
  try {
    await page(argument ? decodeURIComponent(argument) : undefined);
  } catch (error) {
    showError(error);
  }
  // Tests and scripts wait for this: the page has its data (or its error).
  document.body.dataset.page = name;
}

$('#key').value = sessionStorage.getItem(KEY_STORAGE) ?? '';
$('#key-form').addEventListener('submit', (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORAGE, $('#key').value.trim());
  void route();
});
window.addEventListener('hashchange', () => void route());
void route();
