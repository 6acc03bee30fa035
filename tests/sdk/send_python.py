"""Send every Segment call type through an official Python SDK (run by .sdk/python's interpreter).

Usage: send_python.py segment|rudder HOST USER_ID ANONYMOUS_ID GROUP_ID [WRITE_KEY]
Exits non-zero if the SDK reported an error. tests/integration/test_segment_sdks.py drives it.
"""

import sys
import time

sdk, host, user_id, anonymous_id, group_id = sys.argv[1:6]
write_key = sys.argv[6] if len(sys.argv) > 6 else "test-write-key"
if sdk == "segment":
    from segment.analytics import Client
else:
    from rudderstack.analytics.client import Client

errors = []
client = Client(
    write_key, host=host, gzip=True, max_retries=5, upload_interval=0.2,
    on_error=lambda error, batch: errors.append(f"{error} ({len(batch)} messages)"),
)
client.page(user_id, category="Docs", name="Pricing", properties={"url": "https://shop.example/pricing"},
            anonymous_id=anonymous_id)
client.identify(user_id, {"email": f"{user_id}@example.com", "plan": "free"}, anonymous_id=anonymous_id)
client.track(user_id, "Signed Up", {"plan": "free", "sdk": sdk})
client.screen(user_id, category="App", name="Home", properties={"tab": "feed"})
client.group(user_id, group_id, {"name": "Acme", "employees": 40})
time.sleep(0.3)  # a later identify: its traits must win (calls within one millisecond are unordered)
client.identify(user_id, {"plan": "pro"})
client.alias(f"{user_id}-old", user_id)
client.flush()
client.shutdown()
if errors:
    sys.exit("SDK errors: " + "; ".join(errors))
