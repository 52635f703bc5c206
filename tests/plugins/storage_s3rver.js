// Starts two s3rver instances for tests/plugins/storage_s3.sh on free loopback ports,
// sharing one directory: a strict one (SigV4 verified; wrong secrets get 403) and a lax one
// (signatures not checked, serviceEndpoint "localhost") that routes virtual-hosted requests
// for BUCKET.s3.localhost, whose canonical URI s3rver computes differently from AWS.
// Usage: node storage_s3rver.js MODULES_DIR DATA_DIR ACCESS_KEY SECRET_KEY BUCKET PORTFILE
'use strict'
const [modules, dir, ak, sk, bucket, portfile] = process.argv.slice(2)
const fs = require('node:fs')
const S3rver = require(modules + '/@20minutes/s3rver')
const { DUMMY_ACCOUNT } = require(modules + '/@20minutes/s3rver/lib/models/account')

DUMMY_ACCOUNT.revokeAccessKey('S3RVER') // only the test's key pair is valid
DUMMY_ACCOUNT.createKeyPair(ak, sk)

async function main() {
  const strict = new S3rver({
    address: '127.0.0.1', port: 0, silent: true, directory: dir,
    configureBuckets: [{ name: bucket }],
  })
  const lax = new S3rver({
    address: '127.0.0.1', port: 0, silent: true, directory: dir,
    serviceEndpoint: 'localhost', allowMismatchedSignatures: true,
  })
  const a = await strict.run()
  const b = await lax.run()
  fs.writeFileSync(portfile + '.tmp', `${a.port} ${b.port}\n`)
  fs.renameSync(portfile + '.tmp', portfile)
}
main().catch((e) => {
  console.error(e)
  process.exit(1)
})
