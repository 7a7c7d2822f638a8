// Scores results of the suite the way cache-tests.fyi does, with the suite's own
// `determineTestResult` (a test whose dependency did not pass is a dependency failure), and prints
// one tab-separated line per fact for `cargo xtask conformance` to aggregate.
//
// usage: node score.mjs <suite dir> <label>=<results.json>[+<more results.json>]...
//
// Output lines (fields never contain tabs or newlines):
//   suite  <suite id> <suite name>
//   test   <suite id> <test id> <kind> <depends on, comma-separated> <name>
//   impl   <index> <name> <version> <type>      (the given files first, then the suite's peers)
//   result <index> <test id> <outcome> <message>
// Browser-only tests are left out: the command-line client never runs them.

import fs from 'node:fs'
import path from 'node:path'
import process from 'node:process'
import { pathToFileURL } from 'node:url'

const [suiteDir, ...given] = process.argv.slice(2)
const load = file => import(pathToFileURL(path.join(suiteDir, file)).href)
const { default: suites } = await load('tests/index.mjs')
const { determineTestResult, resultTypes } = await load('test-engine/lib/results.mjs')
const { default: published } = await load('results/index.mjs')

const clean = text => String(text ?? '').replace(/[\t\r\n]+/g, ' ').trim()
const out = []
const emit = (...fields) => out.push(fields.map(clean).join('\t'))
const outcomeName = symbol => Object.keys(resultTypes).find(key => resultTypes[key] === symbol)
const passTypes = [resultTypes.pass, resultTypes.yes]

const tests = []
for (const suite of suites) {
  emit('suite', suite.id, suite.name)
  for (const test of suite.tests) {
    if (test.browser_only === true) continue
    tests.push(test)
    emit('test', suite.id, test.id, test.kind ?? 'required', (test.depends_on ?? []).join(','), test.name)
  }
}

const friendly = { ATS: 'Traffic Server', httpd: 'Apache httpd', caddy: 'Caddy' }
const impls = given.map(arg => {
  const at = arg.indexOf('=')
  return { name: arg.slice(0, at), file: arg.slice(at + 1), version: '', type: '' }
})
for (const peer of published) {
  if (peer.type === 'browser') continue
  impls.push({
    name: friendly[peer.name] ?? peer.name,
    file: path.join(suiteDir, 'results', peer.file),
    version: peer.version ?? '',
    type: peer.type
  })
}

impls.forEach((impl, index) => {
  emit('impl', index, impl.name, impl.version, impl.type)
  // `a.json+b.json`: results merged, later files winning (a re-run of some tests).
  const results = Object.assign({}, ...impl.file.split('+').map(file => JSON.parse(fs.readFileSync(file, 'utf8'))))
  for (const test of tests) {
    const symbol = determineTestResult(suites, test.id, results)
    let message = ''
    const raw = results[test.id]
    if (symbol === resultTypes.dependency_fail) {
      const failed = test.depends_on.filter(dep => !passTypes.includes(determineTestResult(suites, dep, results)))
      message = `depends on ${failed.join(', ')}, which did not pass`
    } else if (Array.isArray(raw)) {
      message = raw[0] === 'Assertion' ? raw[1] : `${raw[0]}: ${raw[1]}`
    }
    emit('result', index, test.id, outcomeName(symbol), message)
  }
})

process.stdout.write(out.join('\n') + '\n')
