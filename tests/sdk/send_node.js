// Send every Segment call type through @segment/analytics-node (installed in .sdk/node by scripts/sdk-clients).
// Usage: node send_node.js HOST USER_ID ANONYMOUS_ID GROUP_ID (NODE_PATH=.sdk/node/node_modules)
// Exits non-zero if the SDK reported an error. tests/integration/test_segment_sdks.py drives it.
const { Analytics } = require('@segment/analytics-node')

const [host, userId, anonymousId, groupId] = process.argv.slice(2)
const analytics = new Analytics({ writeKey: 'test-write-key', host, flushAt: 20, flushInterval: 200, maxRetries: 5 })
const errors = []
analytics.on('error', (err) => errors.push(String(err && (err.reason || err.message || err.code) || err)))

analytics.page({ userId, anonymousId, category: 'Docs', name: 'Pricing', properties: { url: 'https://shop.example/pricing' } })
analytics.identify({ userId, anonymousId, traits: { email: `${userId}@example.com`, plan: 'free' } })
analytics.track({ userId, event: 'Signed Up', properties: { plan: 'free', sdk: 'node' } })
analytics.screen({ userId, category: 'App', name: 'Home', properties: { tab: 'feed' } })
analytics.group({ userId, groupId, traits: { name: 'Acme', employees: 40 } })
setTimeout(() => {
  // a later identify: its traits must win (calls within one millisecond are unordered)
  analytics.identify({ userId, traits: { plan: 'pro' } })
  analytics.alias({ previousId: `${userId}-old`, userId })
  analytics.closeAndFlush({ timeout: 20000 }).then(() => {
    if (errors.length) {
      console.error('SDK errors: ' + errors.join('; '))
      process.exit(1)
    }
  })
}, 300)

