// Starts the suite's origin server bound to 127.0.0.1 only, for `cargo xtask conformance`.
//
// usage: node origin.mjs <suite>/test-engine/server/server.mjs
// The port comes from `npm_config_port`, as with `npm run server --port=N`.
// The server exits on its own when the run that started it goes away.

import http from 'node:http'
import process from 'node:process'
import { pathToFileURL } from 'node:url'

const listen = http.Server.prototype.listen
http.Server.prototype.listen = function (port, ...rest) {
  if (typeof port === 'number' || typeof port === 'string') {
    return listen.call(this, port, '127.0.0.1', ...rest)
  }
  return listen.call(this, port, ...rest)
}

// The process to outlive: the xtask run (given by pid, as a `timeout` wrapper may sit between).
const watched = Number(process.env.CONFORMANCE_PARENT_PID || process.ppid)
setInterval(() => {
  try {
    process.kill(watched, 0)
  } catch {
    process.exit(0)
  }
}, 500).unref()

await import(pathToFileURL(process.argv[2]).href)
