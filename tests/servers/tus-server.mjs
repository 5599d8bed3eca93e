// Test tus server: the official @tus/server with @tus/file-store, on 127.0.0.1.
// Usage: node tus-server.mjs DIRECTORY PORT [TOKEN]
// - recomputes SHA-256 when an upload finishes and rejects a mismatch with the
//   `sha256` in Upload-Metadata (HTTP 460), as an archive would;
// - requires "Authorization: Bearer TOKEN" when TOKEN is given (401 otherwise);
// - fault injection: DIRECTORY/faults.json {"status": 503, "count": 2, "retry_after": 1}
//   answers the next `count` requests with `status`.
import { createHash } from 'node:crypto'
import { createReadStream, existsSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { FileStore } from '@tus/file-store'
import { Server } from '@tus/server'

const [directory, port, token] = process.argv.slice(2)
const faultsPath = path.join(directory, 'faults.json')

function injectedFault() {
  if (!existsSync(faultsPath)) return null
  const faults = JSON.parse(readFileSync(faultsPath, 'utf8'))
  if (!faults.count) return null
  faults.count -= 1
  writeFileSync(faultsPath, JSON.stringify(faults))
  return faults
}

function sha256Of(file) {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256')
    createReadStream(file).on('data', (data) => hash.update(data)).on('end', () => resolve(hash.digest('hex'))).on('error', reject)
  })
}

const server = new Server({
  path: '/files',
  relativeLocation: true,
  datastore: new FileStore({ directory }),
  async onIncomingRequest(req) {
    if (token && req.headers.get('authorization') !== `Bearer ${token}`) {
      throw { status_code: 401, body: 'unauthorized\n' }
    }
    const fault = injectedFault()
    if (fault) {
      throw { status_code: fault.status, body: 'injected fault\n', headers: fault.retry_after ? { 'Retry-After': String(fault.retry_after) } : {} }
    }
  },
  async onUploadFinish(req, upload) {
    const expected = upload.metadata?.sha256
    const actual = await sha256Of(path.join(directory, upload.id))
    if (expected && expected !== actual) {
      throw { status_code: 460, body: `sha256 mismatch: expected ${expected}, stored ${actual}\n` }
    }
    return {}
  },
})
server.listen({ host: '127.0.0.1', port: Number(port) }, () => console.log(`tus server listening on ${port}`))
