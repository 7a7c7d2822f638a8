// Runs some of the suite's tests against a base URL and prints the results as JSON, like the
// suite's CLI does for all of them. `cargo xtask conformance` uses it to re-run failures once.
//
// usage: node run.mjs <suite dir> <base url> <test id>...

import process from 'node:process'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

const [suiteDir, base, ...ids] = process.argv.slice(2)
const load = file => import(pathToFileURL(path.join(suiteDir, file)).href)
const { default: suites } = await load('tests/index.mjs')
const { runTests, getResults } = await load('test-engine/client/runner.mjs')

const wanted = new Set(ids)
const selected = suites.map(suite => ({ ...suite, tests: suite.tests.filter(test => wanted.has(test.id)) }))
  .filter(suite => suite.tests.length > 0)

await runTests(selected, false, base)
console.log(JSON.stringify(getResults(), null, 2))
