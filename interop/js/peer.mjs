// A js-libp2p peer on its default stack (TCP, Noise, Yamux, identify, gossipsub with default
// options and a generated Ed25519 identity) that dials a lilypad-p2p node, subscribes to one
// topic and reports what happens as JSON lines on stdout:
//   {"event":"ready","peer_id":...,"addrs":[...]}
//   {"event":"connected","peer_id":...,"muxer":...,"encryption":...}
//   {"event":"mesh","peers":[...]}           whenever its mesh for the topic changes
//   {"event":"message","from":...,"topic":...,"data_hex":...}
// It stops when stdin closes or after --timeout seconds.
//
//   node peer.mjs --dial /ip4/127.0.0.1/tcp/4001/p2p/16Uiu2... --topic /lilypad/1/market/cpu
import { gossipsub } from '@chainsafe/libp2p-gossipsub'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

function option (name, fallback) {
  const index = process.argv.indexOf(`--${name}`)
  return index >= 0 ? process.argv[index + 1] : fallback
}

function emit (record) {
  process.stdout.write(JSON.stringify(record) + '\n')
}

const dial = option('dial')
const topic = option('topic', '/lilypad/1/market/cpu')
const timeoutS = Number(option('timeout', '300'))
if (dial === undefined) {
  process.stderr.write('usage: node peer.mjs --dial <multiaddr with /p2p/> [--topic T] [--timeout S]\n')
  process.exit(2)
}

const node = await createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: { identify: identify(), pubsub: gossipsub() }
})

let stopping = false
async function stop (code) {
  if (stopping) return
  stopping = true
  await node.stop()
  process.exit(code)
}

node.services.pubsub.addEventListener('message', (event) => {
  const message = event.detail
  emit({
    event: 'message',
    from: message.type === 'signed' ? message.from.toString() : null,
    topic: message.topic,
    data_hex: Buffer.from(message.data).toString('hex')
  })
})
node.addEventListener('connection:open', (event) => {
  const connection = event.detail
  emit({
    event: 'connected',
    peer_id: connection.remotePeer.toString(),
    muxer: connection.multiplexer ?? null,
    encryption: connection.encryption ?? null
  })
})

node.services.pubsub.subscribe(topic)
emit({ event: 'ready', peer_id: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) })

let lastMesh = ''
const meshTimer = setInterval(() => {
  const peers = node.services.pubsub.getMeshPeers(topic).map(String).sort()
  const key = peers.join(',')
  if (key !== lastMesh) {
    lastMesh = key
    emit({ event: 'mesh', peers })
  }
}, 200)

process.stdin.on('end', () => { clearInterval(meshTimer); stop(0) })
process.stdin.resume()
setTimeout(() => { clearInterval(meshTimer); stop(0) }, timeoutS * 1000)

try {
  await node.dial(multiaddr(dial))
} catch (error) {
  emit({ event: 'dial_failed', error: String(error) })
  clearInterval(meshTimer)
  await stop(1)
}
