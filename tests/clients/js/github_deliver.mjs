// Deliver GitHub's own example webhook payloads (@octokit/webhooks-examples), signed by
// GitHub's own signing code (@octokit/webhooks-methods), to a flightlog server.
// usage: node github_deliver.mjs SPEC_JSON
//   SPEC_JSON: {"url": "...", "deliveries": [{"event": "workflow_run", "index": 1,
//               "secret": "...", "patch": {"workflow_run": {"conclusion": "failure"}},
//               "forge": false, "delivery": "guid"}]}
// prints one JSON line per delivery: {"status": 200, "body": {...}}
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { sign } from '@octokit/webhooks-methods'

const require = createRequire(import.meta.url)
const examples = JSON.parse(readFileSync(require.resolve('@octokit/webhooks-examples'), 'utf8'))
const byName = Object.fromEntries(examples.map((e) => [e.name, e.examples]))

function merge (target, patch) {
  for (const [key, value] of Object.entries(patch || {})) {
    if (value && typeof value === 'object' && !Array.isArray(value) && target[key] && typeof target[key] === 'object') {
      merge(target[key], value)
    } else {
      target[key] = value
    }
  }
  return target
}

const spec = JSON.parse(process.argv[2])
for (const d of spec.deliveries) {
  const payload = merge(structuredClone(byName[d.event][d.index]), d.patch)
  const body = JSON.stringify(payload)
  const headers = { 'Content-Type': 'application/json', 'X-GitHub-Event': d.event, 'X-GitHub-Delivery': d.delivery || crypto.randomUUID(), 'User-Agent': 'GitHub-Hookshot/test' }
  if (d.secret) {
    // forge: sign one body, send another (an attacker who changed the payload in flight)
    headers['X-Hub-Signature-256'] = await sign(d.secret, d.forge ? body.replace(/"/, '"x') : body)
  }
  const response = await fetch(spec.url + '/hooks/github', { method: 'POST', headers, body })
  const text = await response.text()
  let parsed
  try { parsed = JSON.parse(text) } catch { parsed = text }
  console.log(JSON.stringify({ status: response.status, body: parsed, payload: d.echo ? payload : undefined }))
}
